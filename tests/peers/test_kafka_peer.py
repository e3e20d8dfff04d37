"""The peer itself: Kafka 4.4 starts, answers, and its tools print on stdout only."""

from tests.peers import kafka


def test_the_peer_serves_and_a_tool_prints_only_its_answer_on_stdout(kafka_peer):
    assert kafka.run_tool("kafka-topics", "--bootstrap-server", kafka_peer.bootstrap, "--create",
                          "--topic", "peer-smoke", "--partitions", "2").rc == 0
    rc, out, err = kafka.run_tool("kafka-topics", "--bootstrap-server", kafka_peer.bootstrap,
                                  "--list")
    assert rc == 0, err
    assert "peer-smoke" in out.split()
    assert "WARN" not in out and "[" not in out  # log lines go to stderr


def test_a_failing_tool_reports_its_exit_status_and_error(kafka_libs):
    rc, out, err = kafka.run_tool("kafka-topics", "--no-such-option")
    assert rc != 0
    assert "no-such-option" in err + out


def test_every_tool_names_a_main_class_of_the_jars(kafka_libs):
    """TOOLS is checked against the jars, not against memory of older Kafka layouts."""
    import zipfile
    classes = set()
    for jar in kafka_libs.glob("kafka*.jar"):
        with zipfile.ZipFile(jar) as z:
            classes.update(n[:-6].replace("/", ".") for n in z.namelist() if n.endswith(".class"))
    missing = {tool: cls for tool, cls in kafka.TOOLS.items() if cls not in classes}
    assert not missing


def test_three_kafka_nodes_form_one_quorum(kafka_libs):
    """Slow (three JVMs, about 15 s): the three-node peer the oracle and benchmarks use."""
    with kafka.KafkaCluster(nodes=3) as peer:
        rc, out, err = kafka.run_tool("kafka-metadata-quorum", "--bootstrap-server",
                                      peer.nodes[0].bootstrap, "describe", "--status")
        assert rc == 0, err
        assert all(f'"id": {n.node_id}' in out for n in peer.nodes)
        assert f"ClusterId:              {peer.cluster_id}" in out
    assert not any(n.alive() for n in peer.nodes)
