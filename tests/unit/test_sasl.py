"""The SASL state machines (odradek.broker.sasl): SCRAM against RFC 7677's test vector and
kafka-python's client, PLAIN, the JAAS line, and the per-connection session."""

import base64

import pytest
from kafka.net.sasl.scram import ScramClient

from odradek.broker import sasl

# RFC 7677 section 3: user "user", password "pencil"
RFC7677 = {
    "client_first": b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_nonce": "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
    "server_first": b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def _rfc_credential():
    return sasl.credential_from_password(sasl.SCRAM_SHA_256, "pencil", 4096,
                                         base64.b64decode(RFC7677["salt"]))


def test_scram_sha_256_rfc7677_vector():
    server = sasl.ScramServer(sasl.SCRAM_SHA_256, {"user": _rfc_credential()}.get,
                              server_nonce=RFC7677["server_nonce"])
    assert server.step(RFC7677["client_first"]) == RFC7677["server_first"]
    assert not server.complete
    assert server.step(RFC7677["client_final"]) == RFC7677["server_final"]
    assert server.complete and server.user == "user"


def test_scram_wrong_proof_fails():
    server = sasl.ScramServer(sasl.SCRAM_SHA_256, {"user": _rfc_credential()}.get,
                              server_nonce=RFC7677["server_nonce"])
    server.step(RFC7677["client_first"])
    bad = RFC7677["client_final"].replace(b"p=dHzb", b"p=dHzc")
    with pytest.raises(sasl.AuthenticationFailed, match="Invalid user credentials"):
        server.step(bad)
    assert not server.complete


@pytest.mark.parametrize("mechanism", [sasl.SCRAM_SHA_256, sasl.SCRAM_SHA_512])
@pytest.mark.parametrize(("password", "ok"), [("secret", True), ("wrong", False)])
def test_scram_against_kafka_pythons_client(mechanism, password, ok):
    credential = sasl.credential_from_password(mechanism, "secret", 8192)
    server = sasl.ScramServer(mechanism, {"bob,=x": credential}.get)
    client = ScramClient("bob,=x", password, mechanism)
    # kafka-python does not escape names; RFC 5802 does: ',' -> =2C and '=' -> =3D
    first = client.first_message().replace(b"n=bob,=x", b"n=bob=2C=3Dx")
    client.auth_message = client.auth_message.replace(b"n=bob,=x", b"n=bob=2C=3Dx")
    client.process_server_first_message(server.step(first))
    if not ok:
        with pytest.raises(sasl.AuthenticationFailed):
            server.step(client.final_message())
        return
    client.process_server_final_message(server.step(client.final_message()))  # checks our signature
    assert server.complete and server.user == "bob,=x"


def _rfc_proof(client_final_without_proof: bytes) -> bytes:
    """RFC 5802's ClientProof of "pencil" over RFC 7677's exchange ending in this message."""
    import hashlib
    import hmac
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", base64.b64decode(RFC7677["salt"]), 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    auth = b",".join([RFC7677["client_first"][3:], RFC7677["server_first"], client_final_without_proof])
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth, "sha256")
    return base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))


def test_scram_client_final_nonce_ending_in_the_servers_is_accepted_as_kafka_does():
    """librdkafka 2.0.2 (Debian's kcat 1.7.1) sends r=<client nonce><client nonce><server nonce>
    in its client-final-message. Kafka's ScramSaslServer checks only that the nonce ends with
    the server-first nonce, and the proof (over the message as sent) still proves the password."""
    doubled = b"c=biws,r=rOprNGfwEbeRWgbNEkqO" + RFC7677["server_first"][2:].split(b",")[0]
    server = sasl.ScramServer(sasl.SCRAM_SHA_256, {"user": _rfc_credential()}.get,
                              server_nonce=RFC7677["server_nonce"])
    server.step(RFC7677["client_first"])
    server.step(doubled + b",p=" + _rfc_proof(doubled))
    assert server.complete and server.user == "user"
    # A nonce that does not end with the server's fails, whatever the proof.
    other = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1"
    server = sasl.ScramServer(sasl.SCRAM_SHA_256, {"user": _rfc_credential()}.get,
                              server_nonce=RFC7677["server_nonce"])
    server.step(RFC7677["client_first"])
    with pytest.raises(sasl.AuthenticationFailed, match="nonce"):
        server.step(other + b",p=" + _rfc_proof(other))


