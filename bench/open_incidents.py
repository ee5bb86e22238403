"""Many open incidents on one worker: clock firings handled per second, their lag, memory and costs.

A fresh process of its own (`python -m bench.open_incidents`), against the benchmark's Temporal dev server
with SQLite. It holds N open incidents on one worker and makes their clocks fire at chosen instants:

- Every incident is opened as the state an overdue incident carries over a continue-as-new (matched,
  dispatched, its accept clock run out at the top of a one-level ladder, reminded every day), built by the
  lifecycle core itself; only its next reminder is set by the benchmark. Opening costs one start and one
  workflow task, so 50,000 open in minutes rather than hours of matching and dispatching.
- Most incidents are quiet (their reminder is a day away): they are the city's open cases, in the
  history store and the visibility index, out of the worker's cache.
- The *capacity* set's reminders are all due at one instant: the worker works through that backlog as fast
  as it can, so their count over the time to the last one is the clock firings it handles per second.
- The *lag* set's reminders are due one after the other at half that rate: the time from each one's due
  instant to its step reaching the step sink is the lag.
- Each set is opened before a flush of quiet incidents larger than the worker's cache, so that with more
  open incidents than the cache holds every firing replays its incident's history, as it would in a city;
  with fewer, every firing finds its incident cached.

At the end it times one open-incidents gauge refresh, one `incident list --count`'s queries and one page of
`incident list`, and prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from bench.figures import Benchmark, Figure
from bench.stack import (
    free_port,
    percentile,
    progress,
    quiet_logs,
    rss_bytes,
    rss_of,
    sdk_counter,
    server_pid,
    temporal_server,
)
from events import contract
from gridflow.app.codec import Keyring, data_converter, generate_key
from gridflow.app.compose import build_worker
from gridflow.app.open_incidents import OPEN_STATUSES, count_incidents
from gridflow.app.settings import Settings
from gridflow.app.temporal import sdk_metrics_runtime
from gridflow.app.worker_tuning import WorkerTuning
from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident, Status
from gridflow.domain.lifecycle import IncidentState, StepBatch, StepKind
from gridflow.domain.rules.loader import RulesSource
from gridflow.domain.rules.model import RuleSnapshot
from tests.events.samples import sample_data
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow
from workflows.input import IncidentInput

#: The benchmark's rule: one level, so an accept timeout makes the incident overdue (reminded), and a
#: day between reminders, so each incident's reminder fires once in a run.
RULES = """\
version: bench-open-incidents
rules:
  - name: bench-overdue
    match: {}
    ladder:
      grid: {accept: 1m, resolve: 1d}
    warn_at: []
    overdue_reminder: 1d
"""
LEVEL = "grid"
OPEN_CONCURRENCY = 64  # starts in flight while opening
MARGIN_SECONDS = 3.0  # between the end of opening (estimated) and the first planned firing
QUIET_FOR = timedelta(days=1)
SETTLE_SECONDS = 2.0  # no workflow task and an idle server for this long: opening is over
SERVER_IDLE_SHARE = 0.1  # of one CPU
REPO = Path(__file__).resolve().parent.parent


class StepClock:
    """A step sink that notes when each incident's reminder reaches it (wall clock), and its instant."""

    def __init__(self) -> None:
        self.reminded: dict[str, tuple[float, datetime]] = {}

    async def publish(self, batch: StepBatch) -> None:
        """Note the batch's reminder steps."""
        arrived = time.time()
        for step in batch.steps:
            if step.kind is StepKind.OVERDUE_REMINDER:
                self.reminded.setdefault(batch.incident_id, (arrived, step.at))


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used: this one's, or another's from /proc (0: unknown)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time of this process (the worker) and of the Temporal server over one phase."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.marks = (cpu_seconds(None), cpu_seconds(server_pid) if server_pid else 0.0)

    def per(self, count: int) -> dict[str, float]:
        """Milliseconds of CPU per `count` (e.g. firings) since the meter was made, worker and server."""
        worker = cpu_seconds(None) - self.marks[0]
        server = cpu_seconds(self.server_pid) - self.marks[1] if self.server_pid else 0.0
        return {"worker_cpu_ms": 1000 * worker / count, "server_cpu_ms": 1000 * server / count}


