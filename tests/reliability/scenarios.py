"""The reliability scenarios: a workload, faults, healing, a drain, the checker's verdict.

``run(name, out_dir, seed=..., duration_s=...)`` starts a fresh three-node cluster, creates
the workload's topic (replication factor 3, ``min.insync.replicas=2``), runs the
workload, lets the scenario inject its faults, heals everything, drains every partition,
dumps every replica and checks the history. It returns a ``Result``: one row of the
chaos table. The history stays in ``out_dir/<scenario>-<seed>/history.jsonl``;
``python -m tests.reliability.checker`` re-checks it.

Faults go through ``tests.reliability.nemesis.Nemesis``: every node in its own network
namespace, except for the scenario whose clients go through loopback proxies
(process and disk faults only there).

A scenario is a function of a ``Context``; "the leader" is the leader of partition 0 of
the workload's topic when the fault starts, found through metadata. ``duration_s`` sets
how long faults and quiet periods last; each scenario bounds its own waits.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.local_cluster import Cluster, poll_until
from tests.reliability.checker import check
from tests.reliability.history import load
from tests.reliability.nemesis import Nemesis
from tests.reliability.workload import Workload, WorkloadConfig, topic_config, txn_config

CLIENTS = 0


def network_problem() -> str | None:
    """Why network namespaces cannot be set up here (not root, no iptables...), or None.
    Under CI=true that is a failure, not a skip (tests/cluster/test_chaos.py)."""
    if not _network_problem:
        from tests.reliability.nemesis import Network
        try:
            Network(1).close()
            _network_problem.append("")
        except Exception as e:  # noqa: BLE001
            _network_problem.append(f"{type(e).__name__}: {e}")
    return _network_problem[0] or None


_network_problem: list[str] = []  # filled once by network_problem()


# --- the context scenarios run in ------------------------------------------------------

@dataclass
class Context:
    cluster: Cluster
    nemesis: object
    workload: Workload
    rng: random.Random
    duration_s: float
    topic: str
    partitions: int
    log: list[str] = field(default_factory=list)
    down: set[int] = field(default_factory=set)  # killed, stopped, paused or isolated
    _admins: dict = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic():.1f} {text}")

    def reachable(self) -> list[int]:
        return [n for n in self.cluster.live() if n not in self.down]

    def admin(self):
        """An admin client of the nodes that should answer (one per set of them)."""
        from confluent_kafka.admin import AdminClient
        nodes = tuple(self.reachable() or self.cluster.live())
        if nodes not in self._admins:
            bootstrap = ",".join(self.cluster.nodes[n].bootstrap for n in nodes)
            self._admins[nodes] = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        return self._admins[nodes]

    def wait_for(self, predicate, timeout_s: float, what: str, required: bool = True):
        value = poll_until(predicate, timeout_s, 0.25)
        if value:
            return value
        self.note(f"timed out after {timeout_s}s waiting for {what}")
        if required:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        return None

    def partition_md(self, partition: int = 0):
        md = self.admin().list_topics(self.topic, timeout=5)
        return md.topics[self.topic].partitions[partition]

    def leader(self, partition: int = 0, timeout_s: float = 30) -> int:
        def found():
            leader = self.partition_md(partition).leader
            return leader if leader not in (-1, None) and leader not in self.down else None
        return self.wait_for(found, timeout_s, f"a leader of partition {partition}")

    def followers(self, partition: int = 0) -> list[int]:
        leader = self.leader(partition)
        return [n for n in self.cluster.nodes if n != leader]

    def wait_new_leader(self, old: int, partition: int = 0, timeout_s: float = 30) -> int | None:
        def found():
            leader = self.partition_md(partition).leader
            return leader if leader not in (-1, None, old) else None
        return self.wait_for(found, timeout_s, f"a leader other than {old}", required=False)

    def wait_isr_full(self, timeout_s: float = 60, required: bool = False) -> bool:
        size = len(self.cluster.nodes)

        def full():
            md = self.admin().list_topics(self.topic, timeout=5)
            parts = md.topics[self.topic].partitions
            return len(parts) == self.partitions and all(
                p.leader not in (-1, None) and len(p.isrs) == size for p in parts.values())
        return bool(self.wait_for(full, timeout_s, "every replica back in the ISR", required))

    def coordinator(self, group: str, timeout_s: float = 30) -> int | None:
        def found():
            (future,) = self.admin().describe_consumer_groups([group]).values()
            node = future.result(10).coordinator.id
            return node if node not in self.down else None
        return self.wait_for(found, timeout_s, f"the coordinator of {group}", required=False)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    # faults, tracked in `down` so that metadata is asked of reachable nodes
    def kill(self, n: int) -> None:
        self.note(f"kill {n}")
        self.nemesis.kill(n)
        self.down.add(n)

    def stop(self, n: int) -> None:
        self.note(f"stop {n}")
        self.nemesis.stop(n)
        self.down.add(n)

    def restart(self, n: int) -> None:
        self.note(f"restart {n}")
        self.nemesis.restart(n)
        self.down.discard(n)

    def pause(self, n: int) -> None:
        self.note(f"pause {n}")
        self.nemesis.pause(n)
        self.down.add(n)

    def resume(self, n: int) -> None:
        self.note(f"resume {n}")
        self.nemesis.resume(n)
        self.down.discard(n)

    def heal_all(self) -> None:
        self.note("heal all")
        self.nemesis.heal_all()
        self.down.clear()


# --- the scenarios --------------------------------------------------------------------

def baseline(ctx: Context) -> None:
    ctx.sleep(ctx.duration_s)


def _leader_down_five_times(ctx: Context, how: str) -> None:
    for _ in range(5):
        victim = ctx.leader()
        getattr(ctx, how)(victim)
        ctx.wait_new_leader(victim)
        ctx.sleep(min(2.0, ctx.duration_s / 10))
        ctx.restart(victim)
        ctx.wait_isr_full(60)


def leader_killed_5x(ctx: Context) -> None:
    _leader_down_five_times(ctx, "kill")


def leader_stopped_5x(ctx: Context) -> None:
    _leader_down_five_times(ctx, "stop")


def follower_killed(ctx: Context) -> None:
    follower = ctx.rng.choice(ctx.followers())
    ctx.kill(follower)
    ctx.sleep(ctx.duration_s / 2)
    ctx.restart(follower)
    ctx.wait_isr_full(60)
    ctx.sleep(ctx.duration_s / 4)


def follower_paused(ctx: Context) -> None:
    """Paused past replica.lag.time.max.ms (3 s here): it leaves the ISR, then rejoins."""
    follower = ctx.rng.choice(ctx.followers())
    ctx.pause(follower)

    def out_of_isr():
        return follower not in ctx.partition_md(0).isrs
    ctx.wait_for(out_of_isr, 30, f"node {follower} to leave the ISR", required=False)
    ctx.sleep(ctx.duration_s / 4)
    ctx.resume(follower)
    ctx.wait_isr_full(60)
    ctx.sleep(ctx.duration_s / 4)


def leader_paused(ctx: Context) -> None:
    """Paused past broker.session.timeout.ms (3 s): fenced, another leader is elected;
    when it wakes, the zombie must acknowledge nothing at its stale epoch."""
    victim = ctx.leader()
    ctx.pause(victim)
    ctx.wait_new_leader(victim)
    ctx.sleep(max(4.0, ctx.duration_s / 3))
    ctx.resume(victim)
    ctx.sleep(ctx.duration_s / 4)
    ctx.wait_isr_full(60)


def leader_cut_from_followers(ctx: Context) -> None:
    victim = ctx.leader()
    ctx.note(f"cut {victim} from its followers, both ways; clients still reach it")
    for f in (n for n in ctx.cluster.nodes if n != victim):
        ctx.nemesis.cut(victim, f)
        ctx.nemesis.cut(f, victim)
    ctx.wait_new_leader(victim, timeout_s=15)
    ctx.sleep(ctx.duration_s / 2)
    ctx.note("heal")
    ctx.nemesis.heal()
    ctx.wait_isr_full(60)


def leader_isolated(ctx: Context) -> None:
    victim = ctx.leader()
    ctx.note(f"isolate {victim}")
    ctx.nemesis.isolate(victim, from_clients=True)
    ctx.down.add(victim)
    ctx.wait_new_leader(victim, timeout_s=15)
    ctx.sleep(ctx.duration_s / 2)
    ctx.note("heal")
    ctx.nemesis.heal()
    ctx.down.discard(victim)
    ctx.wait_isr_full(60)


def controller_isolated(ctx: Context) -> None:
    """The active controller is isolated from nodes and clients: the other two elect a
    controller, which must move the partitions the isolated node led to one of them
    within the session timeout and keep taking writes."""
    controller = ctx.cluster.active_controller(ctx.reachable()[0])
    ctx.note(f"isolate the active controller {controller} (leader of 0: {ctx.leader()})")
    ctx.nemesis.isolate(controller, from_clients=True)
    ctx.down.add(controller)
    for p in range(ctx.partitions):
        if ctx.wait_new_leader(controller, partition=p, timeout_s=15) is None:
            ctx.note(f"partition {p} found no new leader within 15 s")
    ctx.sleep(ctx.duration_s / 2)
    ctx.note("heal")
    ctx.nemesis.heal()
    ctx.down.discard(controller)
    ctx.wait_isr_full(60)


def both_followers_down(ctx: Context) -> None:
    """Writes are refused (min.insync.replicas=2) until a follower returns; the controller
    quorum is lost too."""
    followers = ctx.followers()
    for f in followers:
        ctx.kill(f)
    ctx.sleep(max(5.0, ctx.duration_s / 3))
    for f in followers:
        ctx.restart(f)
    ctx.wait_isr_full(90)
    ctx.sleep(ctx.duration_s / 4)


def double_failover(ctx: Context) -> None:
    """The leader dies; the moment another is elected, it dies too, while the first is
    still catching up."""
    first = ctx.leader()
    ctx.kill(first)
    second = ctx.wait_new_leader(first)
    ctx.restart(first)
    if second is not None:
        ctx.kill(second)
        ctx.wait_new_leader(second)
        ctx.sleep(2)
        ctx.restart(second)
    ctx.wait_isr_full(90)
    ctx.sleep(ctx.duration_s / 4)


def all_killed(ctx: Context) -> None:
    ctx.sleep(ctx.duration_s / 4)
    ctx.note("kill all")
    ctx.nemesis.kill_all()
    ctx.sleep(1)
    ctx.note("restart all")
    ctx.nemesis.restart_all()
    ctx.wait_for(lambda: ctx.cluster.wait_formed(30), 90, "the cluster to form again",
                 required=False)
    ctx.wait_isr_full(90)
    ctx.sleep(ctx.duration_s / 4)


def torn_tail(ctx: Context) -> None:
    """The leader is killed; its last segment loses its tail (and, on other partitions, a
    byte is flipped and the index deleted) before it restarts."""
    victim = ctx.leader()
    ctx.kill(victim)
    ctx.note(f"torn tail on {victim}")
    ctx.nemesis.torn_tail(victim, ctx.topic, 0)
    if ctx.partitions > 2:
        ctx.note(f"flip a byte and delete the index on {victim}")
        ctx.nemesis.flip_byte(victim, ctx.topic, 1)
        ctx.nemesis.delete_index(victim, ctx.topic, 2)
    ctx.wait_new_leader(victim)
    ctx.sleep(1)
    ctx.restart(victim)
    ctx.wait_isr_full(60)
    ctx.sleep(ctx.duration_s / 4)


def produce_responses_dropped(ctx: Context) -> None:
    """Run with every client connection through a FrameProxy that swallows some produce
    responses (see run()); the idempotent producers retry, nothing is duplicated."""
    ctx.sleep(ctx.duration_s)


def coordinator_killed(ctx: Context) -> None:
    group = ctx.workload.config.group
    for _ in range(2):
        victim = ctx.coordinator(group)
        if victim is None:
            break
        ctx.kill(victim)
        ctx.sleep(max(4.0, ctx.duration_s / 4))
        ctx.restart(victim)
        ctx.wait_isr_full(60)
        ctx.sleep(2)


def consumer_killed(ctx: Context) -> None:
    for _ in range(3):
        live = ctx.workload.live_consumers()
        if live:
            victim = ctx.rng.choice(live)
            ctx.note(f"SIGKILL consumer {victim}")
            ctx.workload.kill_consumer(victim)
        ctx.sleep(max(2.0, ctx.duration_s / 6))
        ctx.note(f"start consumer {ctx.workload.start_consumer()}")
        ctx.sleep(max(3.0, ctx.duration_s / 6))


def rolling_restart(ctx: Context) -> None:
    for n in sorted(ctx.cluster.nodes):
        ctx.stop(n)
        ctx.sleep(1)
        ctx.restart(n)
        ctx.wait_isr_full(60)
        ctx.sleep(1)


def _fault(ctx: Context, kind: str, hold: float) -> None:
    """One fault of random_mix's kinds, held ``hold`` seconds; process faults end with the
    restart or resume, network faults stay until the caller heals them."""
    nodes = sorted(ctx.cluster.nodes)
    if kind == "kill":
        n = ctx.rng.choice(nodes)
        ctx.kill(n)
        ctx.sleep(hold)
        ctx.restart(n)
    elif kind == "kill_leader":
        n = ctx.leader(ctx.rng.randrange(ctx.partitions))
        ctx.kill(n)
        ctx.sleep(hold)
        ctx.restart(n)
    elif kind == "stop":
        n = ctx.rng.choice(nodes)
        ctx.stop(n)
        ctx.sleep(hold)
        ctx.restart(n)
    elif kind in ("pause", "pause_leader"):
        n = ctx.rng.choice(nodes) if kind == "pause" else ctx.leader()
        ctx.pause(n)
        ctx.sleep(hold)
        ctx.resume(n)
    elif kind == "kill_all":
        ctx.note("kill all")
        ctx.nemesis.kill_all()
        ctx.sleep(1)
        ctx.note("restart all")
        ctx.nemesis.restart_all()
    elif kind == "torn_tail":
        n = ctx.leader()
        ctx.kill(n)
        p = ctx.rng.randrange(ctx.partitions)
        fault = ctx.rng.choice(["torn_tail", "flip_byte", "delete_index"])
        ctx.note(f"{fault} on {n} partition {p}")
        getattr(ctx.nemesis, fault)(n, ctx.topic, p)
        ctx.sleep(hold)
        ctx.restart(n)
    elif kind == "kill_consumer":
        live = ctx.workload.live_consumers()
        if live:
            victim = ctx.rng.choice(live)
            ctx.note(f"SIGKILL consumer {victim}")
            ctx.workload.kill_consumer(victim)
        ctx.note(f"start consumer {ctx.workload.start_consumer()}")
    elif kind == "double":
        double_failover(ctx)
    elif kind == "isolate":
        n = ctx.rng.choice(nodes)
        ctx.note(f"isolate {n}")
        ctx.nemesis.isolate(n, from_clients=ctx.rng.random() < 0.5)
        ctx.sleep(hold)
    elif kind == "cut_leader":
        n = ctx.leader()
        ctx.note(f"cut {n} from the other nodes")
        for f in nodes:
            if f != n:
                ctx.nemesis.cut(n, f)
                ctx.nemesis.cut(f, n)
        ctx.sleep(hold)
    elif kind == "drop":
        a, b = ctx.rng.sample([*nodes, CLIENTS], 2)
        ctx.note(f"drop {a}->{b}")
        ctx.nemesis.drop(a, b, ctx.rng.uniform(0.2, 0.8))
        ctx.sleep(hold)
    elif kind == "delay":
        a, b = ctx.rng.sample([*nodes, CLIENTS], 2)
        ctx.note(f"delay {a}->{b}")
        ctx.nemesis.delay(a, b, ctx.rng.randint(50, 500), jitter_ms=50)
        ctx.sleep(hold)
    elif kind == "partition_majority":
        n = ctx.rng.choice(nodes)
        ctx.note(f"partition {{{n}}} from the rest")
        ctx.nemesis.partition({n}, {m for m in nodes if m != n} | {CLIENTS})
        ctx.sleep(hold)


def _settle(ctx: Context) -> None:
    """After healing: the cluster formed again and every replica back in the ISR."""
    ctx.wait_for(lambda: ctx.cluster.wait_formed(20), 60, "the cluster to form", required=False)
    ctx.wait_isr_full(60)


def random_mix(ctx: Context) -> None:
    """Faults drawn from the seeded generator for duration_s: at most one node is faulted
    at a time, except for whole-cluster kills; every fault is healed before the next."""
    deadline = time.monotonic() + ctx.duration_s
    net = ctx.nemesis.network is not None
    kinds = ["kill", "kill_leader", "stop", "pause", "pause_leader", "kill_all", "torn_tail",
             "kill_consumer", "double"]
    if net:
        kinds += ["isolate", "cut_leader", "drop", "delay", "partition_majority"]
    while time.monotonic() < deadline:
        kind = ctx.rng.choice(kinds)
        hold = ctx.rng.uniform(1.0, 6.0)
        try:
            _fault(ctx, kind, hold)
        finally:
            ctx.heal_all()
        _settle(ctx)
        ctx.sleep(ctx.rng.uniform(0.5, 3.0))


def transactions(ctx: Context) -> None:
    """The transactional workload (tests.reliability.workload.txn_config) through faults
    taken in turn until duration_s is spent, one at least: the leader of a partition
    killed, a node isolated (from the clients too, half the time; the leader paused
    where there is no network nemesis), a random node killed (the coordinator of some transactional id, the
    producers' ids spreading over the nodes), the leader paused. Each is healed, and the
    replicas back in the ISR, before the next; the producers commit and abort throughout."""
    deadline = time.monotonic() + ctx.duration_s
    hold = max(2.0, min(6.0, ctx.duration_s / 5))
    kinds = ["kill_leader", "isolate", "kill", "pause_leader"]
    for n in range(100):
        if n and time.monotonic() >= deadline:
            break
        kind = kinds[n % len(kinds)]
        if kind == "isolate" and ctx.nemesis.network is None:
            kind = "pause_leader"
        try:
            _fault(ctx, kind, hold)
        finally:
            ctx.heal_all()
        _settle(ctx)
        ctx.sleep(1)


@dataclass(frozen=True)
class Scenario:
    run: Callable[[Context], None]
    network: bool = False  # needs network faults
    proxy: bool = False  # clients go through produce-dropping proxies
    transactional: bool = False  # the transactional workload instead of the plain one


SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario(baseline),
    "leader-killed-5x": Scenario(leader_killed_5x),
    "leader-stopped-5x": Scenario(leader_stopped_5x),
    "follower-killed": Scenario(follower_killed),
    "follower-paused": Scenario(follower_paused),
    "leader-paused": Scenario(leader_paused),
    "leader-cut-from-followers": Scenario(leader_cut_from_followers, network=True),
    "leader-isolated": Scenario(leader_isolated, network=True),
    "controller-isolated": Scenario(controller_isolated, network=True),
    "both-followers-down": Scenario(both_followers_down),
    "double-failover": Scenario(double_failover),
    "all-killed": Scenario(all_killed),
    "torn-tail": Scenario(torn_tail),
    "produce-responses-dropped": Scenario(produce_responses_dropped, proxy=True),
    "coordinator-killed": Scenario(coordinator_killed),
    "consumer-killed": Scenario(consumer_killed),
    "rolling-restart": Scenario(rolling_restart),
    "transactions": Scenario(transactions, transactional=True),
    "random-mix": Scenario(random_mix),
}


# --- running one ----------------------------------------------------------------------

@dataclass
class Result:
    scenario: str
    seed: int
    operations: int = 0
    sends: int = 0
    acknowledged: int = 0
    info: int = 0
    failed: int = 0
    # transactions committed, aborted, of unknown outcome; records read (distinct values)
    txns: tuple[int, int, int] = (0, 0, 0)
    values_read: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)
    anomaly_lines: list[str] = field(default_factory=list)
    history: str = ""
    seconds: float = 0.0
    skipped: str = ""  # why the scenario did not run
    error: str = ""  # the harness failed (not an anomaly of the broker)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.anomalies and not self.error

    @property
    def anomaly_text(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        text = ", ".join(f"{k} {v}" for k, v in sorted(self.anomalies.items())) or "none"
        return text + (f"; harness error: {self.error}" if self.error else "")


def _proxied(cluster: Cluster, rng: random.Random):
    """Put a produce-dropping FrameProxy in front of every node and make each node
    advertise its proxy, so every client connection goes through one."""
    from tests.brokerproc import free_port
    from tests.proxy import FrameProxy
    proxies = []
    budget = {"drops": 200}

    def drop(api_key: int, _correlation_id: int) -> bool:
        if api_key == 0 and budget["drops"] > 0 and rng.random() < 0.05:
            budget["drops"] -= 1
            return True
        return False

    for node in cluster.nodes.values():
        port = free_port()
        node.extra_args += ["--advertised", f"127.0.0.1:{port}"]
        proxies.append(FrameProxy(node.bootstrap, drop, port=port).start())
    return proxies


def run(name: str, out_dir: str | Path, seed: int = 0, duration_s: float = 20.0,
        config: WorkloadConfig | None = None, keep_data: bool = False) -> Result:
    scenario = SCENARIOS[name]
    result = Result(name, seed)
    if network_problem():
        result.skipped = "needs network namespaces and iptables: " + network_problem()
        return result
    started = time.monotonic()
    out = Path(out_dir) / f"{name}-{seed}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    data = Path(tempfile.mkdtemp(prefix=f"odradek-chaos-{name}-"))
    rng = random.Random(seed)
    # kafka-python 3.0.12's producer stalls for good after a network partition (no
    # completion, no error, even past delivery.timeout.ms): only with process faults.
    if config is None and scenario.transactional:
        config = txn_config(seed)
    config = config or WorkloadConfig(kafka_python_producer=not (scenario.network
                                                                 or name == "random-mix"))
    cluster = Cluster(data)
    # The proxies, and the addresses the nodes advertise then, live on the host's loopback.
    nemesis = Nemesis(cluster, network=not scenario.proxy)
    proxies = _proxied(cluster, random.Random(seed + 1)) if scenario.proxy else []
    workload = None
    ctx = None
    try:
        cluster.start()
        cluster.wait_formed()
        from tests.clients import create_topics
        for topic in config.topics:
            create_topics(cluster.bootstrap, [topic], config.partitions, 3, topic_config())
        bootstrap = ",".join(p.address for p in proxies) if proxies else cluster.bootstrap
        workload = Workload(bootstrap, out, config).start()
        ctx = Context(cluster, nemesis, workload, rng, duration_s, config.topics[0],
                      config.partitions)
        ctx.wait_for(lambda: workload.acked > 0, 60, "a first acknowledged send", required=False)
        ctx.sleep(min(3.0, duration_s / 5))
        try:
            scenario.run(ctx)
        except Exception as e:  # noqa: BLE001 - heal and check what was recorded anyway
            result.error = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            ctx.note(traceback.format_exc())
        finally:
            ctx.heal_all()
        ctx.wait_for(lambda: cluster.wait_formed(30), 90, "the cluster to form", required=False)
        if not ctx.wait_isr_full(90):
            result.notes.append("not every replica was back in the ISR 90 s after healing")
        acked_before = workload.acked
        ctx.sleep(3)  # the healed cluster takes writes again
        if workload.acked == acked_before:
            result.notes.append("no send acknowledged in the 3 s after healing")
        workload.stop()
        ctx.wait_isr_full(60)
        high_watermarks = workload.drain()
        ctx.wait_isr_full(30)
        time.sleep(1)  # followers fetch up to the leader's log end
        workload.dump_replicas({n: b.data_dir for n, b in cluster.nodes.items()}, high_watermarks)
    except Exception as e:  # noqa: BLE001
        result.error = result.error or f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        if ctx is not None:
            ctx.note(traceback.format_exc())
    finally:
        if workload is not None:
            with contextlib.suppress(Exception):
                workload.stop()
        cluster.close()  # also removes network namespaces and mounts
        for p in proxies:
            p.stop()
        for n in cluster.nodes:
            (out / f"node{n}.log").write_text("".join(cluster.logs[n][-5000:]))
        if ctx is not None:
            (out / "faults.log").write_text("\n".join(ctx.log) + "\n")
    if workload is not None:
        history = workload.merge()
        result.history = str(history)
        report = check(load(history))
        c = report.counts
        result.operations, result.sends = c.operations, c.sends
        result.acknowledged, result.info, result.failed = c.acknowledged_sends, c.info_sends, c.failed_sends
        result.txns = (c.txns_committed, c.txns_aborted, c.txns_unknown)
        result.values_read = c.values_read
        for a in report.anomalies:
            result.anomalies[a.type] = result.anomalies.get(a.type, 0) + 1
        result.anomaly_lines = [str(a) for a in report.anomalies[:50]]
        (out / "report.txt").write_text(report.summary() + "\n")
        result.notes += workload.client_errors[:20]
    if proxies:
        result.notes.append(f"produce responses dropped: {sum(p.dropped for p in proxies)}")
    result.seconds = time.monotonic() - started
    if result.ok and not keep_data:
        shutil.rmtree(data, ignore_errors=True)
    else:
        result.notes.append(f"node data kept in {data}")
    return result
