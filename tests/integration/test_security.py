"""TLS and SASL with real clients: kafka-python, aiokafka and confluent-kafka (librdkafka)
against one node with four listeners, PLAINTEXT (for set-up), SSL (client certificates
requested), SASL_PLAINTEXT and SASL_SSL, with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
Certificates are made at test time (tests/certs.py); SCRAM users are created through
AlterUserScramCredentials over the PLAINTEXT listener.
"""

import asyncio
import socket
import ssl
import struct
import time
import uuid

import pytest

from odradek.protocol.errors import ErrorCode
from tests.certs import CREDENTIALS, SECURE_MECHANISMS
from tests.clients import create_topics, read_assigned
from tests.local_cluster import poll_until

MECHANISMS = SECURE_MECHANISMS


def _client_config(protocol: str, port: int, certs, mechanism: str | None = None,
                   password: str | None = None, client_cert: str | None = None) -> dict:
    """confluent-kafka settings; the other clients' are derived from it."""
    config = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": protocol}
    if "SSL" in protocol:
        config["ssl.ca.location"] = str(certs.ca)
        if client_cert:
            cert, key = certs.client(client_cert)
            config["ssl.certificate.location"], config["ssl.key.location"] = str(cert), str(key)
    if mechanism:
        user, pw = CREDENTIALS[mechanism]
        config.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password or pw})
    return config


def _kafka_python(config: dict) -> dict:
    out = {"bootstrap_servers": config["bootstrap.servers"], "security_protocol": config["security.protocol"]}
    if "ssl.ca.location" in config:
        out["ssl_cafile"] = config["ssl.ca.location"]
    if "ssl.certificate.location" in config:
        out["ssl_certfile"], out["ssl_keyfile"] = config["ssl.certificate.location"], config["ssl.key.location"]
    if "sasl.mechanism" in config:
        out.update(sasl_mechanism=config["sasl.mechanism"], sasl_plain_username=config["sasl.username"],
                   sasl_plain_password=config["sasl.password"])
    return out


