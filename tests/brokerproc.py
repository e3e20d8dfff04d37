"""Run a real broker process for tests: ``odradek serve`` in a subprocess.

Blocking clients (kafka-python, confluent-kafka, kcat) must never share an event
loop with the broker under test, so every integration test talks to a separate
process over a real socket.
"""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTENING = re.compile(r"event='listening' listener='(\w+)' address='([\d.]+):(\d+)'")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BrokerProcess:
    """One broker node. ``start`` waits for its 'listening' log line."""

    def __init__(self, data_dir: str, port: int | None = None, host: str = "127.0.0.1",
                 node_id: int = 1, overrides: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, netns: str | None = None,
                 env: dict[str, str] | None = None, open_file_limit: int | None = None):
        self.data_dir = str(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.node_id = node_id
        # No HTTP listener unless a test asks (http.listener): the default port is one for all.
        self.overrides = {"http.listener": "", **(overrides or {})}
        self.extra_args = list(extra_args or [])
        self.netns = netns  # run inside this network namespace (ip netns), see tests/reliability
        self.env = dict(env or {})  # added to the inherited environment
        self.open_file_limit = open_file_limit  # RLIMIT_NOFILE (soft and hard) of the process
        self.proc: subprocess.Popen | None = None
        self.log_lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "odradek.broker", "serve", "--data-dir", self.data_dir,
               "--node-id", str(self.node_id)]
        if "listeners" not in self.overrides:  # else the test names them all (bootstrap among them)
            cmd += ["--listen", self.bootstrap]
        for key, value in self.overrides.items():
            cmd += ["-o", f"{key}={value}"]
        return cmd + self.extra_args

    def start(self, timeout: float = 20.0) -> "BrokerProcess":
        self.log_lines = []
        # nsenter execs the broker: proc.pid is the broker itself, for SIGKILL/SIGSTOP.
        prefix = ["nsenter", f"--net=/run/netns/{self.netns}", "--"] if self.netns else []
        self.proc = subprocess.Popen(prefix + self.command(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **self.env} if self.env else None,
                                     preexec_fn=self._limit_open_files if self.open_file_limit else None)
        listening = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log_lines.append(line)
                if "event='listening'" in line:
                    listening.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("broker did not start:\n" + "".join(self.log_lines[-40:]))
        return self

    def _limit_open_files(self) -> None:
        """In the child before exec: ``ulimit -n`` (soft and hard, so the broker cannot raise it)."""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_file_limit, self.open_file_limit))

    def data_dir_path(self) -> "pathlib.Path":
        return pathlib.Path(self.data_dir)

    def open_descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self._reader:
                self._reader.join(2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> "BrokerProcess":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return "".join(self.log_lines)
