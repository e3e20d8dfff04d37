"""SASL on the server side, sans I/O: the PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER (unsecured
tokens) mechanisms, the JAAS
line PLAIN users come from, and the per-connection session that decides which requests
may be served.

The session (``SaslSession``) follows Kafka's SaslServerAuthenticator:

    INITIAL --ApiVersions--> INITIAL
    INITIAL --SaslHandshake v0/v1 (enabled mechanism)--> AUTHENTICATING (v0: raw tokens)
    AUTHENTICATING --token--> AUTHENTICATING (SCRAM's first round) | AUTHENTICATED | FAILED
    any other request before AUTHENTICATED: the connection closes
    AUTHENTICATED --SaslHandshake v1 (connections.max.reauth.ms > 0)--> AUTHENTICATING again
        (KIP-368 re-authentication: same mechanism, same principal, or it fails)
    AUTHENTICATED past its session's end --any request but SASL's--> the connection closes

After a v0 handshake the tokens arrive as bare size-prefixed frames (no request header) and
the answers leave the same way; after v1 they come in SaslAuthenticate requests.

SCRAM (RFC 5802, with SHA-256/512 per RFC 7677) exchanges, as Kafka's ScramSaslServer::

    client-first   n,[a=authzid],n=<user>,r=<client nonce>[,extensions]
    server-first   r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
    client-final   c=<base64 gs2 header>,r=<nonce>,p=<base64 ClientProof>
    server-final   v=<base64 ServerSignature>

with ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage), StoredKey = H(ClientKey),
AuthMessage = client-first-bare "," server-first "," client-final-without-proof. The broker
stores (salt, StoredKey, ServerKey, iterations) only, never the password.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

PLAIN, SCRAM_SHA_256, SCRAM_SHA_512 = "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"
OAUTHBEARER = "OAUTHBEARER"
# AlterUserScramCredentials' mechanism numbers (Kafka's ScramMechanism)
SCRAM_MECHANISMS = {SCRAM_SHA_256: 1, SCRAM_SHA_512: 2}
SCRAM_NAMES = {v: k for k, v in SCRAM_MECHANISMS.items()}
_HASHES = {SCRAM_SHA_256: "sha256", SCRAM_SHA_512: "sha512"}
MIN_ITERATIONS, MAX_ITERATIONS = 4096, 16384  # what Kafka accepts (ScramMechanism)


class AuthenticationFailed(Exception):
    """Bad credentials or a malformed token: SASL_AUTHENTICATION_FAILED, then close."""


# -- JAAS -------------------------------------------------------------------------

_JAAS = re.compile(r'\s*([\w.$-]+)\s+(required|requisite|sufficient|optional)\s*(.*?)\s*;\s*$', re.S)
_OPTION = re.compile(r'\s*([\w.$-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s"]+)')


def parse_jaas(text: str, key: str) -> tuple[str, dict[str, str]]:
    """``<LoginModule class> required k="v" ...;`` -> (class, options). Raises ValueError
    naming ``key`` when it cannot be read."""
    m = _JAAS.match(text)
    if m is None:
        raise ValueError(f"{key}: expected '<LoginModule> required key=\"value\" ...;', got {text!r}")
    options, rest = {}, m.group(3)
    pos = 0
    while pos < len(rest):
        o = _OPTION.match(rest, pos)
        if o is None:
            if rest[pos:].strip():
                raise ValueError(f"{key}: cannot read the options at {rest[pos:]!r}")
            break
        value = o.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        options[o.group(1)] = value
        pos = o.end()
    return m.group(1), options


def plain_users(jaas: str, key: str) -> dict[str, str]:
    """The ``user_<name>="<password>"`` entries of a PlainLoginModule line, as Kafka's
    PlainServerCallbackHandler reads them."""
    module, options = parse_jaas(jaas, key)
    if not module.endswith("PlainLoginModule"):
        raise ValueError(f"{key}: PLAIN needs org.apache.kafka.common.security.plain.PlainLoginModule, "
                         f"not {module}")
    return {k[len("user_"):]: v for k, v in options.items() if k.startswith("user_")}


# -- SCRAM credentials ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def record_fields(self, name: str, mechanism: str) -> dict:
        """The fields of its UserScramCredentialRecord (bytes in base64)."""
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()
        return {"name": name, "mechanism": SCRAM_MECHANISMS[mechanism], "salt": b64(self.salt),
                "stored_key": b64(self.stored_key), "server_key": b64(self.server_key),
                "iterations": self.iterations}


def _hmac(mechanism: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, _HASHES[mechanism]).digest()


def credential_from_salted_password(mechanism: str, salt: bytes, salted_password: bytes,
                                    iterations: int) -> ScramCredential:
    """What AlterUserScramCredentials sends (the client salts the password) -> what we store."""
    client_key = _hmac(mechanism, salted_password, b"Client Key")
    stored_key = hashlib.new(_HASHES[mechanism], client_key).digest()
    server_key = _hmac(mechanism, salted_password, b"Server Key")
    return ScramCredential(salt, stored_key, server_key, iterations)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) of RFC 5802: PBKDF2 with the mechanism's HMAC (CPU-heavy:
    call it off the event loop)."""
    return hashlib.pbkdf2_hmac(_HASHES[mechanism], password.encode(), salt, iterations)


