"""Kafka 4.4's message specs (common/message/*.json of kafka-clients-4.4.0.jar, Apache
License 2.0, copied unchanged) for the APIs kafka-python's schemas lack; see
``odradek.protocol.messages``."""
