"""The transaction coordinator (KIP-98): ``__transaction_state``, the state machine, markers."""

from odradek.broker.transactions.coordinator import TransactionCoordinator

__all__ = ["TransactionCoordinator"]