def credential_from_password(mechanism: str, password: str, iterations: int = MIN_ITERATIONS,
                             salt: bytes | None = None) -> ScramCredential:
    salt = salt if salt is not None else secrets.token_bytes(32)
    return credential_from_salted_password(
        mechanism, salt, salted_password(mechanism, password, salt, iterations), iterations)


def password_matches(mechanism: str, credential: ScramCredential, password: str) -> bool:
    """Whether ``password`` is the one ``credential`` was made from: the same derivation
    as a SCRAM exchange's (for the console's HTTP Basic logins; PBKDF2: off the loop)."""
    derived = credential_from_salted_password(
        mechanism, credential.salt, salted_password(mechanism, password, credential.salt, credential.iterations),
        credential.iterations)
    return hmac.compare_digest(derived.stored_key, credential.stored_key)


_SEED = re.compile(r"(SCRAM-SHA-(?:256|512))=\[(.*)\]")


def parse_scram_seed(spec: str) -> tuple[str, str, str, int]:
    """Kafka's ``kafka-storage format --add-scram`` form (KIP-900):
    ``SCRAM-SHA-256=[name=alice,password=alice-secret,iterations=8192]`` (quotes optional)
    -> (mechanism, name, password, iterations). Raises ValueError saying what is wrong."""
    m = _SEED.fullmatch(spec.strip())
    if m is None:
        raise ValueError(f"--add-scram {spec!r}: expected SCRAM-SHA-256=[name=...,password=...] "
                         "(or SCRAM-SHA-512)")
    fields = {}
    for item in m.group(2).split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--add-scram {spec!r}: {item!r} is not key=value")
        fields[key.strip()] = value.strip().strip('"')
    unknown = set(fields) - {"name", "password", "iterations"}
    if unknown or not fields.get("name") or "password" not in fields:
        raise ValueError(f"--add-scram {spec!r}: needs name and password (and optionally iterations)"
                         + (f"; unknown {sorted(unknown)}" if unknown else ""))
    iterations = int(fields.get("iterations", MIN_ITERATIONS)) if fields.get(
        "iterations", "4096").isdigit() else -1
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"--add-scram {spec!r}: iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
    return m.group(1), fields["name"], fields["password"], iterations


# -- mechanisms -------------------------------------------------------------------------

class PlainServer:
    """RFC 4616: one token ``[authzid] NUL authcid NUL passwd``; the authzid, if given,
    must be the user itself (as Kafka's PlainSaslServer)."""

    def __init__(self, users: dict[str, str]):
        self.users = users
        self.complete = False
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (p.decode() for p in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        if not user:
            raise AuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise AuthenticationFailed("Authentication failed: password not specified")
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id "
                                       "that is different from username")
        self.user, self.complete = user, True
        return b""


