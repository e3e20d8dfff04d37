"""Kafka's connection quotas (broker.server.ConnectionLimits), counted without sockets."""

from odradek.broker.config import BrokerConfig
from odradek.broker.server import ConnectionLimits


def limits(**overrides) -> ConnectionLimits:
    return ConnectionLimits(BrokerConfig({k.replace("_", "."): v for k, v in overrides.items()}))


def test_per_ip_limit_and_its_overrides():
    lim = limits(max_connections_per_ip="1", max_connections_per_ip_overrides="10.0.0.2:2")
    assert lim.admit("10.0.0.1", False) is None
    assert "max.connections.per.ip 1" in lim.admit("10.0.0.1", False)
    assert lim.admit("10.0.0.2", False) is None and lim.admit("10.0.0.2", False) is None
    assert "max.connections.per.ip 2" in lim.admit("10.0.0.2", False)
    lim.release("10.0.0.1", False)
    assert lim.admit("10.0.0.1", False) is None


def test_node_limit_spares_a_listener_for_other_nodes():
    lim = limits(max_connections="2")
    assert lim.admit("10.0.0.1", False) is None and lim.admit("10.0.0.2", False) is None
    assert "max.connections 2" in lim.admit("10.0.0.3", False)
    assert lim.admit("10.0.0.3", True) is None  # a peer on the inter-node listener
    lim.release("10.0.0.1", False)
    assert lim.admit("10.0.0.4", False) is None
    assert lim.total == 2
