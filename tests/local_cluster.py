"""Three real node processes on loopback, each on its own address (127.0.0.N).

With ``netns=True`` each node runs in its own network namespace instead, on its own
address 10.77.S.N (tests/reliability/nemesis.py: ``Network``), where the nemesis can cut,
drop and delay every directed link; ``tmpfs_mb`` then mounts a tmpfs of that size on each
data dir (a disk that can fill up). Such a cluster must be ``close``d.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient

from tests.brokerproc import BrokerProcess, free_port

FAST = {  # short timeouts for tests; Kafka's defaults would make them slow
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "controller.quorum.election.timeout.ms": "1000",
    "replica.lag.time.max.ms": "3000",
    "group.initial.rebalance.delay.ms": "0",
}
LEADER = re.compile(r"event='quorum_leader' node_id=(\d+) leader=(\d+|None) term=(\d+)")


def poll_until(predicate, timeout_s: float, interval_s: float = 0.2):
    """predicate()'s first truthy value within timeout_s, else None. An exception counts
    as not yet: a node may be starting or gone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001
            pass
        time.sleep(interval_s)
    return None


class Cluster:
    def __init__(self, base_dir, size: int = 3, overrides: dict | None = None, netns: bool = False,
                 tmpfs_mb: int | None = None):
        port = free_port("127.0.0.1")
        self.base_dir = base_dir
        self.nodes = {n: BrokerProcess(base_dir / f"node{n}", host=f"127.0.0.{n}", port=port, node_id=n,
                                       overrides={**FAST, **(overrides or {})})
                      for n in range(1, size + 1)}
        self.logs: dict[int, list[str]] = {n: [] for n in self.nodes}
        self.network = None
        self.tmpfs_mb = None
        self.fault_files: dict[int, str] = {}
        self._set_voters()
        if netns or tmpfs_mb:
            self.use_netns(tmpfs_mb)

    def _set_voters(self) -> None:
        voters = ",".join(f"{n}@{b.bootstrap}" for n, b in self.nodes.items()
                          if b.overrides.get("process.roles") != "broker")
        for b in self.nodes.values():
            b.extra_args = ["--voters", voters]

    def add_broker(self, n: int) -> BrokerProcess:
        """Start node n beside the voters as a broker only (process.roles=broker): it
        follows their metadata log without a vote. Loopback clusters only."""
        voter = next(iter(self.nodes.values()))
        b = self.nodes[n] = BrokerProcess(self.base_dir / f"node{n}", host=f"127.0.0.{n}", port=voter.port,
                                          node_id=n, overrides={**voter.overrides, "process.roles": "broker"})
        self.logs[n] = []
        b.extra_args = list(voter.extra_args)
        b.start()
        return b

    def use_netns(self, tmpfs_mb: int | None = None) -> None:
        """Move the (not yet started) nodes into network namespaces; see the module docstring."""
        from tests.reliability.nemesis import PORT, Network
        self.network = Network(len(self.nodes))
        self.tmpfs_mb = tmpfs_mb
        for n, b in self.nodes.items():
            b.host, b.port, b.netns = self.network.ip(n), PORT, self.network.netns(n)
            if tmpfs_mb:
                self.network.mount_tmpfs(b.data_dir, tmpfs_mb)
        self.use_fault_files()
        self._set_voters()

    def use_fault_files(self) -> None:
        """Give every (not yet started) node the broker's test-only fault hook
        (broker/broker.py, ODRADEK_TEST_FAULTS): the nemesis writes these files."""
        for n, b in self.nodes.items():
            self.fault_files[n] = os.path.join(str(self.base_dir), f"faults-node{n}.json")
            b.env["ODRADEK_TEST_FAULTS"] = self.fault_files[n]

    def close(self) -> None:
        """Kill every node; remove the network namespaces and tmpfs mounts, if any."""
        for n in self.live():
            self.kill(n)
        if self.network is not None:
            self.network.close()

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.nodes.values())

    def start(self, order=None, stagger_s: float = 0.0) -> "Cluster":
        for n in order or self.nodes:
            self.nodes[n].start()
            time.sleep(stagger_s)
        return self

    def stop_all(self) -> None:
        for n, b in self.nodes.items():
            b.kill()
            self.logs[n] += b.log_lines

    def kill(self, n: int) -> None:
        self.nodes[n].kill()
        self.logs[n] += self.nodes[n].log_lines

    def restart(self, n: int) -> None:
        self.logs[n] += self.nodes[n].log_lines
        self.nodes[n].start()

    def live(self) -> list[int]:
        return [n for n, b in self.nodes.items() if b.proc is not None and b.proc.poll() is None]

    def status(self, via: int | None = None) -> dict:
        """What `odradek cluster status --json` prints as node ``via`` sees it ({} if it does
        not answer), from the command's own function in this process: a fixture polls it
        often, and a CLI process per poll cost a second of start-up each. ``status_command``
        runs the command itself."""
        from odradek.broker.cli.admin import cluster_status

        node = self.nodes[via or self.live()[0]]
        args = argparse.Namespace(bootstrap=node.bootstrap, timeout=10.0, internal=False)
        try:
            report = cluster_status(args)
        except Exception:  # noqa: BLE001 - the command would exit non-zero: not answering
            return {}
        return json.loads(json.dumps(report.data, default=str))  # as the command prints it

    def status_command(self, via: int | None = None) -> dict:
        """`odradek cluster status --json` run as a process, as node ``via`` sees it."""
        node = self.nodes[via or self.live()[0]]
        result = subprocess.run([sys.executable, "-m", "odradek.broker", "cluster", "status", "--json",
                                 "--timeout", "10", "--bootstrap", node.bootstrap],
                                capture_output=True, text=True, timeout=20)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def active_controller(self, via: int | None = None) -> int | None:
        leader = self.status(via).get("active_controller", -1)
        return leader if leader >= 0 else None

    def wait_for(self, predicate, timeout_s: float = 30, what: str = "condition"):
        value = poll_until(predicate, timeout_s)
        if not value:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        return value

    def wait_formed(self, timeout_s: float = 60) -> int:
        """Until every live node names the same active controller and all are registered."""
        def formed():
            leaders = {self.active_controller(n) for n in self.live()}
            md = self.admin().list_topics(timeout=5)
            return leaders.pop() if len(leaders) == 1 and None not in leaders and \
                sorted(md.brokers) == sorted(self.live()) else None
        return self.wait_for(formed, timeout_s, "the cluster to form")

    @property
    def live_bootstrap(self) -> str:
        return ",".join(self.nodes[n].bootstrap for n in self.live())

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.live_bootstrap})

    def metadata_of(self, n: int, topic: str):
        """The brokers and ``topic`` as node ``n`` alone describes them. Right after a
        restart or a quorum loss one node's image may lag the others' for a moment, so
        a test that needs the whole cluster to agree asks each node."""
        return AdminClient({"bootstrap.servers": self.nodes[n].bootstrap}).list_topics(topic, timeout=5)

    def leader_seen_by(self, via, topic: str, partition: int = 0) -> int | None:
        """The partition's leader as each of the nodes ``via`` alone describes it: None
        unless they all name the same live leader (a client may ask any of them)."""
        seen = {self.metadata_of(n, topic).topics[topic].partitions[partition].leader for n in via}
        leader = seen.pop() if len(seen) == 1 else None
        return leader if leader not in (None, -1) else None

    def leaders_by_term(self) -> dict[int, set[int]]:
        """From every node's log: which node each node saw lead each term."""
        seen: dict[int, set[int]] = {}
        for n, b in self.nodes.items():
            for line in self.logs[n] + b.log_lines:
                m = LEADER.search(line)
                if m and m.group(2) != "None":
                    seen.setdefault(int(m.group(3)), set()).add(int(m.group(2)))
        return seen
