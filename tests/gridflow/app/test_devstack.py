"""The embedded dev stack: real Temporal and Tansu processes on free ports, started and stopped clean."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from gridflow.app.devstack import DevStack, DevStackError, NamedComponent, demo_rules, run_demo
from gridflow.app.settings import Settings
from gridflow.app.temporal import connect
from gridflow.archive.store import Archive
from gridflow.domain.incident import Status
from workflows.client import incident_state

# Both servers start in well under a second here; the limit catches a stack that hangs.
pytestmark = pytest.mark.timeout(30)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together, so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Ports(NamedTuple):
    """A stack's ports."""

    temporal: int
    ui: int
    kafka: int
    metrics: int
    prometheus: int
    codec: int


@pytest.fixture
def ports() -> Ports:
    """Free ports for a stack."""
    return Ports(*free_ports(6))


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def new_stack(ports: Ports, state_dir: Path, **options: Any) -> DevStack:
    """A dev stack on the given ports."""
    return DevStack(
        Settings(codec_keys=None),  # the stack's own key, whatever this environment holds
        state_dir=state_dir,
        temporal_port=ports.temporal,
        ui_port=ports.ui,
        kafka_port=ports.kafka,
        codec_port=ports.codec,
        metrics_port=ports.metrics,
        **{"prometheus_port": None, **options},
    )


def gone(pid: int) -> bool:
    """Whether no process of that id (or of its process group) is left, not even a zombie."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def port_open(port: int) -> bool:
    """Whether something accepts connections on the port."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_the_stack_runs_temporal_kafka_the_worker_and_components_then_leaves_nothing(
    tmp_path: Path, ports: Ports
) -> None:
    seen: dict[str, object] = {}

    async def component(settings: Settings, stop: asyncio.Event) -> None:
        seen["settings"] = settings
        await stop.wait()
        seen["stopped"] = True

    state = tmp_path / "state"
    stack = new_stack(ports, state, components=[NamedComponent("probe", component)])
    async with stack:
        pids = stack.pids
        assert set(pids) == {"temporal", "kafka"}
        client = await connect(stack.settings)
        assert await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert await port_open(ports.kafka)
        banner = stack.banner()
        assert f"http://127.0.0.1:{ports.ui}" in banner
        assert f"127.0.0.1:{ports.kafka}" in banner and "Ctrl-C" in banner
        # Payloads are encrypted with a key the stack made in its state directory, for its owner only.
        key_file = state / "codec.keys"
        assert stack.key_file == key_file and (key_file.stat().st_mode & 0o777) == 0o600
        assert stack.settings.codec_keys is not None
        assert stack.settings.codec_keys.get_secret_value() == key_file.read_text().strip()
        assert f"Payload keys      {key_file}" in banner
        # The codec server runs, and the dev server's Web UI is told to decrypt through it.
        assert f"Codec server      http://127.0.0.1:{ports.codec}" in banner and await port_open(ports.codec)
        ui_settings = json.loads(await asyncio.to_thread(_fetch, f"{stack.ui_url}/api/v1/settings"))
        assert ui_settings["Codec"]["Endpoint"] == f"http://127.0.0.1:{ports.codec}", ui_settings
        await asyncio.sleep(0.1)  # let the component start
        settings = seen["settings"]
        assert isinstance(settings, Settings)
        assert settings.temporal_address == f"127.0.0.1:{ports.temporal}"
        assert settings.kafka_bootstrap_servers == f"127.0.0.1:{ports.kafka}"
        assert settings.kafka_api_version == "2.5"

    assert seen["stopped"] is True
    assert all(gone(pid) for pid in pids.values())
    assert not await port_open(ports.temporal)
    assert not await port_open(ports.kafka)
    assert not await port_open(ports.codec)
    assert (state / "temporal.db").exists()
    assert (state / "temporal.log").exists() and (state / "kafka.log").exists()


