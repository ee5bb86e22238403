"""The event contract and the Kafka side of gridflow."""
