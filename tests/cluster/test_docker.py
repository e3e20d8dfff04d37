"""The docker-compose cluster (issue 9): three containers, real clients on the host.

The image is built the way `make cluster-up` builds it (`make docker-base docker-image`:
a base image from Debian's packages, kept once built, and wheels made on the host), then
docker-compose.yml runs under a project name and host ports of its own, so a user's
cluster is left alone, with the short timeouts of tests/local_cluster.py passed through the
compose file's ODRADEK_* variables. Everything is removed with `down -v` at the end.

Without a working Docker engine (or compose, or debootstrap for the base image) the
tests skip, except under CI=true, where that is a failure.
"""

import collections
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.brokerproc import ROOT, free_port
from tests.clients import create_topics, read_values
from tests.conftest import CI, require_tool
from tests.local_cluster import FAST, poll_until

IMAGE = os.environ.get("ODRADEK_TEST_IMAGE", "odradek:test")
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
NODES = (1, 2, 3)
TOPIC = "docker-rf3"
PARTITIONS = 3
RECORDS = 20_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _unavailable(reason: str):
    if CI:
        pytest.fail(f"{reason}; CI=true requires Docker (.ci/run installs and starts it)")
    pytest.skip(reason)


def _run(cmd, timeout=120, check=True, env=None, input_text=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=check, env=env, input=input_text)


def _compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin exists, else docker-compose (1.29)."""
    if _run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    _unavailable("neither `docker compose` nor docker-compose is installed "
                 "(apt-get install -y docker-compose)")


def _remove_stale_projects(compose: list[str]) -> None:
    """Projects of earlier runs whose pytest died before `down -v` (odradektest<pid>)."""
    label = '{{.Label "com.docker.compose.project"}}'
    labels = _run(["docker", "container", "ls", "-a", "--format", label], check=False).stdout + \
        _run(["docker", "volume", "ls", "--format", label], check=False).stdout
    for name in set(labels.split()):
        m = re.fullmatch(r"odradektest(\d+)", name)
        if m:
            try:
                os.kill(int(m.group(1)), 0)
                continue  # that run is still going
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            _run(compose + ["-p", name, "-f", COMPOSE_FILE, "down", "-v", "--remove-orphans",
                            "-t", "1"], check=False)


class ComposeCluster:
    """One compose project: `docker compose -p NAME -f docker-compose.yml ...`."""

    def __init__(self, compose: list[str]):
        self.project = f"odradektest{os.getpid()}"
        self.ports = {n: free_port() for n in NODES}
        self.command = compose
        self.base = compose + ["-p", self.project, "-f", COMPOSE_FILE]
        self._admin = None
        with open(COMPOSE_FILE) as f:
            text = f.read()
        settings = {f"ODRADEK_{key.upper().replace('.', '_')}": value for key, value in FAST.items()}
        self.env = {**os.environ, "ODRADEK_IMAGE": IMAGE,
                    **{f"ODRADEK_PORT_{n}": str(p) for n, p in self.ports.items()},
                    **{var: value for var, value in settings.items() if f"${{{var}:-" in text}}

    def admin(self):
        """One AdminClient for the whole module (each one keeps reconnecting until destroyed)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in NODES)

    def compose(self, *args, timeout=180, check=True) -> str:
        r = _run(self.base + list(args), timeout=timeout, check=False, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def container(self, node: int) -> str:
        return self.compose("ps", "-a", "-q", f"odradek-{node}").strip()  # -a: v2 omits stopped ones

    def health(self) -> dict[int, str]:
        out = {}
        for n in NODES:
            cid = self.container(n)
            out[n] = _run(["docker", "inspect", "-f", "{{.State.Status}}/{{.State.Health.Status}}",
                           cid], check=False).stdout.strip() if cid else "absent"
        return out

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")
        self.wait_for(lambda: set(self.health().values()) == {"running/healthy"}, 180,
                      "every container to be healthy")

    def status(self, via: int = 1) -> dict:
        """`odradek cluster status --json` inside a container, on the INTERNAL listener."""
        out = _run(["docker", "exec", self.container(via), "odradek", "cluster", "status", "--json",
                    "--bootstrap", "127.0.0.1:9093"], check=False, timeout=30).stdout
        return json.loads(out) if out.strip() else {}

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail=40", check=False, timeout=60)

    def wait_for(self, predicate, timeout_s: float, what: str):
        value = poll_until(predicate, timeout_s, 0.5)
        if not value:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n"
                                 f"health: {self.health()}\n{self.logs()}")
        return value

    def partitions(self, topic: str) -> dict:
        """{partition: (leader, replicas, isr)} from the brokers' Metadata, via the host."""
        md = self.admin().list_topics(topic, timeout=10)
        t = md.topics[topic]
        assert t.error is None, t.error
        return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}

    def topics(self) -> set[str]:
        """The names among the cluster's topics (without creating any)."""
        return set(self.admin().list_topics(timeout=10).topics)

    def fully_replicated(self, topic: str) -> bool:
        parts = self.partitions(topic)
        return bool(parts) and all(leader in NODES and isr == list(NODES)
                                   for leader, _, isr in parts.values())


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("docker") is None:
        _unavailable("docker is not installed (apt-get install -y docker.io)")
    info = _run(["docker", "info"], check=False, timeout=30)
    if info.returncode != 0:
        _unavailable(f"the Docker engine is not running ({info.stderr.strip()[:200]})")
    compose = _compose_command()
    base = os.environ.get("DOCKER_BASE_IMAGE", "odradek-base:bookworm")
    if _run(["docker", "image", "inspect", base], check=False).returncode != 0 and \
            (shutil.which("debootstrap") is None or os.geteuid() != 0):
        _unavailable(f"no base image {base} and no debootstrap as root to build it "
                     "(apt-get install -y debootstrap)")
    build = _run(["make", "-s", "docker-base", "docker-image", f"ODRADEK_IMAGE={IMAGE}",
                  f"DOCKER_BASE_IMAGE={base}"], check=False, timeout=600)
    assert build.returncode == 0, f"make docker-image failed:\n{build.stdout}\n{build.stderr}"

    _remove_stale_projects(compose)
    c = ComposeCluster(compose)
    try:
        c.up()
        yield c
    finally:
        print(f"--- {c.project} logs (tail) ---\n{c.logs()}")
        c.compose("down", "-v", "--remove-orphans", "-t", "5", check=False)


