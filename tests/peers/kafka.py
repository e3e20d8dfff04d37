"""Apache Kafka 4.4 beside Odradek: fetch it once, run KRaft nodes, run its command-line tools.

Kafka's answers are the oracle for Odradek's, its tools and Java clients are test clients,
and the benchmarks run it side by side. Nothing of it lives in the repository:

    from tests.peers import kafka

    kafka.ensure_kafka()                        # mvn copy-dependencies into the cache, once
    with kafka.KafkaCluster(nodes=1) as peer:   # format storage, start, wait for Metadata
        rc, out, err = kafka.run_tool("kafka-topics", "--bootstrap-server", peer.bootstrap,
                                      "--list")

The cache is $ODRADEK_KAFKA_HOME, else ~/.cache/odradek/kafka-4.4.0: `libs/` holds every jar
(the broker, tools, clients, Streams, Connect's runtime, with their dependencies, from
tests/peers/pom.xml) and `libs/.complete` the hash of the pom they were fetched with, so a
changed pom fetches again. Fetching needs `mvn` and Maven Central; running needs `java` (17).

Tools are named as Kafka's bin/ scripts (`kafka-topics`, `kafka-consumer-groups`, ...) and
run by their main classes (TOOLS) on a classpath of the cached jars, with log4j writing
warnings to stderr only, so stdout holds what the tool prints for an operator. A JVM starts
in about a second here; the tool options below trade peak speed for a quick start.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import structlog

from tests.brokerproc import free_port

log = structlog.get_logger("tests.peers.kafka")

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("pom.xml")
HOME_ENV = "ODRADEK_KAFKA_HOME"
FETCH_TIMEOUT_S = 900  # a first fetch downloads about 130 MB of jars

# Short-lived tool JVMs: the C1 compiler only, class data sharing, the serial collector; the
# JVM's own warnings (class data sharing has some) go to stderr, never into a tool's stdout.
TOOL_JVM_OPTS = ("-XX:TieredStopAtLevel=1", "-Xshare:auto", "-XX:+UseSerialGC", "-Xmx256m",
                 "-Djava.awt.headless=true", "-Xlog:disable", "-Xlog:all=warning:stderr")
# A test broker: small heap, quick start; throughput does not matter in tests.
TEST_BROKER_JVM_OPTS = ("-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                        "-Xshare:auto", "-Djava.awt.headless=true")
# What bin/kafka-server-start.sh and kafka-run-class.sh give the broker: for benchmarks.
LAUNCHER_BROKER_JVM_OPTS = ("-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC",
                            "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true")

# bin/<script>.sh -> the main class it runs in Kafka 4.4 (checked against the 4.4.0 jars).
TOOLS = {
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-server-start": "kafka.Kafka",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-share-groups": "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
    "kafka-streams-groups": "org.apache.kafka.tools.streams.StreamsGroupCommand",
    "kafka-groups": "org.apache.kafka.tools.GroupsCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-share-consumer": "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-share-consumer-perf-test": "org.apache.kafka.tools.ShareConsumerPerformance",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-client-metrics": "org.apache.kafka.tools.ClientMetricsCommand",
    "kafka-delegation-tokens": "org.apache.kafka.tools.DelegationTokenCommand",
    "kafka-replica-verification": "org.apache.kafka.tools.ReplicaVerificationTool",
}

# log4j2 configurations written into the cache: tools warn on stderr, brokers log at INFO
# to stderr (which KafkaNode sends to a file); nothing ever goes to stdout.
_LOG4J = """status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.err.ref = STDERR
"""


class KafkaUnavailable(RuntimeError):
    """Kafka cannot run here: java or mvn is missing, or the fetch failed."""


class ToolResult(NamedTuple):
    rc: int
    stdout: str
    stderr: str


def kafka_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "odradek"
                / f"kafka-{KAFKA_VERSION}")


def libs_dir() -> Path:
    return kafka_home() / "libs"


def _pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def is_fetched() -> bool:
    marker = libs_dir() / ".complete"
    return marker.is_file() and marker.read_text().strip() == _pom_hash()


def ensure_kafka(timeout: float = FETCH_TIMEOUT_S) -> Path:
    """The directory of Kafka's jars, fetched with Maven the first time (under a file lock,
    into a fresh directory renamed into place, so concurrent test runs never see half of
    it). Raises KafkaUnavailable when java is missing, or mvn when a fetch is needed."""
    if shutil.which("java") is None:
        raise KafkaUnavailable("java is not installed (apt-get install -y openjdk-17-jre-headless)")
    home = kafka_home()
    if not is_fetched():
        home.mkdir(parents=True, exist_ok=True)
        with open(home / ".fetch.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not is_fetched():
                _fetch(home, timeout)
    _write_log_configs(home)
    return libs_dir()


def _fetch(home: Path, timeout: float) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable("mvn is not installed (apt-get install -y maven) and "
                               f"Kafka {KAFKA_VERSION} is not in {home}")
    staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
    log.info("fetching kafka", version=KAFKA_VERSION, into=str(home))
    try:
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}"],
            cwd=staging, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaUnavailable(f"mvn did not fetch Kafka within {timeout:.0f} s") from None
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaUnavailable(f"mvn failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                               f"{proc.stderr[-3000:]}")
    (staging / ".complete").write_text(_pom_hash() + "\n")
    old = libs_dir()
    if old.exists():
        shutil.rmtree(old)
    (home / "tools.jsa").unlink(missing_ok=True)  # made from the old jars
    staging.rename(old)


def _write_log_configs(home: Path) -> None:
    for name, level in (("tools", "WARN"), ("broker", "INFO")):
        path = home / f"log4j2-{name}.properties"
        text = _LOG4J.format(level=level)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.rename(path)


_archive_failed = False


def tool_archive() -> Path | None:
    """A class-data-sharing archive of the admin client's classes (AppCDS), which halves a
    tool's start; made once per fetch by a kafka-topics run against a closed port (a few
    seconds). None when it cannot be made: tools then start without it."""
    global _archive_failed
    archive = kafka_home() / "tools.jsa"
    if archive.is_file():
        return archive
    if _archive_failed:
        return None
    with open(kafka_home() / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file():
            return archive
        staging = archive.with_suffix(f".{os.getpid()}.jsa")
        fast = kafka_home() / "give-up-fast.properties"
        fast.write_text("default.api.timeout.ms=1000\nrequest.timeout.ms=500\n")
        cmd = java_command(TOOLS["kafka-topics"], "--bootstrap-server", f"127.0.0.1:{free_port()}",
                           "--list", "--command-config", str(fast),
                           jvm_opts=(*TOOL_JVM_OPTS, f"-XX:ArchiveClassesAtExit={staging}"))
        try:
            subprocess.run(cmd, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if not staging.is_file():
            _archive_failed = True  # not again in this process
            return None
        staging.rename(archive)
    return archive


def java_command(main_class: str, *args: str, jvm_opts=TOOL_JVM_OPTS,
                 log_config: str = "tools") -> list[str]:
    """The command line that runs a main class of the cached jars (ensure_kafka first)."""
    home = kafka_home()
    return ["java", *jvm_opts, f"-Dlog4j2.configurationFile={home}/log4j2-{log_config}.properties",
            "-cp", f"{libs_dir()}/*", main_class, *args]


def tool_command(tool: str, *args: str, jvm_opts=TOOL_JVM_OPTS) -> list[str]:
    """The command line of one of Kafka's tools, by its script name (TOOLS) or a main class."""
    ensure_kafka()
    archive = tool_archive() if jvm_opts is TOOL_JVM_OPTS else None
    if archive is not None:
        jvm_opts = (*jvm_opts, f"-XX:SharedArchiveFile={archive}")
    return java_command(TOOLS.get(tool, tool), *args, jvm_opts=jvm_opts)


