"""The process endpoint: metrics for Prometheus, liveness and readiness for orchestrators."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest

import events.metrics  # noqa: F401  (the bridge's metrics: still in the global registry, at import)
from activities.metrics import LifecycleMetrics
from gridflow.app.compose import process_registry
from gridflow.app.metrics_server import Readiness, serve_metrics
from gridflow.app.settings import Settings
from tests.conftest import free_port


def status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def families(exposition: str) -> set[str]:
    """The metric families named in a text exposition."""
    return {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}


def test_the_endpoint_answers_liveness_at_once_and_readiness_once_the_process_is_ready() -> None:
    settings = Settings(metrics_port=free_port())
    registry = CollectorRegistry()
    LifecycleMetrics(registry)
    readiness = Readiness()
    with serve_metrics(settings, registry, readiness) as metrics_url:
        base = metrics_url.removesuffix("/metrics")
        assert status(base + "/healthz") == (200, "ok\n")
        assert status(base + "/readyz") == (503, "not ready\n")
        readiness.set()
        assert status(base + "/readyz") == (200, "ready\n")
        code, body = status(metrics_url)
        assert code == 200 and "gridflow_incidents_closed_total" in body
    # Stopped with the process: the port is free again.
    with serve_metrics(settings, registry):
        pass


def test_the_endpoint_serves_exactly_its_process_registry_whatever_was_imported_before() -> None:
    # Another process's metrics, made and counted in this one first: none of it may reach the endpoint.
    other = LifecycleMetrics(process_registry())
    other.received.labels(category="drain", priority="normal", district="d-other", rule="default").inc()
    registry = process_registry()
    LifecycleMetrics(registry)
    with serve_metrics(Settings(metrics_port=free_port()), registry) as metrics_url:
        code, body = status(metrics_url)

    assert code == 200
    assert families(body) == families(generate_latest(registry).decode())
    assert "gridflow_incidents_received_total" in body and "d-other" not in body
    assert "gridflow_bridge_" not in body  # the global registry's, from the import above
