"""Odradek inside a test suite: ``Broker()`` (one node) and ``Cluster(nodes=3)``, context
managers with ``bootstrap_servers``, ``create_topic``, ``kill``/``restart``, ``pause``,
``isolate``/``heal`` and per-request fault injection (``inject``); the pytest plugin
(odradek.testing.pytest_plugin, registered under ``pytest11``) gives them as fixtures.

Importing this package imports no broker code: that happens on the first start.
"""

from odradek.testing.api import Broker, Cluster, OdradekTestingError

__all__ = ["Broker", "Cluster", "OdradekTestingError"]
