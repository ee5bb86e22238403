"""The benchmark runs end to end in its quick mode and writes every figure (no assertions on timing)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = ("ingestion", "lifecycle", "latency", "memory", "open_incidents", "burst", "simulation")


@pytest.mark.timeout(900)
def test_the_quick_benchmark_run_writes_numeric_results_for_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "ratio" in run.stdout  # the table

    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["meta"]["mode"] == "quick"
    benchmarks = document["benchmarks"]
    assert set(BENCHMARKS) <= set(benchmarks)
    for name in BENCHMARKS:
        results = benchmarks[name]["results"]
        assert results, f"{name} has no results"
        for figure, value in results.items():
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, figure, value)
            assert math.isfinite(value), (name, figure, value)
        for figure in benchmarks[name]["figures"]:
            assert figure["meaning"], (name, figure["name"])
    # The throughput and latency figures come with the raw capability they are compared with.
    for name, figure in (
        ("ingestion", "starts_per_second"),
        ("ingestion", "starts_per_second_sqlite"),
        ("lifecycle", "incidents_per_second"),
        ("lifecycle", "cpu_ms_per_incident"),
        ("latency", "p50_ms"),
        ("latency", "p99_ms"),
        ("memory", "kib_per_open_incident"),
        ("open_incidents", "firings_per_second_at_600"),
        ("open_incidents", "worker_rss_growth_mib_at_600"),
        ("burst", "all_dispatched_seconds"),
    ):
        assert f"{figure}_ratio" in benchmarks[name]["results"], (name, figure)
    assert "incidents_per_second" in benchmarks["simulation"]["results"]
    assert "simulated_days_per_second" in benchmarks["simulation"]["results"]


def test_an_update_replaces_the_benchmarks_run_again_and_keeps_the_others() -> None:
    from bench.run import updated

    earlier = {
        "meta": {"mode": "full", "finished_at": "yesterday"},
        "benchmarks": {"ingestion": {"results": {"a": 1}}, "simulation": {"results": {"b": 2}}},
    }
    again = {
        "meta": {"mode": "full", "finished_at": "today"},
        "sizes": {},
        "benchmarks": {"simulation": {"results": {"b": 3}, "run": {"finished_at": "today"}}},
    }
    document = updated(earlier, again)
    assert list(document["benchmarks"]) == ["ingestion", "simulation"]
    assert document["benchmarks"]["simulation"]["results"] == {"b": 3}
    assert document["benchmarks"]["ingestion"]["results"] == {"a": 1}
    assert document["benchmarks"]["ingestion"]["run"]["finished_at"] == "yesterday"
    assert document["meta"]["updated"] == ["simulation"]