def roundtrip_confluent(config: dict, topic: str, n: int = 20) -> list[bytes]:
    from confluent_kafka import Consumer, Producer
    p = Producer({**config, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode())
    assert p.flush(20) == 0
    c = Consumer({**config, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(200):
            if len(values) >= n:
                break
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value())
    finally:
        c.close()
    return values


def roundtrip_kafka_python(config: dict, topic: str, n: int = 20) -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    kp = _kafka_python(config)
    p = KafkaProducer(**kp, acks="all")
    for i in range(n):
        p.send(topic, value=f"v{i}".encode(), partition=0)
    p.flush(20)
    p.close()
    c = KafkaConsumer(**kp, auto_offset_reset="earliest", enable_auto_commit=False)
    c.assign([TopicPartition(topic, 0)])
    values = [m.value for m in read_assigned(c, idle_ms=5000)]
    c.close()
    return values


def roundtrip_aiokafka(config: dict, topic: str, n: int = 20) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    kp = _kafka_python(config)
    kw = {"bootstrap_servers": kp["bootstrap_servers"], "security_protocol": kp["security_protocol"]}
    if "ssl_cafile" in kp:
        kw["ssl_context"] = create_ssl_context(cafile=kp["ssl_cafile"], certfile=kp.get("ssl_certfile"),
                                               keyfile=kp.get("ssl_keyfile"))
    if "sasl_mechanism" in kp:
        kw.update(sasl_mechanism=kp["sasl_mechanism"], sasl_plain_username=kp["sasl_plain_username"],
                  sasl_plain_password=kp["sasl_plain_password"])

    async def run():
        p = AIOKafkaProducer(**kw, request_timeout_ms=10000)
        await p.start()
        try:
            for i in range(n):
                await p.send_and_wait(topic, f"v{i}".encode(), partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, **kw, auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            got = await asyncio.wait_for(c.getmany(timeout_ms=5000), 15)
            return [m.value for ms in got.values() for m in ms]
        finally:
            await c.stop()
    return asyncio.run(run())


ROUNDTRIPS = {"confluent": roundtrip_confluent, "kafka-python": roundtrip_kafka_python,
              "aiokafka": roundtrip_aiokafka}
CASES = ([("SSL", None, None), ("SSL", None, "alice")]
         + [(proto, mech, None) for proto in ("SASL_PLAINTEXT", "SASL_SSL") for mech in MECHANISMS])


@pytest.mark.parametrize("client", sorted(ROUNDTRIPS))
@pytest.mark.parametrize(("protocol", "mechanism", "client_cert"), CASES,
                         ids=[f"{p}-{m or c or 'anonymous'}" for p, m, c in CASES])
def test_produce_and_consume(secure, certs, client, protocol, mechanism, client_cert):
    broker, ports = secure
    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic])
    config = _client_config(protocol, ports[protocol], certs, mechanism, client_cert=client_cert)
    values = ROUNDTRIPS[client](config, topic)
    assert values == [f"v{i}".encode() for i in range(20)]
    if mechanism:
        user = CREDENTIALS[mechanism][0]
        assert poll_until(lambda: f"principal='User:{user}'" in broker.log_text(), 5)
    if client_cert:
        assert poll_until(lambda: "principal='User:CN=alice,OU=eng,O=acme'" in broker.log_text(), 5)


def _wrong_password_fails(client: str, config: dict) -> str:
    """The error a client reports for a wrong password (each must fail, not hang)."""
    if client == "confluent":
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({**config, "socket.timeout.ms": 5000, "reconnect.backoff.ms": 1000})
        try:
            admin.list_topics(timeout=3)
        except Exception as e:  # KafkaException(_AUTHENTICATION)
            return str(e)
        return ""
    if client == "kafka-python":
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError
        try:
            KafkaConsumer(**_kafka_python(config), request_timeout_ms=8000, bootstrap_timeout_ms=5000).topics()
        except KafkaError as e:
            return repr(e)
        return ""

    from aiokafka import AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context
    kp = _kafka_python(config)

    async def run():
        kw = {k: v for k, v in kp.items() if k.startswith("sasl") or k in ("bootstrap_servers", "security_protocol")}
        if "ssl_cafile" in kp:
            kw["ssl_context"] = create_ssl_context(cafile=kp["ssl_cafile"])
        p = AIOKafkaProducer(**kw, request_timeout_ms=8000)
        try:
            await asyncio.wait_for(p.start(), 15)
        except Exception as e:
            return repr(e)
        finally:
            await p.stop()
        return ""
    return asyncio.run(run())


@pytest.mark.parametrize("client", sorted(ROUNDTRIPS))
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_fails_cleanly(secure, certs, client, protocol, mechanism):
    broker, ports = secure
    config = _client_config(protocol, ports[protocol], certs, mechanism, password="wrong")
    failures = broker.log_text().count("SASL authentication failed")
    error = _wrong_password_fails(client, config)
    assert error, f"{client} was let in with a wrong password"
    # the client's own words vary ("Unable to bootstrap", "transport failure"); ours do not
    assert poll_until(lambda: broker.log_text().count("SASL authentication failed") > failures, 5)


# -- the protocol underneath, with a raw socket ------------------------------------------

def _frame(api_key: int, version: int, body: bytes, correlation_id: int = 1, flexible: bool = False) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test" + (b"\x00" if flexible else b"")
    return struct.pack(">i", len(header) + len(body)) + header + body


def _recv(sock) -> bytes:
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data
    return exact(struct.unpack(">i", exact(4))[0])


def _closed(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def _string(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def test_sasl_v0_handshake_then_raw_plain_token(secure):
    """After SaslHandshake v0 the token is a bare size-prefixed frame, and so is the answer."""
    _, ports = secure
    with socket.create_connection(("127.0.0.1", ports["SASL_PLAINTEXT"]), timeout=5) as s:
        s.sendall(_frame(17, 0, _string("PLAIN")))
        answer = _recv(s)
        assert struct.unpack_from(">ih", answer) == (1, 0)  # correlation id, no error
        token = b"\x00alice\x00alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert _recv(s) == b""  # PLAIN's (empty) answer, bare
        s.sendall(_frame(3, 1, struct.pack(">i", 0), correlation_id=2))  # Metadata v1, no topics
        assert struct.unpack_from(">i", _recv(s))[0] == 2


def test_before_authentication_only_sasl_is_served(secure):
    _, ports = secure
    with socket.create_connection(("127.0.0.1", ports["SASL_PLAINTEXT"]), timeout=5) as s:
        s.sendall(_frame(3, 1, struct.pack(">i", 0)))  # Metadata before SASL
        assert _closed(s)
    with socket.create_connection(("127.0.0.1", ports["SASL_PLAINTEXT"]), timeout=5) as s:
        s.sendall(struct.pack(">i", 10 * 2**20))  # a frame beyond sasl.server.max.receive.size
        assert _closed(s)


def test_an_unknown_mechanism_is_refused_then_closed(secure):
    _, ports = secure
    with socket.create_connection(("127.0.0.1", ports["SASL_PLAINTEXT"]), timeout=5) as s:
        s.sendall(_frame(17, 1, _string("GSSAPI")))
        answer = _recv(s)
        cid, error, count = struct.unpack_from(">ihi", answer)
        assert (cid, error, count) == (1, 33, 4)  # UNSUPPORTED_SASL_MECHANISM, the enabled four
        assert _closed(s)


def test_a_failed_authenticate_answers_then_closes(secure):
    _, ports = secure
    with socket.create_connection(("127.0.0.1", ports["SASL_PLAINTEXT"]), timeout=5) as s:
        s.sendall(_frame(17, 1, _string("PLAIN")))
        _recv(s)
        token = b"\x00alice\x00nope"
        s.sendall(_frame(36, 1, struct.pack(">i", len(token)) + token, correlation_id=2))
        cid, error = struct.unpack_from(">ih", _recv(s))
        assert (cid, error) == (2, 58)  # SASL_AUTHENTICATION_FAILED
        assert _closed(s)


def test_sasl_requests_on_a_plaintext_listener_are_illegal_state(secure):
    broker, _ = secure
    host, port = broker.bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(_frame(17, 1, _string("PLAIN")))
        cid, error = struct.unpack_from(">ih", _recv(s))
        assert (cid, error) == (1, 34)  # ILLEGAL_SASL_STATE


def test_tls_versions_and_a_client_without_the_ca_fails(secure, certs):
    _, ports = secure
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", ports["SSL"]), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
                s.sendall(_frame(18, 0, b""))  # ApiVersions v0
                assert struct.unpack_from(">ih", _recv(s)) == (1, 0)
    with socket.create_connection(("127.0.0.1", ports["SSL"]), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")


def test_a_large_fetch_over_tls(secure, certs):
    """Fetch over TLS reads the file slices (no sendfile) and must deliver them whole."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    broker, ports = secure
    topic = f"big-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic])
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    payload = bytes(range(256)) * 400  # 100 KiB
    for i in range(60):  # about 6 MiB: many TLS_READ_BYTES pieces
        p.produce(topic, value=payload, key=str(i).encode())
    assert p.flush(30) == 0
    c = Consumer({**_client_config("SSL", ports["SSL"], certs), "group.id": "big",
                  "enable.auto.commit": False, "fetch.max.bytes": 8 * 2**20})
    c.assign([TopicPartition(topic, 0, 0)])
    keys = []
    try:
        for _ in range(200):
            if len(keys) >= 60:
                break
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                assert m.value() == payload
                keys.append(int(m.key()))
    finally:
        c.close()
    assert keys == list(range(60))


def test_scram_credentials_are_described(secure):
    from confluent_kafka.admin import AdminClient
    broker, _ = secure
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_user_scram_credentials(["sam", "sid", "nobody"])
    sam = described["sam"].result(10)
    assert [(str(i.mechanism), i.iterations) for i in sam.scram_credential_infos] == [
        ("ScramMechanism.SCRAM_SHA_256", 8192)]
    assert described["sid"].result(10).scram_credential_infos[0].iterations == 8192
    with pytest.raises(Exception, match="does not exist"):
        described["nobody"].result(10)


@pytest.mark.parametrize(("protocol", "mechanism", "client_cert"),
                         [("SSL", None, "kcat"), ("SSL", None, None), ("SASL_SSL", "PLAIN", None), ("SASL_PLAINTEXT", "PLAIN", None),
                          ("SASL_PLAINTEXT", "SCRAM-SHA-512", None)])
def test_kcat(secure, certs, protocol, mechanism, client_cert):
    """SCRAM too: the librdkafka 2.0.2 that Debian's kcat 1.7.1 links sends the client nonce
    twice in its client-final-message, r=<client nonce><client nonce><server nonce>, which
    Kafka's ScramSaslServer accepts (it checks that the nonce ends with its own) and so do we."""
    import subprocess

    from tests.conftest import require_tool
    require_tool("kcat")
    broker, ports = secure
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic])
    config = _client_config(protocol, ports[protocol], certs, mechanism, client_cert=client_cert)
    options = [x for k, v in config.items() if k != "bootstrap.servers" for x in ("-X", f"{k}={v}")]
    base = ["kcat", "-b", config["bootstrap.servers"], *options]
    subprocess.run([*base, "-P", "-t", topic], input=b"a\nb\n", check=True, timeout=30)
    out = subprocess.run([*base, "-C", "-t", topic, "-o", "beginning", "-c", "2", "-e"],
                         capture_output=True, check=True, timeout=30)
    assert out.stdout.split() == [b"a", b"b"]
    if mechanism:
        wrong = [*base, "-X", "sasl.password=wrong", "-L", "-m", "3"]
        refused = subprocess.run(wrong, capture_output=True, timeout=30)
        assert refused.returncode != 0 and b"uthentication" in refused.stderr


def test_the_readme_example_config_works(certs, tmp_path):
    """README's "Security" properties, with this test's ports and certificates, start a
    node that kcat reaches over SASL_SSL with PLAIN and a client certificate over SSL."""
    import re
    import subprocess
    from pathlib import Path

    from tests.brokerproc import BrokerProcess, free_port
    from tests.conftest import require_tool
    require_tool("kcat")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    text = re.search(r"## Security: TLS and SASL.*?```properties\n(.*?)```", readme, re.S).group(1)
    ports = {9092: free_port(), 9093: free_port(), 9094: free_port()}
    for port, mine in ports.items():
        text = text.replace(f":{port}", f":{mine}")
    text = (text.replace("0.0.0.0", "127.0.0.1").replace("broker.example.com", "127.0.0.1")
            .replace("/etc/odradek/server.pem", str(certs.server_keystore))
            .replace("/etc/odradek/ca.crt", str(certs.ca)))
    config = tmp_path / "server.properties"
    config.write_text(text)
    listeners = re.search(r"^listeners=(.*)$", text, re.M).group(1)
    b = BrokerProcess(tmp_path / "data", port=ports[9092], overrides={"listeners": listeners},
                      extra_args=["--config", str(config)])
    b.start()
    try:
        sasl = ["kcat", "-b", f"127.0.0.1:{ports[9094]}", "-X", "security.protocol=SASL_SSL",
                "-X", f"ssl.ca.location={certs.ca}", "-X", "sasl.mechanism=PLAIN",
                "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret", "-L", "-m", "10"]
        assert subprocess.run(sasl, capture_output=True, timeout=30).returncode == 0
        cert, key = certs.client("readme")
        tls = ["kcat", "-b", f"127.0.0.1:{ports[9093]}", "-X", "security.protocol=SSL",
               "-X", f"ssl.ca.location={certs.ca}", "-X", f"ssl.certificate.location={cert}",
               "-X", f"ssl.key.location={key}", "-L", "-m", "10"]
        assert subprocess.run(tls, capture_output=True, timeout=30).returncode == 0
        # the mapping rule's lower-cased CN (the log line may follow kcat's exit)
        assert poll_until(lambda: "principal='User:readme'" in b.log_text(), 5)
        no_cert = tls[:7] + ["-L", "-m", "5"]  # ssl.client.auth=required: no certificate, no entry
        assert no_cert[-4].startswith("ssl.ca.location")
        refused = subprocess.run(no_cert, capture_output=True, timeout=30)
        assert refused.returncode != 0 and b"SSL" in refused.stderr
    finally:
        b.kill()
        print(b.log_text()[-4000:])


def test_sessions_end_and_librdkafka_reauthenticates(broker_factory):
    """connections.max.reauth.ms (KIP-368): SaslAuthenticate v1+ says how long the session
    lasts; librdkafka re-authenticates on the same connection before then, and a client
    that does not is closed at its next request after it."""
    from confluent_kafka import Producer

    from tests.brokerproc import free_port
    from tests.certs import JAAS
    plain, sasl_port = free_port(), free_port()
    b = broker_factory(port=plain, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms": "PLAIN", "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "listener.name.sasl_plaintext.connections.max.reauth.ms": "1500"})
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    create_topics(b.bootstrap, [topic])
    p = Producer({"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret",
                  "linger.ms": 0})
    for i in range(16):  # about 5 s: three sessions or more
        p.produce(topic, value=b"%d" % i)
        assert p.flush(10) == 0
        time.sleep(0.3)
    authentications = [line for line in b.log_lines if "event='authenticated'" in line]
    peers = [line.split("peer=")[1].split(" principal")[0] for line in authentications]
    assert any(peers.count(peer) >= 3 for peer in peers), authentications  # again on one connection
    assert "did not re-authenticate" not in b.log_text()

    with socket.create_connection(("127.0.0.1", sasl_port), timeout=5) as s:
        s.sendall(_frame(17, 1, _string("PLAIN")))
        _recv(s)
        token = b"\x00alice\x00alice-secret"
        s.sendall(_frame(36, 1, struct.pack(">i", len(token)) + token, correlation_id=2))
        answer = _recv(s)
        cid, error = struct.unpack_from(">ih", answer)
        assert (cid, error) == (2, 0)
        assert struct.unpack(">q", answer[-8:])[0] == 1500  # session_lifetime_ms
        time.sleep(1.6)
        s.sendall(_frame(3, 1, struct.pack(">i", 0), correlation_id=3))
        assert _closed(s)
    assert poll_until(lambda: "did not re-authenticate" in b.log_text(), 5)


def test_add_scram_seeds_a_new_data_dir_only(tmp_path):
    """serve --add-scram (Kafka's format --add-scram, KIP-900): the user exists from the
    first start; once an admin deletes it, a restart does not bring it back."""
    from confluent_kafka.admin import AdminClient, ScramMechanism, UserScramCredentialDeletion

    from tests.brokerproc import BrokerProcess, free_port
    plain, sasl_port = free_port(), free_port()
    b = BrokerProcess(tmp_path / "data", port=plain, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512"},
        extra_args=["--add-scram", "SCRAM-SHA-512=[name=seed,password=seed-pw,iterations=8192]"])
    b.start()
    try:
        assert poll_until(lambda: "event='scram_seeded'" in b.log_text(), 20)
        client = {"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "seed", "sasl.password": "seed-pw"}
        assert AdminClient(client).list_topics(timeout=10).brokers
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in admin.alter_user_scram_credentials(
                [UserScramCredentialDeletion("seed", ScramMechanism.SCRAM_SHA_512)]).values():
            f.result(10)
        b.stop()
        b.start()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})  # outlives its futures
        described = admin.describe_user_scram_credentials(["seed"])
        with pytest.raises(Exception, match="does not exist"):
            described["seed"].result(10)
        assert "event='scram_seeded'" not in b.log_text()
    finally:
        b.kill()
        print(b.log_text()[-4000:])


