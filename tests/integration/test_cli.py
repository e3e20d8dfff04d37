"""The command-line contract: settings, exit statuses, data-dir identity, clean stop."""

import signal
import subprocess
import sys
import time

import pytest

from tests.brokerproc import ROOT, BrokerProcess


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "odradek.broker", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["-o", "no.such.key=1"], "no.such.key"),
    (["-o", "num.partitions=many"], "num.partitions"),
    (["-o", "num.partitions=0"], "num.partitions"),
    (["-o", "auto.create.topics.enable=maybe"], "auto.create.topics.enable"),
    (["-o", "justakey"], "KEY=VALUE"),
    (["--listen", "nohostport"], "HOST:PORT"),
    (["--listen", "0.0.0.0:9092"], "advertised"),
    (["-o", "listeners=PLAINTEXT://127.0.0.1:1", "-o", "inter.broker.listener.name=OTHER"],
     "inter.broker.listener.name"),
    (["--config", "/nonexistent/server.properties"], "--config"),
])
def test_bad_settings_exit_2_naming_the_setting(tmp_path, args, message):
    result = run_cli("serve", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_config_file_and_overrides(tmp_path, broker_factory):
    """-o wins over --config; the topic is auto-created through a Metadata request (which
    answers UNKNOWN_TOPIC_OR_PARTITION while the creation runs, as Kafka's KRaft does)."""
    from confluent_kafka import Consumer

    from tests.local_cluster import poll_until

    props = tmp_path / "server.properties"
    props.write_text("# comment\nnum.partitions=3\nauto.create.topics.enable = true\n")
    b = broker_factory(extra_args=["--config", str(props)], overrides={"num.partitions": "4"})
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g",
                  "allow.auto.create.topics": True})
    try:
        topic = poll_until(lambda: (t := c.list_topics("auto-created", timeout=10).topics["auto-created"])
                           .partitions and t, 10)
    finally:
        c.close()
    assert topic is not None and len(topic.partitions) == 4


def test_auto_create_disabled(broker_factory):
    from kafka import KafkaConsumer

    b = broker_factory(overrides={"auto.create.topics.enable": "false"})
    consumer = KafkaConsumer(bootstrap_servers=b.bootstrap)
    try:
        assert not consumer.partitions_for_topic("never-created")
        assert "never-created" not in consumer.topics()
    finally:
        consumer.close()


def test_bad_config_file_line(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("num.partitions\n")
    result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--config", str(props))
    assert result.returncode == 2 and "server.properties:1" in result.stderr


def test_sigterm_stops_cleanly_within_5_seconds(broker):
    started = time.monotonic()
    assert broker.stop(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert "event='stopped'" in broker.log_text()


def test_data_dir_of_another_node_is_refused(tmp_path, broker_factory):
    b = broker_factory(data_dir=tmp_path / "d", node_id=1)
    b.stop()
    other = BrokerProcess(tmp_path / "d", node_id=2)
    result = subprocess.run(other.command(), cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "belongs to node.id 1" in result.stderr


def test_cluster_id_is_kept(tmp_path, broker_factory):
    b = broker_factory(data_dir=tmp_path / "d")
    first = (tmp_path / "d" / "meta.properties").read_text()
    b.restart()
    assert (tmp_path / "d" / "meta.properties").read_text() == first
    assert "cluster.id=" in first


def test_python_m_broker_help():
    result = run_cli("serve", "--help")
    assert result.returncode == 0 and "--data-dir" in result.stdout


def test_systemd_notify_ready_once_serving_and_stopping_on_sigterm(tmp_path):
    """Type=notify (deploy/odradek.service): READY=1 once the listeners serve, STOPPING=1 when
    SIGTERM arrives; a unix datagram socket stands in for systemd's NOTIFY_SOCKET."""
    import socket

    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.settimeout(20)
        b = BrokerProcess(tmp_path / "d", env={"NOTIFY_SOCKET": path})
        b.start()
        try:
            ready = systemd.recv(4096).decode().split("\n")
            assert "READY=1" in ready and f"MAINPID={b.proc.pid}" in ready
            socket.create_connection(("127.0.0.1", b.port), timeout=5).close()  # it serves
            b.proc.send_signal(signal.SIGTERM)
            assert systemd.recv(4096) == b"STOPPING=1"
            assert b.proc.wait(timeout=10) == 0
        finally:
            b.kill()