def test_scram_unknown_user_and_malformed_messages():
    credentials = {"user": _rfc_credential()}.get
    for message in (b"n,,n=nobody,r=abc", b"hello", b"p=tls-unique,,n=user,r=abc", b"n,,n=us=er,r=abc",
                    b"n,a=other,n=user,r=abc", b"n,,n=user,r=abc,tokenauth=true", b"\xff"):
        with pytest.raises(sasl.AuthenticationFailed):
            sasl.ScramServer(sasl.SCRAM_SHA_256, credentials).step(message)
    server = sasl.ScramServer(sasl.SCRAM_SHA_256, credentials, server_nonce="S")
    server.step(b"n,,n=user,r=abc")
    with pytest.raises(sasl.AuthenticationFailed, match="nonce"):
        server.step(b"c=biws,r=abcX,p=AAAA")


def test_plain():
    server = sasl.PlainServer({"alice": "pw"})
    assert server.step(b"\x00alice\x00pw") == b"" and server.complete and server.user == "alice"
    assert sasl.PlainServer({"alice": "pw"}).step(b"alice\x00alice\x00pw") == b""
    for token in (b"\x00alice\x00nope", b"\x00bob\x00pw", b"\x00alice", b"bob\x00alice\x00pw", b"\x00\x00pw"):
        with pytest.raises(sasl.AuthenticationFailed):
            sasl.PlainServer({"alice": "pw"}).step(token)


def test_jaas_plain_users():
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required\n username="admin" '
            'password="a" user_admin="a" user_alice="with \\"quote\\" and ;" user_bob=plain;')
    assert sasl.plain_users(jaas, "k") == {"admin": "a", "alice": 'with "quote" and ;', "bob": "plain"}
    with pytest.raises(ValueError, match="PlainLoginModule"):
        sasl.plain_users("org.apache.kafka.common.security.scram.ScramLoginModule required;", "k")
    with pytest.raises(ValueError, match="k: expected"):
        sasl.plain_users('user_a="b"', "k")


def test_session_states():
    session = sasl.SaslSession(["PLAIN"], lambda m: sasl.PlainServer({"alice": "pw"}))
    assert session.allows(sasl.API_VERSIONS) and session.allows(sasl.SASL_HANDSHAKE)
    assert not session.allows(3) and not session.allows(sasl.SASL_AUTHENTICATE)
    assert session.handshake("PLAIN", 1)
    assert session.allows(sasl.SASL_AUTHENTICATE) and not session.allows(sasl.API_VERSIONS)
    session.authenticate(b"\x00alice\x00pw")
    assert session.authenticated and session.principal == "User:alice" and session.allows(3)


def test_session_v0_raw_tokens_and_failures():
    session = sasl.SaslSession(["PLAIN"], lambda m: sasl.PlainServer({"alice": "pw"}))
    assert not session.handshake("SCRAM-SHA-256", 0)
    assert session.state == sasl.FAILED
    session = sasl.SaslSession(["PLAIN"], lambda m: sasl.PlainServer({"alice": "pw"}))
    assert session.handshake("PLAIN", 0) and session.raw_tokens
    assert not session.allows(sasl.SASL_AUTHENTICATE)  # v0: tokens are bare frames
    with pytest.raises(sasl.AuthenticationFailed):
        session.authenticate(b"\x00alice\x00no")
    assert session.state == sasl.FAILED and not session.allows(sasl.API_VERSIONS)
    with pytest.raises(sasl.AuthenticationFailed):
        session.authenticate(b"\x00alice\x00pw")  # no second chance on the same connection