def test_sighup_replaces_the_certificate_without_a_restart(certs, tmp_path):
    """New connections get the new certificate; a bad file is refused and the old one
    stays in service."""
    import shutil
    import signal

    from tests.brokerproc import BrokerProcess, free_port
    keystore = tmp_path / "server.pem"
    shutil.copy(certs.server_keystore, keystore)
    plain, tls = free_port(), free_port()
    b = BrokerProcess(tmp_path / "data", port=plain, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore)})
    b.start()

    def served_cn() -> str:
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", tls), timeout=5) as raw, ctx.wrap_socket(raw) as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]

    try:
        assert served_cn() == "localhost"
        cert, key = certs.client("rotated")
        keystore.write_text(key.read_text() + cert.read_text())
        b.proc.send_signal(signal.SIGHUP)
        assert poll_until(lambda: "event='tls_reloaded'" in b.log_text(), 10)
        assert served_cn() == "rotated"
        keystore.write_text("not a certificate")
        b.proc.send_signal(signal.SIGHUP)
        assert poll_until(lambda: "event='tls_reload_failed'" in b.log_text(), 10)
        assert served_cn() == "rotated"
    finally:
        b.kill()
        print(b.log_text()[-4000:])


def test_a_reloaded_trust_store_stops_trusting_a_ca_it_no_longer_holds(certs, tmp_path):
    """A trust store rewritten without a CA (a compromised one, say) is replaced, not added
    to: new connections with a client certificate of that CA are refused, as Kafka's
    SslFactory makes a new engine factory from the new store. Before, the reload only
    loaded the new file into the running context, so the old CA stayed trusted until a
    restart."""
    import signal
    import subprocess

    from tests.brokerproc import BrokerProcess, free_port
    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "other-ca.key"), "-out", str(other_ca), "-subj", "/CN=other-ca",
                    "-days", "2"], check=True, capture_output=True, timeout=60)
    truststore = tmp_path / "truststore.pem"
    truststore.write_text(certs.ca.read_text() + other_ca.read_text())
    plain, tls = free_port(), free_port()
    b = BrokerProcess(tmp_path / "data", port=plain, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(truststore),
        "ssl.client.auth": "required"})
    b.start()
    cert, key = certs.client("trusted-once")

    def served() -> bool:
        """Whether an ApiVersions request over a new connection with the client certificate is answered."""
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(cert), str(key))
        try:
            with socket.create_connection(("127.0.0.1", tls), timeout=5) as raw, ctx.wrap_socket(raw) as s:
                s.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))  # ApiVersions v0, no client id
                return len(s.recv(8)) == 8
        except (ssl.SSLError, OSError):
            return False

    try:
        assert served()
        truststore.write_text(other_ca.read_text())
        b.proc.send_signal(signal.SIGHUP)
        assert poll_until(lambda: "event='tls_reloaded'" in b.log_text(), 10)
        assert not served()
    finally:
        b.kill()
        print(b.log_text()[-4000:])


