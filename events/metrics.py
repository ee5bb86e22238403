"""The bridge's Prometheus metrics (prefix `gridflow_bridge_`, low-cardinality labels only).

They live in the registry they are given (the process's, from the composition root), never in
prometheus_client's global one: what a process serves is what it was given.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MessageOutcome(StrEnum):
    """How a message taken from the incidents topic ended (the `outcome` label, and the logs)."""

    STARTED = "started"  # a report started its incident
    DUPLICATE = "duplicate"  # already applied before (a redelivery, a republication)
    APPLIED = "applied"  # a lifecycle command applied
    DEAD_LETTERED = "dead_lettered"  # written to the dead-letter topic
    PARKED = "parked"  # could not be written even there: logged, counted and committed past


class BridgeMetrics:
    """Counters and gauges of the Kafka -> Temporal bridge, in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.consumed = Counter(
            "gridflow_bridge_messages_consumed_total",
            "Messages taken from the incidents topic, by event type and outcome.",
            ["type", "outcome"],
            registry=registry,
        )
        self.workflows_started = Counter(
            "gridflow_bridge_workflows_started_total",
            "Incident workflows started by the bridge.",
            registry=registry,
        )
        self.duplicates = Counter(
            "gridflow_bridge_duplicates_total",
            "Events already applied before (redeliveries, republished).",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "gridflow_bridge_dead_lettered_total",
            "Messages written to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.dead_letters_parked = Counter(
            "gridflow_bridge_dead_letters_parked_total",
            "Dead letters the dead-letter topic would not take (too large, not authorized), by reason: "
            "logged and committed past.",
            ["reason"],
            registry=registry,
        )
        self.temporal_retries = Counter(
            "gridflow_bridge_temporal_retries_total",
            "Temporal calls retried because Temporal was unavailable.",
            registry=registry,
        )
        self.temporal_latency = Histogram(
            "gridflow_bridge_temporal_call_seconds",
            "Time of the Temporal call (start or update) for one event, by event type.",
            ["type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.in_flight = Gauge(
            "gridflow_bridge_in_flight_messages",
            "Messages taken and not yet finished.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "gridflow_bridge_consumer_lag",
            "Messages between the group's committed offset and the end of a partition this bridge owns, "
            "as last measured: while the broker is out of reach the figure is not refreshed "
            "(see gridflow_bridge_consumer_lag_measured_timestamp_seconds).",
            ["partition"],
            registry=registry,
        )
        self.consumer_lag_measured = Gauge(
            "gridflow_bridge_consumer_lag_measured_timestamp_seconds",
            "When the partition's gridflow_bridge_consumer_lag figure was measured (Unix time): "
            "time() minus this is how stale it is.",
            ["partition"],
            registry=registry,
        )
        self.broker_reachable = Gauge(
            "gridflow_bridge_broker_reachable",
            "1 while the Kafka broker has answered this bridge within the last session timeout, 0 once "
            "it has not (the bridge is then not ready, and its lag figures are stale).",
            registry=registry,
        )
