"""Reliability suite: Jepsen-style histories of real Kafka clients against an Odradek
cluster under faults, and the checker that looks for anomalies in them."""