def start_tool(tool: str, *args: str, jvm_opts=TOOL_JVM_OPTS) -> subprocess.Popen:
    """Start a tool that runs until stopped (a console consumer in a group, say), with
    stdout and stderr as text pipes; the caller kills it."""
    return subprocess.Popen(tool_command(tool, *args, jvm_opts=jvm_opts), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_tool(tool: str, *args: str, input: str | None = None, timeout: float = 60,
             jvm_opts=TOOL_JVM_OPTS) -> ToolResult:
    """Run one of Kafka's tools, by its script name (TOOLS) or a main class, to its end.

    A tool that outlives `timeout` (a console consumer without --timeout-ms, say) is
    killed and reported with rc -9 and what it printed so far."""
    cmd = tool_command(tool, *args, jvm_opts=jvm_opts)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return ToolResult(-9, out, err + f"\n[killed after {timeout} s]")
    return ToolResult(proc.returncode, out, err)


def new_cluster_id() -> str:
    """A KRaft cluster id as `kafka-storage random-uuid` prints it (base64url, 22 chars),
    made here to spare a JVM start. Never one starting with '-', as Kafka's Uuid.randomUuid
    ensures: the tools' argument parser would take it for an option (1 in 64 ids)."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


class KafkaNode:
    """One combined broker+controller KRaft node: a PLAINTEXT listener for clients and a
    CONTROLLER listener for the quorum, both on free loopback ports."""

    def __init__(self, node_id: int, work_dir: Path):
        self.node_id = node_id
        self.dir = work_dir / f"node-{node_id}"
        self.log_dir = self.dir / "data"
        self.port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._stderr = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def voter(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.controller_port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "kafka.log"

    def properties(self, voters: str, overrides: dict[str, str]) -> dict[str, str]:
        rf = "1" if len(voters.split(",")) == 1 else "3"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": "1",
            # A test group should not wait 3 s for more members (Kafka's dev config does this).
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(overrides)
        return props

    def write_config(self, voters: str, overrides: dict[str, str]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in
                                self.properties(voters, overrides).items()))
        return path

    def format(self, cluster_id: str, config: Path) -> None:
        result = run_tool("kafka-storage", "format", "-t", cluster_id, "-c", str(config))
        if result.rc != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{result.stdout}{result.stderr}")

    def start(self, config: Path, jvm_opts) -> None:
        self._stderr = open(self.log_file, "ab")
        cmd = java_command(TOOLS["kafka-server-start"], str(config), jvm_opts=jvm_opts,
                           log_config="broker")
        self.proc = subprocess.Popen(cmd, stdout=self._stderr, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (Kafka's controlled shutdown), then SIGKILL after `timeout`."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class KafkaCluster:
    """One or three combined KRaft nodes of Kafka 4.4 in a work directory (a fresh temporary
    one unless given, removed on stop). `start` formats each node's storage with one
    cluster id and returns once every node answers Metadata with every broker and an
    active controller. `overrides` are server.properties keys for every node."""

    def __init__(self, nodes: int = 1, work_dir: str | Path | None = None,
                 overrides: dict[str, str] | None = None, jvm_opts=TEST_BROKER_JVM_OPTS):
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="kafka-peer-"))
        self.overrides = dict(overrides or {})
        self.jvm_opts = tuple(jvm_opts)
        self.cluster_id = new_cluster_id()
        self.nodes = [KafkaNode(i, self.work_dir) for i in range(1, nodes + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def voters(self) -> str:
        return ",".join(n.voter for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def start(self, timeout: float = 120) -> KafkaCluster:
        ensure_kafka()
        configs = [n.write_config(self.voters, self.overrides) for n in self.nodes]
        for n, c in zip(self.nodes, configs, strict=True):
            n.format(self.cluster_id, c)
        started = time.monotonic()
        for n, c in zip(self.nodes, configs, strict=True):
            n.start(c, self.jvm_opts)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop(kill=True)
            raise
        self.ready_s = time.monotonic() - started  # process start to ready, format not counted
        log.info("kafka ready", bootstrap=self.bootstrap, seconds=round(self.ready_s, 1))
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Until every node answers Metadata listing every broker and a controller."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            if not node.alive():
                raise RuntimeError(f"kafka node {node.node_id} exited ({node.proc.returncode}):\n"
                                   + node.log_text()[-6000:])
            if _metadata_ready(node.bootstrap, len(self.nodes)):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"kafka node {node.node_id} not ready after {timeout} s:\n"
                                   + node.log_text()[-6000:])
            time.sleep(0.2)

    def stop(self, kill: bool = False) -> None:
        """Stop every node (SIGKILL when `kill`: a test's data is thrown away anyway) and
        remove a work directory this cluster made."""
        for n in self.nodes:
            n.kill() if kill else n.stop()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def log_text(self) -> str:
        return "".join(f"--- kafka node {n.node_id} ---\n{n.log_text()}" for n in self.nodes)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(kill=True)


def _metadata_ready(bootstrap: str, brokers: int) -> bool:
    """Whether the node answers Metadata (v12) with `brokers` brokers and a controller."""
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    from odradek.broker.client import KafkaConnection
    try:
        with KafkaConnection(bootstrap, timeout=2) as conn:
            resp = conn.roundtrip(MetadataRequest(topics=[], allow_auto_topic_creation=False),
                                  12, MetadataResponse)
    except (OSError, ConnectionError, ValueError):
        return False
    return len(resp.brokers) == brokers and resp.controller_id >= 0
