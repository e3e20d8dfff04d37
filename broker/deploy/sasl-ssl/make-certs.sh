#!/bin/sh
# Certificates for docker-compose.sasl-ssl.yml, made here with the openssl CLI (nothing
# generated is committed): a CA (ca.crt, ca.key) and, for each node N of 1 2 3, a key store
# node-N.pem in Kafka's ssl.keystore.type=PEM form (the PKCS#8 key, then the certificate,
# then the CA). Each node certificate names DNS:odradek-N (the nodes dial each other by
# that name and verify it, ssl.endpoint.identification.algorithm=https), DNS:localhost and
# IP:127.0.0.1 (clients on the host, whose librdkafka and Java clients verify host names).
#
#   broker/deploy/sasl-ssl/make-certs.sh [DIR]    # DIR defaults to build/sasl-ssl-certs
#
# An existing CA in DIR is kept (clients that trust it keep working); node certificates are
# made again. The files are world-readable so that the containers' user (uid 10001) can
# read them through the bind mount: keep DIR on a machine you trust, or replace these with
# certificates from your own CA (same file names).
set -eu
dir=${1:-build/sasl-ssl-certs}
days=${ODRADEK_CERT_DAYS:-365}
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.crt ] || [ ! -f ca.key ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt \
        -subj "/CN=odradek-compose-ca" -days "$days" 2>/dev/null
fi
for n in 1 2 3; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "node-$n.key" 2>/dev/null
    openssl req -new -key "node-$n.key" -subj "/CN=odradek-$n" -out "node-$n.csr" 2>/dev/null
    printf 'subjectAltName=DNS:odradek-%s,DNS:localhost,IP:127.0.0.1\n' "$n" > "node-$n.ext"
    openssl x509 -req -in "node-$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
        -extfile "node-$n.ext" -out "node-$n.crt" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "node-$n.key" -out "node-$n.p8"
    cat "node-$n.p8" "node-$n.crt" ca.crt > "node-$n.pem"
    rm -f "node-$n.csr" "node-$n.ext" "node-$n.p8" "node-$n.key"
done
chmod 644 ./*.pem ca.crt
echo "certificates in $dir: ca.crt (give it to clients), node-1.pem node-2.pem node-3.pem"
