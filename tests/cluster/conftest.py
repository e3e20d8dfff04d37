"""Fixtures of the three-node tests."""

import pytest

from tests.local_cluster import Cluster


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop_all()
    for n in c.nodes:  # on failure, pytest shows each node's log tail
        print(f"--- node {n} ---\n" + "".join(c.logs[n][-60:]))
