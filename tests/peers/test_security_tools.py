"""The Java client (through Kafka 4.4's own tools) over SSL and SASL, and kafka-configs
managing SCRAM users, as an operator does it:

    kafka-configs --bootstrap-server ... --alter --entity-type users --entity-name NAME \\
        --add-config 'SCRAM-SHA-256=[iterations=8192,password=...]'

Each tool is one JVM with a --command-config / --producer.config / --consumer.config file
in Kafka's client keys (PEM trust store and key store).
"""

import uuid

import pytest

from tests.certs import CREDENTIALS, java_client_properties
from tests.local_cluster import poll_until
from tests.peers import kafka


@pytest.fixture(autouse=True)
def _kafka_tools(kafka_libs):
    """Kafka's tools are run from the cached jars."""


def tool(bootstrap: str, name: str, *args: str, input: str | None = None) -> kafka.ToolResult:
    return kafka.run_tool(name, "--bootstrap-server", bootstrap, *args, input=input, timeout=90)


def test_kafka_configs_adds_a_scram_user_the_java_client_then_uses(secure, certs, tmp_path):
    broker, ports = secure
    user, password = f"java-{uuid.uuid4().hex[:6]}", "java-secret"
    added = tool(broker.bootstrap, "kafka-configs", "--alter", "--entity-type", "users", "--entity-name", user,
                 "--add-config", f"SCRAM-SHA-256=[iterations=8192,password={password}]")
    assert added.rc == 0, added.stderr
    assert f"Completed updating config for user {user}." in added.stdout
    topic = f"java-{uuid.uuid4().hex[:6]}"
    assert tool(broker.bootstrap, "kafka-topics", "--create", "--topic", topic).rc == 0
    # produce over SASL_SSL with the new user, consume over SSL with a client certificate
    producer = java_client_properties(tmp_path / "producer.properties", certs, "SASL_SSL", "SCRAM-SHA-256",
                                 user, password)
    produced = tool(f"127.0.0.1:{ports['SASL_SSL']}", "kafka-console-producer", "--topic", topic,
                    "--command-config", producer, input="one\ntwo\nthree\n")
    assert produced.rc == 0, produced.stderr
    assert poll_until(lambda: f"principal='User:{user}'" in broker.log_text(), 5)
    consumer = java_client_properties(tmp_path / "consumer.properties", certs, "SSL", client_cert="javauser")
    consumed = tool(f"127.0.0.1:{ports['SSL']}", "kafka-console-consumer", "--topic", topic,
                    "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000",
                    "--command-config", consumer)
    assert consumed.stdout.split() == ["one", "two", "three"], consumed.stderr
    assert poll_until(lambda: "principal='User:CN=javauser,OU=eng,O=acme'" in broker.log_text(), 5)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_java_client_over_sasl_plaintext_and_a_wrong_password(secure, certs, tmp_path, mechanism):
    broker, ports = secure
    user, password = CREDENTIALS[mechanism]
    bootstrap = f"127.0.0.1:{ports['SASL_PLAINTEXT']}"
    good = java_client_properties(tmp_path / "good.properties", certs, "SASL_PLAINTEXT", mechanism, user, password)
    listed = tool(bootstrap, "kafka-topics", "--list", "--command-config", good)
    assert listed.rc == 0, listed.stderr
    bad = java_client_properties(tmp_path / "bad.properties", certs, "SASL_PLAINTEXT", mechanism, user, "wrong")
    refused = tool(bootstrap, "kafka-topics", "--list", "--command-config", bad)
    assert refused.rc != 0
    assert "SaslAuthenticationException" in refused.stderr


def test_kafka_configs_replaces_the_ssl_listeners_certificate(secure, certs):
    """kafka-configs --alter of listener.name.ssl.ssl.keystore.location, as a Kafka operator
    renews a certificate: a file that does not load is refused with Kafka's error (the tool
    fails), a renewed certificate is served to new connections at once."""
    import ssl as ssl_module

    from tests.integration.test_security import _served_certificate
    from tests.rawclient import alter_broker_configs
    broker, ports = secure
    key = "listener.name.ssl.ssl.keystore.location"
    before = _served_certificate(ports["SSL"], certs.ca)["serialNumber"]
    renewed = certs.reissued_server_keystore()
    expected = ssl_module._ssl._test_decode_cert(str(renewed))["serialNumber"]
    try:
        bad = tool(broker.bootstrap, "kafka-configs", "--alter", "--entity-type", "brokers", "--entity-name", "1",
                   "--add-config", f"{key}=/no/such/server.pem")
        assert bad.rc != 0
        assert ("InvalidRequestException: Invalid value org.apache.kafka.common.config.ConfigException: "
                "Validation of dynamic config update of SSLFactory failed: org.apache.kafka.common.errors."
                "InvalidConfigurationException: Failed to load PEM SSL keystore /no/such/server.pem") in bad.stderr
        assert _served_certificate(ports["SSL"], certs.ca)["serialNumber"] == before
        done = tool(broker.bootstrap, "kafka-configs", "--alter", "--entity-type", "brokers", "--entity-name", "1",
                    "--add-config", f"{key}={renewed}")
        assert done.rc == 0, done.stderr
        assert "Completed updating config for broker 1." in done.stdout
        assert poll_until(lambda: _served_certificate(ports["SSL"], certs.ca)["serialNumber"] == expected, 10)
        described = tool(broker.bootstrap, "kafka-configs", "--describe", "--entity-type", "brokers",
                         "--entity-name", "1")
        print(described.stdout)
        assert (f"{key}={renewed} sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:{key}={renewed}, "
                f"STATIC_BROKER_CONFIG:ssl.keystore.location={certs.server_keystore}}}") in described.stdout
    finally:  # the module's broker serves its first certificate again
        alter_broker_configs(broker.bootstrap, "1", (key, 1, None))
