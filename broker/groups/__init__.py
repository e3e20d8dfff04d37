"""Consumer groups: the group coordinator, each group's rebalance state machine, and
the ``__consumer_offsets`` records that make groups and committed offsets durable."""

from odradek.broker.groups.coordinator import GroupCoordinator

__all__ = ["GroupCoordinator"]
