"""The pytest plugin (entry point ``pytest11``): Odradek as fixtures.

- ``odradek_broker`` / ``odradek_broker_session``: an ``odradek.testing.Broker`` per
  test / per session;
- ``odradek_cluster`` / ``odradek_cluster_session``: a three-node ``Cluster``;
- ``odradek_broker_async`` (with pytest-asyncio): a Broker started off the test's event
  loop, for async tests with aiokafka; the broker runs on its own thread either way.

At the end of the session the plugin checks that every thread, process, port and
temporary directory they started is gone, and fails the session if not. Importing this
module imports no broker code, so projects that never use the fixtures pay nothing.
"""

import pytest


@pytest.fixture
def odradek_broker():
    from odradek.testing import Broker

    with Broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def odradek_broker_session():
    from odradek.testing import Broker

    with Broker() as broker:
        yield broker


@pytest.fixture
def odradek_cluster():
    from odradek.testing import Cluster

    with Cluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def odradek_cluster_session():
    from odradek.testing import Cluster

    with Cluster(nodes=3) as cluster:
        yield cluster


try:
    import pytest_asyncio
except ImportError:  # the async fixture needs pytest-asyncio
    pass
else:
    @pytest_asyncio.fixture
    async def odradek_broker_async():
        import asyncio

        from odradek.testing import Broker

        broker = Broker()
        await asyncio.to_thread(broker.start)  # starting blocks: keep the test's loop free
        try:
            yield broker
        finally:
            await asyncio.to_thread(broker.close)


def pytest_sessionfinish(session, exitstatus):
    import sys

    api = sys.modules.get("odradek.testing.api")
    if api is None:
        return  # never imported: nothing was started
    api.shutdown()
    leaked = api.leaks()
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "odradek.testing: left behind after the session:\n  " + "\n  ".join(leaked)
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
