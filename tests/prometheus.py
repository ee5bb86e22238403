"""A real Prometheus for tests: Debian's `prometheus` package, started on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port


def binary(name: str) -> str:
    """The path of a Prometheus binary; a clear failure when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: run `make deps` (installs Debian's `prometheus` package, "
            "which provides /usr/bin/prometheus and /usr/bin/promtool)",
            pytrace=False,
        )
    return path


def api(url: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    """Call Prometheus's HTTP API (POST when there are parameters); returns the decoded JSON."""
    data = urllib.parse.urlencode(params).encode() if params is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data=data), timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as error:  # 4xx with the error in the JSON body
        body = error.read()
    loaded: dict[str, Any] = json.loads(body)
    return loaded


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector; fails the test on a query error."""
    answer = api(url, "/api/v1/query", {"query": expr})
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@contextlib.contextmanager
def running_prometheus(config: dict[str, Any]) -> Iterator[str]:
    """Prometheus with this configuration on a free port; yields its base URL and stops it after."""
    executable = binary("prometheus")
    with tempfile.TemporaryDirectory(prefix="gridflow-prometheus-") as tmp:
        config_path = Path(tmp) / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "prometheus.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    executable,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={Path(tmp) / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"prometheus did not become ready:\n{log_path.read_text()}", pytrace=False)
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


#: The shipped recording rules.
RECORDING_RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "recording_rules.yml"


def scraping_gridflow(metrics_port: int) -> dict[str, Any]:
    """A configuration that scrapes a gridflow metrics port every second and evaluates the shipped
    recording rules every second."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RECORDING_RULES)],
        "scrape_configs": [
            {"job_name": "gridflow-worker", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
        ],
    }


async def until_seen(url: str, expr: str, value: float | None = None) -> None:
    """Wait (20 s at most) until `expr` has a result, equal to `value` when one is given."""
    for _ in range(100):
        seen = query(url, expr)
        if seen and (value is None or float(seen[0]["value"][1]) == value):
            return
        await asyncio.sleep(0.2)


def district_rate(url: str, name: str, district: str) -> float:
    """A district's 5-minute ratio from the recording rules (`district:gridflow_<name>:ratio_rate5m`)."""
    result = query(url, f'district:gridflow_{name}:ratio_rate5m{{district="{district}"}}')
    assert len(result) == 1, f"{name}: {result}"
    return float(result[0]["value"][1])