@dataclass
class Opener:
    """Opens incidents as carried-over overdue states, each with its next reminder when asked."""

    client: Client
    task_queue: str
    snapshot: RuleSnapshot
    prefix: str = field(default_factory=lambda: f"open-{uuid.uuid4().hex[:6]}")
    opened: int = 0
    seconds: float = 0.0  # spent opening

    def state(self, incident: Incident, remind_at: datetime) -> IncidentState:
        """The state of an incident reported two minutes ago and overdue since one minute ago."""
        reported = datetime.now(UTC) - timedelta(minutes=2)
        state, _ = lifecycle.report(incident, reported)
        lifecycle.start(state, incident, self.snapshot, reported)
        lifecycle.fire_due(state, incident, reported + timedelta(minutes=1))
        assert state.overdue and state.next_reminder_at is not None, "the bench rule must end overdue"
        state.next_reminder_at = remind_at
        return state

    async def open(self, remind_at: list[datetime]) -> list[str]:
        """Open one incident per instant, each reminded then; return their ids."""
        began = time.perf_counter()
        ids = [f"{self.prefix}-{self.opened + number:06d}" for number in range(len(remind_at))]
        self.opened += len(ids)
        queue: asyncio.Queue[tuple[str, datetime]] = asyncio.Queue()
        for pair in zip(ids, remind_at, strict=True):
            queue.put_nowait(pair)

        async def lane() -> None:
            while not queue.empty():
                incident_id, at = queue.get_nowait()
                await self._start(incident_id, at)

        await asyncio.gather(*(lane() for _ in range(OPEN_CONCURRENCY)))
        self.seconds += time.perf_counter() - began
        return ids

    async def _start(self, incident_id: str, remind_at: datetime) -> None:
        incident = Incident.model_validate(sample_data(contract.REPORTED, incident_id))
        state = self.state(incident, remind_at)
        # What the workflow upserts as it takes its steps (a run carried over keeps its attributes).
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(sa.CATEGORY, state.category),
                SearchAttributePair(sa.PRIORITY, state.priority.value),
                SearchAttributePair(sa.DISTRICT, state.district_id),
                SearchAttributePair(sa.LEVEL, LEVEL),
                SearchAttributePair(sa.STATUS, state.status.value),
                SearchAttributePair(sa.RULE, self.snapshot.rule.name),
            ]
        )
        await self.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident=incident, carried=state),
            id=incident.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=attributes,
        )

    def rate(self) -> float:
        """Incidents opened per second so far."""
        return self.opened / self.seconds if self.seconds else 0.0


