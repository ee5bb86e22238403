"""gridflow: civic incident escalation on Kafka and Temporal."""
