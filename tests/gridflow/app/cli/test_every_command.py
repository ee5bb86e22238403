"""Every command as a newcomer types it: only its required arguments, once with no servers and once
against a running `gridflow dev`; the right exit code, never a traceback, one line when a server is
missing.

The commands are found by walking the real parser, so a new one fails here until it has its entry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from gridflow.app.cli import build_parser, main, shared
from gridflow.app.cli.shared import EXIT_ERROR, EXIT_OK, EXIT_REFUSED
from gridflow.app.codec import generate_key
from gridflow.app.settings import ENV_PREFIX
from gridflow.domain.simulation.generator import generate

# Each pass takes 25-40 s on two cores; the limit catches a command that hangs.
pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[4]
GRIDFLOW = (sys.executable, "-m", "gridflow.app.cli")
TEMPORAL, KAFKA, ARCHIVE = "temporal", "kafka", "archive"
# What a missing server's one line must name: its setting (its address is the run's own).
SETTING = {
    TEMPORAL: "GRIDFLOW_TEMPORAL_ADDRESS",
    KAFKA: "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS",
    ARCHIVE: "GRIDFLOW_ARCHIVE_URL",
}
ARCHIVE_FILE = ".gridflow/archive.db"  # the archive by default, in the working directory

INCIDENT_FILE = str(ROOT / "examples" / "incident-lamp.json")
INCIDENT = "inc-2026-000042"  # the example's id
UNIT = "g-nanjing-07"  # its grid unit, which holds it first
STREET = "s-nanjing-east"  # its street unit: the level above, which approves extensions
KEYS = f"k1:{generate_key()}"


@dataclass(frozen=True)
class Command:
    """A command's required arguments and settings, the servers it talks to, and how it ends."""

    args: tuple[str, ...] = ()  # {incident_file}, {stream} and {dir} are filled in per run
    needs: tuple[str, ...] = ()
    on_dev_stack: int = EXIT_OK  # in CHAIN's order, for the commands on the one incident
    runs: bool = False  # a process: started, stopped with SIGTERM
    env: Mapping[str, str] = field(default_factory=dict)
    # Reads or writes incident payloads in Temporal: run with the pass's GRIDFLOW_CODEC_KEYS.
    payloads: bool = False


COMMANDS: dict[str, Command] = {
    "dev": Command(runs=True),  # the second pass's stack itself
    "worker": Command(needs=(KAFKA, TEMPORAL), runs=True, payloads=True),
    "rules check": Command(),
    "rules explain": Command(("{incident_file}",)),
    "incident report": Command(("{incident_file}",), (TEMPORAL,), payloads=True),
    "incident show": Command((INCIDENT,), (TEMPORAL,), payloads=True),
    "incident list": Command((), (TEMPORAL,)),
    "incident accept": Command((INCIDENT, "--unit", UNIT), (TEMPORAL,), payloads=True),
    "incident progress": Command(
        (INCIDENT, "--unit", UNIT, "--note", "new bulb"), (TEMPORAL,), payloads=True
    ),
    # By then the incident is closed: refused.
    "incident escalate": Command(
        (INCIDENT, "--unit", UNIT, "--reason", "requested"), (TEMPORAL,), EXIT_REFUSED, payloads=True
    ),
    "incident transfer": Command(  # closed by then: refused
        (INCIDENT, "--to", "g-other", "--reason", "misdispatched"), (TEMPORAL,), EXIT_REFUSED, payloads=True
    ),
    "incident extend": Command(  # accepted: the level above approves
        (INCIDENT, "--unit", UNIT, "--extra", "8h", "--reason", "crane"), (TEMPORAL,), payloads=True
    ),
    "incident grant-extension": Command(  # by the grid's own unit: not the approver, refused
        (INCIDENT, "--unit", UNIT), (TEMPORAL,), EXIT_REFUSED, payloads=True
    ),
    "incident refuse-extension": Command(
        (INCIDENT, "--unit", STREET, "--reason", "not now"), (TEMPORAL,), payloads=True
    ),
    "incident verify": Command(  # the dev stack's rules verify nothing: refused
        (INCIDENT, "--unit", "inspector-1"), (TEMPORAL,), EXIT_REFUSED, payloads=True
    ),
    "incident reject": Command(
        (INCIDENT, "--unit", "inspector-1", "--reason", "dark"), (TEMPORAL,), EXIT_REFUSED, payloads=True
    ),
    "incident pause": Command((INCIDENT, "--unit", UNIT), (TEMPORAL,), payloads=True),
    "incident resume": Command(  # not paused
        (INCIDENT, "--unit", UNIT), (TEMPORAL,), EXIT_REFUSED, payloads=True
    ),
    "incident resolve": Command(
        (INCIDENT, "--unit", UNIT, "--resolution", "bulb replaced"), (TEMPORAL,), payloads=True
    ),
    "incident feedback": Command(
        (INCIDENT, "--rating", "satisfied"), (TEMPORAL,), payloads=True
    ),  # closes it
    "incident withdraw": Command((INCIDENT,), (TEMPORAL,), EXIT_REFUSED, payloads=True),  # closed
    "simulate": Command(("--incidents", "{stream}")),
    "generate-stream": Command(),
    "bridge": Command(needs=(KAFKA,), runs=True, payloads=True),
    "archiver": Command(needs=(KAFKA,), runs=True),  # its database: a SQLite file by default
    "report": Command(needs=(ARCHIVE,)),  # the archive the dev stack keeps, or none
    "publish": Command(("{incident_file}",), (KAFKA,)),
    "dlq list": Command(needs=(KAFKA,)),
    "dlq replay": Command(needs=(KAFKA,)),
    "codec keygen": Command(("--id", "k1")),
    "codec-server": Command(runs=True, env={"GRIDFLOW_CODEC_KEYS": KEYS}),
    "schema export": Command(("{dir}/schemas",)),
}

