"""What the Kafka side needs to know: its brokers, security, topics and the bridge's limits.

Each setting is defined once, here, with its type, default and meaning; the application's settings
(gridflow.app.settings) read them from `GRIDFLOW_*` variables and flags, and hand them down.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class KafkaSettings(BaseModel):
    """Connecting to Kafka, and gridflow's topics."""

    model_config = ConfigDict(frozen=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="brokers, comma-separated")
    kafka_api_version: str | None = Field(
        None, description='the Kafka API version to speak, e.g. "2.5" for Tansu (unset: negotiate)'
    )
    kafka_security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(None, description="the SASL user")
    kafka_sasl_password: SecretStr | None = Field(None, description="the SASL password (never logged)")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle (PEM) to trust the brokers by")
    kafka_ssl_certfile: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    kafka_ssl_keyfile: str | None = Field(None, description="its private key (PEM)")
    kafka_session_timeout_ms: int = Field(
        10000, description="consumer group session timeout (a group join takes about a third)"
    )
    kafka_fetch_max_wait_ms: int = Field(100, description="how long the broker waits for more data to fetch")
    incidents_topic: str = Field("gridflow.incidents", description="inbound events")
    events_topic: str = Field("gridflow.incident-events", description="lifecycle events out")
    # Off by default: every consumer of the events topic would get people's own words (a resident's
    # comment often holds a name, a phone number or an address), and Kafka does not encrypt them.
    events_include_notes: bool = Field(
        False,
        description="put the words people wrote (handlers' names, resolutions, progress notes, residents' "
        "comments) in lifecycle events; off: `note` is null and `has_note` says one was written",
    )
    dlq_topic: str = Field("gridflow.incidents.dlq", description="dead letters")
    consumer_group: str = Field("gridflow-bridge", description="the bridge's consumer group")
    topic_partitions: int = Field(6, description="partitions of the topics gridflow creates when missing")
    topic_replication: int = Field(1, description="replication factor of the topics gridflow creates")
    max_message_bytes: int = Field(
        256 * 1024, description="largest inbound message accepted; larger ones are dead-lettered"
    )

    @field_validator("kafka_api_version")
    @classmethod
    def _version_like_2_5(cls, value: str | None) -> str | None:
        if value and not all(part.isdigit() for part in value.split(".")):
            raise ValueError(f"{value!r} is not like 2.5")
        return value

    @property
    def kafka_api_version_tuple(self) -> tuple[int, ...] | None:
        """`kafka_api_version` as kafka-python wants it: "2.5" -> (2, 5); None negotiates."""
        if not self.kafka_api_version:
            return None
        return tuple(int(part) for part in self.kafka_api_version.split("."))


class BridgeSettings(KafkaSettings):
    """The bridge's: Kafka, the task queue incidents start on, and how many Temporal calls at once."""

    task_queue: str = Field(
        "gridflow-incidents", description="the task queue incidents run on (the worker polls it)"
    )
    bridge_max_in_flight: int = Field(
        200, description="the bridge's Temporal calls at once; more pauses the partitions"
    )
    # One incident's messages run one by one: a flood of them would fill the in-flight limit, and the
    # pause at the limit would stop every other incident with it.
    bridge_max_per_incident: int | None = Field(
        None,
        ge=1,
        description="messages one incident may hold in the bridge (running, or queued behind its earlier "
        "ones); at that many only its partition is paused, until it holds half as many (unset: a quarter "
        "of GRIDFLOW_BRIDGE_MAX_IN_FLIGHT, 50 with its default)",
    )

    @property
    def bridge_per_incident_cap(self) -> int:
        """`bridge_max_per_incident`, or a quarter of the in-flight limit (at least 2, so that half of it
        leaves the incident something queued); never above that limit."""
        cap = self.bridge_max_per_incident or max(2, self.bridge_max_in_flight // 4)
        return max(1, min(cap, self.bridge_max_in_flight))
