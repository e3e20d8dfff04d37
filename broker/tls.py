"""TLS for SSL and SASL_SSL listeners: the server context from Kafka's PEM keys, and the
principal a client certificate maps to.

Kafka's keys, per listener as ``listener.name.<name>.ssl.*`` (``BrokerConfig.listener_value``):

- ``ssl.keystore.type=PEM`` with ``ssl.keystore.location`` (one PEM file holding the PKCS#8
  private key and the certificate chain) or inline ``ssl.keystore.key`` and
  ``ssl.keystore.certificate.chain`` (KIP-651); ``ssl.key.password`` when the key is
  encrypted. ``ssl.keystore.password`` is refused with PEM, as Kafka refuses it.
- ``ssl.truststore.type=PEM`` with ``ssl.truststore.location`` or ``ssl.truststore.certificates``:
  the CA certificates that verify client certificates.
- ``ssl.client.auth`` none / requested / required; ``ssl.enabled.protocols`` (TLSv1.2, TLSv1.3).

The principal of a TLS client with a verified certificate is its subject in RFC 2253 form
(what Java's ``X500Principal.getName()`` prints, last RDN first) mapped by
``ssl.principal.mapping.rules``; without a certificate it is ``User:ANONYMOUS``.
"""

import base64
import ctypes
import os
import re
import ssl
import tempfile
from dataclasses import dataclass

import structlog

from odradek.storage.config import ConfigError

log = structlog.get_logger()

ANONYMOUS = "User:ANONYMOUS"

