"""broker/deploy/odradek.service: what the README promises of it, and systemd's own check."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "broker" / "deploy" / "odradek.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNIT)
    return parser


def test_notify_restart_nofile_and_the_data_dir():
    service = _unit()["Service"]
    assert service["Type"] == "notify" and service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert int(service["LimitNOFILE"]) >= 100_000
    data_dir = "/var/lib/" + service["StateDirectory"]
    assert f"--data-dir {data_dir}" in service["ExecStart"]
    assert service["WorkingDirectory"] == data_dir and data_dir in service["ReadWritePaths"]


def test_systemd_analyze_finds_no_unknown_keys():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (the keys are checked above)")
    result = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True,
                            text=True, timeout=30)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "is not executable" not in line and "No such file" not in line and line.strip()]
    assert problems == []