def _served_certificate(port: int, cafile) -> dict:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        return s.getpeercert()


def test_a_dynamic_listener_keystore_change_applies_to_new_connections(certs, tmp_path):
    """kafka-configs' listener.name.ssl.ssl.keystore.location, as in Kafka: a bad path, a
    wrong key password, another subject and an unprefixed or cluster-wide key are refused
    with Kafka's errors and the old certificate stays; a renewed certificate is served to new
    connections (after a restart too) while an open one keeps its own and a producer keeps
    producing."""
    from kafka import KafkaProducer

    from tests.brokerproc import BrokerProcess, free_port
    from tests.rawclient import alter_broker_configs, described_configs
    plain, tls = free_port(), free_port()
    b = BrokerProcess(tmp_path / "data", port=plain, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore)})
    b.start()
    key = "listener.name.ssl.ssl.keystore.location"
    refused = "Invalid value org.apache.kafka.common.config.ConfigException: Validation of dynamic config " \
              "update of SSLFactory failed: "
    producer = None
    try:
        old_serial = _served_certificate(tls, certs.ca)["serialNumber"]
        topic = f"rotate-{uuid.uuid4().hex[:6]}"
        create_topics(b.bootstrap, [topic])
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{tls}", security_protocol="SSL",
                                 ssl_cafile=str(certs.ca), request_timeout_ms=10000)
        producer.send(topic, b"before").get(timeout=10)
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.check_hostname = False
        opened = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls), timeout=5))

        bad = alter_broker_configs(b.bootstrap, "1", (key, 0, str(tmp_path / "missing.pem")))
        assert bad == (ErrorCode.INVALID_REQUEST, refused + "org.apache.kafka.common.errors."
                       "InvalidConfigurationException: Failed to load PEM SSL keystore "
                       f"{tmp_path / 'missing.pem'} for configuration Invalid dynamic configuration")
        code, message = alter_broker_configs(b.bootstrap, "1", (key, 0, str(certs.encrypted_keystore)),
                                             ("listener.name.ssl.ssl.key.password", 0, "wrong"))
        assert code == ErrorCode.INVALID_REQUEST and "Failed to load PEM SSL keystore" in message
        other_cert, other_key = certs.client("rotated")
        other = tmp_path / "other.pem"
        other.write_text(other_key.read_text() + other_cert.read_text())
        code, message = alter_broker_configs(b.bootstrap, "1", (key, 0, str(other)))
        assert code == ErrorCode.INVALID_REQUEST and message.startswith(
            refused + "org.apache.kafka.common.config.ConfigException: Keystore DistinguishedName does not "
            "match:  existing={alias=kafka, DN=CN=localhost}, new={alias=kafka, DN=CN=rotated, OU=eng, O=acme}")
        assert alter_broker_configs(b.bootstrap, "1", ("ssl.keystore.location", 0, str(other))) == (
            ErrorCode.INVALID_REQUEST, "These security configs can be dynamically updated only per-listener "
            "using the listener prefix: [ssl.keystore.location]")
        assert alter_broker_configs(b.bootstrap, "", (key, 0, str(other))) == (
            ErrorCode.INVALID_REQUEST, "Cannot update these configs at default cluster level, broker id "
            f"must be specified: [{key}]")
        assert _served_certificate(tls, certs.ca)["serialNumber"] == old_serial

        renewed = certs.reissued_server_keystore()
        assert alter_broker_configs(b.bootstrap, "1", (key, 0, str(renewed))) == (ErrorCode.NONE, None)
        assert poll_until(lambda: _served_certificate(tls, certs.ca)["serialNumber"] != old_serial, 10)
        # the connection opened before keeps its certificate and is still served
        assert opened.getpeercert()["serialNumber"] == old_serial
        opened.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))  # ApiVersions v0, no client id
        size, correlation = struct.unpack(">ii", opened.recv(8))
        assert correlation == 7 and size > 4
        producer.send(topic, b"after").get(timeout=10)
        producer.close(timeout=5)
        producer = None
        opened.close()
        new_serial = _served_certificate(tls, certs.ca)["serialNumber"]
        b.restart()  # the change is in the metadata log: served again after a restart
        assert poll_until(lambda: _served_certificate(tls, certs.ca)["serialNumber"] == new_serial, 10)

        # an encrypted key with its password; DescribeConfigs shows the password as null
        assert alter_broker_configs(b.bootstrap, "1", (key, 0, str(certs.encrypted_keystore)),
                                    ("listener.name.ssl.ssl.key.password", 0, certs.KEY_PASSWORD)) == (0, None)
        described = described_configs(b.bootstrap, 4, "1")
        assert described[key] == (str(certs.encrypted_keystore), 2, True, False, [
            (key, str(certs.encrypted_keystore), 2), ("ssl.keystore.location", str(certs.server_keystore), 4)])
        assert described["listener.name.ssl.ssl.key.password"] == (
            None, 2, True, True, [("listener.name.ssl.ssl.key.password", None, 2)])
        assert described["ssl.keystore.location"][2] is False  # Kafka's dynamic keys are not read-only
        assert described["ssl.allow.dn.changes"][:3] == ("false", 5, True)
    finally:
        if producer is not None:
            producer.close(timeout=5)
        b.kill()
        print(b.log_text()[-4000:])


