"""``Broker`` (one node on a thread of its own) and ``Cluster`` (nodes as child processes).

Why a thread for one node: blocking clients (kafka-python, confluent-kafka) would
deadlock a loop they share with the broker, and a thread starts in milliseconds once
the broker is imported. Why processes for a cluster: ``kill`` is a real SIGKILL (no
``finally`` runs, the kernel closes the files, what survives is what a crash leaves)
and ``pause`` a real SIGSTOP, each node gets its own GIL (three nodes and the test's
clients on one GIL would stretch Raft's and the group coordinator's timers), and a
node that hangs cannot hang the test process. The nodes start in parallel.

Nothing heavy is imported here: the broker is imported by the first ``Broker.start``,
so ``import odradek.testing`` (and the pytest plugin) stays cheap.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TEST_SETTINGS = {  # Kafka's defaults wait for humans; tests want answers in seconds
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "10",
}
CLUSTER_SETTINGS = {
    "broker.session.timeout.ms": "3000",  # a killed node's partitions move within 3 s
    "broker.heartbeat.interval.ms": "500",
    "controller.quorum.election.timeout.ms": "500",
    "replica.lag.time.max.ms": "3000",
}
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CONTROL_TIMEOUT_S = 10.0


# What every Broker and Cluster of this process started: (owner, "thread" | "process" |
# "dir" | "port", object); the zygote's owner is None. ``leaks`` reports those still there.
_STARTED: list[tuple[object, str, object]] = []
_THREAD_NUMBERS = itertools.count(1)
_OPEN: set = set()  # Brokers and Clusters started and not closed yet


def leaks(owner=None) -> list[str]:
    """Threads, processes, directories and listening ports that ``owner`` (a Broker or
    Cluster; by default every one, and the zygote) started and that are still there:
    none, once it was closed. What is gone is forgotten."""
    found, kept = [], []
    for entry in _STARTED:
        who, kind, thing = entry
        if owner is not None and who is not owner:
            kept.append(entry)
            continue
        description = _still_there(kind, thing)
        if description:
            found.append(description)
            kept.append(entry)
    _STARTED[:] = kept
    return found


def _still_there(kind: str, thing) -> str | None:
    if kind == "thread" and thing.is_alive():
        return f"thread {thing.name}"
    if kind == "process" and thing.alive:
        return thing.describe()
    if kind == "dir" and os.path.exists(thing):
        return f"directory {thing}"
    if kind == "port" and _listening(thing):
        return f"port 127.0.0.1:{thing} still accepts connections"
    return None


def close_all() -> None:
    """Close every Broker and Cluster still open and stop the zygote: what the pytest
    plugin does after reporting leaks, so a careless test leaves nothing on the machine."""
    for owner in list(_OPEN):
        owner.close()
    shutdown()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class OdradekTestingError(RuntimeError):
    """A node did not start or answer; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _data_root(owner, in_memory: bool) -> str:
    """A new temporary directory: on tmpfs (/dev/shm) when ``in_memory`` and it exists."""
    base = "/dev/shm" if in_memory and os.path.isdir("/dev/shm") else None
    path = tempfile.mkdtemp(prefix="odradek-testing-", dir=base)
    _STARTED.append((owner, "dir", path))
    return path