#: The commands on the one incident, run one after another in this order on the dev stack.
CHAIN = (
    "incident report",
    "incident show",
    "incident resume",
    "incident accept",
    "incident progress",
    "incident extend",
    "incident grant-extension",
    "incident refuse-extension",
    "incident pause",
    "incident resolve",
    "incident verify",
    "incident reject",
    "incident feedback",
    "incident escalate",
    "incident transfer",
    "incident withdraw",
)


def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every parser under `parser`: itself, the groups and the commands."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command (a parser with a handler) by its name, `incident accept`."""
    found = {}
    root = build_parser()
    for path in parsers(root):
        parser = root
        for name in path:
            (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        if parser.get_default("run_command") is not None:
            found[" ".join(path)] = parser
    return found


def test_the_table_has_every_command_with_exactly_its_required_arguments() -> None:
    found = commands()
    assert sorted(found) == sorted(COMMANDS), "a command without an entry in COMMANDS (or one gone)"
    assert set(CHAIN) <= set(COMMANDS)
    for name, parser in found.items():
        required = [a for a in parser._actions if a.required]
        options = {a.option_strings[0] for a in required if a.option_strings}
        positionals = [a for a in required if not a.option_strings]
        args = COMMANDS[name].args
        given = {arg for arg in args if arg.startswith("--")}
        assert given == options, name
        # Each required option takes one value: what is left are the positionals.
        assert len(args) - 2 * len(given) == len(positionals), name


# ---------------------------------------------------------------------- the one line, word for word


def test_a_missing_broker_is_one_line_with_its_address_why_and_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shared, "KAFKA_CONNECT_TIMEOUT_S", 1.0)
    (port,) = free_ports(1)
    to_set = "(set GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS or --kafka-bootstrap-servers)"
    assert main(["dlq", "list", "--kafka-bootstrap-servers", f"127.0.0.1:{port}"]) == EXIT_ERROR
    # kafka-python's own lines about each attempt are held back: this is all there is.
    assert (
        capsys.readouterr().err
        == f"cannot connect to Kafka at 127.0.0.1:{port}: connection refused {to_set}\n"
    )
    assert (
        main(["publish", INCIDENT_FILE, "--kafka-bootstrap-servers", "nosuchhost.invalid:9092"]) == EXIT_ERROR
    )
    assert capsys.readouterr() == (
        "",
        f"cannot connect to Kafka at nosuchhost.invalid:9092: no such host {to_set}\n",
    )


def test_a_missing_temporal_is_one_line_with_its_address_why_and_what_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (port,) = free_ports(1)
    assert main(["incident", "show", INCIDENT, "--temporal-address", f"127.0.0.1:{port}"]) == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"cannot connect to Temporal at 127.0.0.1:{port}: connection refused "
        "(set GRIDFLOW_TEMPORAL_ADDRESS or --temporal-address)\n"
    )