def test_compose_file_is_valid(cluster):
    """The committed defaults, then this project's settings as the test passes them."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    defaults = _run(cluster.command + ["-f", COMPOSE_FILE, "config"], env=plain).stdout
    for n, port in zip(NODES, (19092, 29092, 39092), strict=True):
        assert f"EXTERNAL://127.0.0.1:{port},INTERNAL://odradek-{n}:9093" in defaults
    assert "replica.lag.time.max.ms=30000" in defaults and "image: odradek:latest" in defaults
    config = cluster.compose("config")
    for n in NODES:
        assert f"EXTERNAL://127.0.0.1:{cluster.ports[n]},INTERNAL://odradek-{n}:9093" in config
    assert "inter.broker.listener.name=INTERNAL" in config
    assert "default.replication.factor=3" in config and "min.insync.replicas=2" in config


def test_listeners_from_the_host_and_between_containers(cluster):
    """Host clients are told 127.0.0.1:<published port>; nodes see each other as odradek-N."""
    kcat = require_tool("kcat")
    for n in NODES:
        assert cluster.compose("port", f"odradek-{n}", "9092").strip() == f"127.0.0.1:{cluster.ports[n]}"
        out = _run([kcat, "-b", f"127.0.0.1:{cluster.ports[n]}", "-L", "-m", "10"]).stdout
        assert "3 brokers:" in out, out
        for m in NODES:
            assert f"broker {m} at 127.0.0.1:{cluster.ports[m]}" in out, out
    status = cluster.status(2)
    assert status["active_controller"] in NODES, status
    assert {(b["node_id"], b["host"], b["port"]) for b in status["brokers"]} == \
        {(m, f"odradek-{m}", 9093) for m in NODES}, status
    # The broker runs as PID 1, not as root.
    cid = cluster.container(1)
    assert _run(["docker", "exec", cid, "id", "-u"]).stdout.strip() != "0"
    assert "odradek" in _run(["docker", "exec", cid, "cat", "/proc/1/cmdline"]).stdout


def _produce_with_leader_kill(cluster, topic: str, count: int):
    """confluent-kafka, acks=all, idempotent; the leader of partition 0 is killed a quarter
    of the way through and started again after the rest was acknowledged."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 120000})
    acked, errors = [], []
    killed = {}

    def report(err, msg):
        if err:
            errors.append(err)
        else:
            acked.append(msg.value())
            if killed:
                killed["acked_after"] = killed.get("acked_after", 0) + 1

    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=f"v{i:06d}".encode(),
                          on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        if i == count // 4:
            p.flush(60)  # some records are surely on every replica before the kill
            leader = cluster.partitions(topic)[0][0]
            _run(["docker", "kill", cluster.container(leader)])
            killed.update(node=leader, at=len(acked))
        # Pace the rest over a few seconds so the failover happens mid-stream.
        ahead = start + i / 2500 - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    assert p.flush(150) == 0, "records left unacknowledged"
    return acked, errors, killed


