"""TLS settings (odradek.broker.tls, BrokerConfig): Kafka's PEM keys, what is refused, and the
principal a client certificate maps to."""

import ssl

import pytest

from odradek.broker.config import BrokerConfig, ConfigError
from odradek.broker.tls import PrincipalMapper, certificate_principal, rfc2253_subject


def ssl_config(**extra) -> dict:
    return {"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093", "ssl.keystore.type": "PEM",
            **extra}


def test_keystore_file_inline_and_encrypted(certs):
    config = BrokerConfig(ssl_config(**{"ssl.keystore.location": str(certs.server_keystore)}))
    assert config.listener("SSL").security_protocol == "SSL"
    assert set(config.ssl_contexts) == {"SSL"}
    assert config.ssl_contexts["SSL"].verify_mode == ssl.CERT_NONE
    # KIP-651 inline values, as one line (how -o or a properties file carries them)
    inline = BrokerConfig(ssl_config(**{
        "ssl.keystore.key": certs.server_key.read_text().replace("\n", " "),
        "ssl.keystore.certificate.chain": certs.server_cert.read_text(),
        "ssl.truststore.type": "PEM", "ssl.truststore.certificates": certs.ca.read_text(),
        "ssl.client.auth": "required"}))
    assert inline.ssl_contexts["SSL"].verify_mode == ssl.CERT_REQUIRED
    encrypted = {"ssl.keystore.location": str(certs.encrypted_keystore)}
    with pytest.raises(ConfigError, match="ssl.key.password"):
        BrokerConfig(ssl_config(**encrypted))
    BrokerConfig(ssl_config(**encrypted, **{"ssl.key.password": certs.KEY_PASSWORD}))


def test_refused_settings(certs):
    location = {"ssl.keystore.location": str(certs.server_keystore)}
    cases = [
        ({**location, "ssl.keystore.password": "x"}, "password cannot be specified with PEM"),
        ({"ssl.keystore.type": "JKS", **location}, "JKS is not supported"),
        ({}, "needs a certificate"),
        ({**location, "ssl.keystore.key": "k"}, "not both"),
        ({"ssl.keystore.location": "/nonexistent.pem"}, "cannot load"),
        ({**location, "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca),
          "ssl.truststore.password": "x"}, "trust store password"),
        ({**location, "ssl.principal.mapping.rules": "RULE:nope"}, "ssl.principal.mapping.rules"),
        ({**location, "listener.name.other.ssl.client.auth": "required"}, "listener.name.other"),
        ({**location, "listener.name.ssl.ssl.bogus": "1"}, "Unknown configuration"),
    ]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=message):
            BrokerConfig(ssl_config(**extra))


def test_listener_prefixed_values_win(certs):
    config = BrokerConfig(ssl_config(**{
        "ssl.keystore.location": str(certs.server_keystore), "ssl.client.auth": "none",
        "listener.name.ssl.ssl.client.auth": "requested"}))
    assert config.listener_value("SSL", "ssl.client.auth") == "requested"
    assert config.listener_value("PLAINTEXT", "ssl.client.auth") == "none"
    assert config.ssl_contexts["SSL"].verify_mode == ssl.CERT_OPTIONAL