def test_a_metrics_port_in_use_is_one_line_naming_the_setting(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("GRIDFLOW_CODEC_KEYS", KEYS)
    with socket.socket() as taken:  # as `gridflow dev` holds 9464, the bridge's default too
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("GRIDFLOW_METRICS_PORT", str(port))
        assert main(["bridge", "--log-level", "error"]) == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"cannot serve metrics on 127.0.0.1:{port}: the port is in use (set GRIDFLOW_METRICS_PORT)\n"
    )


@pytest.mark.parametrize("command", ["worker", "bridge"])
def test_a_worker_or_bridge_without_keys_refuses_in_one_line_naming_the_keys_and_the_way_out(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRIDFLOW_CODEC_KEYS", raising=False)
    monkeypatch.delenv("GRIDFLOW_ALLOW_PLAINTEXT", raising=False)
    (nowhere,) = free_ports(1)  # refused before any server is looked for
    monkeypatch.setenv("GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{nowhere}")
    assert main([command, "--temporal-address", f"127.0.0.1:{nowhere}"]) == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"gridflow {command} refuses to write incident payloads into Temporal in clear: set "
        "GRIDFLOW_CODEC_KEYS (make a key with `gridflow codec keygen --id k1`), or "
        "GRIDFLOW_ALLOW_PLAINTEXT=true for tests and local experiments only\n"
    )


