"""Share groups (KIP-932): queues on Kafka's logs. ``partition`` holds the rules of one
share partition, a pure state machine; the coordinator, sessions and handlers build on it."""
