"""Layer 1, the domain: what an incident is, the rules it escalates by, and the lifecycle core that
applies them, as pure functions and data (no Temporal, Kafka, Prometheus or structlog here)."""
