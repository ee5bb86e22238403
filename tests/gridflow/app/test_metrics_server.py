"""The process endpoint: metrics for Prometheus, liveness and readiness for orchestrators."""

from __future__ import annotations

import urllib.error
import urllib.request

from gridflow.app.metrics_server import Readiness, serve_metrics
from gridflow.app.settings import Settings
from tests.conftest import free_port


def status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_endpoint_answers_liveness_at_once_and_readiness_once_the_process_is_ready() -> None:
    settings = Settings(metrics_port=free_port())
    readiness = Readiness()
    with serve_metrics(settings, readiness) as metrics_url:
        base = metrics_url.removesuffix("/metrics")
        assert status(base + "/healthz") == (200, "ok\n")
        assert status(base + "/readyz") == (503, "not ready\n")
        readiness.set()
        assert status(base + "/readyz") == (200, "ready\n")
        code, body = status(metrics_url)
        assert code == 200 and "gridflow_incidents_closed_total" in body
    # Stopped with the process: the port is free again.
    with serve_metrics(settings):
        pass
