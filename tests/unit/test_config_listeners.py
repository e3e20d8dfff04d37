"""Which listeners serve our inter-node request keys (BrokerConfig.internode_listeners)."""

import pytest

from odradek.broker.config import BrokerConfig, ConfigError

TWO = {"listeners": "CLIENT://127.0.0.1:9092,INTERNAL://127.0.0.1:9093",
       "inter.broker.listener.name": "INTERNAL"}


def test_a_node_without_voters_has_no_peers_to_serve():
    assert BrokerConfig(TWO).internode_listeners == frozenset()


def test_the_inter_broker_and_controller_listeners_serve_peers():
    config = BrokerConfig({**TWO, "controller.quorum.voters": "1@127.0.0.1:9093"})
    assert config.internode_listeners == {"INTERNAL"}
    three = {"listeners": "CLIENT://127.0.0.1:9092,INTERNAL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094",
             "inter.broker.listener.name": "INTERNAL", "controller.listener.names": "CONTROLLER",
             "controller.quorum.voters": "1@127.0.0.1:9094"}
    assert BrokerConfig(three).internode_listeners == {"INTERNAL", "CONTROLLER"}


def test_one_listener_serves_both():
    """It cannot tell peers from clients; the broker logs a warning at start."""
    config = BrokerConfig({"controller.quorum.voters": "1@127.0.0.1:9092"})
    assert config.internode_listeners == {"PLAINTEXT"}


def test_voters_pointing_at_a_client_listener_are_refused():
    with pytest.raises(ConfigError, match="serves clients only"):
        BrokerConfig({**TWO, "controller.quorum.voters": "1@127.0.0.1:9092"})
    with pytest.raises(ConfigError, match="controller.listener.names"):
        BrokerConfig({**TWO, "controller.listener.names": "NOPE"})


def test_process_roles():
    """broker,controller (the default) is a voter; broker alone follows the voters as an
    observer and serves peers on its inter-broker listener; the rest is refused by name."""
    voters = {"controller.quorum.voters": "1@127.0.0.1:9093"}
    assert BrokerConfig({**TWO, **voters}).is_voter
    broker = BrokerConfig({**TWO, **voters, "node.id": "4", "process.roles": "broker"})
    assert not broker.is_voter and broker.internode_listeners == {"INTERNAL"}
    refused = [
        ({"process.roles": "broker"}, "needs controller.quorum.voters"),
        ({**voters, "process.roles": "broker"}, "node.id 1 is one of controller.quorum.voters"),
        ({**voters, "process.roles": "controller"}, r"controller-only node\) is not supported"),
        ({**voters, "process.roles": "broker,zookeeper"}, "Invalid value 'broker,zookeeper' for process.roles"),
        ({**voters, "node.id": "4"}, "a node that is not a voter has process.roles=broker"),
    ]
    for overrides, message in refused:
        with pytest.raises(ConfigError, match=message):
            BrokerConfig({**TWO, **overrides})