def test_security_protocol_map():
    config = BrokerConfig({"listeners": "CLIENT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:2",
                           "listener.security.protocol.map": "CLIENT:PLAINTEXT",
                           "sasl.enabled.mechanisms": "SCRAM-SHA-512"})
    assert [lst.security_protocol for lst in config.listeners] == ["PLAINTEXT", "SASL_PLAINTEXT"]
    with pytest.raises(ConfigError, match="no security protocol"):
        BrokerConfig({"listeners": "CLIENT://127.0.0.1:1,OTHER://127.0.0.1:2",
                      "listener.security.protocol.map": "CLIENT:PLAINTEXT"})
    with pytest.raises(ConfigError, match="PROTOCOL one of"):
        BrokerConfig({"listener.security.protocol.map": "PLAINTEXT:TLS"})
    # Kafka's default sasl.enabled.mechanisms is GSSAPI, which we do not serve
    with pytest.raises(ConfigError, match="GSSAPI not supported"):
        BrokerConfig({"listeners": "SASL_PLAINTEXT://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="plain.sasl.jaas.config"):
        BrokerConfig({"listeners": "SASL_PLAINTEXT://127.0.0.1:1", "sasl.enabled.mechanisms": "PLAIN"})


def test_inter_node_security_settings(certs):
    """Nodes prove who they are: with SASL PLAIN (the JAAS line's own username/password,
    also one of its users) or with a required client certificate."""
    node = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="node" '
            'password="pw" user_node="pw";')
    base = {"listeners": "SASL_PLAINTEXT://127.0.0.1:9092", "controller.quorum.voters": "1@127.0.0.1:9092",
            "sasl.enabled.mechanisms": "PLAIN", "sasl.mechanism.inter.broker.protocol": "PLAIN"}
    config = BrokerConfig({**base, "listener.name.sasl_plaintext.plain.sasl.jaas.config": node})
    assert config.peer_principals == {"User:node"} and config.node_credentials == ("node", "pw")
    assert BrokerConfig({"controller.quorum.voters": "1@127.0.0.1:9092"}).peer_principals is None
    cases = [
        ({**base, "listener.name.sasl_plaintext.plain.sasl.jaas.config": node.replace('user_node="pw"', "")},
         "needs the node's own"),
        ({**base, "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
          "listener.name.sasl_plaintext.plain.sasl.jaas.config": node}, "nodes authenticate"),
        ({"listeners": "SSL://127.0.0.1:9092", "controller.quorum.voters": "1@127.0.0.1:9092",
          "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore)},
         "ssl.client.auth=required"),
        ({**base, "listener.name.sasl_plaintext.plain.sasl.jaas.config": node,
          "controller.listener.names": "SASL_PLAINTEXT", "sasl.mechanism.controller.protocol": "SCRAM-SHA-256"},
         "sasl.mechanism.controller.protocol=SCRAM-SHA-256"),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError, match=message):
            BrokerConfig(settings)


def test_node_principals(certs):
    """node.principals: each node its own principal; the mapping must name this node as its
    JAAS line authenticates, and every node among the listener's users."""
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="node1" '
            'password="p1" user_node1="p1" user_node2="p2";')
    base = {"listeners": "SASL_PLAINTEXT://127.0.0.1:9092", "controller.quorum.voters": "1@127.0.0.1:9092",
            "sasl.enabled.mechanisms": "PLAIN", "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas}
    config = BrokerConfig({**base, "node.principals": "1=User:node1, 2=User:node2"})
    assert config.node_ids_by_principal == {"User:node1": 1, "User:node2": 2}
    assert config.peer_principals == {"User:node1", "User:node2"}
    assert BrokerConfig(base).node_ids_by_principal is None  # one shared identity
    cases = [
        ("1=User:node2,2=User:node1", "authenticates as User:node1"),
        ("2=User:node2", "does not name this node"),
        ("1=User:node1,2=User:node3", "no user_<name> entry"),
        ("1=User:node1,2=User:node1", "for two nodes"),
        ("one=User:node1", "expected ID=PRINCIPAL"),
    ]
    for value, message in cases:
        with pytest.raises(ConfigError, match=message):
            BrokerConfig({**base, "node.principals": value})
    with pytest.raises(ConfigError, match="needs a secured inter-node listener"):
        BrokerConfig({"controller.quorum.voters": "1@127.0.0.1:9092", "node.principals": "1=User:a"})
    ssl_nodes = BrokerConfig({"listeners": "SSL://127.0.0.1:9092", "controller.quorum.voters": "1@127.0.0.1:9092",
                              "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore),
                              "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca),
                              "ssl.client.auth": "required", "node.principals": "1=User:CN=localhost"})
    assert ssl_nodes.peer_principals == {"User:CN=localhost"}


def test_rfc2253_subject_of_a_real_certificate(certs):
    cert, _ = certs.client("alice")
    decoded = ssl._ssl._test_decode_cert(str(cert))  # what getpeercert() returns
    assert rfc2253_subject(decoded["subject"]) == "CN=alice,OU=eng,O=acme"
    odd = ((("organizationName", "a,b"),), (("commonName", "#x+y "),), (("emailAddress", "a@b"),))
    assert rfc2253_subject(odd) == "1.2.840.113549.1.9.1=#1603614062,CN=\\#x\\+y\\ ,O=a\\,b"


def test_principal_mapping_rules():
    rules = PrincipalMapper(r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT")
    assert rules.name("CN=kafka1,OU=ServiceUsers,O=Org") == "kafka1"
    assert rules.name("CN=Alice,OU=ENG,O=acme") == "alice@eng"
    assert rules.name("CN=bob") == "CN=bob"
    assert PrincipalMapper(r"RULE:^CN=(.*)$/$1/U").name("CN=bob") == "BOB"
    assert PrincipalMapper(r"RULE:^CN=(.*)$/$1/U").name("O=x") is None
    assert PrincipalMapper("DEFAULT").name("CN=a,O=b") == "CN=a,O=b"
    subject = {"subject": ((("organizationName", "acme"),), (("commonName", "alice"),))}
    assert certificate_principal(subject, PrincipalMapper("DEFAULT")) == "User:CN=alice,O=acme"
    assert certificate_principal(None, PrincipalMapper("DEFAULT")) == "User:ANONYMOUS"
    assert certificate_principal(subject, PrincipalMapper(r"RULE:^O=(.*)$/$1/")) is None


def test_properties_continuation_lines():
    """A JAAS line is long: Java properties continue a value after a trailing backslash."""
    from odradek.broker.config import parse_properties
    text = ("# a comment \\\nlistener.name.sasl_ssl.plain.sasl.jaas.config=org.Plain required \\\n"
            '    username="a" \\\n\tuser_a="b";\nnext=1\nodd=ends\\\\\n')
    assert parse_properties(text, "t") == {
        "listener.name.sasl_ssl.plain.sasl.jaas.config": 'org.Plain required username="a" user_a="b";',
        "next": "1", "odd": "ends\\\\"}
