"""Packaging, end to end: Odradek's wheel and a sample application (tests/sample_app)
installed into a fresh virtual environment, where the application's own pytest suite
runs on the installed plugin: each Python client, a consumer group across a killed node
of the three-node fixture, and a retry on injected NOT_LEADER_OR_FOLLOWER errors. The
application has a top-level package named `storage`, which an installed Odradek must
not shadow.

Slow (about a minute with a warm cache): it builds two wheels and a virtual environment
and runs a suite that starts brokers. Third-party wheels come from PyPI once into a
wheelhouse (ODRADEK_WHEELHOUSE, default ~/.cache/odradek-test-wheels); later runs
install from it without the network.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "sample_app"
WHEELHOUSE = Path(os.environ.get("ODRADEK_WHEELHOUSE",
                                 Path.home() / ".cache" / "odradek-test-wheels"))
BUILD_REQUIREMENTS = ["setuptools>=77", "wheel"]

pytestmark = pytest.mark.slow


def run(cmd, timeout_s: float = 300, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                            timeout=timeout_s, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n"
                    f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


def install(python: Path, wheel: Path, app: Path) -> None:
    """Odradek's wheel and the app with its test extra, from the wheelhouse; on a miss,
    fill the wheelhouse from PyPI (through pip's cache) and install again."""
    offline = [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", WHEELHOUSE,
               "--find-links", wheel.parent, wheel, f"{app}[test]"]
    if subprocess.run([str(c) for c in offline], capture_output=True, timeout=300).returncode:
        # Our own wheels are built afresh each run; an old copy in the wheelhouse would be
        # taken as "already downloaded", and its old dependencies resolved instead.
        for own in [*WHEELHOUSE.glob("odradek-*.whl"), *WHEELHOUSE.glob("odradek_*.whl")]:
            own.unlink()
        run([python, "-m", "pip", "wheel", "-q", "-w", WHEELHOUSE, "--find-links", wheel.parent,
             wheel, f"{app}[test]", *BUILD_REQUIREMENTS])
        run(offline)


def test_the_sample_app_passes_its_suite_on_the_installed_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT])
    [wheel] = wheels.glob("odradek-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {n.split("/")[0] for n in names if not n.startswith("odradek-")} == {"odradek"}
    assert "odradek/testing/pytest_plugin.py" in names
    assert not [n for n in names if n.startswith("odradek/broker/testing/")]  # installed once
    assert "odradek = odradek.testing.pytest_plugin" in entry_points

    app = tmp_path / "sample_app"
    shutil.copytree(SAMPLE, app, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    install(python, wheel, app)
    # The command pipx would link: the wheel's console script in the venv it installs into.
    assert "{serve,topics,configs,groups,produce,consume,cluster,acls,users,console}" in \
        run([venv / "bin" / "odradek", "--help"]).stdout

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=app,
                 env=env, timeout_s=240)
    assert "\n6 passed" in result.stdout, result.stdout[-3000:]
    assert "Task was destroyed" not in result.stderr, result.stderr[-3000:]
