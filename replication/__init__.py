"""Replication: the controller quorum (Raft core) and, later, partition leadership and ISR."""