class _Admin:
    """Topic creation over the wire (Odradek's own small client), shared by both."""

    bootstrap_servers: str

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = -1,
                     config: dict[str, str] | None = None, timeout_s: float = 10.0) -> None:
        """Create a topic and wait until every partition has a leader that every live node
        knows, so a client's first Metadata finds it ready."""
        from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse

        from odradek.broker.client import KafkaConnection
        from odradek.protocol.errors import ErrorCode

        topic = CreateTopicsRequest.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=replication_factor,
            assignments=[], configs=[CreateTopicsRequest.CreatableTopic.CreatableTopicConfig(
                name=k, value=str(v)) for k, v in (config or {}).items()])
        request = CreateTopicsRequest(topics=[topic], timeout_ms=int(timeout_s * 1000),
                                      validate_only=False)
        with KafkaConnection(self._live_addresses()[0], timeout=timeout_s) as conn:
            result = conn.roundtrip(request, 4, CreateTopicsResponse).topics[0]
        if result.error_code != ErrorCode.NONE:
            raise OdradekTestingError(f"create_topic {name}: {ErrorCode(result.error_code).name}: "
                                      f"{result.error_message}")
        self._wait_for_leaders(name, partitions, timeout_s)

    def _wait_for_leaders(self, name: str, partitions: int, timeout_s: float) -> None:
        from kafka.protocol.metadata import MetadataRequest, MetadataResponse

        from odradek.broker.client import KafkaConnection

        deadline = time.monotonic() + timeout_s
        for address in self._live_addresses():
            with KafkaConnection(address, timeout=timeout_s) as conn:
                while True:
                    md = conn.roundtrip(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(
                        name=name)], allow_auto_topic_creation=False), 12, MetadataResponse)
                    ps = md.topics[0].partitions if md.topics else []
                    if len(ps) >= max(partitions, 1) and all(p.leader_id >= 0 for p in ps):
                        break
                    if time.monotonic() > deadline:
                        raise OdradekTestingError(f"topic {name} has no leaders on {address}")
                    time.sleep(0.02)

    def _live_addresses(self) -> list[str]:
        return self.bootstrap_servers.split(",")