def test_oauthbearer_with_unsecured_tokens(secure, certs):
    """OAUTHBEARER with Kafka's default unsecured tokens: librdkafka mints one for
    principal=carol and produces and consumes; kafka-python's token provider with an
    expired token fails cleanly."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError
    from kafka.net.sasl.oauth import AbstractTokenProvider

    from tests.unit.test_sasl import unsecured_jws
    broker, ports = secure
    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic])
    config = {**_client_config("SASL_SSL", ports["SASL_SSL"], certs), "sasl.mechanism": "OAUTHBEARER",
              "enable.sasl.oauthbearer.unsecure.jwt": True, "sasl.oauthbearer.config": "principal=carol"}
    assert roundtrip_confluent(config, topic) == [f"v{i}".encode() for i in range(20)]
    assert "principal='User:carol'" in broker.log_text()

    class Expired(AbstractTokenProvider):
        def token(self):
            return unsecured_jws({"sub": "dave", "exp": time.time() - 60})
    failures = broker.log_text().count("it has expired")
    with pytest.raises(KafkaError):
        KafkaConsumer(bootstrap_servers=f"127.0.0.1:{ports['SASL_PLAINTEXT']}", security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Expired(),
                      request_timeout_ms=8000, bootstrap_timeout_ms=2000).topics()
    assert poll_until(lambda: broker.log_text().count("it has expired") > failures, 5)