async def test_the_demo_plays_through_kafka_and_incidents_escalate_resolve_and_close(
    tmp_path: Path, ports: Ports
) -> None:
    demo = functools.partial(run_demo, run_id="t1")
    stack = new_stack(ports, tmp_path, rules=demo_rules(), demo=demo)
    async with stack:
        pids = stack.pids
        lamp = drain = None
        for _ in range(300):  # the lamp is accepted, resolved and rated within ~10 s of its report
            try:
                lamp = await incident_state(stack.client, "demo-t1-1-lamp")
                drain = await incident_state(stack.client, "demo-t1-1-drain")
            except Exception:  # not reported yet: the bridge is joining its group
                lamp = drain = None
            if lamp is not None and drain is not None and lamp.status is Status.CLOSED and drain.escalations:
                break
            await asyncio.sleep(0.1)
        assert lamp is not None and lamp.status is Status.CLOSED, lamp
        assert lamp.rule is not None and lamp.rule.rules_version == "demo-1"
        assert drain is not None and drain.rule is not None and drain.rule.rule.name == "demo-urgent"
        assert drain.escalations >= 1 and drain.level != "grid"
        exposed = await asyncio.to_thread(_fetch, stack.metrics_url)
        assert "gridflow_incidents_closed_total" in exposed
        assert "gridflow_bridge_workflows_started_total" in exposed
        # The archiver keeps every step in the SQLite archive of the state directory.
        assert stack.archive_url == f"sqlite:///{tmp_path / 'archive.db'}"
        assert f"Archive           {stack.archive_url}" in stack.banner()
        with Archive.open(stack.archive_url) as archive:
            for _ in range(100):
                case = archive.incident("demo-t1-1-lamp")
                if case is not None and case.status is Status.CLOSED:
                    break
                await asyncio.sleep(0.1)
            assert case is not None and case.status is Status.CLOSED and case.last_seq == len(lamp.timeline)
            steps = archive.timeline("demo-t1-1-lamp")
            assert [step.kind for step in steps] == [step.kind for step in lamp.timeline]
            assert archive.timeline("demo-t1-1-drain"), "the drain's steps are archived too"
        assert "gridflow_archiver_steps_written_total" in exposed
        # And the month's report over that archive ranks the demo's districts.
        report = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gridflow.app.cli",
            "report",
            "--archive-url",
            stack.archive_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await report.communicate()
        assert report.returncode == 0, err.decode()
        ranking = out.decode()
        assert "by district" in ranking and "d-huangpu" in ranking and "(all)" in ranking, ranking
    assert all(gone(pid) for pid in pids.values())


async def test_a_port_in_use_is_a_clear_error(tmp_path: Path, ports: Ports) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", ports.kafka))
        taken.listen()
        stack = new_stack(ports, tmp_path)
        with pytest.raises(DevStackError, match=f"port {ports.kafka} .* --kafka-port"):
            await stack.start()
    assert stack.pids == {}


async def test_gridflow_dev_prints_where_things_are_and_stops_clean_on_sigterm(
    tmp_path: Path, ports: Ports
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridflow.app.cli",
        "dev",
        "--state-dir",
        str(tmp_path),
        "--temporal-port",
        str(ports.temporal),
        "--ui-port",
        str(ports.ui),
        "--kafka-port",
        str(ports.kafka),
        "--metrics-port",
        str(ports.metrics),
        "--prometheus-port",
        str(ports.prometheus),
        "--codec-port",
        str(ports.codec),
        "--log-format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={key: value for key, value in os.environ.items() if key != "GRIDFLOW_CODEC_KEYS"},
    )
    assert process.stdout is not None
    banner: list[str] = []
    try:
        while not banner or "Ctrl-C" not in banner[-1]:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
            assert line, f"gridflow dev ended early: {banner}"
            banner.append(line.decode())
        assert await port_open(ports.temporal) and await port_open(ports.kafka)
        # Prometheus runs beside the stack when it is installed (the test set-up installs it).
        assert await port_open(ports.prometheus)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = "".join(banner)
    assert f"http://127.0.0.1:{ports.ui}" in text and f"127.0.0.1:{ports.kafka}" in text
    assert str(tmp_path / "temporal.log") in text
    assert f"http://127.0.0.1:{ports.codec}" in text and str(tmp_path / "codec.keys") in text
    # Not on a terminal: no live view, log lines; and every line, as JSON, in the state directory's log.
    assert f"{tmp_path / 'gridflow.log'}  (every line, JSON)" in text
    logged = [json.loads(line) for line in (tmp_path / "gridflow.log").read_text().splitlines()]
    assert {"temporal dev server ready", "worker started", "worker stopped"} <= {
        line["event"] for line in logged
    }
    assert f"http://127.0.0.1:{ports.prometheus}" in text
    assert not await port_open(ports.temporal) and not await port_open(ports.kafka)
    assert not await port_open(ports.prometheus)
    assert not await port_open(ports.codec)
