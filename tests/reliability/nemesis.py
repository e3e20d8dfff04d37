"""Fault injection against a real cluster of node processes: the reliability suite's nemesis.

Network: ``Network`` gives each node its own network namespace and its own address
(``10.77.S.N``, S a slot per live network so that several can coexist). Every pair of
nodes has its own veth pair, and every node one more to the host (root namespace), where
the test clients run from the address ``10.77.S.254``; no packet is forwarded or bridged,
so each directed link is a device of its own and the host's firewall (docker's FORWARD
policy) never sees node traffic::

            host (clients, 10.77.S.254)
           /          |            \\
     ok{S}c1       ok{S}c2       ok{S}c3        root-namespace ends of the client links
        |             |             |
      [ns 1] ------ [ns 2] ------ [ns 3]        odradek-nemesis-S-N, node N on lo as 10.77.S.N
         \\__________________________/            (device nM in ns N leads to node M, n0 to the host)

Faults act on packets, per directed link ``src -> dst`` (``CLIENTS`` = 0 is the host),
with iptables (nf_tables backend) in the receiving node's namespace: its INPUT chain for
packets from ``src``, and for ``node -> CLIENTS`` the sending node's OUTPUT chain (the host's
own firewall is left alone). A cut drops every packet, ``drop`` a random fraction
(``statistic`` match), and ``delay`` hands the link's packets to an NFQUEUE that a thread
of this process answers after the delay (this kernel has no netem qdisc; the queue
bypasses to "accept" if nobody listens). Established TCP connections see exactly what a
real network failure does: retransmissions, stalls, timeouts.

Disks: ``tmpfs_mb`` mounts a tmpfs of that size on each node's data dir, so that
``fill_disk`` is a real full file system (every write fails with ENOSPC: partition logs,
checkpoints, the metadata log). Without it, ``fill_disk`` makes only the partition-log
writes fail with ENOSPC through the broker's test-only fault hook (``ODRADEK_TEST_FAULTS``
in broker/broker.py, which also carries ``slow_fsync``).

Clean-up: every network and mount is recorded in ``/run/odradek-nemesis/S.json`` with its
owner's pid; a later ``Network`` removes those of owners that are gone (their node
processes are killed, the namespaces and mounts removed), and ``close`` (also run at exit)
removes its own.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from odradek.protocol.records import HEADER_SIZE, parse_header

CLIENTS = 0  # the host side: test clients
STATE_DIR = Path("/run/odradek-nemesis")
NS_PREFIX = "odradek-nemesis-"
PORT = 9092  # each node has its own address, so all can use the same port
MAX_SLOTS = 250


def _run(*cmd: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def _start_time(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/PID/stat): a pid alone can be reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(state: dict) -> bool:
    return _start_time(state.get("pid", -1)) == state.get("start")


def _remove_slot(slot: int, state: dict | None) -> None:
    """Kill what runs in a slot's namespaces, delete them, unmount its tmpfs mounts."""
    names = [line.split()[0] for line in _run("ip", "netns", "list", check=False).splitlines()
             if line.startswith(f"{NS_PREFIX}{slot}-")]
    for name in names:
        for pid in _run("ip", "netns", "pids", name, check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    for name in names:
        for _ in range(50):  # the kernel reaps killed processes asynchronously
            if not _run("ip", "netns", "pids", name, check=False).split():
                break
            time.sleep(0.1)
        _run("ip", "netns", "delete", name, check=False)
    for line in _run("ip", "-o", "link", "show", check=False).splitlines():
        device = line.split(":")[1].strip().split("@")[0]
        if device.startswith(f"ok{slot}c"):
            _run("ip", "link", "delete", device, check=False)
    for mount in (state or {}).get("mounts", []):
        _run("umount", "-l", mount, check=False)
    with contextlib.suppress(FileNotFoundError):
        (STATE_DIR / f"{slot}.json").unlink()


@contextlib.contextmanager
def _slots_locked():
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def remove_stale() -> None:
    """Remove the networks and mounts of earlier runs whose owner process is gone."""
    with _slots_locked():
        _remove_stale_locked()


def _remove_stale_locked() -> None:
    slots = {}
    for path in STATE_DIR.glob("*.json"):
        try:
            slots[int(path.stem)] = json.loads(path.read_text())
        except (ValueError, OSError):
            slots[int(path.stem)] = {}
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0]
        if name.startswith(NS_PREFIX):
            slots.setdefault(int(name[len(NS_PREFIX):].split("-")[0]), {})
    for slot, state in slots.items():
        if not _owner_alive(state):
            _remove_slot(slot, state)