class Broker(_Admin):
    """One Odradek node on its own thread and event loop, on a free loopback port, with
    its data in a temporary directory (on tmpfs with ``in_memory=True``), both removed
    by ``close``. ``config`` takes Kafka's keys, as ``odradek serve -o`` does.

    Faults: ``inject`` (per request), ``isolate``/``heal``, ``pause``/``resume``,
    ``kill``/``restart`` (a clean stop and start: for a crash, use ``Cluster``).
    """

    node_id = 1

    def __init__(self, config: dict[str, str] | None = None, *, in_memory: bool = False,
                 data_dir: str | None = None):
        self.config = {**TEST_SETTINGS, **(config or {})}
        self.in_memory = in_memory
        self._own_dir = data_dir is None
        self.data_dir = data_dir
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop = None
        self._node = None
        self._stop = None
        self._resume: threading.Event | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Broker:
        """Start and return once clients can use it (the port is free until then: 0)."""
        from odradek.testing import _node

        _OPEN.add(self)
        _quiet_logging()
        if self.data_dir is None:
            self.data_dir = _data_root(self, self.in_memory)
        # No HTTP listener unless asked: a test's broker must not take the default port.
        settings = {"http.listener": "", **self.config,
                    "listeners": f"PLAINTEXT://127.0.0.1:{self.port}"}
        started: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(_node, settings, started),
                                        name=f"odradek-broker-{next(_THREAD_NUMBERS)}", daemon=True)
        self._thread.start()
        _STARTED.append((self, "thread", self._thread))
        try:
            self.port = started.result(START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        _STARTED.append((self, "port", self.port))
        return self

    def _run(self, _node, settings: dict, started: concurrent.futures.Future) -> None:
        import asyncio

        import uvloop

        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self._node = _node.Node(settings, self.data_dir)
                started.set_result(await self._node.start())
            except BaseException as e:
                started.set_exception(e)
                return
            await self._stop.wait()
            await self._node.stop()

        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(main())
            loop.run_until_complete(_cancel_the_rest())
            loop.run_until_complete(loop.shutdown_asyncgens())
            # A checkpoint may still be writing on an executor thread: its directory is
            # about to be removed.
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            self._loop = None

    def _call(self, fn, *args):
        """Run fn(*args) on the broker's loop; return its result."""
        if self._loop is None:
            raise OdradekTestingError("the broker is not running")
        if self._resume is not None:
            raise OdradekTestingError("the broker is paused: resume() first")
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                done.set_result(fn(*args))
            except BaseException as e:  # handed to the caller
                done.set_exception(e)
        self._loop.call_soon_threadsafe(run)
        return done.result(CONTROL_TIMEOUT_S)

    def inject(self, api: str | int, *, error: str | int | None = None, delay_s: float = 0.0,
               drop: bool = False, count: int = 1, topic: str | None = None,
               partition: int | None = None) -> dict:
        """Answer the next ``count`` requests of ``api`` (Kafka's name: "Produce", "Fetch",
        ...; -1: every one) that name ``topic``/``partition`` (if given) with ``error``
        (an ErrorCode name or number), after ``delay_s``, or by closing the connection
        (``drop``). See odradek.testing.faults."""
        args = dict(error=error, delay_s=delay_s, drop=drop, count=count, topic=topic,
                    partition=partition)
        return self._call(lambda: self._node.control("inject", {"api": api, **args}))

    def faults(self) -> list[dict]:
        """The injected rules with their ``hits`` and remaining ``count``."""
        return self._call(self._node.control, "report", {})

    def clear_faults(self) -> None:
        self._call(self._node.control, "clear", {})

    def isolate(self, node: int = 1, mode: str = "refuse") -> None:
        """Cut the node off: connections are closed ("refuse") or no longer read
        ("blackhole": clients wait for their own timeouts), until ``heal``."""
        self._check(node)
        self._call(self._node.control, "isolate", {"mode": mode})

    def heal(self) -> None:
        """Undo ``isolate`` and ``pause``, and drop the injected faults."""
        self.resume()
        if self._loop is not None:
            self._call(self._node.control, "heal", {})
            self._call(self._node.control, "clear", {})

    def pause(self, node: int = 1) -> None:
        """Freeze the node's loop (as a GC pause or a stopped VM would) until ``resume``."""
        self._check(node)
        if self._resume is None:
            self._resume = threading.Event()
            self._loop.call_soon_threadsafe(self._resume.wait)

    def resume(self, node: int = 1) -> None:
        self._check(node)
        if self._resume is not None:
            self._resume.set()
            self._resume = None

    def kill(self, node: int = 1) -> None:
        """Stop the node (connections close at once); ``restart`` brings it back on the
        same port with the same data."""
        self._check(node)
        self.resume()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None

    def restart(self, node: int = 1) -> Broker:
        self.kill(node)
        return self.start()

    def live(self) -> list[int]:
        return [1] if self._loop is not None else []

    def revive(self) -> None:
        """``heal``, and start the node again if it was killed: the state a session-scoped
        fixture hands to the next test."""
        self.heal()
        if self._loop is None:
            self.start()

    def _check(self, node: int) -> None:
        """The node argument is there so that code written for a Cluster runs on a Broker."""
        if node != self.node_id:
            raise ValueError(f"a Broker has one node, {self.node_id}; got {node}")

    def close(self) -> None:
        """Stop the node and remove its data directory (if it made it)."""
        _OPEN.discard(self)
        self.kill()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


async def _cancel_the_rest() -> None:
    """As asyncio.run ends: what the stop left (connections closing) is cancelled."""
    import asyncio

    rest = asyncio.all_tasks() - {asyncio.current_task()}
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def _quiet_logging() -> None:
    """A broker on a thread logs through the test process's structlog: warnings only,
    unless the application configured structlog itself."""
    import logging

    import structlog

    if not structlog.is_configured():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


class _Zygote:
    """The process that forks cluster nodes (see odradek.testing._node): one per test
    process, started by the first Cluster and kept, like the imports, for the next ones;
    ``shutdown`` stops it (the pytest plugin at the end of the session, else atexit)."""

    _instance: _Zygote | None = None

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "odradek.testing._node", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._lock = threading.Lock()
        _STARTED.append((None, "process", self))

    @classmethod
    def get(cls) -> _Zygote:
        if cls._instance is None or not cls._instance.alive:
            cls._instance = cls()
            atexit.register(cls.shutdown)
        return cls._instance

    @classmethod
    def shutdown(cls) -> None:
        if cls._instance is not None:
            cls._instance.sock.close()  # end of file: the zygote exits
            try:
                cls._instance.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                cls._instance.proc.kill()
                cls._instance.proc.wait()
            cls._instance.proc.stderr.close()
            cls._instance = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        return f"process {self.proc.pid} (the odradek.testing zygote)"

    def fork(self, spec: dict, fds: list[int]) -> int:
        """A new node process running ``spec``, with ``fds`` (control socket, log file)."""
        with self._lock:
            try:
                socket.send_fds(self.sock, [json.dumps(spec).encode()], fds)
                answer = self.sock.recv(32)
            except OSError:
                answer = b""
        if not answer:
            self.proc.wait(STOP_TIMEOUT_S)
            raise OdradekTestingError(f"the zygote exited ({self.proc.returncode}):\n"
                                      + self.proc.stderr.read().decode(errors="replace")[-4000:])
        return int(answer)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class _NodeProcess:
    """One cluster node: a process forked by the zygote, with a control socket."""

    def __init__(self, owner: Cluster, node_id: int, port: int, data_dir: str,
                 settings: dict[str, str]):
        self.owner = owner
        self.node_id, self.port, self.data_dir = node_id, port, data_dir
        self.settings = {"http.listener": "", **settings, "node.id": str(node_id),
                         "listeners": f"PLAINTEXT://127.0.0.1:{port}"}
        self.log_path = os.path.join(os.path.dirname(data_dir), f"node{node_id}.log")
        self.pid: int | None = None
        self.paused = False
        self._sock: socket.socket | None = None
        self._reader = self._writer = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self, expect_brokers: int) -> None:
        spec = {"settings": self.settings, "data_dir": self.data_dir,
                "expect_brokers": expect_brokers}
        self._sock, theirs = socket.socketpair()
        with theirs, open(self.log_path, "a") as log_file:
            self.pid = _Zygote.get().fork(spec, [theirs.fileno(), log_file.fileno()])
        self._reader, self._writer = self._sock.makefile("r"), self._sock.makefile("w")
        self.paused = False
        _STARTED.append((self.owner, "process", self))
        _STARTED.append((self.owner, "port", self.port))

    def describe(self) -> str:
        return f"process {self.pid} (cluster node {self.node_id})"

    def wait_ready(self) -> None:
        reply = self._read()
        if "error" in reply:
            self.kill()
            raise OdradekTestingError(f"node {self.node_id} did not start: {reply['error']}\n"
                                      + self.log_tail())

    def _read(self) -> dict:
        line = self._reader.readline()
        return json.loads(line) if line else {"error": f"node {self.node_id} exited"}

    def control(self, op: str, args: dict | None = None):
        if not self.alive:
            raise OdradekTestingError(f"node {self.node_id} is not running")
        if self.paused:
            raise OdradekTestingError(f"node {self.node_id} is paused: heal() or resume() first")
        with self._lock:
            self._writer.write(json.dumps({"op": op, "args": args or {}}) + "\n")
            self._writer.flush()
            reply = self._read()
        if "error" in reply:
            raise OdradekTestingError(f"node {self.node_id}: {reply['error']}")
        return reply["ok"]

    @property
    def alive(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def stop(self) -> None:
        """A clean stop (controlled shutdown), or SIGKILL after STOP_TIMEOUT_S."""
        if self.alive:
            self.signal(signal.SIGCONT)
            self._close_socket()  # end of file: the node stops
            self._wait_gone(STOP_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        if self.alive:
            self.signal(signal.SIGKILL)
            self._wait_gone(STOP_TIMEOUT_S)
        self._close_socket()
        self.paused = False

    def _wait_gone(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.005)

    def _close_socket(self) -> None:
        for f in (self._reader, self._writer, self._sock):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._sock = self._reader = self._writer = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


class Cluster(_Admin):
    """``nodes`` Odradek nodes, each broker and controller voter, each its own process on
    a free loopback port, with data and logs (``node<N>.log``) in a temporary directory
    removed by ``close``. Nodes are numbered from 1. Topics get a replication factor
    of min(3, nodes) by default.

    Faults: ``kill(node)`` (SIGKILL), ``restart(node)``, ``pause(node)`` (SIGSTOP) and
    ``resume(node)``, ``isolate(node)`` (from clients and the other nodes), ``heal()``
    (every pause, isolation and injected fault), and per-request ``inject(...)``.
    """

    def __init__(self, nodes: int = 3, config: dict[str, str] | None = None, *,
                 in_memory: bool = False):
        self.root: str | None = None
        self.size = nodes
        self.config = {**TEST_SETTINGS, **CLUSTER_SETTINGS,
                       "default.replication.factor": str(min(3, nodes)), **(config or {})}
        self.in_memory = in_memory
        self.nodes: dict[int, _NodeProcess] = {}

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address, dead ones included (clients skip those)."""
        return ",".join(n.address for n in self.nodes.values())

    def _live_addresses(self) -> list[str]:
        return [n.address for n in self.nodes.values() if n.alive and not n.paused]

    def start(self, attempts: int = 3) -> Cluster:
        """Start every node at once; return when all are registered with the controller.

        The voters' ports must be known before any node binds one, so they are picked
        free and then bound: when another process takes one in between, start again on
        new ports."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start()
            except OdradekTestingError as e:
                if "Errno 98" not in str(e) or attempt == attempts:  # EADDRINUSE
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> Cluster:
        _OPEN.add(self)
        self.root = _data_root(self, self.in_memory)
        ports = {n: free_port() for n in range(1, self.size + 1)}
        voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in ports.items())
        settings = {**self.config, "controller.quorum.voters": voters}
        self.nodes = {n: _NodeProcess(self, n, p, os.path.join(self.root, f"node{n}"), settings)
                      for n, p in ports.items()}
        try:
            for node in self.nodes.values():
                node.spawn(expect_brokers=self.size)
            for node in self.nodes.values():
                node.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def node(self, node: int) -> _NodeProcess:
        return self.nodes[node]

    def kill(self, node: int) -> None:
        """SIGKILL the node's process."""
        self.nodes[node].kill()

    def stop(self, node: int) -> None:
        """Stop the node cleanly (its leaderships move away first, as SIGTERM does)."""
        self.nodes[node].stop()

    def restart(self, node: int) -> None:
        """Kill the node if it runs, start it again on its port and data; return once it
        has registered with the controller."""
        n = self.nodes[node]
        n.kill()
        n.spawn(expect_brokers=1)
        n.wait_ready()

    def pause(self, node: int) -> None:
        """SIGSTOP the node: it neither answers nor times anything out until resumed."""
        self.nodes[node].signal(signal.SIGSTOP)
        self.nodes[node].paused = True

    def resume(self, node: int) -> None:
        self.nodes[node].signal(signal.SIGCONT)
        self.nodes[node].paused = False

    def isolate(self, node: int, mode: str = "refuse") -> None:
        """Cut the node off from clients and the other nodes (see ``Broker.isolate``)."""
        self.nodes[node].control("isolate", {"mode": mode})

    def heal(self) -> None:
        """Resume paused nodes, end every isolation and drop every injected fault."""
        for n, node in self.nodes.items():
            if node.paused:
                self.resume(n)
            if node.alive:
                node.control("heal")
                node.control("clear")

    def revive(self) -> None:
        """``heal``, and restart every node that is not running: the state a session-scoped
        fixture hands to the next test."""
        self.heal()
        for n in self.nodes:
            if not self.nodes[n].alive:
                self.restart(n)

    def inject(self, api: str | int, *, node: int | None = None, **fault) -> list[dict]:
        """``Broker.inject`` on one node, or on every live node when ``node`` is None."""
        targets = [node] if node is not None else [n for n, x in self.nodes.items() if x.alive]
        return [self.nodes[n].control("inject", {"api": api, **fault}) for n in targets]

    def faults(self) -> dict[int, list[dict]]:
        return {n: x.control("report") for n, x in self.nodes.items() if x.alive and not x.paused}

    def clear_faults(self) -> None:
        for x in self.nodes.values():
            if x.alive and not x.paused:
                x.control("clear")

    def live(self) -> list[int]:
        return [n for n, x in self.nodes.items() if x.alive]

    def close(self) -> None:
        """Stop every node (SIGKILL: the data is thrown away) and remove the directory."""
        _OPEN.discard(self)
        for node in self.nodes.values():
            node.kill()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def shutdown() -> None:
    """Stop the zygote that forks cluster nodes (a new Cluster starts another)."""
    _Zygote.shutdown()
