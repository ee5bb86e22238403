"""The HTTP endpoint of a gridflow process: `/metrics` for Prometheus, `/healthz` and `/readyz` for
orchestrators. Started and stopped with the process; it serves the registry the process was given (the
composition root makes one per process), never prometheus_client's global one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from gridflow.app.settings import Settings

log = structlog.get_logger(__name__)


class Readiness:
    """Whether the process does its job yet (a worker polling, a bridge in its consumer group)."""

    def __init__(self) -> None:
        self._ready = threading.Event()

    def set(self, ready: bool = True) -> None:
        """Mark the process ready (or not, while it stops)."""
        if ready:
            self._ready.set()
        else:
            self._ready.clear()

    def __bool__(self) -> bool:
        return self._ready.is_set()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the log."""


def _app(registry: CollectorRegistry, readiness: Readiness) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":  # the process answers: alive
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = bool(readiness)
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"not ready\n"]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


@contextlib.contextmanager
def serve_metrics(
    settings: Settings, registry: CollectorRegistry, readiness: Readiness | None = None
) -> Iterator[str]:
    """Serve `registry` and the probes on GRIDFLOW_METRICS_HOST:PORT; yields the metrics URL."""
    readiness = readiness if readiness is not None else Readiness()
    server: WSGIServer = make_server(
        settings.metrics_host,
        settings.metrics_port,
        _app(registry, readiness),
        ThreadingWSGIServer,
        handler_class=_Quiet,
    )
    thread = threading.Thread(target=server.serve_forever, name="gridflow-metrics", daemon=True)
    thread.start()
    url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    log.info("metrics served", url=url, probes=["/healthz", "/readyz"])
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