async def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    """Poll `check` every 50 ms until it holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def timed(call: Callable[[], Awaitable[Any]], repeat: int = 3) -> float:
    """The best of `repeat` runs of `call`, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        best = min(best, time.perf_counter() - began)
    return best


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Open the stage's incidents, fire the two sets, and read every figure."""
    quiet_logs()
    metrics_port = free_port()
    runtime = sdk_metrics_runtime(Settings(metrics_host="127.0.0.1", sdk_metrics_port=metrics_port))
    # Payloads encrypted, as a production worker's are (GRIDFLOW_CODEC_KEYS is required).
    converter = data_converter(Keyring.parse(f"k1:{generate_key()}"))
    client = await Client.connect(
        args.address, namespace=args.namespace, data_converter=converter, runtime=runtime
    )
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-open-") as folder:
        rules_file = Path(folder) / "rules.yaml"
        rules_file.write_text(RULES, encoding="utf-8")
        rules = RulesSource(str(rules_file))
        snapshot = rules.current().snapshot_for(
            Incident.model_validate(sample_data(contract.REPORTED, "probe"))
        )
        tuning = WorkerTuning.defaults()
        cache = tuning.max_cached_workflows
        queue = f"bench-open-{uuid.uuid4().hex[:6]}"
        clock = StepClock()
        opener = Opener(client, queue, snapshot)
        worker = build_worker(client, queue, rules, sinks=[clock], tuning=tuning)
        total, capacity_set, lag_set = args.open, args.capacity_firings, args.lag_firings
        # With more open than cached, a flush larger than the cache pushes each set out of it.
        flush = cache + 200 if total > cache else max(1, total // 10)
        bulk = total - capacity_set - lag_set - 2 * flush
        if bulk < 200:  # the first 200 or more tell the opening rate, from which the sets are timed
            raise SystemExit(f"{total} open is too few for sets of {capacity_set} and {lag_set}")
        result: dict[str, Any] = {
            "open": total,
            "max_cached_workflows": cache,
            "capacity_firings": capacity_set,
            "lag_firings": lag_set,
            "flush": flush,
        }

        def tasks_done() -> float:
            return sdk_counter(metrics_port, "temporal_workflow_task_execution_latency_count")

        async def settle(before: datetime | None = None) -> bool:
            """Wait until every opened incident has had its first workflow task (its timer is set) and
            the server has caught up with its own work: no workflow task for a while, the server idle.
            False when `before` comes first (the planned firings then began during the opening)."""
            # The worker takes the opened incidents' first tasks at some 40 a second here: a bound that
            # grows with the stage (50,000 open needed more than 15 minutes after the last start).
            deadline = time.monotonic() + max(args.seconds, opener.opened / 20)
            tasks, server = tasks_done(), cpu_seconds(args.server_pid) if args.server_pid else 0.0
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < SETTLE_SECONDS:
                if time.monotonic() > deadline:
                    raise SystemExit("the worker and the server never went quiet after opening")
                if before is not None and datetime.now(UTC) >= before:
                    return False
                await asyncio.sleep(0.5)
                now_tasks = tasks_done()
                now_server = cpu_seconds(args.server_pid) if args.server_pid else 0.0
                if now_tasks != tasks or now_server - server > 0.5 * SERVER_IDLE_SHARE:
                    quiet_since = time.monotonic()
                tasks, server = now_tasks, now_server
            return True

        quiet = datetime.now(UTC) + QUIET_FOR
        async with worker:
            baseline_rss = rss_bytes()
            progress(f"open incidents: opening {bulk:,} quiet incidents")
            began = time.monotonic()
            await opener.open([quiet] * bulk)
            await settle()
            # Opened and settled per second: what the sets' opening is timed by, with a margin.
            rate = bulk / (time.monotonic() - began)
            result["open_rate"] = opener.rate()
            result["open_settled_rate"] = rate
            gc.collect()
            result["rss_after_bulk_bytes"] = rss_bytes()

            # The capacity set: every reminder due at one instant, after the flush is open.
            due = datetime.now(UTC) + timedelta(seconds=(capacity_set + flush) / rate * 1.5 + MARGIN_SECONDS)
            capacity_ids = await opener.open([due] * capacity_set)
            await opener.open([quiet] * flush)
            overran = not await settle(before=due)
            settled = time.time()
            meter = CpuMeter(args.server_pid)
            progress(f"open incidents: {opener.opened:,} open; {capacity_set:,} reminders due at once")
            if not await wait_for(lambda: all(i in clock.reminded for i in capacity_ids), args.seconds):
                raise SystemExit("the capacity set's reminders did not all arrive")
            # Counted from the due instant, or from the end of opening if that came later (the worker
            # then shared its time with the last openings): the backlog is worked off in that window.
            window_start = max(due.timestamp(), settled)
            arrivals = sorted(clock.reminded[i][0] for i in capacity_ids)
            counted = [at for at in arrivals if at >= window_start]
            window = arrivals[-1] - window_start
            capacity = len(counted) / window if window > 0 else 0.0
            result["capacity"] = {
                "firings_per_second": capacity,
                "firings_counted": len(counted),
                "seconds": window,
                "opening_overran": overran,
                **meter.per(len(counted)),
            }
            progress(f"open incidents: {capacity:.0f} firings/s handled with {opener.opened:,} open")

            # The lag set: reminders one after the other at half that rate.
            lag_rate = capacity / 2 if args.lag_rate <= 0 else args.lag_rate
            start = datetime.now(UTC) + timedelta(seconds=(lag_set + flush) / rate * 1.5 + MARGIN_SECONDS)
            planned = [start + timedelta(seconds=number / lag_rate) for number in range(lag_set)]
            random.Random(total).shuffle(planned)  # opened in another order than they fire
            lag_ids = await opener.open(planned)
            await opener.open([quiet] * flush)
            overran = not await settle(before=start)
            meter = CpuMeter(args.server_pid)
            due_of = dict(zip(lag_ids, planned, strict=True))
            if not await wait_for(
                lambda: all(i in clock.reminded for i in lag_ids), lag_set / lag_rate + args.seconds
            ):
                raise SystemExit("the lag set's reminders did not all arrive")
            lags = [clock.reminded[i][0] - due_of[i].timestamp() for i in lag_ids]
            timer_lags = [(clock.reminded[i][1] - due_of[i]).total_seconds() for i in lag_ids]
            result["lag"] = {
                "rate_per_second": lag_rate,
                "p50_seconds": percentile(lags, 0.5),
                "p99_seconds": percentile(lags, 0.99),
                "max_seconds": max(lags),
                "workflow_p99_seconds": percentile(timer_lags, 0.99),
                "opening_overran": overran,
                **meter.per(lag_set),
            }
            progress(
                f"open incidents: lag at {lag_rate:.0f}/s p50 {percentile(lags, 0.5) * 1000:.0f} ms, "
                f"p99 {percentile(lags, 0.99) * 1000:.0f} ms"
            )
            gc.collect()
            result["rss_bytes"] = rss_bytes()
            result["baseline_rss_bytes"] = baseline_rss
            firings = capacity_set + lag_set
            result["cache"] = {
                "hits": sdk_counter(metrics_port, "temporal_sticky_cache_hit_total"),
                "misses": sdk_counter(metrics_port, "temporal_sticky_cache_miss_total"),
                "forced_evictions": sdk_counter(
                    metrics_port, "temporal_sticky_cache_total_forced_eviction_total"
                ),
                "firings": firings,
            }

        # Operations at this size, with the worker stopped (so it does not share the CPU with them).
        levels = [LEVEL]
        result["operations_seconds"] = {
            "gauge_refresh": await timed(lambda: count_incidents(client, levels, OPEN_STATUSES)),
            "list_count": await timed(lambda: count_incidents(client, levels, list(Status), query=LIST_ALL)),
            "list_page": await timed(lambda: first_page(client)),
        }
        open_counts = await count_incidents(client, levels, OPEN_STATUSES)
        result["counted_open"] = sum(open_counts.values())
    return result


LIST_ALL = "WorkflowType = 'IncidentWorkflow'"


async def first_page(client: Client) -> None:
    """One page of `gridflow incident list` (50 rows)."""
    page = client.list_workflows(LIST_ALL, page_size=50)
    await page.fetch_next_page()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(prog="python -m bench.open_incidents")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--open", type=int, required=True, help="incidents held open")
    parser.add_argument("--capacity-firings", type=int, required=True, help="reminders due at one instant")
    parser.add_argument("--lag-firings", type=int, required=True, help="reminders due one after another")
    parser.add_argument("--lag-rate", type=float, default=0.0, help="their rate (0: half the capacity)")
    parser.add_argument("--seconds", type=float, default=600.0, help="time bound of each wait")
    parser.add_argument("--server-pid", type=int, help="the Temporal server's process, for its CPU time")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Stage:
    """One size of the benchmark: incidents held open, and the two sets of firings among them."""

    open: int
    capacity_firings: int
    lag_firings: int


async def run_stage(stage: Stage, seconds: float) -> dict[str, Any]:
    """One stage on a fresh dev server persisting to SQLite, the worker in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-open-") as folder:
        database = Path(folder) / "temporal.db"
        async with temporal_server(database) as env:
            pid = server_pid()
            command = [
                sys.executable,
                "-m",
                "bench.open_incidents",
                "--address",
                env.client.service_client.config.target_host,
                "--namespace",
                env.client.namespace,
                "--open",
                str(stage.open),
                "--capacity-firings",
                str(stage.capacity_firings),
                "--lag-firings",
                str(stage.lag_firings),
                "--seconds",
                str(seconds),
            ]
            if pid is not None:
                command += ["--server-pid", str(pid)]
            progress(f"open incidents: {stage.open:,} open on a SQLite server, worker in a fresh process")
            child = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, cwd=REPO)
            out, _ = await child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"the open-incidents child failed with exit code {child.returncode}")
            result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
            result["server_rss_bytes"] = rss_of(pid) if pid is not None else 0
            files = [database, *database.parent.glob(database.name + "-*")]  # -wal, -shm
            result["database_bytes"] = sum(path.stat().st_size for path in files if path.exists())
    return result


def benchmark(stages: list[dict[str, Any]]) -> Benchmark:
    """The figures of every stage; firing rates and memory against the smallest stage's."""
    first = stages[0]
    figures = Benchmark(
        name="open_incidents",
        params={
            "stages": [stage["open"] for stage in stages],
            "max_cached_workflows": first["max_cached_workflows"],
            "capacity_firings": [stage["capacity_firings"] for stage in stages],
            "lag_firings": [stage["lag_firings"] for stage in stages],
            "open_rates": [round(stage["open_settled_rate"], 1) for stage in stages],
            "server": "Temporal dev server, SQLite (--db-filename), fresh per stage",
            "payloads": "encrypted (AES-256-GCM), as in production",
        },
    )
    base_rate = first["capacity"]["firings_per_second"]
    base_rss = first["rss_bytes"] - first["baseline_rss_bytes"]
    for stage in stages:
        n = stage["open"]
        capacity, lag, cache = stage["capacity"], stage["lag"], stage["cache"]
        rate = capacity["firings_per_second"]
        figures.add(
            Figure(
                f"firings_per_second_at_{n}",
                rate,
                "firings/s",
                f"clock firings (overdue reminders) one worker handles per second with {n:,} incidents open, "
                f"{stage['capacity_firings']:,} due at once; baseline: the same at {first['open']:,} open",
                baseline=base_rate if stage is not first else None,
            )
        )
        if stage is not first:
            figures.add(
                Figure(
                    f"firings_ratio_at_{n}",
                    rate / base_rate,
                    "ratio",
                    f"firings per second at {n:,} open over the figure at {first['open']:,}",
                    target=0.8,
                )
            )
        figures.add(
            Figure(
                f"lag_p99_seconds_at_{n}",
                lag["p99_seconds"],
                "s",
                f"p99 from a reminder's due instant to its step reaching the sink, "
                f"{lag['rate_per_second']:.1f} reminders/s (half the capacity) with {n:,} open; "
                f"p50 {lag['p50_seconds'] * 1000:.0f} ms",
                target=1.0,
                at_most=True,
            )
        )
        growth = stage["rss_bytes"] - stage["baseline_rss_bytes"]
        figures.add(
            Figure(
                f"worker_rss_growth_mib_at_{n}",
                growth / 2**20,
                "MiB",
                f"the worker process's RSS growth over its start with {n:,} open (cache "
                f"{stage['max_cached_workflows']:,}); baseline: the same at {first['open']:,}",
                baseline=base_rss / 2**20 if stage is not first else None,
            )
        )
        figures.add(
            Figure(f"server_rss_mib_at_{n}", stage["server_rss_bytes"] / 2**20, "MiB", "the dev server's RSS")
        )
        figures.add(
            Figure(
                f"database_bytes_per_incident_at_{n}",
                stage["database_bytes"] / n,
                "bytes",
                "the SQLite files (database, WAL) over the incidents open",
            )
        )
        for side in ("worker", "server"):
            figures.add(
                Figure(
                    f"{side}_cpu_ms_per_firing_at_{n}",
                    capacity[f"{side}_cpu_ms"],
                    "ms",
                    f"the {side}'s CPU time per firing while the backlog was worked off",
                )
            )
        figures.add(
            Figure(
                f"cache_misses_per_firing_at_{n}",
                cache["misses"] / cache["firings"],
                "misses",
                "workflow tasks of an incident not in the worker's cache (each replays its history)",
            )
        )
        operations = stage["operations_seconds"]
        for name, meaning in (
            ("gauge_refresh", "one refresh of the open-incidents gauge (4 count queries)"),
            ("list_count", "`gridflow incident list --count`'s count queries (6 statuses)"),
            ("list_page", "one page (50) of `gridflow incident list`"),
        ):
            figures.add(
                Figure(f"{name}_ms_at_{n}", operations[name] * 1000, "ms", f"{meaning}, at {n:,} open")
            )
        if capacity["opening_overran"] or lag["opening_overran"]:
            figures.notes.append(f"at {n:,}: some planned firings came due before opening had settled")
    figures.notes.append(
        "incidents are opened as carried-over overdue states (one start, one workflow task each); only the "
        "sets' reminders fire during the run, each set opened before a flush of quiet incidents larger than "
        "the cache, so that beyond the cache every firing replays its incident"
    )
    return figures
