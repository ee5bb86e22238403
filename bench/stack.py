"""The benchmark's own servers (a Temporal dev server, a Tansu broker) and small measuring helpers."""

from __future__ import annotations

import asyncio
import compileall
import logging
import math
import os
import re
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import structlog
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from gridflow.app.binaries import find_binary
from gridflow.app.broker import local_broker
from gridflow.app.settings import Settings
from gridflow.app.temporal import register_search_attributes

# The run's start on the system-wide monotonic clock; child processes inherit it, for one time line.
_STARTED = float(os.environ.setdefault("GRIDFLOW_BENCH_STARTED", str(time.monotonic())))


def progress(message: str) -> None:
    """A progress line on stderr, with the seconds since the run began."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def quiet_logs() -> None:
    """gridflow's structlog lines (bridge started, paused...) go to stderr, warnings and up only."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def rss_bytes() -> int:
    """This process's resident set size now (VmRSS in /proc/self/status)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr meanwhile, so that child processes started now print there."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@asynccontextmanager
async def temporal_server(database: Path | None = None) -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server on a free port: in memory, or persisting to a SQLite file."""
    with stdout_to_stderr():  # the server prints a banner on the stdout it inherits
        env = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=find_binary("temporal"),
            dev_server_database_filename=str(database) if database else None,
            dev_server_log_level="error",
            ui=False,
        )
    async with env:
        await register_search_attributes(env.client, env.client.namespace)
        yield env


@contextmanager
def tansu_broker() -> Iterator[str]:
    """A Tansu broker in memory on a free port; yields its bootstrap address."""
    with local_broker(free_port()) as bootstrap:
        yield bootstrap


@dataclass(frozen=True)
class Stack:
    """The servers of one benchmark run."""

    temporal: WorkflowEnvironment
    kafka_bootstrap: str

    def settings(self, name: str, *, partitions: int = 6) -> Settings:
        """Settings with topics, a consumer group and a task queue of their own."""
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        return Settings(
            temporal_address=self.temporal.client.service_client.config.target_host,
            kafka_bootstrap_servers=self.kafka_bootstrap,
            kafka_api_version="2.5",
            kafka_session_timeout_ms=3000,  # the first group join takes 2-3 s
            incidents_topic=f"bench-{tag}.incidents",
            events_topic=f"bench-{tag}.incident-events",
            dlq_topic=f"bench-{tag}.incidents.dlq",
            consumer_group=f"bench-{tag}",
            task_queue=f"bench-{tag}",
            topic_partitions=partitions,
        )


async def sample_rss(samples: list[int], stop: asyncio.Event, every: float = 0.05) -> None:
    """Append this process's RSS to `samples` every `every` seconds until `stop` is set."""
    while not stop.is_set():
        samples.append(rss_bytes())
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    samples.append(rss_bytes())


def sdk_counter(port: int, name: str) -> float:
    """The sum of one Temporal SDK metric's samples on its Prometheus endpoint (0 before the first)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = re.compile(rf"^{name}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def server_pid() -> int | None:
    """The Temporal dev server this process started (a child process named `temporal`), if any."""
    mine = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            name, rest = stat.read_text(encoding="ascii").split(" (", 1)[1].rsplit(") ", 1)
            if name == "temporal" and int(rest.split()[1]) == mine:
                return int(stat.parent.name)
    return None


def rss_of(pid: int) -> int:
    """Another process's resident set size now (0 if it is gone)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def compile_bytecode() -> None:
    """Write the project's .pyc files, as the image does at build: without them the workflow sandbox
    compiles the workflow module from source for every incident it loads (a quarter of a worker's time
    when incidents are not cached), even with PYTHONDONTWRITEBYTECODE set."""
    root = Path(__file__).resolve().parent.parent
    for package in ("gridflow", "workflows", "activities", "events", "bench", "tests"):
        compileall.compile_dir(root / package, quiet=1)


def new_ids(prefix: str, count: int) -> list[str]:
    """Unique incident ids."""
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{number:06d}" for number in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def cpu_count() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0))
