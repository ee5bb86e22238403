"""Settings from environment variables (flags override them); every one has a documented default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """gridflow's settings. `Settings.from_env()` reads `GRIDFLOW_*` variables."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "gridflow-incidents"
    rules_file: str | None = None
    metrics_port: int = 9464
    log_format: str | None = None  # console on a terminal, else json
    log_level: str = "info"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment."""
        return cls(
            temporal_address=_env("GRIDFLOW_TEMPORAL_ADDRESS", cls.temporal_address) or cls.temporal_address,
            temporal_namespace=_env("GRIDFLOW_TEMPORAL_NAMESPACE", cls.temporal_namespace)
            or cls.temporal_namespace,
            task_queue=_env("GRIDFLOW_TASK_QUEUE", cls.task_queue) or cls.task_queue,
            rules_file=_env("GRIDFLOW_RULES_FILE", None),
            metrics_port=int(_env("GRIDFLOW_METRICS_PORT", str(cls.metrics_port)) or cls.metrics_port),
            log_format=_env("GRIDFLOW_LOG_FORMAT", None),
            log_level=_env("GRIDFLOW_LOG_LEVEL", cls.log_level) or cls.log_level,
        )

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given (non-None) values replaced, as command-line flags do."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})
