"""sd_notify (broker.systemd) against a unix datagram socket standing in for systemd."""

import os
import socket

import pytest

from odradek.broker.systemd import notify


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def test_ready_and_stopping_arrive_as_datagrams(systemd):
    assert notify("READY=1\nSTATUS=serving")
    assert systemd.recv(4096) == b"READY=1\nSTATUS=serving"
    assert notify("STOPPING=1")
    assert systemd.recv(4096) == b"STOPPING=1"


def test_abstract_socket_names_start_with_at(monkeypatch):
    name = f"odradek-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_a_socket_that_is_gone_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "absent"))
    assert notify("READY=1") is False