def test_session_expiry_and_reauthentication():
    """KIP-368: a session lasts connections.max.reauth.ms; a handshake then starts a new
    one, for the same principal and mechanism only."""
    users = {"alice": "pw", "bob": "pw"}
    session = sasl.SaslSession(["PLAIN", "SCRAM-SHA-256"], lambda m: sasl.PlainServer(users), reauth_ms=1000)
    session.handshake("PLAIN", 1)
    session.authenticate(b"\x00alice\x00pw", now=10.0)
    assert session.session_lifetime_ms == 1000 and not session.expired(10.9) and session.expired(11.0)
    assert session.may_handshake() and session.handshake("PLAIN", 1)
    session.authenticate(b"\x00alice\x00pw", now=20.0)
    assert session.authenticated and session.expires_at == 21.0
    session.handshake("PLAIN", 1)
    with pytest.raises(sasl.AuthenticationFailed, match="Cannot change principals"):
        session.authenticate(b"\x00bob\x00pw", now=30.0)
    other = sasl.SaslSession(["PLAIN", "SCRAM-SHA-256"], lambda m: sasl.PlainServer(users), reauth_ms=1000)
    other.handshake("PLAIN", 1)
    other.authenticate(b"\x00alice\x00pw", now=0.0)
    assert not other.handshake("SCRAM-SHA-256", 1)  # another mechanism: refused
    forever = sasl.SaslSession(["PLAIN"], lambda m: sasl.PlainServer(users))
    forever.handshake("PLAIN", 1)
    forever.authenticate(b"\x00alice\x00pw", now=0.0)
    assert not forever.expired(1e9) and not forever.may_handshake() and forever.session_lifetime_ms == 0


def test_add_scram_seed_specs():
    assert sasl.parse_scram_seed("SCRAM-SHA-256=[name=alice,password=alice-secret]") == (
        "SCRAM-SHA-256", "alice", "alice-secret", 4096)
    assert sasl.parse_scram_seed('SCRAM-SHA-512=[name="bob",password="p",iterations=8192]') == (
        "SCRAM-SHA-512", "bob", "p", 8192)
    for bad, message in (("SCRAM-SHA-1=[name=a,password=b]", "expected"),
                         ("SCRAM-SHA-256=[name=a]", "needs name and password"),
                         ("SCRAM-SHA-256=[name=a,password=b,salt=x]", "unknown"),
                         ("SCRAM-SHA-256=[name=a,password=b,iterations=10]", "iterations"),
                         ("SCRAM-SHA-256=[name=a,password=b,iterations=many]", "iterations")):
        with pytest.raises(ValueError, match=message):
            sasl.parse_scram_seed(bad)


def unsecured_jws(claims: dict, alg: str = "none") -> str:
    """An unsecured JWS (RFC 7515): base64url header and claims, an empty signature."""
    import json

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': alg})}.{part(claims)}."


def oauth_message(token: str, authzid: str = "") -> bytes:
    return f"n,{'a=' + authzid if authzid else ''},\x01auth=Bearer {token}\x01\x01".encode()


def test_oauthbearer_unsecured_tokens_as_kafkas_default_validator():
    now = 1_000_000.0

    def server(**options):
        return sasl.OAuthBearerUnsecuredServer(options, clock=lambda: now)
    ok = server()
    assert ok.step(oauth_message(unsecured_jws({"sub": "alice", "exp": now + 60, "iat": now}))) == b""
    assert ok.complete and ok.user == "alice"
    custom = server(unsecuredValidatorPrincipalClaimName="name", unsecuredValidatorAllowableClockSkewMs="5000")
    custom.step(oauth_message(unsecured_jws({"name": "bob", "exp": now - 2}), authzid="bob"))
    assert custom.user == "bob"
    bad = [
        (oauth_message(unsecured_jws({"sub": "alice", "exp": now - 1})), "expired"),
        (oauth_message(unsecured_jws({"sub": "alice"})), "'exp' claim is required"),
        (oauth_message(unsecured_jws({"exp": now + 60})), "no principal claim"),
        (oauth_message(unsecured_jws({"sub": "alice", "exp": now + 60, "iat": now + 30})), "future"),
        (oauth_message(unsecured_jws({"sub": "alice", "exp": now + 60}, alg="HS256")), "alg"),
        (oauth_message(unsecured_jws({"sub": "alice", "exp": now + 60}) + "sig"), "three parts"),
        (oauth_message(unsecured_jws({"sub": "alice", "exp": now + 60}), authzid="bob"), "authorization id"),
        (oauth_message("abc.!!!."), "client first message"),
        (b"n,,auth=Bearer x\x01\x01", "client first message"),
    ]
    for message, reason in bad:
        with pytest.raises(sasl.AuthenticationFailed, match=reason):
            server().step(message)
