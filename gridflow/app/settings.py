"""gridflow's settings: `GRIDFLOW_*` environment variables (flags override them), on pydantic-settings.

Each variable is defined once, with its type, default and meaning, in the layer that uses it: the Kafka
side's in events.settings, the archive's in gridflow.archive.settings, the rest here. The README's
settings table is `settings_table()` (a test holds them equal), and the CLI's flags take their help
from the same fields (`add_setting_flag`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.settings import BridgeSettings
from gridflow.archive.settings import ArchiveSettings

ENV_PREFIX = "GRIDFLOW_"
# What a bad value of each kind reads as, after the variable's name.
_PROBLEMS = {
    "int_parsing": "is not a whole number",
    "bool_parsing": "is not true or false",
}


class SettingsError(ValueError):
    """A malformed setting; the message names the variable."""


class Settings(BridgeSettings, ArchiveSettings, BaseSettings):
    """Every setting of a gridflow process. `Settings.from_env()` (or `Settings()`) reads the
    environment; keyword arguments win over it. Secrets are `SecretStr`: never in a repr or a log."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="ignore", validate_default=False
    )

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="the Temporal frontend (host:port)")
    temporal_namespace: str = Field("default", description="the Temporal namespace")
    temporal_tls: bool = Field(
        False, description="TLS to Temporal (implied by a CA, client certificate or API key)"
    )
    temporal_tls_ca: str | None = Field(None, description="the server's CA (PEM file)")
    temporal_tls_cert: str | None = Field(None, description="client certificate for mutual TLS (PEM file)")
    temporal_tls_key: str | None = Field(None, description="its private key (PEM file)")
    temporal_api_key: SecretStr | None = Field(None, description="API key (Temporal Cloud); implies TLS")
    # Personal data
    codec_keys: SecretStr | None = Field(
        None,
        description="AES-256-GCM keys for payloads in Temporal, `id:base64key,...`, current first "
        "(unset: the worker, the bridge and the incident commands refuse to run; `gridflow dev` makes "
        "its own)",
    )
    codec_server_token: SecretStr | None = Field(
        None, description="the `Authorization` value `gridflow codec-server` requires"
    )
    allow_plaintext: bool = Field(
        False,
        description="let the worker and the bridge run without GRIDFLOW_CODEC_KEYS, payloads in clear "
        "(for tests and local experiments only)",
    )
    # The process
    rules_file: str | None = Field(
        None, description="the rules file, re-read when it changes (unset: built-in)"
    )
    metrics_port: int = Field(9464, description="the metrics endpoint (give a bridge its own, e.g. 9465)")
    metrics_host: str = Field(
        "127.0.0.1", description="the metrics endpoint's address (0.0.0.0 in a container)"
    )
    sdk_metrics_port: int = Field(9466, description="the Temporal SDK's worker metrics (0: off)")
    log_format: str | None = Field(
        None, description="console or json (unset: console on a terminal, else json)"
    )
    log_level: str = Field(
        "info",
        description="debug, info, warning, error or critical (one-shot commands: warning unless set)",
    )
    # Worker tuning (gridflow.app.worker_tuning; what each costs is in the README's capacity plan)
    worker_max_cached_workflows: int = Field(
        1000,
        ge=0,
        description="incidents a worker keeps in memory between their tasks (about 160 KiB each); "
        "one not cached replays its history on its next task",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        100, ge=2, description="workflow tasks a worker runs at once (at least 2)"
    )
    worker_max_concurrent_activities: int = Field(
        100, ge=1, description="activities (rule matching, publishing steps) a worker runs at once"
    )
    worker_sticky_queue_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="how long an incident's next task waits for the worker that cached it before "
        "any worker takes it (and replays): a killed worker's incidents are late by up to this",
    )
    worker_sandbox_passthrough: str = Field(
        "pydantic,pydantic_core,annotated_types,typing_extensions,typing_inspection",
        description="modules the workflow sandbox shares instead of re-importing for each incident it "
        "loads, comma-separated (side-effect-free libraries only)",
    )
    # Reports
    report_weights: str = Field(
        "response=30,resolution=35,satisfaction=35",
        description="the ranking score's weights over the rates, `rate=weight,...`",
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read the environment; a malformed value raises SettingsError naming its variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given (non-None) values of known settings replaced, as flags do."""
        known = {k: v for k, v in overrides.items() if k in type(self).model_fields and v is not None}
        if not known:
            return self
        values = {name: getattr(self, name) for name in type(self).model_fields}
        try:
            return type(self).model_validate({**values, **known})
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None


def revealed(secret: SecretStr | None) -> str | None:
    """A secret setting's text, for the one client that needs it."""
    return secret.get_secret_value() if secret is not None else None


def env_name(field: str) -> str:
    """The environment variable of a setting: `task_queue` -> GRIDFLOW_TASK_QUEUE."""
    return ENV_PREFIX + field.upper()


def _explain(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        what = _PROBLEMS.get(problem["type"], problem["msg"])
        lines.append(f"{env_name(field)}={problem.get('input')!r} {what}")
    return "; ".join(lines)


def _default_text(info: FieldInfo) -> str:
    default = info.get_default()
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def settings_table() -> str:
    """The README's settings table: every variable, its default and its meaning, in definition order."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = "unset" if info.get_default() is None else f"`{_default_text(info)}`"
        rows.append(f"| `{env_name(name)}` | {default} | {info.description or ''} |")
    return "\n".join(rows)


def add_setting_flag(
    group: argparse._ArgumentGroup | argparse.ArgumentParser,
    field: str,
    *flags: str,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
) -> None:
    """A flag that overrides a setting; its help is the setting's own, with its variable and default.

    The default is SUPPRESS: a flag given before the command must not be reset by the command's default.
    """
    info = Settings.model_fields[field]
    group.add_argument(
        *(flags or (f"--{field.replace('_', '-')}",)),
        dest=field,
        metavar=metavar,
        choices=choices,
        default=argparse.SUPPRESS,
        help=f"{info.description}: {env_name(field)}; default {_default_text(info)}",
    )


if __name__ == "__main__":  # python -m gridflow.app.settings: the README's table
    print(settings_table())
