"""Settings reach the clients: every GRIDFLOW_* variable, Kafka security and Temporal TLS."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import TLSConfig

from events.kafka import client_config
from gridflow.app.settings import Settings, env_name, revealed, settings_table
from gridflow.app.temporal import tls_config


def test_environment_variables_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "GRIDFLOW_TEMPORAL_ADDRESS": "temporal.city.gov:7233",
        "GRIDFLOW_TEMPORAL_NAMESPACE": "gridflow",
        "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "GRIDFLOW_KAFKA_API_VERSION": "2.5",
        "GRIDFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GRIDFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "GRIDFLOW_KAFKA_SASL_USERNAME": "gridflow",
        "GRIDFLOW_KAFKA_SASL_PASSWORD": "s3cret",
        "GRIDFLOW_KAFKA_SSL_CAFILE": "/etc/kafka/ca.crt",
        "GRIDFLOW_BRIDGE_MAX_IN_FLIGHT": "50",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.temporal_address, settings.temporal_namespace) == ("temporal.city.gov:7233", "gridflow")
    assert settings.bridge_max_in_flight == 50
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # secrets never reach a log line through the settings


def test_kafka_security_settings_reach_every_kafka_client() -> None:
    settings = Settings(
        kafka_bootstrap_servers="k1:9093,k2:9093",
        kafka_api_version="2.5",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="gridflow",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile="/etc/kafka/ca.crt",
    )
    assert client_config(settings) == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SASL_SSL",
        "api_version": (2, 5),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "gridflow",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka/ca.crt",
    }


def test_temporal_tls_is_off_by_default_and_on_with_a_ca_a_client_certificate_or_an_api_key(
    tmp_path: Path,
) -> None:
    assert tls_config(Settings()) is False
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_bytes(f"-----{path.name}-----".encode())
    mutual = tls_config(
        Settings(temporal_tls_ca=str(ca), temporal_tls_cert=str(cert), temporal_tls_key=str(key))
    )
    assert isinstance(mutual, TLSConfig)
    assert (mutual.server_root_ca_cert, mutual.client_cert, mutual.client_private_key) == (
        b"-----ca.pem-----",
        b"-----client.pem-----",
        b"-----client.key-----",
    )
    assert isinstance(tls_config(Settings(temporal_api_key="key")), TLSConfig)


def test_a_malformed_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_BRIDGE_MAX_IN_FLIGHT", "many")
    with pytest.raises(ValueError, match="GRIDFLOW_BRIDGE_MAX_IN_FLIGHT='many' is not a whole number"):
        Settings.from_env()


def test_the_readme_settings_table_is_the_settings_definitions() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "regenerate the README's table: python -m gridflow.app.settings"


def test_a_setting_is_defined_once_with_its_variable_default_and_meaning() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description, f"{env_name(name)} has no description"
    assert env_name("kafka_bootstrap_servers") == "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS"
    assert "| `GRIDFLOW_BRIDGE_MAX_IN_FLIGHT` | `200` |" in settings_table()


def test_secrets_are_secret_strings_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_CODEC_KEYS", "k1:c2VjcmV0")
    monkeypatch.setenv("GRIDFLOW_TEMPORAL_API_KEY", "api-key-1")
    settings = Settings.from_env()
    assert "c2VjcmV0" not in repr(settings) and "api-key-1" not in repr(settings)
    assert "c2VjcmV0" not in settings.model_dump_json()
    assert revealed(settings.temporal_api_key) == "api-key-1"


def test_flags_override_the_environment_and_an_unset_flag_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_TASK_QUEUE", "from-env")
    settings = Settings.from_env()
    assert settings.with_overrides(task_queue=None).task_queue == "from-env"
    assert settings.with_overrides(task_queue="from-flag", unrelated="x").task_queue == "from-flag"
    with pytest.raises(ValueError, match="GRIDFLOW_METRICS_PORT='x' is not a whole number"):
        settings.with_overrides(metrics_port="x")


def test_plaintext_is_refused_unless_allowed_outright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDFLOW_ALLOW_PLAINTEXT", raising=False)
    assert Settings.from_env().allow_plaintext is False
    monkeypatch.setenv("GRIDFLOW_ALLOW_PLAINTEXT", "true")
    assert Settings.from_env().allow_plaintext is True
    monkeypatch.setenv("GRIDFLOW_ALLOW_PLAINTEXT", "maybe")
    with pytest.raises(ValueError, match="GRIDFLOW_ALLOW_PLAINTEXT='maybe' is not true or false"):
        Settings.from_env()
    assert "| `GRIDFLOW_ALLOW_PLAINTEXT` | `false` |" in settings_table()
