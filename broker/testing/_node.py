"""One node of odradek.testing on its own event loop: on a thread of the test process
(``Broker``), or as a process forked by the zygote (``Cluster``).

The zygote (``python -m odradek.testing._node``) imports the broker once and then forks
a node for each request, so a cluster's nodes start in milliseconds instead of each
paying a fresh interpreter's imports (0.3-0.5 s of CPU apiece; three of them on two
busy cores took 2.5 s). Requests arrive on a SOCK_SEQPACKET socket (its fd is argv[1]):
a JSON spec with two file descriptors, the node's control socket and its log file; the
answer is the node's pid. Children are reaped by the kernel (SIGCHLD ignored), so the
test process can tell a dead node by its pid and its control socket's end of file.

A node takes commands as JSON lines on its control socket and answers each with one
JSON line: ``{"op": "inject", "args": {...}}`` -> ``{"ok": result}`` or ``{"error":
message}``. When the socket closes (the test process ended, even by SIGKILL) the node
stops; when the zygote's socket closes, the zygote exits. Nothing outlives its test.
"""

import asyncio
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading

import structlog

from odradek.broker.broker import Broker
from odradek.broker.config import BrokerConfig
from odradek.broker.handlers import load_handlers
from odradek.testing.faults import Faults

log = structlog.get_logger(__name__)
READY_POLL_S = 0.01


class Node:
    """A broker with faults, started and stopped on the loop that runs it."""

    def __init__(self, settings: dict[str, str], data_dir: str, expect_brokers: int = 1):
        self.broker = Broker(BrokerConfig(settings), data_dir)
        self.broker.faults = Faults(self.broker)
        self.expect_brokers = expect_brokers

    async def start(self) -> int:
        """Start; return the port once clients can use this node (see ``_ready``)."""
        await self.broker.start()
        while not self._ready():
            await asyncio.sleep(READY_POLL_S)
        return self.broker.servers[0].sockets[0].getsockname()[1]

    def _ready(self) -> bool:
        """Registered and unfenced, and the image lists the brokers we were told to expect
        (on a cluster's first start: all, so the first Metadata names every node)."""
        b = self.broker
        me = b.image.brokers.get(b.node_id)
        live = [x for x in b.image.brokers.values() if not x.fenced]
        return (b.registered.is_set() and me is not None and not me.fenced
                and len(live) >= self.expect_brokers)

    async def stop(self) -> None:
        self.broker.faults.heal()
        await self.broker.stop()

    def control(self, op: str, args: dict):
        """A control command, on this node's loop: inject, report, clear, isolate, heal."""
        faults = self.broker.faults
        return {"inject": lambda: faults.inject(**args), "report": faults.report,
                "clear": faults.clear, "isolate": lambda: faults.isolate(**args),
                "heal": faults.heal}[op]()


def zygote_main(fd: int) -> None:
    """Fork a node for every spec that arrives on socket ``fd``, until it closes."""
    load_handlers()  # what every node imports, imported once here,
    importlib.import_module("odradek.replication.quorum")  # with Raft (a single node skips it)
    gc.freeze()  # keep the forked nodes' collections from touching (copying) these pages
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the nodes
    requests = socket.socket(fileno=fd)
    while True:
        message, fds, _, _ = socket.recv_fds(requests, 1 << 16, 2)
        if not message:
            return
        pid = os.fork()
        if pid == 0:
            requests.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _node_process(json.loads(message), *fds)  # never returns
        for fd in fds:
            os.close(fd)
        requests.send(str(pid).encode())


def _node_process(spec: dict, control_fd: int, log_fd: int) -> None:
    code = 1
    try:
        import uvloop

        from odradek.broker import logs, tls

        os.dup2(log_fd, 2)
        os.close(log_fd)
        logs.configure(level=spec["settings"].get("log.level", "info"))
        tls.keep_tls_read_buffers_lazy()  # as `odradek serve` does
        uvloop.run(_serve_node(spec, socket.socket(fileno=control_fd)))
        code = 0
    finally:
        sys.stderr.flush()
        os._exit(code)  # nothing of the zygote's (atexit, buffers) runs twice


async def _serve_node(spec: dict, control: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    node = Node(spec["settings"], spec["data_dir"], spec.get("expect_brokers", 1))
    stop = asyncio.Event()
    reader, writer = control.makefile("r"), control.makefile("w")

    def reply(message: dict) -> None:
        writer.write(json.dumps(message) + "\n")
        writer.flush()

    def read_commands() -> None:
        try:
            for line in reader:
                command = json.loads(line)
                future = asyncio.run_coroutine_threadsafe(_call(node, command), loop)
                reply(future.result())
        except OSError:
            pass
        loop.call_soon_threadsafe(stop.set)  # the test process closed the socket (or died)

    try:
        port = await node.start()
    except Exception as e:
        reply({"error": f"{type(e).__name__}: {e}"})
        raise
    reply({"ok": port})
    threading.Thread(target=read_commands, daemon=True).start()
    await stop.wait()
    await node.stop()


async def _call(node: Node, command: dict) -> dict:
    try:
        return {"ok": node.control(command["op"], command.get("args", {}))}
    except Exception as e:  # noqa: BLE001 - answered to the test, which raises it
        return {"error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    zygote_main(int(sys.argv[1]))
