"""Kafka clients built from the Kafka settings (security included), and topic creation."""

from __future__ import annotations

from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from events.settings import KafkaSettings

log = structlog.get_logger(__name__)


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """The connection and security options every Kafka client of gridflow shares."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_api_version_tuple is not None:
        config["api_version"] = settings.kafka_api_version_tuple
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        config["sasl_plain_password"] = password.get_secret_value() if password else None
    for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, f"kafka_{option}")
        if value:
            config[option] = value
    return config


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for every in-sync replica, so an acknowledged send is not lost."""
    return KafkaProducer(
        **client_config(settings),
        acks="all",
        retries=5,
        linger_ms=5,
        max_request_size=max(settings.max_message_bytes * 2, 1024 * 1024),
        **overrides,
    )


def make_consumer(settings: KafkaSettings, **overrides: Any) -> KafkaConsumer:
    """A group consumer with manual commits: the bridge commits only what Temporal acknowledged."""
    return KafkaConsumer(
        **client_config(settings),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 3, 1000),
        # kafka-python's default 500 ms wait for a fuller fetch was most of publish-to-start latency.
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=500,
        **overrides,
    )


def ensure_topics(settings: KafkaSettings, topics: list[str] | None = None) -> list[str]:
    """Create gridflow's topics where missing; return the names created."""
    wanted = topics or [settings.incidents_topic, settings.events_topic, settings.dlq_topic]
    admin = KafkaAdminClient(**client_config(settings))
    try:
        # Create and tolerate "already exists" rather than list first: listing parses ACL metadata
        # that some Kafka-API brokers (Tansu) fill in ways kafka-python rejects.
        created = []
        for name in wanted:
            try:
                admin.create_topics(
                    [NewTopic(name, settings.topic_partitions, settings.topic_replication)],
                    raise_errors=True,
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another process created it first
        if created:
            log.info("topics created", topics=created, partitions=settings.topic_partitions)
        return created
    finally:
        admin.close()
