"""Test certificates, made at test time with the openssl CLI (none are committed).

A CA, a server certificate with subjectAltName IP:127.0.0.1 (and .2, .3: the nodes of
a loopback cluster) and DNS:localhost (the Java
client and librdkafka verify host names), and client certificates, each key PKCS#8 PEM as
Kafka's ``ssl.keystore.type=PEM`` wants. ``server.pem`` is a keystore file: the key, then
the chain.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class Certs:
    dir: Path
    ca: Path  # the CA certificate (PEM): trusted by both sides
    server_keystore: Path  # PKCS#8 key + certificate chain
    server_key: Path
    server_cert: Path
    encrypted_keystore: Path  # the same with the key encrypted by KEY_PASSWORD

    KEY_PASSWORD = "keypass"

    def client(self, cn: str, subject_prefix: str = "/O=acme/OU=eng") -> tuple[Path, Path]:
        """(certificate, key) of a client certificate with subject <prefix>/CN=<cn>, which
        Java's RFC 2253 form (last RDN first) prints CN=<cn>,OU=eng,O=acme."""
        key, cert = self.dir / f"{cn}.key", self.dir / f"{cn}.crt"
        if not cert.exists():
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", key.name, cwd=self.dir)
            _openssl("req", "-new", "-key", key.name, "-subj", f"{subject_prefix}/CN={cn}",
                     "-out", f"{cn}.csr", cwd=self.dir)
            _openssl("x509", "-req", "-in", f"{cn}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-out", cert.name, cwd=self.dir)
        return cert, key


    def reissued_server_keystore(self) -> Path:
        """A key store like server_keystore (same key, subject and subjectAltNames) with a
        certificate signed again: another serial number, as a certificate renewal makes."""
        keystore = self.dir / "server-reissued.pem"
        if not keystore.exists():
            _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server-reissued.crt",
                     cwd=self.dir)
            keystore.write_text(self.server_key.read_text() + (self.dir / "server-reissued.crt").read_text()
                                + self.ca.read_text())
        return keystore

    def node_keystore(self, n: int, issuer: str = "ca") -> Path:
        """A key store (key, then chain) for node n of a loopback cluster: subject CN=node-<n>,
        subjectAltName IP:127.0.0.<n>, so that each node has a principal of its own; signed
        by ``issuer`` (another name than "ca": a CA of that name, made here, that only the
        trust stores a test writes know)."""
        name = f"node-{n}" if issuer == "ca" else f"{issuer}-node-{n}"
        keystore = self.dir / f"{name}.pem"
        if not keystore.exists():
            if not (self.dir / f"{issuer}.crt").exists():
                _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{issuer}.key",
                         "-out", f"{issuer}.crt", "-subj", f"/CN=odradek-test-{issuer}", "-days", "2",
                         cwd=self.dir)
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", f"{name}.key", cwd=self.dir)
            _openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN=node-{n}", "-out", f"{name}.csr",
                     cwd=self.dir)
            (self.dir / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.{n}\n")
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.crt", "-CAkey", f"{issuer}.key",
                     "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
                     cwd=self.dir)
            _openssl("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.key", "-out", f"{name}.p8", cwd=self.dir)
            keystore.write_text((self.dir / f"{name}.p8").read_text() + (self.dir / f"{name}.crt").read_text()
                                + (self.dir / f"{issuer}.crt").read_text())
        return keystore


def make_certs(directory: Path) -> Certs:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-subj", "/CN=odradek-test-ca", "-days", "2", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "server.key",
             cwd=d)
    _openssl("req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d)
    _openssl("pkcs8", "-topk8", "-in", "server.key", "-v2", "aes-256-cbc", "-passout",
             f"pass:{Certs.KEY_PASSWORD}", "-out", "server-encrypted.key", cwd=d)
    chain = (d / "server.crt").read_text() + (d / "ca.crt").read_text()
    (d / "server.pem").write_text((d / "server.key").read_text() + chain)
    (d / "server-encrypted.pem").write_text((d / "server-encrypted.key").read_text() + chain)
    return Certs(d, d / "ca.crt", d / "server.pem", d / "server.key", d / "server.crt",
                 d / "server-encrypted.pem")


def java_client_properties(path: Path, certs, protocol: str, mechanism: str | None = None,
                      user: str = "", password: str = "", client_cert: str | None = None) -> str:
    """A Java client's properties file (Kafka's keys: PEM trust store and key store, a
    JAAS line for SASL) at path; returns the path."""
    lines = [f"security.protocol={protocol}"]
    if "SSL" in protocol:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={certs.ca}"]
        if client_cert:
            cert, key = certs.client(client_cert)
            keystore = path.with_suffix(".keystore.pem")
            keystore.write_text(key.read_text() + cert.read_text())
            lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}"]
    if mechanism:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        lines += [f"sasl.mechanism={mechanism}",
                  f'sasl.jaas.config={module} required username="{user}" password="{password}";']
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# -- a node with every security protocol, for the client tests ---------------------------

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
SCRAM_USERS = {"SCRAM-SHA-256": ("sam", "sam-secret"), "SCRAM-SHA-512": ("sid", "sid-secret")}
SECURE_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
CREDENTIALS = {"PLAIN": ("alice", "alice-secret"), **SCRAM_USERS}  # mechanism -> (user, password)


def start_secure_broker(certs: Certs, data_dir: Path):
    """(BrokerProcess, {protocol: port}): listeners PLAINTEXT (the bootstrap, for set-up),
    SSL (client certificates requested), SASL_PLAINTEXT and SASL_SSL with PLAIN (JAAS) and
    SCRAM (users made through AlterUserScramCredentials). The caller kills it."""
    from tests.brokerproc import BrokerProcess, free_port

    ports = {p: free_port() for p in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")}
    b = BrokerProcess(data_dir, port=ports["PLAINTEXT"], overrides={
        "listeners": ",".join(f"{p}://127.0.0.1:{port}" for p, port in ports.items()),
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca),
        "listener.name.ssl.ssl.client.auth": "requested",
        "sasl.enabled.mechanisms": ",".join([*SECURE_MECHANISMS, "OAUTHBEARER"]),  # (unsecured tokens)
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "offsets.topic.replication.factor": "1", "offsets.topic.num.partitions": "2",
        "group.initial.rebalance.delay.ms": "0",
    })
    b.start()
    try:
        _add_scram_users(b.bootstrap)
    except Exception:
        b.kill()
        raise
    return b, ports


def _add_scram_users(bootstrap: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    upserts = [UserScramCredentialUpsertion(
        user, ScramCredentialInfo(getattr(ScramMechanism, mech.replace("-", "_")), 8192), password.encode())
        for mech, (user, password) in SCRAM_USERS.items()]
    for f in admin.alter_user_scram_credentials(upserts).values():
        f.result(20)
