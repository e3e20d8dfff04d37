"""A small application on Kafka: stock changes are published as events and applied by
consumers. Each client library gets a publisher so the sample tests all three."""