# uvloop's TLS protocol mallocs a read buffer of this size for every connection (its
# SSL_READ_MAX_SIZE); see keep_tls_read_buffers_lazy.
UVLOOP_SSL_READ_BUFFER = 256 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def normalize_pem(text: str, key: str) -> str:
    """PEM blocks re-wrapped at 64 columns: an inline value from a properties file or -o
    often arrives on one line (Kafka's PEM reader accepts any whitespace, so we do)."""
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ConfigError(f"{key} holds no PEM block (-----BEGIN ...-----)")
    out = []
    for label, body in blocks:
        data = "".join(body.split())
        try:
            base64.b64decode(data, validate=True)
        except ValueError:
            raise ConfigError(f"{key}: the {label} PEM block is not base64") from None
        lines = [data[i:i + 64] for i in range(0, len(data), 64)]
        out.append(f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n")
    return "".join(out)


def server_context(config, listener: str) -> ssl.SSLContext:
    """The SSLContext of one TLS listener; a bad or missing setting is a ConfigError naming it."""
    def get(key):
        return config.listener_value(listener, key)

    prefix = f"listener {listener}"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(_VERSIONS[v] for v in get("ssl.enabled.protocols"))
    if not versions:
        raise ConfigError(f"{prefix}: ssl.enabled.protocols is empty")
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    if get("ssl.cipher.suites"):
        try:
            ctx.set_ciphers(":".join(get("ssl.cipher.suites")))
        except ssl.SSLError as e:
            raise ConfigError(f"{prefix}: ssl.cipher.suites: {e}") from None
    _load_keystore(ctx, get, prefix)
    _load_truststore(ctx, get, prefix)
    ctx.verify_mode = _CLIENT_AUTH[get("ssl.client.auth")]
    return ctx


def leaf_certificate(config, listener: str) -> dict:
    """The listener's own certificate (the first of its key store's chain) decoded as
    ``getpeercert()`` decodes a peer's: what a key store change is compared against."""
    def get(key):
        return config.listener_value(listener, key)

    location, chain = get("ssl.keystore.location"), get("ssl.keystore.certificate.chain")
    try:
        if location:
            return ssl._ssl._test_decode_cert(location)  # type: ignore[attr-defined]
        fd, path = tempfile.mkstemp(prefix="odradek-cert-", suffix=".pem")
        try:
            os.write(fd, normalize_pem(chain or "", "ssl.keystore.certificate.chain").encode())
            os.close(fd)
            return ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        finally:
            os.unlink(path)
    except (ssl.SSLError, OSError, ConfigError) as e:
        raise ConfigError(f"listener {listener}: cannot read the certificate of its key store: {e}") from None


def check_store_change(current, changed, listener: str) -> None:
    """Whether a listener's key and trust stores may change from ``current`` to ``changed``
    (two configs, read through ``listener_value``) as Kafka's SslFactory decides: the new
    stores load, a trust store is not added where there was none, and the new certificate
    keeps the subject and subjectAltNames (keystore_change_error). Raises ConfigError with
    Kafka's reason (the exception text Kafka puts in its answer); reads files: call it off
    the event loop."""
    def now(key):
        return current.listener_value(listener, key)

    def new(key):
        return changed.listener_value(listener, key)

    trust = ("ssl.truststore.location", "ssl.truststore.certificates")
    if not any(now(k) for k in trust) and any(new(k) for k in trust):
        raise ConfigError("org.apache.kafka.common.config.ConfigException: Cannot add SSL truststore to an "
                          "existing listener for which no truststore was configured.")
    if new("ssl.keystore.password") is not None and new("ssl.keystore.type") == "PEM":
        raise ConfigError("org.apache.kafka.common.errors.InvalidConfigurationException: SSL key store "
                          "password cannot be specified with PEM format, only key password may be specified")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    refusals = (  # Kafka's words for a store that does not load (a trust store is "keystore" too)
        (_load_keystore, "tls_keystore_refused", "org.apache.kafka.common.errors.InvalidConfigurationException: "
                                                 f"Failed to load PEM SSL keystore {new('ssl.keystore.location')}"),
        (_load_truststore, "tls_truststore_refused", "org.apache.kafka.common.KafkaException: Failed to load SSL "
         f"keystore {new('ssl.truststore.location')} of type {new('ssl.truststore.type')}"))
    for load, event, message in refusals:
        try:
            load(ctx, new, f"listener {listener}")
        except ConfigError as e:
            log.warning(event, listener=listener, error=str(e))  # our reason, which Kafka's words lack
            raise ConfigError(message) from None
    problem = keystore_change_error(leaf_certificate(current, listener), leaf_certificate(changed, listener),
                                    new("ssl.allow.dn.changes"), new("ssl.allow.san.changes"))
    if problem is not None:
        raise ConfigError(f"org.apache.kafka.common.config.ConfigException: {problem}")


_SAN_TYPES = {"email": 1, "DNS": 2, "DirName": 4, "URI": 6, "IP Address": 7}  # GeneralName tags


def keystore_change_error(old: dict, new: dict, allow_dn_changes: bool, allow_san_changes: bool) -> str | None:
    """Kafka's check of a key store replaced at run time (ssl.allow.dn.changes,
    ssl.allow.san.changes, both false by default): the new certificate keeps the old one's
    subject and subjectAltNames, so that clients verifying this broker keep trusting it.
    Certificates as ``leaf_certificate`` decodes them; the message is Kafka's (its PEM key
    stores name their one entry "kafka")."""
    def dn(cert):
        return ", ".join(_rdns(cert.get("subject", ())))

    def san(cert):
        return sorted([_SAN_TYPES.get(kind, 0), value] for kind, value in cert.get("subjectAltName", ()))

    if not allow_dn_changes and dn(old) != dn(new):
        return (f"Keystore DistinguishedName does not match:  existing={{alias=kafka, DN={dn(old)}}}, "
                f"new={{alias=kafka, DN={dn(new)}}}")
    if not allow_san_changes and san(old) != san(new):
        return (f"Keystore SubjectAltNames do not match:  existing={{alias=kafka, SAN={san(old)}}}, "
                f"new={{alias=kafka, SAN={san(new)}}}")
    return None


def client_context(config, listener: str) -> ssl.SSLContext:
    """How this node dials its peers' TLS listener: its own certificate (the listener's key
    store, for ssl.client.auth=required), the listener's trust store to verify theirs, and
    host names checked unless ssl.endpoint.identification.algorithm is empty (as Kafka)."""
    def get(key):
        return config.listener_value(listener, key)

    prefix = f"listener {listener} (dialled by this node)"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    versions = sorted(_VERSIONS[v] for v in get("ssl.enabled.protocols"))
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    _load_keystore(ctx, get, prefix)
    location, inline = get("ssl.truststore.location"), get("ssl.truststore.certificates")
    if location or inline:
        _load_truststore(ctx, get, prefix)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = bool(get("ssl.endpoint.identification.algorithm"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _load_keystore(ctx: ssl.SSLContext, get, prefix: str) -> None:
    if get("ssl.keystore.type") != "PEM":
        raise ConfigError(f"{prefix}: ssl.keystore.type {get('ssl.keystore.type')} is not supported; "
                          "Odradek reads PEM (ssl.keystore.type=PEM)")
    if get("ssl.keystore.password") is not None:
        # Kafka's message for the same setting
        raise ConfigError(f"{prefix}: SSL key store password cannot be specified with PEM format, "
                          "only key password may be specified (ssl.key.password)")
    location, key, chain = (get("ssl.keystore.location"), get("ssl.keystore.key"),
                            get("ssl.keystore.certificate.chain"))
    password = get("ssl.key.password")
    if location and (key or chain):
        raise ConfigError(f"{prefix}: set either ssl.keystore.location or ssl.keystore.key with "
                          "ssl.keystore.certificate.chain, not both")
    try:
        if location:
            ctx.load_cert_chain(location, password=password)
        elif key and chain:
            pem = (normalize_pem(key, "ssl.keystore.key")
                   + normalize_pem(chain, "ssl.keystore.certificate.chain"))
            # ssl loads a key only from a file: a private one, removed at once
            fd, path = tempfile.mkstemp(prefix="odradek-key-", suffix=".pem")
            try:
                os.write(fd, pem.encode())
                os.close(fd)
                ctx.load_cert_chain(path, password=password)
            finally:
                os.unlink(path)
        else:
            raise ConfigError(f"{prefix} uses TLS and needs a certificate: ssl.keystore.location, or "
                              "ssl.keystore.key with ssl.keystore.certificate.chain")
    except (ssl.SSLError, OSError) as e:
        what = location or "ssl.keystore.key / ssl.keystore.certificate.chain"
        raise ConfigError(f"{prefix}: cannot load the key and certificate chain from {what}: {e} "
                          "(an encrypted key needs ssl.key.password)") from None


def _load_truststore(ctx: ssl.SSLContext, get, prefix: str) -> None:
    location, inline = get("ssl.truststore.location"), get("ssl.truststore.certificates")
    if not location and not inline:
        if get("ssl.client.auth") != "none":
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    if get("ssl.truststore.type") != "PEM":
        raise ConfigError(f"{prefix}: ssl.truststore.type {get('ssl.truststore.type')} is not "
                          "supported; Odradek reads PEM (ssl.truststore.type=PEM)")
    if get("ssl.truststore.password") is not None:
        raise ConfigError(f"{prefix}: SSL trust store password cannot be specified for PEM format")
    try:
        if location:
            ctx.load_verify_locations(cafile=location)
        if inline:
            ctx.load_verify_locations(cadata=normalize_pem(inline, "ssl.truststore.certificates"))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"{prefix}: cannot load the trusted certificates from "
                          f"{location or 'ssl.truststore.certificates'}: {e}") from None


# -- principals ---------------------------------------------------------------------

# Python's attribute names -> the keywords Java's RFC 2253 form uses
_RFC2253_KEYWORDS = {
    "commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}
_EMAIL_OID = "1.2.840.113549.1.9.1"  # Java prints it as OID=#<DER IA5String in hex>


def _escape(value: str) -> str:
    out = re.sub(r'([,+"\\<>;])', r"\\\1", value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def rfc2253_subject(subject) -> str:
    """``getpeercert()['subject']`` (RDNs in certificate order, each a tuple of
    (name, value) pairs) as RFC 2253 text: last RDN first, as Java prints it."""
    return ",".join(_rdns(subject))


def _rdns(subject) -> list[str]:
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for name, value in rdn:
            if name == "emailAddress":
                raw = value.encode()
                parts.append(f"{_EMAIL_OID}=#16{len(raw):02x}{raw.hex()}")
            else:
                parts.append(f"{_RFC2253_KEYWORDS.get(name, name)}={_escape(value)}")
        rdns.append("+".join(parts))
    return rdns


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""  # "L", "U" or ""


_RULE = re.compile(r"\s*(?:(DEFAULT)|RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU])?)\s*(?:,|$)")


def _expand(m: re.Match, replacement: str) -> str:
    """Java's $1... group references of a rule's replacement."""
    return re.sub(r"\$(\d)", lambda g: m.group(int(g.group(1))) or "", replacement)


class PrincipalMapper:
    """Kafka's ``ssl.principal.mapping.rules``: ``RULE:pattern/replacement/[L|U]`` entries and
    ``DEFAULT``, separated by commas and tried in order; the first whose pattern matches
    the whole distinguished name gives the name (``$1``... its groups). No match is a
    failed authentication, as in Kafka."""

    def __init__(self, rules: str):
        self.rules: list[_Rule] = []
        pos, text = 0, rules.strip()
        while pos < len(text):
            m = _RULE.match(text, pos)
            if m is None or m.end() == pos:
                raise ConfigError(f"Invalid value {rules!r} for ssl.principal.mapping.rules: "
                                  f"cannot read a rule at {text[pos:]!r}")
            if m.group(1):
                self.rules.append(_Rule(None))
            else:
                try:
                    pattern = re.compile(m.group(2).replace("\\/", "/"))
                except re.error as e:
                    raise ConfigError(f"ssl.principal.mapping.rules: bad pattern {m.group(2)!r}: {e}") from None
                self.rules.append(_Rule(pattern, m.group(3).replace("\\/", "/"), m.group(4) or ""))
            pos = m.end()

    def name(self, dn: str) -> str | None:
        for rule in self.rules:
            if rule.pattern is None:
                return dn
            m = rule.pattern.fullmatch(dn)
            if m is None:
                continue
            result = _expand(m, rule.replacement)
            return result.lower() if rule.case == "L" else result.upper() if rule.case == "U" else result
        return None


def certificate_principal(peercert: dict | None, mapper: PrincipalMapper) -> str | None:
    """``User:<mapped subject>`` for a verified client certificate, ANONYMOUS without one;
    None when no rule maps the subject (the connection must then be refused)."""
    if not peercert or not peercert.get("subject"):
        return ANONYMOUS
    name = mapper.name(rfc2253_subject(peercert["subject"]))
    return None if name is None else f"User:{name}"


def keep_tls_read_buffers_lazy() -> bool:
    """Make an idle TLS connection's 256 KiB read buffer cost only the pages it touched.

    uvloop mallocs UVLOOP_SSL_READ_BUFFER bytes per TLS connection and reads the socket into
    its start. glibc serves that from an mmap (untouched pages cost no memory) only below
    its mmap threshold, which it raises to the size of the first large block freed: from
    then on every connection's buffer came from the heap, where memory freed by earlier
    handshakes is already dirty. 3,000 idle TLS connections took RSS from 55.8 to 205.2 MB
    (about 51 KiB each; 31 KiB with this). Pinning the threshold at the buffer's size keeps
    those buffers mmapped; allocations below it (everything the broker does per request,
    and the TLS_READ_BYTES pieces of a Fetch, sized to stay below) are served as before.

    A process-wide setting, for the broker process only (its start calls this). Returns
    whether it applied: not on a C library without glibc's mallopt (musl), where malloc
    has no such dynamic threshold."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, UVLOOP_SSL_READ_BUFFER) == 1