# -- delays: an NFQUEUE answered from this process ----------------------------------------

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 1, 4
NF_ACCEPT = 1
CLONE_NEWNET = 0x40000000
_NLMSG = struct.Struct("=IHHII")  # length, type, flags, seq, pid (host order)
_NFGEN = struct.Struct("!BBH")  # family, version, resource id (the queue number, big-endian)
_NLATTR = struct.Struct("=HH")
_libc = ctypes.CDLL(None, use_errno=True)


def _attr(kind: int, payload: bytes) -> bytes:
    size = _NLATTR.size + len(payload)
    return _NLATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _netlink_socket_in(netns: str) -> socket.socket:
    """A netfilter netlink socket of another network namespace (made on a throwaway
    thread: setns changes only the calling thread's namespace, and a socket keeps the
    namespace it was made in)."""
    made: list = []

    def make():
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER))
        except Exception as e:  # handed to the caller
            made.append(e)
    t = threading.Thread(target=make)
    t.start()
    t.join()
    if isinstance(made[0], Exception):
        raise made[0]
    return made[0]


class Delayer:
    """Holds the packets of some NFQUEUE queues in one namespace and accepts each after
    its queue's delay (plus a uniform jitter), from a thread of this process."""

    def __init__(self, netns: str):
        self.sock = _netlink_socket_in(netns)
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: bursts queue here
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.delays: dict[int, tuple[float, float]] = {}  # queue -> (delay s, jitter s)
        self._held: list = []  # heap of (release time, seq, queue, packet id)
        self._seq = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"delayer-{netns}")
        self._thread.start()

    def _send(self, msg_type: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> None:
        body = _NFGEN.pack(socket.AF_UNSPEC, 0, queue) + attrs
        self._seq += 1
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                                   flags, self._seq, 0) + body)

    def bind(self, queue: int, delay_s: float, jitter_s: float) -> None:
        with self._lock:
            first = queue not in self.delays
            self.delays[queue] = (delay_s, jitter_s)
            if first:
                self._send(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND,
                                                                                     0, socket.AF_INET)))
                self._send(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
                           + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 100_000))
                           + _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO))
                           + _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO)))

    def release_all(self) -> None:
        """Accept every held packet now (heal); the queues stay bound for later delays."""
        with self._lock:
            for queue in self.delays:
                self.delays[queue] = (0.0, 0.0)
            held, self._held = self._held, []
            for _, _, queue, packet_id in held:
                self._verdict(queue, packet_id)

    def _verdict(self, queue: int, packet_id: int) -> None:
        with contextlib.suppress(OSError):
            self._send(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))

    def _receive(self, data: bytes) -> None:
        pos = 0
        now = time.monotonic()
        while pos + _NLMSG.size <= len(data):
            size, kind, _, _, _ = _NLMSG.unpack_from(data, pos)
            if size < _NLMSG.size:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                _, _, queue = _NFGEN.unpack_from(data, pos + _NLMSG.size)
                attr = pos + _NLMSG.size + _NFGEN.size
                while attr + _NLATTR.size <= pos + size:
                    length, attr_kind = _NLATTR.unpack_from(data, attr)
                    if length < _NLATTR.size:
                        break
                    if attr_kind & 0x3FFF == NFQA_PACKET_HDR:
                        (packet_id,) = struct.unpack_from("!I", data, attr + _NLATTR.size)
                        delay, jitter = self.delays.get(queue, (0.0, 0.0))
                        at = now + max(0.0, delay + random.uniform(-jitter, jitter))
                        self._seq += 1
                        heapq.heappush(self._held, (at, self._seq, queue, packet_id))
                        break
                    attr += (length + 3) & ~3
            pos += (size + 3) & ~3

    def _run(self) -> None:
        while not self._closed:
            with self._lock:
                timeout = max(0.0, self._held[0][0] - time.monotonic()) if self._held else 0.2
            try:
                ready, _, _ = select.select([self.sock], [], [], min(timeout, 0.2))
            except (OSError, ValueError):
                return
            with self._lock:
                if ready:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        for _ in range(64):
                            self._receive(self.sock.recv(1 << 20, socket.MSG_DONTWAIT))
                now = time.monotonic()
                while self._held and self._held[0][0] <= now:
                    _, _, queue, packet_id = heapq.heappop(self._held)
                    self._verdict(queue, packet_id)

    def close(self) -> None:
        self.release_all()
        self._closed = True
        self._thread.join(2)
        self.sock.close()


