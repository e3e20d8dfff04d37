"""The HTTP listener (http.listener) of a real broker process: /metrics in Prometheus'
format with Kafka's names, /livez, /readyz, and hostile HTTP input."""

import json
import socket

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from odradek.broker.http import MAX_CONNECTIONS
from tests import rawclient
from tests.brokerproc import BrokerProcess, free_port
from tests.local_cluster import poll_until
from tests.metrics_http import get, sample, scrape


def test_ready_and_live(http_node):
    assert get(http_node.http + "/livez")[0] == 200
    assert poll_until(lambda: get(http_node.http + "/readyz")[0] == 200, 10)
    assert get(http_node.http + "/nothing")[0] == 404
    samples = scrape(http_node.http)
    assert sample(samples, "odradek_broker_ready") == 1
    assert sample(samples, "process_resident_memory_bytes") > 0
    assert sample(samples, "process_open_fds") > 0
    assert sample(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1


def test_readyz_is_503_until_the_node_is_registered(tmp_path):
    """A node of a three-voter quorum started alone listens but has no controller to
    register with: live, not ready."""
    http_port = free_port()
    port = free_port()
    others = f"2@127.0.0.1:{free_port()},3@127.0.0.1:{free_port()}"
    b = BrokerProcess(tmp_path / "data", port=port, overrides={"http.listener": f"127.0.0.1:{http_port}"},
                      extra_args=["--voters", f"1@127.0.0.1:{port},{others}"])
    b.start()
    try:
        base = f"http://127.0.0.1:{http_port}"
        assert get(base + "/livez")[0] == 200
        status, body = get(base + "/readyz")
        assert (status, body) == (503, "not ready\n")
        assert sample(scrape(base), "odradek_broker_ready") == 0
    finally:
        b.stop()


def test_bytes_in_messages_in_requests_and_client_software(http_node):
    producer = KafkaProducer(bootstrap_servers=http_node.bootstrap, linger_ms=0)
    try:
        for i in range(10):
            producer.send("metered", f"value-{i}".encode()).get(timeout=10)
        samples = scrape(http_node.http)
        assert sample(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic="metered") == 10
        # ten batches, each at least a batch header (61 bytes) plus its record
        assert sample(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic="metered") > 10 * 61
        assert sample(samples, "kafka_server_brokertopicmetrics_failedproducerequests_total",
                      topic="metered") is None
        produces = sum(v for (name, labels), v in samples.items()
                       if name == "kafka_network_requestmetrics_requests_total"
                       and ("request", "Produce") in labels)
        assert produces == 10
        # Kafka's RequestMetrics split: queue, local, remote and send add up to the total.
        splits = ("requestqueue", "local", "remote", "responsesend")
        for split in (*splits, "total"):
            assert sample(samples, f"kafka_network_requestmetrics_{split}timems_count", request="Produce") == 10
        parts = sum(sample(samples, f"kafka_network_requestmetrics_{split}timems_sum", request="Produce")
                    for split in splits)
        total = sample(samples, "kafka_network_requestmetrics_totaltimems_sum", request="Produce")
        assert parts > 0 and abs(total - parts) < 1e-6 * max(1.0, total)
        assert sample(samples, "kafka_network_requestmetrics_totaltimems_bucket", request="Produce",
                      le="+Inf") == 10
        assert sample(samples, "kafka_network_requestmetrics_errors_total", request="Metadata",
                      error="NONE") >= 1
        # KIP-511: kafka-python names itself in ApiVersions v3+
        clients = {dict(labels)["clientSoftwareName"]: v for (name, labels), v in samples.items()
                   if name == "kafka_server_socket_server_metrics_connections"}
        assert clients.get("kafka-python", 0) >= 1
        assert sample(samples, "kafka_server_socket_server_metrics_connection_count",
                      listener="PLAINTEXT") >= 1
        assert sample(samples, "kafka_log_log_logendoffset", topic="metered", partition="0") == 10
        assert sample(samples, "kafka_log_log_size", topic="metered", partition="0") > 10 * 61
        assert sample(samples, "kafka_server_replicamanager_leadercount") >= 1
        assert sample(samples, "kafka_server_replicamanager_underreplicatedpartitions") == 0
        assert sample(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic="metered") is None
    finally:
        producer.close()


def test_failed_produce_and_fetch_and_bytes_out(http_node):
    """Partition 5 of a one-partition topic: a failed produce and a failed fetch of that
    topic; a fetch of partition 0 counts its bytes out. Made-up topics get no series."""
    KafkaProducer(bootstrap_servers=http_node.bootstrap).send("failing", b"x").get(timeout=10)
    assert rawclient.produce(http_node.bootstrap, "failing", {5: b"not even a batch"})[5].error_code == 3
    assert rawclient.fetch(http_node.bootstrap, "failing", 5).error_code == 3
    assert rawclient.fetch(http_node.bootstrap, "failing", 0).error_code == 0
    rawclient.produce(http_node.bootstrap, "made-up-topic", {0: b"x"})
    rawclient.fetch(http_node.bootstrap, "made-up-topic", 0)
    samples = scrape(http_node.http)
    prefix = "kafka_server_brokertopicmetrics_"
    assert sample(samples, prefix + "failedproducerequests_total", topic="failing") == 1
    assert sample(samples, prefix + "totalproducerequests_total", topic="failing") == 2
    assert sample(samples, prefix + "failedfetchrequests_total", topic="failing") == 1
    assert sample(samples, prefix + "totalfetchrequests_total", topic="failing") == 2
    assert sample(samples, prefix + "bytesout_total", topic="failing") > 61
    assert not [k for k in samples if ("topic", "made-up-topic") in k[1]]


def test_loop_lag_fsync_times_connections_by_principal_and_the_connections_endpoint(http_node):
    """A topic with flush.messages=1 fsyncs before each acknowledgement: every one is timed
    in Kafka's LogFlushRateAndTimeMs. The loop-lag gauge and the principal count are there."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=http_node.bootstrap, client_id="flusher")
    try:
        admin.create_topics([NewTopic("synced", 1, 1, topic_configs={"flush.messages": "1"})])
        producer = KafkaProducer(bootstrap_servers=http_node.bootstrap, linger_ms=0)
        for i in range(5):
            producer.send("synced", f"v{i}".encode()).get(timeout=10)
        producer.close()
        samples = scrape(http_node.http)
        flushes = sample(samples, "kafka_log_logflushstats_logflushrateandtimems_count")
        assert flushes >= 5
        assert sample(samples, "kafka_log_logflushstats_logflushrateandtimems_bucket", le="+Inf") == flushes
        assert sample(samples, "kafka_log_logflushstats_logflushrateandtimems_sum") > 0
        assert sample(samples, "odradek_event_loop_lag_max_ms") >= 0
        assert sample(samples, "kafka_server_socket_server_metrics_principal_connection_count",
                      listener="PLAINTEXT", principal="User:ANONYMOUS") >= 1  # the admin client's
        status, body = get(http_node.http + "/connections")
        assert status == 200
        described = json.loads(body)
        assert described["node_id"] == 1
        assert any(c["client_id"] == "flusher" and c["client_software_name"] == "kafka-python"
                   for c in described["connections"])
    finally:
        admin.close()


def test_consumer_group_lag(http_node):
    """Lag is the high watermark minus the group's committed offset, per partition."""
    producer = KafkaProducer(bootstrap_servers=http_node.bootstrap)
    for i in range(10):
        producer.send("lagging", f"v{i}".encode())
    producer.flush()
    consumer = KafkaConsumer(bootstrap_servers=http_node.bootstrap, group_id="lag-group",
                             enable_auto_commit=False)
    try:
        tp = TopicPartition("lagging", 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(4, "", -1)})
        for i in range(5):
            producer.send("lagging", f"w{i}".encode())
        producer.flush()
        labels = {"consumergroup": "lag-group", "topic": "lagging", "partition": "0"}
        samples = scrape(http_node.http)
        assert sample(samples, "kafka_consumergroup_current_offset", **labels) == 4
        assert sample(samples, "kafka_consumergroup_lag", **labels) == 15 - 4
    finally:
        consumer.close()
        producer.close()


