"""The pytest plugin (entry point ``pytest11``): Odradek as fixtures.

- ``odradek_broker`` / ``odradek_broker_session``: an ``odradek.testing.Broker`` per
  test / per session;
- ``odradek_cluster`` / ``odradek_cluster_session``: a three-node ``Cluster``;
- ``odradek_broker_async`` / ``odradek_cluster_async`` (with pytest-asyncio): started and
  closed off the test's event loop, for async tests with aiokafka; the nodes run on their
  own thread or processes either way.

``@pytest.mark.odradek(config={...}, in_memory=True)`` passes its arguments to the
per-test fixtures. After each test that used a session fixture, its broker or cluster
is ``revive``d (faults healed, killed nodes restarted), so one test's faults never
reach the next. At the end of the session the plugin checks that every thread,
process, port and temporary directory they started is gone, and fails the session if
not (then closes what was left open). Importing this module imports no broker code.
"""

import pytest

SESSION_FIXTURES = ("odradek_broker_session", "odradek_cluster_session")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "odradek(config=None, in_memory=False): arguments for the odradek_broker, "
        "odradek_broker_async and odradek_cluster fixtures of this test")


def _options(request) -> dict:
    marker = request.node.get_closest_marker("odradek")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def odradek_broker(request):
    from odradek.testing import Broker

    with Broker(**_options(request)) as broker:
        yield broker


@pytest.fixture(scope="session")
def odradek_broker_session():
    from odradek.testing import Broker

    with Broker() as broker:
        yield broker


@pytest.fixture
def odradek_cluster(request):
    from odradek.testing import Cluster

    with Cluster(nodes=3, **_options(request)) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def odradek_cluster_session():
    from odradek.testing import Cluster

    with Cluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _odradek_revive_session_fixtures(request):
    yield
    for name in SESSION_FIXTURES:
        if name in request.fixturenames:
            request.getfixturevalue(name).revive()


try:
    import pytest_asyncio
except ImportError:  # the async fixture needs pytest-asyncio
    pass
else:
    @pytest_asyncio.fixture
    async def odradek_broker_async(request):
        import asyncio

        from odradek.testing import Broker

        broker = Broker(**_options(request))
        await asyncio.to_thread(broker.start)  # starting blocks: keep the test's loop free
        try:
            yield broker
        finally:
            await asyncio.to_thread(broker.close)

    @pytest_asyncio.fixture
    async def odradek_cluster_async(request):
        import asyncio

        from odradek.testing import Cluster

        cluster = Cluster(nodes=3, **_options(request))
        await asyncio.to_thread(cluster.start)
        try:
            yield cluster
        finally:
            await asyncio.to_thread(cluster.close)


def pytest_sessionfinish(session, exitstatus):
    import sys

    api = sys.modules.get("odradek.testing.api")
    if api is None:
        return  # never imported: nothing was started
    api.shutdown()
    leaked = api.leaks()
    api.close_all()  # reported, then cleaned up
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "odradek.testing: left behind after the session:\n  " + "\n  ".join(leaked)
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