def test_produce_through_a_leader_kill_and_consume(cluster):
    kcat = require_tool("kcat")
    create_topics(cluster.bootstrap, [TOPIC], partitions=PARTITIONS, rf=3)
    parts = cluster.wait_for(lambda: cluster.fully_replicated(TOPIC) and cluster.partitions(TOPIC),
                             30, "the topic's partitions to have leaders and 3 in-sync replicas")
    assert sorted(parts) == list(range(PARTITIONS))
    assert all(replicas == list(NODES) for _, replicas, _ in parts.values()), parts

    t0 = time.monotonic()
    acked, errors, killed = _produce_with_leader_kill(cluster, TOPIC, RECORDS)
    produce_s = time.monotonic() - t0
    assert not errors, errors[:5]
    assert len(acked) == RECORDS and killed.get("acked_after", 0) > RECORDS // 2, \
        (len(acked), killed)
    victim = killed["node"]
    # Partition 0 moved to another replica while its old leader was down.
    during = cluster.partitions(TOPIC)
    assert during[0][0] in NODES and during[0][0] != victim, during

    _run(["docker", "start", cluster.container(victim)])
    cluster.wait_for(lambda: cluster.fully_replicated(TOPIC), 90,
                     f"node {victim} to rejoin every ISR")
    cluster.wait_for(lambda: cluster.health()[victim] == "running/healthy", 60,
                     f"node {victim} to be healthy again")
    # ... which `odradek cluster status` on the returned node reports too.
    isrs = {p["partition"]: sorted(p["isr"]) for p in cluster.status(victim)["partitions"]
            if p["topic"] == TOPIC}
    assert isrs == {p: list(NODES) for p in range(PARTITIONS)}, isrs

    expected = collections.Counter(acked)
    assert max(expected.values()) == 1
    kp = collections.Counter(read_values(cluster.bootstrap, TOPIC, PARTITIONS, idle_ms=5000))
    assert kp == expected, (len(kp), sum(kp.values()), len(expected))
    out = _run([kcat, "-b", cluster.bootstrap, "-C", "-t", TOPIC, "-o", "beginning", "-e", "-q",
                "-f", "%s\n"], timeout=120).stdout
    kc = collections.Counter(line.encode() for line in out.splitlines())
    assert kc == expected, (len(kc), sum(kc.values()), len(expected))
    print(f"produced {RECORDS} records through the kill of node {victim} in {produce_s:.1f}s")


def test_down_and_up_keeps_the_data(cluster):
    """`down` without -v removes the containers and the network, not the volumes."""
    from confluent_kafka import Producer
    topic = "docker-keep"
    create_topics(cluster.bootstrap, [topic], partitions=PARTITIONS, rf=3)
    cluster.wait_for(lambda: cluster.fully_replicated(topic), 30, f"{topic} to be replicated")
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
    values = [f"keep{i}".encode() for i in range(2000)]
    for i, v in enumerate(values):
        p.produce(topic, key=str(i).encode(), value=v)
    assert p.flush(60) == 0
    del p  # destroyed now, not retrying connections while the cluster is down
    before = {n: cluster.container(n) for n in NODES}
    big = TOPIC in cluster.topics()
    big_before = sorted(read_values(cluster.bootstrap, TOPIC, PARTITIONS, idle_ms=3000)) if big else []

    # SIGTERM (docker stop) stops every broker cleanly: exit status 0, within the grace time.
    cluster.compose("stop", "-t", "10")
    codes = {n: _run(["docker", "inspect", "-f", "{{.State.ExitCode}}", before[n]]).stdout.strip()
             for n in NODES}
    assert set(codes.values()) == {"0"}, codes
    cluster.compose("down", "-t", "10")
    assert all(not cluster.container(n) for n in NODES)
    cluster.up()
    assert all(cluster.container(n) != before[n] for n in NODES), "containers were not recreated"
    cluster.wait_for(lambda: cluster.fully_replicated(topic) and (not big or cluster.fully_replicated(TOPIC)),
                     60, "every partition to have a leader and 3 in-sync replicas")

    assert sorted(read_values(cluster.bootstrap, topic, PARTITIONS, idle_ms=3000)) == sorted(values)
    if big:
        assert sorted(read_values(cluster.bootstrap, TOPIC, PARTITIONS, idle_ms=3000)) == big_before


