"""`gridflow simulate` from the command line: defaults, help, a clean exit, and Ctrl-C stopping everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridflow.app.cli import main
from gridflow.domain.simulation.generator import generate

GRIDFLOW = str(Path(sys.executable).with_name("gridflow"))
START = datetime(2026, 11, 23, tzinfo=UTC)


def stream_file(tmp_path: Path, count: int) -> Path:
    """A generated stream of `count` incidents over a week."""
    path = tmp_path / f"stream-{count}.jsonl"
    path.write_text("".join(item.model_dump_json() + "\n" for item in generate(count, seed=5, start=START)))
    return path


def test_simulate_without_rules_runs_the_built_in_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDFLOW_RULES_FILE", raising=False)
    out = tmp_path / "out.json"

    code = main(["simulate", "--incidents", str(stream_file(tmp_path, 50)), "--json", str(out)])

    assert code == 0
    printed = capsys.readouterr().out
    assert "built-in" in printed and "response rate" in printed and "by district" in printed
    saved = json.loads(out.read_text())
    assert saved["engine"] == "discrete"
    assert saved["rule_sets"]["built-in"]["incidents"] == 50


def test_rules_explain_without_rules_explains_on_the_built_in_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDFLOW_RULES_FILE", raising=False)

    assert main(["rules", "explain", "examples/incident-lamp.json"]) == 0

    assert "rule default: matches" in capsys.readouterr().out


def test_simulate_help_says_which_engine_does_what(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "discrete" in text and "temporal" in text and "fidelity check" in text and "--progress" in text


def test_a_temporal_simulation_ends_cleanly(tmp_path: Path) -> None:
    # The SDK's native threads used to abort the interpreter's teardown now and then (PyGILState_Release).
    result = subprocess.run(
        [
            GRIDFLOW,
            "simulate",
            "--engine",
            "temporal",
            "--no-progress",
            "--incidents",
            str(stream_file(tmp_path, 3)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Fatal Python error" not in result.stderr
    assert "temporal engine: 3 incidents" in result.stdout


def _descendants(pid: int) -> dict[int, str]:
    """Every living process below `pid`, with its command line."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = commands.get(child, "")
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_on_a_temporal_simulation_stops_the_test_server_it_started(tmp_path: Path) -> None:
    simulation = subprocess.Popen(
        [
            GRIDFLOW,
            "simulate",
            "--engine",
            "temporal",
            "--no-progress",
            "--incidents",
            str(stream_file(tmp_path, 400)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        servers: dict[int, str] = {}
        deadline = time.monotonic() + 60
        while not servers and time.monotonic() < deadline:
            servers = {p: c for p, c in _descendants(simulation.pid).items() if "temporal-test-server" in c}
            time.sleep(0.2)
        assert servers, "the simulation never started its test server"
        time.sleep(3)  # well into the run

        os.killpg(simulation.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        code = simulation.wait(timeout=60)
    finally:
        if simulation.poll() is None:
            os.killpg(simulation.pid, signal.SIGKILL)
    assert code == 130
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in servers if _alive(pid)], "the test server outlived the simulation"
