import os
import shutil

import pytest

from tests.brokerproc import BrokerProcess
from tests.metrics_http import start_with_http

CI = os.environ.get("CI") == "true"
collect_ignore = ["sample_app"]  # its own suite, run in a venv of its own by integration/test_sample_app.py


def require_tool(name: str) -> str:
    """The path of a command-line tool; under CI=true a missing tool fails, else skips."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {name})"
        if CI:
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Test certificates (tests/certs.py), made with the openssl CLI."""
    from tests.certs import make_certs
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure(certs, tmp_path_factory):
    """(broker, {protocol: port}): one node with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL
    listeners and SCRAM users (tests/certs.start_secure_broker)."""
    from tests.certs import start_secure_broker
    b, ports = start_secure_broker(certs, tmp_path_factory.mktemp("data"))
    try:
        yield b, ports
    finally:
        b.kill()
        print(f"--- broker {b.bootstrap} log (tail) ---\n" + b.log_text()[-6000:])


@pytest.fixture
def broker_factory(tmp_path):
    """Start broker processes on free ports; all are killed at the end of the test."""
    started = []

    def make(**kwargs) -> BrokerProcess:
        kwargs.setdefault("data_dir", tmp_path / f"data{len(started)}")
        b = BrokerProcess(**kwargs)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.kill()
        # pytest shows captured output only for failing tests: the broker's side of it.
        print(f"--- broker {b.bootstrap} log (tail) ---\n" + b.log_text()[-6000:])


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture
def http_node(tmp_path):
    """A broker process with its HTTP listener on (``.http`` is its base URL)."""
    b = start_with_http(tmp_path / "data")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def data_broker(tmp_path_factory):
    """One broker for a module's tests, taking records up to tests.clients.MAX_BYTES."""
    from tests import clients
    b = BrokerProcess(tmp_path_factory.mktemp("data"),
                      overrides={"message.max.bytes": str(clients.MAX_BYTES)}).start()
    yield b
    b.kill()


# --- make test runs the suite on pytest-xdist workers ----------------------------------
# Most of the suite's wall time is spent waiting (broker start-ups, client timeouts, fault
# durations), so workers overlap those waits. Each worker takes whole groups, so that a
# module-scoped fixture starts once: a test file, by default; every test of the Kafka peer
# (session-scoped JVM, javac) one group; every test that builds network namespaces one
# group, one after the other. The long groups go first, so that no worker starts one of
# them at the end of the run. (Our own scheduler, not --dist loadgroup's markers: those
# rewrite node ids in a way pytest 9.2 no longer reads.)
XDIST_GROUPS = {  # path prefix (from the rootdir) -> group; the first match wins
    "tests/peers/": "kafka-peer",
    "tests/cluster/test_chaos.py": "netns",
    "tests/cluster/test_nemesis.py": "netns",
}
LONG_GROUPS_FIRST = ["netns", "kafka-peer", "tests/cluster/test_docker.py"]


def xdist_group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((group for prefix, group in XDIST_GROUPS.items() if path.startswith(prefix)), path)


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: unknown under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return  # one process: collection order, as before

    def rank(item) -> int:
        group = xdist_group(item.nodeid)
        return LONG_GROUPS_FIRST.index(group) if group in LONG_GROUPS_FIRST else len(LONG_GROUPS_FIRST)
    items.sort(key=rank)  # stable: collection order within a rank