# -- the network ------------------------------------------------------------------------------

class Link:
    """The faults of one directed link (all off by default)."""
    __slots__ = ("loss", "delay_ms", "jitter_ms")

    def __init__(self):
        self.loss, self.delay_ms, self.jitter_ms = 0.0, 0, 0

    def __bool__(self):
        return bool(self.loss or self.delay_ms or self.jitter_ms)


class Network:
    """Node namespaces and their links (see the module docstring); ``close`` removes them."""

    def __init__(self, size: int = 3):
        self.size = size
        self.links: dict[tuple[int, int], Link] = {}
        self.delayers: dict[int, Delayer] = {}
        self.mounts: list[str] = []
        self.closed = False
        with _slots_locked():
            _remove_stale_locked()
            used = {int(p.stem) for p in STATE_DIR.glob("*.json")}
            try:
                last = int((STATE_DIR / "last").read_text())
            except (OSError, ValueError):
                last = 0
            # The next free slot after the last one handed out: a client a test leaked keeps
            # dialing its old addresses, which must not reach the next test's cluster.
            order = list(range(last + 1, MAX_SLOTS)) + list(range(1, last + 1))
            self.slot = next(s for s in order if s not in used)
            (STATE_DIR / "last").write_text(str(self.slot))
            self._save_state()
        atexit.register(self.close)
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    # addresses and names
    def ip(self, n: int) -> str:
        """Node n's address, or the host clients' for CLIENTS (0)."""
        return f"10.77.{self.slot}.{254 if n == CLIENTS else n}"

    def netns(self, n: int) -> str:
        return f"{NS_PREFIX}{self.slot}-{n}"

    def _mac(self, at: int, to: int) -> str:
        """The MAC of the device in `at`'s namespace (0: the host) that leads to `to`."""
        return f"02:77:{self.slot:02x}:{at:02x}:{to:02x}:00"

    def _save_state(self) -> None:
        state = {"pid": os.getpid(), "start": _start_time(os.getpid()), "mounts": self.mounts}
        (STATE_DIR / f"{self.slot}.json").write_text(json.dumps(state))

    def _create(self) -> None:
        nodes = range(1, self.size + 1)
        s = self.slot
        for n in nodes:
            _run("ip", "netns", "add", self.netns(n))
            _run("ip", "-n", self.netns(n), "link", "set", "lo", "up")
            _run("ip", "-n", self.netns(n), "addr", "add", f"{self.ip(n)}/32", "dev", "lo")
        for n in nodes:  # the client link: ok{S}c{n} on the host, n0 in node n's namespace
            host_dev = f"ok{s}c{n}"
            _run("ip", "link", "add", host_dev, "address", self._mac(0, n), "type", "veth", "peer", "name", "n0",
                 "address", self._mac(n, 0), "netns", self.netns(n))
            self._wire(0, n, host_dev, "n0")
            for m in nodes:
                if m > n:
                    _run("ip", "-n", self.netns(n), "link", "add", f"n{m}", "address", self._mac(n, m), "type",
                         "veth", "peer", "name", f"n{n}", "address", self._mac(m, n), "netns", self.netns(m))
                    self._wire(n, m, f"n{m}", f"n{n}")
        for n in nodes:
            rules = ["*filter", ":NEMESIS_IN - [0:0]", ":NEMESIS_OUT - [0:0]",
                     "-A INPUT -j NEMESIS_IN", "-A OUTPUT -j NEMESIS_OUT", "COMMIT", ""]
            self._iptables_restore(n, rules, noflush=False)

    def _wire(self, a: int, b: int, dev_a: str, dev_b: str) -> None:
        """Routes and static neighbours both ways over a fresh veth pair between a and b."""
        for at, to, dev in ((a, b, dev_a), (b, a, dev_b)):
            ip = ["ip"] if at == CLIENTS else ["ip", "-n", self.netns(at)]
            _run(*ip, "link", "set", dev, "up")
            if at == CLIENTS:  # the clients' address lives on each of their link devices
                _run(*ip, "addr", "add", f"{self.ip(CLIENTS)}/32", "dev", dev)
            _run(*ip, "route", "add", f"{self.ip(to)}/32", "dev", dev, "src", self.ip(at))
            _run(*ip, "neigh", "replace", self.ip(to), "lladdr", self._mac(to, at), "dev", dev, "nud", "permanent")

    def _iptables_restore(self, n: int, lines: list[str], noflush: bool = True) -> None:
        cmd = ["nsenter", f"--net=/run/netns/{self.netns(n)}", "--", "iptables-restore", "-w", "5"]
        _run(*cmd + (["--noflush"] if noflush else []), input="\n".join(lines))

    # faults
    def link(self, src: int, dst: int) -> Link:
        if src == dst or not (0 <= src <= self.size and 0 <= dst <= self.size) or src == dst == CLIENTS:
            raise ValueError(f"no link {src} -> {dst}")
        return self.links.setdefault((src, dst), Link())

    def apply(self) -> None:
        """Write every node's rules from ``self.links``."""
        for n in range(1, self.size + 1):
            rules = ["*filter", ":NEMESIS_IN - [0:0]", ":NEMESIS_OUT - [0:0]", "-F NEMESIS_IN", "-F NEMESIS_OUT"]
            for (src, dst), link in sorted(self.links.items()):
                if dst == n:
                    rule, queue = f"-A NEMESIS_IN -s {self.ip(src)}", src
                elif src == n and dst == CLIENTS:
                    rule, queue = f"-A NEMESIS_OUT -d {self.ip(CLIENTS)}", 100
                else:
                    continue
                if link.loss >= 1.0:
                    rules.append(f"{rule} -j DROP")
                    continue
                if link.loss > 0:
                    rules.append(f"{rule} -m statistic --mode random --probability {link.loss:.4f} -j DROP")
                if link.delay_ms or link.jitter_ms:
                    if n not in self.delayers:
                        self.delayers[n] = Delayer(self.netns(n))
                    self.delayers[n].bind(queue, link.delay_ms / 1000, link.jitter_ms / 1000)
                    rules.append(f"{rule} -j NFQUEUE --queue-num {queue} --queue-bypass")
            self._iptables_restore(n, rules + ["COMMIT", ""])

    def heal(self) -> None:
        self.links.clear()
        if not self.closed:
            self.apply()
        for d in self.delayers.values():
            d.release_all()

    def dropped_packets(self, src: int, dst: int) -> int:
        """Packets the drop rule of src -> dst discarded since it was set (for tests)."""
        n, chain, match = (dst, "NEMESIS_IN", self.ip(src)) if dst != CLIENTS else \
            (src, "NEMESIS_OUT", self.ip(CLIENTS))
        out = _run("nsenter", f"--net=/run/netns/{self.netns(n)}", "--", "iptables", "-w", "5", "-L", chain,
                   "-n", "-v", "-x")
        return sum(int(line.split()[0]) for line in out.splitlines()[2:]
                   if "DROP" in line and match in line.split())

    # disks
    def mount_tmpfs(self, path: str, size_mb: int) -> None:
        os.makedirs(path, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "odradek-nemesis", path)
        self.mounts.append(path)
        with _slots_locked():
            self._save_state()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for d in self.delayers.values():
            d.close()
        with _slots_locked():
            _remove_slot(self.slot, {"mounts": self.mounts})
        atexit.unregister(self.close)