class OAuthBearerUnsecuredServer:
    """OAUTHBEARER (RFC 7628) with unsecured tokens, as Kafka's default server callback
    (OAuthBearerUnsecuredValidatorCallbackHandler). One client message::

        n,[a=<authzid>],^Aauth=Bearer <token>^A[<key>=<value>^A]...^A      (^A: byte 0x01)

    and the token an unsecured JWS (RFC 7515): base64url(header) "." base64url(claims) "."
    with an empty signature and "alg": "none". The principal is the claim named by the JAAS
    option unsecuredValidatorPrincipalClaimName (default "sub"); "exp" (seconds since the
    epoch) is required and must lie ahead, "iat" if present must not, both within
    unsecuredValidatorAllowableClockSkewMs. Nothing signs such a token: anyone can name
    any principal. For tests and development, as Kafka says of it."""

    def __init__(self, options: dict[str, str] | None = None, clock: Callable[[], float] = time.time):
        options = options or {}
        self.principal_claim = options.get("unsecuredValidatorPrincipalClaimName", "sub")
        self.skew_s = int(options.get("unsecuredValidatorAllowableClockSkewMs", "0")) / 1000
        self.clock = clock
        self.complete = False
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        m = re.fullmatch(rb"n,(?:a=([^,]*))?,\x01((?:[A-Za-z]+=[^\x01]*\x01)*)\x01", token)
        if m is None:
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message")
        pairs = dict(kv.split(b"=", 1) for kv in m.group(2).split(b"\x01") if kv)
        auth = re.fullmatch(rb"Bearer +([-_.a-zA-Z0-9]+)", pairs.get(b"auth", b""))
        if auth is None:
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message: no auth=Bearer <token>")
        claims = self._claims(auth.group(1).decode())
        principal = claims.get(self.principal_claim)
        if not isinstance(principal, str) or not principal.strip():
            raise AuthenticationFailed(f"Invalid OAUTHBEARER token: no principal claim {self.principal_claim!r}")
        now = self.clock()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise AuthenticationFailed("Invalid OAUTHBEARER token: the 'exp' claim is required")
        if now > exp + self.skew_s:
            raise AuthenticationFailed("Invalid OAUTHBEARER token: it has expired")
        if isinstance(iat, (int, float)) and now < iat - self.skew_s:
            raise AuthenticationFailed("Invalid OAUTHBEARER token: issued in the future")
        if m.group(1) and m.group(1).decode(errors="replace") != principal:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id "
                                       "that is different from the token's principal")
        self.user, self.complete = principal, True
        return b""

    @staticmethod
    def _claims(token: str) -> dict:
        parts = token.split(".")
        if len(parts) != 3 or parts[2]:
            raise AuthenticationFailed("Invalid OAUTHBEARER token: an unsecured JWS has three parts, "
                                       "the last empty")
        try:
            header, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2])
        except (ValueError, binascii.Error):
            raise AuthenticationFailed("Invalid OAUTHBEARER token: not base64url JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "none":
            raise AuthenticationFailed("Invalid OAUTHBEARER token: an unsecured JWS (\"alg\": \"none\") "
                                       "is expected")
        return claims


def _scram_name(text: str) -> str:
    """saslname of RFC 5802: ',' and '=' arrive as =2C and =3D; any other '=' is invalid."""
    if re.search(r"=(?!2C|3D)", text):
        raise AuthenticationFailed(f"Invalid username: {text}")
    return text.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """RFC 5802's server for one exchange. ``credentials(user)`` gives the stored
    credential of that user for this mechanism, or None."""

    def __init__(self, mechanism: str, credentials: Callable[[str], ScramCredential | None],
                 server_nonce: str | None = None):
        self.mechanism = mechanism
        self.credentials = credentials
        self.server_nonce = server_nonce or format(secrets.randbits(130), "x")  # as Kafka's: alphanumeric
        self.complete = False
        self.user: str | None = None
        self._state = 0
        self._credential: ScramCredential | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def step(self, token: bytes) -> bytes:
        try:
            text = token.decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SCRAM message: not UTF-8") from None
        if self._state == 0:
            return self._client_first(text)
        if self._state == 1:
            return self._client_final(text)
        raise AuthenticationFailed("Unexpected SCRAM message after the exchange completed")

    def _client_first(self, text: str) -> bytes:
        m = re.fullmatch(r"([ny]|p=[^,]*),(a=[^,]*)?,(n=([^,]*),r=([^,]+)((?:,[^,]*)*))", text)
        if m is None:
            raise AuthenticationFailed("Invalid SCRAM client first message")
        if m.group(1).startswith("p="):
            raise AuthenticationFailed("SCRAM channel binding is not supported")
        user = _scram_name(m.group(4))
        authzid = m.group(2)
        if authzid and _scram_name(authzid[2:]) != user:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id "
                                       "that is different from username")
        extensions = dict(e.split("=", 1) for e in m.group(6).split(",") if "=" in e)
        if extensions.get("tokenauth", "false").lower() == "true":
            raise AuthenticationFailed("Delegation tokens are not supported")
        credential = self.credentials(user)
        if credential is None:
            raise AuthenticationFailed(f"Authentication failed during authentication due to invalid "
                                       f"credentials with SASL mechanism {self.mechanism}")
        self.user, self._credential = user, credential
        self._gs2_header = text[:len(text) - len(m.group(3))]
        self._client_first_bare = m.group(3)
        self._nonce = m.group(5) + self.server_nonce
        self._server_first = (f"r={self._nonce},s={base64.b64encode(credential.salt).decode()},"
                              f"i={credential.iterations}")
        self._state = 1
        return self._server_first.encode()

    def _client_final(self, text: str) -> bytes:
        m = re.fullmatch(r"(c=([^,]*),r=([^,]*)(?:,[^,]*)*?),p=([^,]*)", text)
        if m is None:
            raise AuthenticationFailed("Invalid SCRAM client final message")
        try:
            binding, proof = base64.b64decode(m.group(2), validate=True), base64.b64decode(
                m.group(4), validate=True)
        except ValueError:
            raise AuthenticationFailed("Invalid SCRAM client final message: bad base64") from None
        if binding != self._gs2_header.encode():
            raise AuthenticationFailed("Invalid SCRAM client final message: channel binding "
                                       "does not match the first message")
        # Kafka's ScramSaslServer checks that the nonce ends with the server-first one (not
        # RFC 5802's equality), and librdkafka 2.0.2 (kcat 1.7.1) relies on it: it sends
        # r=<client nonce><client nonce><server nonce>. The proof covers the message as sent.
        if not m.group(3).endswith(self._nonce):
            raise AuthenticationFailed("Invalid SCRAM client final message: nonce mismatch")
        assert self._credential is not None
        auth_message = f"{self._client_first_bare},{self._server_first},{m.group(1)}".encode()
        signature = _hmac(self.mechanism, self._credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise AuthenticationFailed("Invalid SCRAM client final message: bad proof length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        computed = hashlib.new(_HASHES[self.mechanism], client_key).digest()
        if not hmac.compare_digest(computed, self._credential.stored_key):
            raise AuthenticationFailed(f"Authentication failed: Invalid user credentials "
                                       f"with SASL mechanism {self.mechanism}")
        server_signature = _hmac(self.mechanism, self._credential.server_key, auth_message)
        self._state, self.complete = 2, True
        return b"v=" + base64.b64encode(server_signature)


# -- the session of one connection --------------------------------------------------------

INITIAL, AUTHENTICATING, AUTHENTICATED, FAILED = "INITIAL", "AUTHENTICATING", "AUTHENTICATED", "FAILED"
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36


SaslServer = PlainServer | ScramServer | OAuthBearerUnsecuredServer


class SaslSession:
    """Where one connection of a SASL listener is in its authentication (see the module
    docstring). ``mechanisms``: the enabled ones; ``make(mechanism)`` builds a server."""

    def __init__(self, mechanisms: list[str], make: Callable[[str], "SaslServer"],
                 reauth_ms: int = 0):
        self.mechanisms = mechanisms
        self.make = make
        self.reauth_ms = reauth_ms  # connections.max.reauth.ms: a session's length (0: forever)
        self.expires_at: float | None = None  # when the session ends (monotonic seconds)
        self.reauthenticating = False
        self.state = INITIAL
        self.raw_tokens = False  # after a v0 handshake: tokens arrive as bare frames
        self.mechanism: str | None = None
        self.server: SaslServer | None = None
        self.principal: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.state == AUTHENTICATED

    def expired(self, now: float) -> bool:
        return self.state == AUTHENTICATED and self.expires_at is not None and now >= self.expires_at

    def allows(self, api_key: int) -> bool:
        """Whether a request with this key may be served now (see ``expired`` too)."""
        if self.state == AUTHENTICATED:
            return True
        if self.state == INITIAL:
            return api_key in (API_VERSIONS, SASL_HANDSHAKE)
        return self.state == AUTHENTICATING and not self.raw_tokens and api_key == SASL_AUTHENTICATE

    def may_handshake(self) -> bool:
        """A first handshake, or a re-authentication (KIP-368) when sessions expire."""
        return self.state == INITIAL or (self.state == AUTHENTICATED and self.reauth_ms > 0)

    def handshake(self, mechanism: str, version: int) -> bool:
        """A SaslHandshake: False when the mechanism is not enabled, or is another than the
        session's on re-authentication (the connection closes)."""
        self.reauthenticating = self.state == AUTHENTICATED
        if mechanism not in self.mechanisms or (self.reauthenticating and mechanism != self.mechanism):
            self.state = FAILED
            return False
        self.mechanism, self.server = mechanism, self.make(mechanism)
        self.state, self.raw_tokens = AUTHENTICATING, version == 0
        return True

    def authenticate(self, token: bytes, now: float = 0.0) -> bytes:
        """One client token -> the server's answer. Raises AuthenticationFailed (the
        session is then FAILED); once the mechanism completes, AUTHENTICATED until
        ``now`` + connections.max.reauth.ms."""
        if self.state != AUTHENTICATING or self.server is None:
            raise AuthenticationFailed(f"Unexpected SASL token in state {self.state}")
        try:
            answer = self.server.step(token)
        except AuthenticationFailed:
            self.state = FAILED
            raise
        if self.server.complete:
            principal = f"User:{self.server.user}"
            if self.reauthenticating and principal != self.principal:
                self.state = FAILED
                raise AuthenticationFailed(f"Cannot change principals during re-authentication from "
                                           f"{self.principal}: {principal}")
            self.state, self.principal = AUTHENTICATED, principal
            self.expires_at = now + self.reauth_ms / 1000 if self.reauth_ms else None
        return answer

    @property
    def session_lifetime_ms(self) -> int:
        """What SaslAuthenticate v1+ tells the client (0: the session does not expire)."""
        return self.reauth_ms if self.state == AUTHENTICATED else 0
