"""Settings from environment variables (flags override them); every one has a documented default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    value = _env(name)
    try:
        return int(value) if value is not None else default
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not a whole number") from exc


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not true or false")


@dataclass(frozen=True)
class Settings:
    """gridflow's settings. `Settings.from_env()` reads the `GRIDFLOW_*` variables named beside each."""

    # Temporal
    temporal_address: str = "127.0.0.1:7233"  # GRIDFLOW_TEMPORAL_ADDRESS
    temporal_namespace: str = "default"  # GRIDFLOW_TEMPORAL_NAMESPACE
    task_queue: str = "gridflow-incidents"  # GRIDFLOW_TASK_QUEUE
    temporal_tls: bool = False  # GRIDFLOW_TEMPORAL_TLS
    temporal_tls_ca: str | None = None  # GRIDFLOW_TEMPORAL_TLS_CA (PEM file)
    temporal_tls_cert: str | None = None  # GRIDFLOW_TEMPORAL_TLS_CERT (client cert, PEM file)
    temporal_tls_key: str | None = None  # GRIDFLOW_TEMPORAL_TLS_KEY
    temporal_api_key: str | None = field(default=None, repr=False)  # GRIDFLOW_TEMPORAL_API_KEY (implies TLS)
    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"  # GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS
    kafka_api_version: str | None = None  # GRIDFLOW_KAFKA_API_VERSION ("2.5" for Tansu)
    kafka_security_protocol: str = "PLAINTEXT"  # GRIDFLOW_KAFKA_SECURITY_PROTOCOL
    kafka_sasl_mechanism: str | None = None  # GRIDFLOW_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, ...)
    kafka_sasl_username: str | None = None  # GRIDFLOW_KAFKA_SASL_USERNAME
    kafka_sasl_password: str | None = field(default=None, repr=False)  # GRIDFLOW_KAFKA_SASL_PASSWORD
    kafka_ssl_cafile: str | None = None  # GRIDFLOW_KAFKA_SSL_CAFILE
    kafka_ssl_certfile: str | None = None  # GRIDFLOW_KAFKA_SSL_CERTFILE
    kafka_ssl_keyfile: str | None = None  # GRIDFLOW_KAFKA_SSL_KEYFILE
    kafka_session_timeout_ms: int = 10000  # GRIDFLOW_KAFKA_SESSION_TIMEOUT_MS (a group join takes ~1/3)
    kafka_fetch_max_wait_ms: int = 100  # GRIDFLOW_KAFKA_FETCH_MAX_WAIT_MS (the broker's wait for more data)
    incidents_topic: str = "gridflow.incidents"  # GRIDFLOW_INCIDENTS_TOPIC
    events_topic: str = "gridflow.incident-events"  # GRIDFLOW_EVENTS_TOPIC
    dlq_topic: str = "gridflow.incidents.dlq"  # GRIDFLOW_DLQ_TOPIC
    consumer_group: str = "gridflow-bridge"  # GRIDFLOW_CONSUMER_GROUP
    topic_partitions: int = 6  # GRIDFLOW_TOPIC_PARTITIONS (used when gridflow creates missing topics)
    topic_replication: int = 1  # GRIDFLOW_TOPIC_REPLICATION
    max_message_bytes: int = 256 * 1024  # GRIDFLOW_MAX_MESSAGE_BYTES
    bridge_max_in_flight: int = 200  # GRIDFLOW_BRIDGE_MAX_IN_FLIGHT (Temporal calls at once)
    # Personal data: AES-GCM keys for payloads in Temporal (`id:base64key,...`, current first); never logged
    codec_keys: str | None = field(default=None, repr=False)  # GRIDFLOW_CODEC_KEYS (unset: no encryption)
    codec_server_token: str | None = field(default=None, repr=False)  # GRIDFLOW_CODEC_SERVER_TOKEN
    # Process
    rules_file: str | None = None  # GRIDFLOW_RULES_FILE (default: the built-in rules)
    metrics_port: int = 9464  # GRIDFLOW_METRICS_PORT (worker 9464; give the bridge its own, e.g. 9465)
    metrics_host: str = "127.0.0.1"  # GRIDFLOW_METRICS_HOST (0.0.0.0 in a container)
    sdk_metrics_port: int = 9466  # GRIDFLOW_SDK_METRICS_PORT (the Temporal SDK's worker metrics; 0 = off)
    log_format: str | None = None  # GRIDFLOW_LOG_FORMAT: console on a terminal, else json
    log_level: str = "info"  # GRIDFLOW_LOG_LEVEL

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment; a malformed value raises ValueError naming it."""
        d = cls()
        return cls(
            temporal_address=_env("GRIDFLOW_TEMPORAL_ADDRESS", d.temporal_address) or d.temporal_address,
            temporal_namespace=_env("GRIDFLOW_TEMPORAL_NAMESPACE", d.temporal_namespace)
            or d.temporal_namespace,
            task_queue=_env("GRIDFLOW_TASK_QUEUE", d.task_queue) or d.task_queue,
            temporal_tls=_bool("GRIDFLOW_TEMPORAL_TLS", d.temporal_tls),
            temporal_tls_ca=_env("GRIDFLOW_TEMPORAL_TLS_CA"),
            temporal_tls_cert=_env("GRIDFLOW_TEMPORAL_TLS_CERT"),
            temporal_tls_key=_env("GRIDFLOW_TEMPORAL_TLS_KEY"),
            temporal_api_key=_env("GRIDFLOW_TEMPORAL_API_KEY"),
            kafka_bootstrap_servers=_env("GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS", d.kafka_bootstrap_servers)
            or d.kafka_bootstrap_servers,
            kafka_api_version=_env("GRIDFLOW_KAFKA_API_VERSION"),
            kafka_security_protocol=_env("GRIDFLOW_KAFKA_SECURITY_PROTOCOL", d.kafka_security_protocol)
            or d.kafka_security_protocol,
            kafka_sasl_mechanism=_env("GRIDFLOW_KAFKA_SASL_MECHANISM"),
            kafka_sasl_username=_env("GRIDFLOW_KAFKA_SASL_USERNAME"),
            kafka_sasl_password=_env("GRIDFLOW_KAFKA_SASL_PASSWORD"),
            kafka_ssl_cafile=_env("GRIDFLOW_KAFKA_SSL_CAFILE"),
            kafka_ssl_certfile=_env("GRIDFLOW_KAFKA_SSL_CERTFILE"),
            kafka_ssl_keyfile=_env("GRIDFLOW_KAFKA_SSL_KEYFILE"),
            kafka_session_timeout_ms=_int("GRIDFLOW_KAFKA_SESSION_TIMEOUT_MS", d.kafka_session_timeout_ms),
            kafka_fetch_max_wait_ms=_int("GRIDFLOW_KAFKA_FETCH_MAX_WAIT_MS", d.kafka_fetch_max_wait_ms),
            incidents_topic=_env("GRIDFLOW_INCIDENTS_TOPIC", d.incidents_topic) or d.incidents_topic,
            events_topic=_env("GRIDFLOW_EVENTS_TOPIC", d.events_topic) or d.events_topic,
            dlq_topic=_env("GRIDFLOW_DLQ_TOPIC", d.dlq_topic) or d.dlq_topic,
            consumer_group=_env("GRIDFLOW_CONSUMER_GROUP", d.consumer_group) or d.consumer_group,
            topic_partitions=_int("GRIDFLOW_TOPIC_PARTITIONS", d.topic_partitions),
            topic_replication=_int("GRIDFLOW_TOPIC_REPLICATION", d.topic_replication),
            max_message_bytes=_int("GRIDFLOW_MAX_MESSAGE_BYTES", d.max_message_bytes),
            bridge_max_in_flight=_int("GRIDFLOW_BRIDGE_MAX_IN_FLIGHT", d.bridge_max_in_flight),
            codec_keys=_env("GRIDFLOW_CODEC_KEYS"),
            codec_server_token=_env("GRIDFLOW_CODEC_SERVER_TOKEN"),
            rules_file=_env("GRIDFLOW_RULES_FILE"),
            metrics_port=_int("GRIDFLOW_METRICS_PORT", d.metrics_port),
            metrics_host=_env("GRIDFLOW_METRICS_HOST", d.metrics_host) or d.metrics_host,
            sdk_metrics_port=_int("GRIDFLOW_SDK_METRICS_PORT", d.sdk_metrics_port),
            log_format=_env("GRIDFLOW_LOG_FORMAT"),
            log_level=_env("GRIDFLOW_LOG_LEVEL", d.log_level) or d.log_level,
        )

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given (non-None) values replaced, as command-line flags do."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})

    @property
    def kafka_api_version_tuple(self) -> tuple[int, ...] | None:
        """`kafka_api_version` as kafka-python wants it: "2.5" -> (2, 5); None negotiates."""
        if not self.kafka_api_version:
            return None
        try:
            return tuple(int(part) for part in self.kafka_api_version.split("."))
        except ValueError as exc:
            raise ValueError(
                f"GRIDFLOW_KAFKA_API_VERSION={self.kafka_api_version!r} is not like 2.5"
            ) from exc
