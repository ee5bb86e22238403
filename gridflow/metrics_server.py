"""The Prometheus endpoint of a gridflow process, started and stopped with it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog
from prometheus_client import start_http_server

from gridflow.settings import Settings

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def serve_metrics(settings: Settings) -> Iterator[str]:
    """Serve every gridflow metric of this process on GRIDFLOW_METRICS_HOST:PORT; yields the URL."""
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    log.info("metrics served", url=url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