def raw_http(port: int, data: bytes) -> bytes:
    """Send data, half-close, and read until the server closes (bounded by a timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed on us before we finished: also an answer
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass  # reset: the unread rest of our request was discarded
        return out


def test_bad_http_input_gets_an_error_or_a_close(http_node):
    port = int(http_node.http.rsplit(":", 1)[1])
    assert raw_http(port, b"\x00\xff garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_http(port, b"GET /metrics\r\n\r\n").startswith(b"HTTP/1.1 400 ")  # no version
    assert raw_http(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    # a console POST's body is bounded, and read only with a length
    post = b"POST /console/topics HTTP/1.1\r\n"
    assert raw_http(port, post + b"Content-Length: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_http(port, post + b"Content-Length: 99999999\r\n\r\n").startswith(b"HTTP/1.1 413 ")
    assert raw_http(port, post + b"Transfer-Encoding: chunked\r\n\r\n").startswith(b"HTTP/1.1 411 ")
    assert raw_http(port, post + b"Content-Length: 10\r\n\r\nname") == b""  # cut short: closed
    assert raw_http(port, b"PUT /console/topics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    huge = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    answer = raw_http(port, huge)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    assert raw_http(port, b"GET /livez HTTP/1.1\r\n") == b""  # cut short: closed, no answer
    assert raw_http(port, b"") == b""
    # connections beyond MAX_CONNECTIONS are closed at once; the held ones time out
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        assert poll_until(lambda: raw_http(port, b"GET /livez HTTP/1.1\r\n\r\n") == b"", 10)
    finally:
        for s in idle:
            s.close()
    assert poll_until(lambda: get(http_node.http + "/livez")[0] == 200, 10)
    # the node still serves both its listeners
    assert get(http_node.http + "/livez")[0] == 200
    assert http_node.proc.poll() is None
    producer = KafkaProducer(bootstrap_servers=http_node.bootstrap)
    producer.send("after-garbage", b"x").get(timeout=10)
    producer.close()