@pytest.mark.parametrize(
    ("argv", "env", "level"),
    [
        (["rules", "check"], None, logging.WARNING),
        (["rules", "check", "--log-level", "info"], None, logging.INFO),
        (["--log-level", "info", "rules", "check"], None, logging.INFO),  # before the command's name
        (["rules", "check"], "debug", logging.DEBUG),  # GRIDFLOW_LOG_LEVEL
        (["rules", "check"], "", logging.WARNING),  # empty: unset
    ],
)
def test_a_one_shot_command_logs_warnings_only_unless_asked(
    argv: list[str],
    env: str | None,
    level: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if env is None:
        monkeypatch.delenv("GRIDFLOW_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("GRIDFLOW_LOG_LEVEL", env)
    assert main(argv) == EXIT_OK
    assert logging.getLogger().level == level


# ---------------------------------------------------------------------- running them


class Ran(NamedTuple):
    """How a command ended."""

    argv: tuple[str, ...]
    code: int | None
    out: str
    err: str
    was_ready: bool = False  # a process: it said it was ready before it was stopped

    def __str__(self) -> str:
        return f"gridflow {' '.join(self.argv)}: exit {self.code}\n{self.err[-2000:]}"


@dataclass
class Run:
    """One pass: where the servers are (or would be), its files, and the commands' environment."""

    temporal: str
    kafka: str
    files: Mapping[str, str]
    env: dict[str, str]
    # Where the newcomer stands: a command's default files (.gridflow/archive.db) are read and made
    # there. Each command has its own directory, or (`shared`) the one-shot commands share this one,
    # the dev stack's; the processes always have their own, as on other machines.
    cwd: Path
    shared: bool = False
    keys: str = KEYS  # GRIDFLOW_CODEC_KEYS of the commands on payloads: the dev stack's on its pass
    parsers: dict[str, argparse.ArgumentParser] = field(default_factory=commands)
    # Enough processes at once to keep two cores busy while some wait on a missing server (5 s for
    # Kafka), few enough not to crowd the dev stack's own.
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(10))

    def argv(self, name: str) -> tuple[str, ...]:
        """The command line: the name, the required arguments, and Temporal's address if it takes one."""
        args = tuple(arg.format(**self.files) for arg in COMMANDS[name].args)
        address = ("--temporal-address", self.temporal)
        takes = "--temporal-address" in self.parsers[name]._option_string_actions
        return (*name.split(), *args, *(address if takes else ()))

    def environment(self, name: str, extra: Mapping[str, str] = {}) -> dict[str, str]:
        keys = {"GRIDFLOW_CODEC_KEYS": self.keys} if COMMANDS[name].payloads else {}
        return {**self.env, **keys, **COMMANDS[name].env, **extra}

    async def one_shot(self, name: str) -> Ran:
        """Run a command to its end."""
        async with self.slots:
            return await gridflow(self.argv(name), self.environment(name), self.directory(name))

    async def process(
        self, name: str, ready: Callable[[], Awaitable[bool]], *extra: str, env: Mapping[str, str] = {}
    ) -> Ran:
        """Start a long-running command, let it run a while once `ready`, then stop it with SIGTERM."""
        argv = (*self.argv(name), *extra)
        return await gridflow(argv, self.environment(name, env), self.directory(name), ready=ready)

    def directory(self, name: str) -> Path:
        if self.shared and not COMMANDS[name].runs:
            return self.cwd
        directory = self.cwd / "apart" / name.replace(" ", "-")
        directory.mkdir(parents=True, exist_ok=True)
        return directory


async def gridflow(
    argv: tuple[str, ...],
    env: Mapping[str, str],
    cwd: Path,
    ready: Callable[[], Awaitable[bool]] | None = None,
) -> Ran:
    """Run `gridflow ARGV` in `cwd` to its end; with `ready`, stop it with SIGTERM a while after it is
    ready."""
    process = await asyncio.create_subprocess_exec(
        *GRIDFLOW, *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    ended = asyncio.ensure_future(process.communicate())
    was_ready = False
    try:
        if ready is not None:
            for _ in range(300):
                if ended.done() or (was_ready := await ready()):
                    break
                await asyncio.sleep(0.1)
            if not ended.done():
                await asyncio.sleep(2)  # running, not just started
                process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(ended, timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Ran(argv, process.returncode, out.decode(), err.decode(), was_ready)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def without_gridflow_settings() -> dict[str, str]:
    """This process's environment without the developer's own GRIDFLOW_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """The files the commands read: the example incident, a small simulation stream, a directory."""
    stream = tmp_path / "stream.jsonl"
    start = datetime(2026, 11, 23, tzinfo=UTC)
    stream.write_text("".join(item.model_dump_json() + "\n" for item in generate(200, days=2, start=start)))
    return {"incident_file": INCIDENT_FILE, "stream": str(stream), "dir": str(tmp_path)}


async def listening(port: int) -> bool:
    """Whether something accepts connections on the port."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def ready(port: int) -> bool:
    """Whether the metrics endpoint on the port says the process is ready (/readyz)."""

    def get() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return await asyncio.to_thread(get)


def log_lines(text: str) -> list[str]:
    """The log lines (JSON, off a terminal) among a command's standard error."""
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "level" in record:
            lines.append(line)
    return lines


# ---------------------------------------------------------------------- with no servers


async def test_with_no_servers_each_command_works_or_says_in_one_line_which_server_to_set(
    files: dict[str, str], tmp_path: Path
) -> None:
    temporal, kafka, codec = free_ports(3)
    run = Run(
        temporal=f"127.0.0.1:{temporal}",
        kafka=f"127.0.0.1:{kafka}",
        files=files,
        env={**without_gridflow_settings(), "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}"},
        cwd=tmp_path,
    )
    address = {TEMPORAL: run.temporal, KAFKA: run.kafka, ARCHIVE: ARCHIVE_FILE}
    # The dev stack is left out: it starts servers of its own (the second pass). The other processes
    # are not: with nothing to talk to, they end as one-shot commands do.
    names = [name for name in COMMANDS if name not in ("dev", "codec-server")]
    codec_server = run.process("codec-server", lambda: listening(codec), "--port", str(codec))
    # Without its keys (a required setting) the codec server says so, and which setting it is.
    keyless = gridflow(("codec-server", "--port", str(codec)), run.env, tmp_path)
    # The worker and the bridge without keys refuse in one line, before looking for any server.
    in_clear = [gridflow((name,), run.env, run.directory(name)) for name in ("worker", "bridge")]
    results, (served, refused), unencrypted = await asyncio.gather(
        asyncio.gather(*(run.one_shot(name) for name in names)),
        asyncio.gather(codec_server, keyless),
        asyncio.gather(*in_clear),
    )

    problems = [problem(name, ran, address) for name, ran in zip(names, results, strict=True)]
    if not served.was_ready or served.code != EXIT_OK or traceback(served):
        problems.append(f"did not run and stop clean: {served}")
    if refused.code != EXIT_ERROR or not refused.err.startswith("GRIDFLOW_CODEC_KEYS is not set"):
        problems.append(f"without its keys: {refused}")
    for ran in unencrypted:
        lines = ran.err.splitlines()
        named = ("GRIDFLOW_CODEC_KEYS", "gridflow codec keygen", "GRIDFLOW_ALLOW_PLAINTEXT")
        if ran.code != EXIT_ERROR or len(lines) != 1 or not all(text in lines[0] for text in named):
            problems.append(f"without keys, not one line naming the keys, keygen and the way out: {ran}")
    wrong = [text for text in problems if text]
    assert not wrong, "\n\n".join(wrong)


def problem(name: str, ran: Ran, address: Mapping[str, str]) -> str | None:
    """What is wrong with how a command ended with no servers, if anything."""
    needs = COMMANDS[name].needs
    lines = ran.err.splitlines()
    if traceback(ran):
        return f"a traceback: {ran}"
    if not needs:
        return None if ran.code == EXIT_OK else f"not exit 0: {ran}"
    names_it = len(lines) == 1 and any(address[s] in lines[0] and SETTING[s] in lines[0] for s in needs)
    if ran.code != EXIT_ERROR or not names_it:
        return f"not exit 1 with one line naming the address and the setting: {ran}"
    return None


def traceback(ran: Ran) -> bool:
    """Whether the command printed a traceback."""
    return "Traceback" in ran.out + ran.err


# ---------------------------------------------------------------------- on the dev stack


class Stack(NamedTuple):
    """A running `gridflow dev`: its addresses, and the payload key it made."""

    temporal: str
    kafka: str
    keys: str


@pytest.fixture
async def dev_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """`gridflow dev` (no demo) on free ports, started in tmp_path (its state in .gridflow there, where
    the commands run), once its banner is out; stopped with SIGTERM afterwards, and it must end with 0
    and no traceback in its log."""
    temporal, ui, kafka, metrics, prometheus, codec = free_ports(6)
    ports = [
        *("--temporal-port", str(temporal), "--ui-port", str(ui), "--kafka-port", str(kafka)),
        *("--metrics-port", str(metrics), "--prometheus-port", str(prometheus), "--codec-port", str(codec)),
    ]
    errors = tmp_path / "dev.stderr"
    with errors.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *GRIDFLOW, "dev", *ports,
            cwd=tmp_path, env=without_gridflow_settings(), stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert process.stdout is not None
    try:
        banner = ""
        while "Ctrl-C" not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, f"gridflow dev ended early: {banner}{errors.read_text()}"
            banner += line.decode()
        # Without GRIDFLOW_CODEC_KEYS it made a key in its state directory: the commands use it.
        keys = (tmp_path / ".gridflow" / "codec.keys").read_text().strip()
        yield Stack(f"127.0.0.1:{temporal}", f"127.0.0.1:{kafka}", keys)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0, errors.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in errors.read_text()


async def test_on_the_dev_stack_every_command_does_its_job(
    dev_stack: Stack, files: dict[str, str], tmp_path: Path
) -> None:
    run = Run(
        temporal=dev_stack.temporal,
        kafka=dev_stack.kafka,
        files=files,
        env={**without_gridflow_settings(), "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS": dev_stack.kafka},
        cwd=tmp_path,
        shared=True,
        keys=dev_stack.keys,
    )

    async def chain() -> list[Ran]:
        return [await run.one_shot(name) for name in CHAIN]

    # The processes serve their metrics on ports of their own (the defaults are the dev stack's).
    worker, sdk, bridge, archiver, codec = free_ports(5)
    processes = asyncio.gather(
        run.process(
            "worker",
            lambda: ready(worker),
            env={"GRIDFLOW_METRICS_PORT": str(worker), "GRIDFLOW_SDK_METRICS_PORT": str(sdk)},
        ),
        run.process("bridge", lambda: ready(bridge), env={"GRIDFLOW_METRICS_PORT": str(bridge)}),
        run.process("archiver", lambda: ready(archiver), env={"GRIDFLOW_METRICS_PORT": str(archiver)}),
        run.process("codec-server", lambda: listening(codec), "--port", str(codec)),
    )
    # Those that need no server were run in the first pass: a running stack changes nothing for them.
    others = [
        name for name, command in COMMANDS.items() if name not in CHAIN and command.needs and not command.runs
    ]
    chained, ran_processes, rest = await asyncio.gather(
        chain(), processes, asyncio.gather(*(run.one_shot(name) for name in others))
    )

    problems = []
    for name, ran in [*zip(CHAIN, chained, strict=True), *zip(others, rest, strict=True)]:
        if ran.code != COMMANDS[name].on_dev_stack or traceback(ran):
            problems.append(f"not exit {COMMANDS[name].on_dev_stack}, or a traceback: {ran}")
        elif log_lines(ran.err):  # one-shot commands print their answer, no log lines
            problems.append(f"log lines: {ran}")
    for ran in ran_processes:
        if not ran.was_ready or ran.code != EXIT_OK or traceback(ran):
            problems.append(f"did not run and stop clean: {ran}")
    assert not problems, "\n\n".join(problems)
