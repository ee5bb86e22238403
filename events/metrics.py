"""The bridge's Prometheus metrics (prefix `gridflow_bridge_`, low-cardinality labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram


class BridgeMetrics:
    """Counters and gauges of the Kafka -> Temporal bridge."""

    def __init__(self) -> None:
        self.consumed = Counter(
            "gridflow_bridge_messages_consumed_total",
            "Messages taken from the incidents topic, by event type and outcome.",
            ["type", "outcome"],
        )
        self.workflows_started = Counter(
            "gridflow_bridge_workflows_started_total", "Incident workflows started by the bridge."
        )
        self.duplicates = Counter(
            "gridflow_bridge_duplicates_total", "Events already applied before (redeliveries, republished)."
        )
        self.dead_lettered = Counter(
            "gridflow_bridge_dead_lettered_total",
            "Messages written to the dead-letter topic, by reason.",
            ["reason"],
        )
        self.temporal_retries = Counter(
            "gridflow_bridge_temporal_retries_total",
            "Temporal calls retried because Temporal was unavailable.",
        )
        self.temporal_latency = Histogram(
            "gridflow_bridge_temporal_call_seconds",
            "Time of the Temporal call (start or update) for one event, by event type.",
            ["type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge("gridflow_bridge_in_flight_messages", "Messages taken and not yet finished.")
        self.consumer_lag = Gauge(
            "gridflow_bridge_consumer_lag",
            "Messages between the group's committed offset and the end of a partition this bridge owns.",
            ["partition"],
        )


BRIDGE = BridgeMetrics()