# -- the nemesis ------------------------------------------------------------------------------

class Nemesis:
    """Process, network and disk faults on a ``tests.local_cluster.Cluster`` run with ``netns=True``
    (a cluster not started yet is switched to it here). Node ids are 1..N; ``CLIENTS`` (0)
    stands for the test clients on the host. Network faults add up per directed link until
    ``heal``; ``heal_all`` undoes everything."""

    def __init__(self, cluster, tmpfs_mb: int | None = None, network: bool = True):
        """``network=False`` keeps a cluster on loopback (for clients that must go through
        loopback proxies): process and disk faults only."""
        self.cluster = cluster
        if cluster.network is None and not cluster.fault_files:
            if cluster.live():
                raise RuntimeError("Nemesis needs a Cluster(netns=True), or one not started yet")
            if network:
                cluster.use_netns(tmpfs_mb=tmpfs_mb)
            else:
                cluster.use_fault_files()
        elif tmpfs_mb and not cluster.tmpfs_mb:
            raise RuntimeError("pass tmpfs_mb to the Cluster, which mounts before it starts")
        self.network = cluster.network
        self.paused: set[int] = set()
        self._fillers: dict[int, str] = {}

    @property
    def nodes(self) -> list[int]:
        return list(self.cluster.nodes)

    # -- process faults --------------------------------------------------------------------
    def _pid(self, n: int) -> int | None:
        proc = self.cluster.nodes[n].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def kill(self, n: int) -> None:
        """SIGKILL (a paused node dies too)."""
        self.cluster.kill(n)
        self.paused.discard(n)

    def restart(self, n: int) -> None:
        """Start a node that was killed or stopped (kills it first if it still runs)."""
        if self._pid(n) is not None:
            self.kill(n)
        self.cluster.restart(n)

    def pause(self, n: int) -> None:
        """SIGSTOP."""
        os.kill(self._pid(n), signal.SIGSTOP)
        self.paused.add(n)

    def resume(self, n: int) -> None:
        """SIGCONT."""
        pid = self._pid(n)
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self.paused.discard(n)

    def stop(self, n: int, timeout: float = 10.0) -> int:
        """A clean stop: SIGTERM and wait (controlled shutdown). Returns the exit status."""
        self.resume(n)
        node = self.cluster.nodes[n]
        status = node.stop(timeout)
        self.cluster.logs[n] += node.log_lines
        return status

    def kill_all(self) -> None:
        for n in self.nodes:
            self.kill(n)

    def restart_all(self) -> None:
        """Start every node that is not running."""
        for n in self.nodes:
            if self._pid(n) is None:
                self.cluster.restart(n)

    # -- network faults --------------------------------------------------------------------
    def cut(self, src: int, dst: int) -> None:
        """One way: every packet src sends to dst is dropped."""
        self._links().link(src, dst).loss = 1.0
        self._links().apply()

    def drop(self, src: int, dst: int, probability: float) -> None:
        """One way: each packet src sends to dst is dropped with this probability."""
        self._links().link(src, dst).loss = float(probability)
        self._links().apply()

    def delay(self, src: int, dst: int, ms: int, jitter_ms: int = 0) -> None:
        """One way: each packet src sends to dst arrives ms (+- a uniform jitter_ms) later."""
        link = self._links().link(src, dst)
        link.delay_ms, link.jitter_ms = int(ms), int(jitter_ms)
        self._links().apply()

    def partition(self, *groups) -> None:
        """No traffic, both ways, between members of different groups. Nodes (or CLIENTS)
        named in no group keep talking to everyone: partition({1}, {2, 3}) cuts node 1 off
        from the other nodes but not from the clients; partition({1}, {0, 2, 3}) from all."""
        groups = [set(g) for g in groups]
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                for x in a:
                    for y in b:
                        if not x == y == CLIENTS:
                            self._links().link(x, y).loss = 1.0
                            self._links().link(y, x).loss = 1.0
        self._links().apply()

    def isolate(self, n: int, from_clients: bool = True) -> None:
        """Node n can talk to no other node (nor the clients, unless from_clients=False)."""
        others = {m for m in self.nodes if m != n} | ({CLIENTS} if from_clients else set())
        self.partition({n}, others)

    def heal(self) -> None:
        """Every network fault off (held delayed packets are delivered at once)."""
        if self.network is not None:
            self.network.heal()

    def _links(self):
        if self.network is None:
            raise RuntimeError("network faults need Nemesis(cluster, network=True)")
        return self.network

    # -- disk faults on a node that is not running -----------------------------------------
    def _partition_dir(self, n: int, topic: str, partition: int) -> Path:
        if self._pid(n) is not None:
            raise RuntimeError(f"node {n} is running: kill or stop it first")
        return Path(self.cluster.nodes[n].data_dir) / f"{topic}-{partition}"

    def _last_segment(self, n: int, topic: str, partition: int) -> Path:
        segments = sorted(self._partition_dir(n, topic, partition).glob("*.log"))
        nonempty = [s for s in segments if s.stat().st_size > 0]
        if not nonempty:
            raise RuntimeError(f"node {n} has no data for {topic}-{partition}")
        return nonempty[-1]

    @staticmethod
    def _batches(segment: Path) -> list[tuple[int, int]]:
        """(file position, size) of each whole batch of a segment."""
        data = segment.read_bytes()
        pos, out = 0, []
        while pos + HEADER_SIZE <= len(data):
            size = parse_header(data, pos).size
            if pos + size > len(data):
                break
            out.append((pos, size))
            pos += size
        return out

    def torn_tail(self, n: int, topic: str, partition: int, nbytes: int | None = None) -> int:
        """Cut the end of the partition's last segment, as a crash mid-write leaves it:
        nbytes bytes, or by default half of the last batch. Returns the new file size."""
        segment = self._last_segment(n, topic, partition)
        size = segment.stat().st_size
        if nbytes is None:
            batches = self._batches(segment)
            nbytes = max(1, batches[-1][1] // 2) if batches else 1
        new_size = max(0, size - nbytes)
        os.truncate(segment, new_size)
        return new_size

    def flip_byte(self, n: int, topic: str, partition: int, batch: int = -1) -> int:
        """Flip one byte inside the records of a batch (by default the last one) of the last
        segment, where the CRC covers it. Returns the file position flipped. Recovery checks
        batches past the recovery point only after an unclean stop: kill the node, not stop."""
        segment = self._last_segment(n, topic, partition)
        pos, size = self._batches(segment)[batch]
        at = pos + HEADER_SIZE + (size - HEADER_SIZE) // 2 if size > HEADER_SIZE else pos + size - 1
        with open(segment, "r+b") as f:
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ 0xFF]))
        return at

    def delete_index(self, n: int, topic: str, partition: int) -> list[str]:
        """Delete the partition's offset and time indexes. Returns the files removed."""
        removed = []
        for path in self._partition_dir(n, topic, partition).glob("*.*index"):
            path.unlink()
            removed.append(path.name)
        return removed

    # -- live disk faults ------------------------------------------------------------------
    def _write_faults(self, n: int, **changes) -> None:
        path = self.cluster.fault_files[n]
        try:
            faults = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            faults = {}
        faults.update(changes)
        tmp = f"{path}.tmp"
        Path(tmp).write_text(json.dumps(faults))
        os.replace(tmp, path)  # the broker never reads half a file

    def fill_disk(self, n: int) -> None:
        """ENOSPC on appends: with tmpfs data dirs the file system really fills up (every
        write fails); otherwise the fault hook fails partition-log writes with ENOSPC."""
        data_dir = self.cluster.nodes[n].data_dir
        if self.cluster.tmpfs_mb:
            filler = os.path.join(data_dir, "nemesis-filler")
            self._fillers[n] = filler
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                for size in (1 << 20, 4096, 1):  # till not even a byte fits
                    chunk = b"\0" * size
                    try:
                        while True:
                            os.write(fd, chunk)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
            finally:
                os.close(fd)
        else:
            self._write_faults(n, write_error="ENOSPC")

    def free_disk(self, n: int) -> None:
        filler = self._fillers.pop(n, None)
        if filler:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(filler)
        self._write_faults(n, write_error=None)

    def slow_fsync(self, n: int, seconds: float) -> None:
        """Every partition-log fsync of node n takes `seconds` longer (through the fault hook;
        fsyncs happen per append with flush.messages=1, else at segment roll and checkpoints)."""
        self._write_faults(n, fsync_delay=float(seconds))

    def normal_fsync(self, n: int) -> None:
        self._write_faults(n, fsync_delay=0.0)

    # -- all of it -------------------------------------------------------------------------
    def heal_all(self) -> None:
        """Network healed, disks freed, fsync normal, paused nodes resumed, dead nodes restarted."""
        self.heal()
        for n in self.nodes:
            self.free_disk(n)
            self.normal_fsync(n)
            if n in self.paused or self._pid(n) is not None:
                self.resume(n)
        self.restart_all()

    def close(self) -> None:
        """Kill every node and remove the network and mounts (the data of tmpfs dirs is gone)."""
        self.cluster.close()