SASL_SSL_OVERRIDE = os.path.join(ROOT, "docker-compose.sasl-ssl.yml")


def _compose_config_json(compose: list[str], files: list[str], env: dict) -> dict:
    """`config` as JSON: compose v2 prints it; docker-compose 1.29 prints YAML, read by the
    Python it runs on (it depends on PyYAML; Odradek does not)."""
    args = [arg for f in files for arg in ("-f", f)] + ["config"]
    if compose[0] == "docker":
        return json.loads(_run(compose + args + ["--format", "json"], env=env).stdout)
    text = _run(compose + args, env=env).stdout
    with open(shutil.which(compose[0])) as f:
        python = f.readline()[2:].strip()  # its shebang
    return json.loads(_run([python, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
                           env=env, input_text=text).stdout)


def test_the_sasl_ssl_override_is_valid(tmp_path):
    """docker-compose.sasl-ssl.yml with certificates from its script (no Docker engine
    needed): each node's command, as compose hands it over, is a configuration Odradek
    accepts, with both listeners SASL_SSL and the node's own user on INTERNAL; and each
    node's certificate passes the host name check the other nodes make (odradek-N) and the
    host's clients make (127.0.0.1, localhost)."""
    import ssl

    from odradek.broker import tls
    from odradek.broker.cli import _parser
    from odradek.broker.cli.serve import build_config

    compose = _compose_command()
    certs = tmp_path / "certs"
    _run([os.path.join(ROOT, "broker/deploy/sasl-ssl/make-certs.sh"), str(certs)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    config = _compose_config_json(compose, [COMPOSE_FILE, SASL_SSL_OVERRIDE], {**env, "ODRADEK_CERTS_DIR": str(certs)})
    for n in NODES:
        service = config["services"][f"odradek-{n}"]
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]
        assert any(m.startswith(f"{certs}:/etc/odradek/certs") for m in mounts), mounts
        assert f"odradek-{n}-data:/var/lib/odradek" in " ".join(mounts), mounts  # the data volume stays
        command = [arg.replace("/etc/odradek/certs", str(certs)) for arg in service["command"]]
        node = build_config(_parser().parse_args(command))
        assert node["node.id"] == n
        assert {lst.name: lst.security_protocol for lst in node.listeners} == \
            {"EXTERNAL": "SASL_SSL", "INTERNAL": "SASL_SSL"}
        assert node.node_ids_by_principal == {"User:node1": 1, "User:node2": 2, "User:node3": 3}
        assert set(node.plain_users["EXTERNAL"]) == {"admin", "client"}
        dialler = tls.client_context(node, "INTERNAL")  # how node n dials the others
        for host in (f"odradek-{n}", "localhost", "127.0.0.1"):
            server = node.ssl_contexts["INTERNAL" if host.startswith("odradek") else "EXTERNAL"]
            client = dialler if host.startswith("odradek") else ssl.create_default_context(cafile=str(certs / "ca.crt"))
            _handshake(server, client, host)


def _handshake(server_ctx, client_ctx, host: str) -> None:
    """A TLS handshake in memory; raises ssl.SSLCertVerificationError on a bad name or chain."""
    import ssl
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname=host)
    done = set()
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
                done.add(side)
            except ssl.SSLWantReadError:
                pass
        bios[0].write(bios[3].read())
        bios[2].write(bios[1].read())
        if len(done) == 2:
            return
    raise AssertionError(f"no TLS handshake with {host}")
