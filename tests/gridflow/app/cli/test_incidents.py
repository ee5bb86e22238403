"""`gridflow incident`: report, handle, show and list incidents on a real Temporal dev server."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from gridflow.app.compose import build_worker
from gridflow.domain.incident import Outcome, Rating, Status
from gridflow.domain.lifecycle import IncidentState, StepKind
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from tests.gridflow.app.cli.conftest import gridflow


@pytest.fixture
async def server(
    dev_server_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[str]]:
    """The flags that point the CLI at the dev server, with a worker on a queue of the test's own.

    The worker runs on the session's client, without the codec, so the commands write in clear too.
    """
    monkeypatch.delenv("GRIDFLOW_CODEC_KEYS", raising=False)
    monkeypatch.setenv("GRIDFLOW_ALLOW_PLAINTEXT", "true")
    task_queue = f"cli-{uuid.uuid4().hex[:8]}"
    worker = build_worker(dev_server_env.client, task_queue, RulesSource(), [MemorySink()])
    async with worker:
        yield [
            "--temporal-address",
            dev_server_env.client.service_client.config.target_host,
            "--task-queue",
            task_queue,
            "--log-level",
            "warning",
        ]


@pytest.mark.parametrize(
    "argv",
    [["incident", "report", "-"], ["incident", "accept", "inc-1", "--unit", "grid-1"]],
    ids=["report", "accept"],
)
async def test_commands_that_write_into_temporal_refuse_without_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.delenv("GRIDFLOW_CODEC_KEYS", raising=False)
    monkeypatch.delenv("GRIDFLOW_ALLOW_PLAINTEXT", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(make_incident().model_dump_json()))
    code, out, err = await gridflow(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.strip().splitlines() == [
        f"gridflow {' '.join(argv[:2])} refuses to write incident payloads into Temporal in clear: "
        "set GRIDFLOW_CODEC_KEYS (make a key with `gridflow codec keygen --id k1`), or "
        "GRIDFLOW_ALLOW_PLAINTEXT=true for tests and local experiments only"
    ]


async def test_an_incident_reported_handled_and_rated_from_the_command_line(
    server: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = make_incident()
    incident_id, grid = incident.incident_id, incident.location.grid_id
    report = tmp_path / "incident.json"
    report.write_text(incident.model_dump_json(), encoding="utf-8")

    code, out, _ = await gridflow(capsys, "incident", "report", str(report), *server)
    assert code == 0 and out.startswith(f"started incident {incident_id}")
    code, out, _ = await gridflow(capsys, "incident", "report", str(report), *server)
    assert code == 0 and "already exists; nothing started" in out

    code, _, err = await gridflow(capsys, "incident", "accept", incident_id, "--unit", "g-elsewhere", *server)
    assert code == 2, err
    assert err.startswith(f"refused: unit g-elsewhere does not hold incident {incident_id}")

    steps = [
        ("accept", "--unit", grid, "--handler", "Wang"),
        ("progress", "--unit", grid, "--note", "ordered a new bulb"),
        ("pause", "--unit", grid, "--reason", "waiting for the part"),
        ("resume", "--unit", grid),
    ]
    for step in steps:
        code, out, err = await gridflow(capsys, "incident", step[0], incident_id, *step[1:], *server)
        assert code == 0, err
    assert out == f"incident {incident_id}: accepted at grid, held by {grid}\n"

    code, out, _ = await gridflow(capsys, "incident", "show", incident_id, *server)
    assert code == 0
    assert f"incident {incident_id}" in out
    assert "rule         default (rules version" in out
    assert "level        grid (1 of 3: grid > street > district)" in out
    assert "status       accepted" in out
    assert f"holder       {grid}" in out
    assert "resolve by   20" in out
    assert "reason=waiting for the part" in out and "note: ordered a new bulb" in out
    for kind in ("reported", "dispatched", "accepted", "progress", "paused", "resumed"):
        assert f" {kind} " in out

    resolve = ("resolve", incident_id, "--unit", grid, "--resolution", "new bulb fitted")
    code, out, _ = await gridflow(capsys, "incident", *resolve, *server)
    assert (code, out) == (0, f"incident {incident_id}: resolved at grid, held by {grid}\n")
    code, out, _ = await gridflow(
        capsys, "incident", "feedback", incident_id, "--rating", "satisfied", *server
    )
    assert (code, out) == (0, f"incident {incident_id}: closed at grid (resolved)\n")

    code, _, err = await gridflow(capsys, "incident", "withdraw", incident_id, *server)
    assert code == 2 and f"incident {incident_id} is closed" in err, err

    code, out, _ = await gridflow(capsys, "incident", "show", incident_id, "--json", *server)
    assert code == 0
    state = IncidentState.model_validate_json(out)
    assert state.status is Status.CLOSED and state.outcome is Outcome.RESOLVED
    assert state.rating is Rating.SATISFIED
    assert state.timeline[-1].kind is StepKind.CLOSED

    code, out, _ = await gridflow(capsys, "incident", "show", incident_id, *server)
    assert "outcome      resolved" in out and "rating       satisfied" in out
    assert "rating=satisfied" in out and "outcome=resolved" in out


async def test_incidents_escalated_withdrawn_and_listed(
    server: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    district = f"d-cli-{uuid.uuid4().hex[:8]}"
    first, second = make_incident(district=district), make_incident(district=district, category="drain")
    for incident in (first, second):
        (tmp_path / "i.json").write_text(incident.model_dump_json(), encoding="utf-8")
        assert (await gridflow(capsys, "incident", "report", str(tmp_path / "i.json"), *server))[0] == 0

    grid = first.location.grid_id
    escalate = (
        "escalate",
        first.incident_id,
        "--unit",
        grid,
        "--reason",
        "not_responsible",
        "--note",
        "not ours",
    )
    code, out, _ = await gridflow(capsys, "incident", *escalate, *server)
    assert (code, out) == (0, f"incident {first.incident_id}: dispatched at street, held by s-nanjing-east\n")
    code, out, _ = await gridflow(
        capsys, "incident", "withdraw", second.incident_id, "--reason", "dup", *server
    )
    assert (code, out) == (0, f"incident {second.incident_id}: closed at grid (withdrawn)\n")

    async def listed(expected: int, *filters: str) -> str:
        """The list's output once visibility (eventually consistent) shows what the test expects."""
        out = ""
        for _ in range(100):
            code, out, err = await gridflow(
                capsys, "incident", "list", "--district", district, *filters, *server
            )
            assert code == 0, err
            if (first.incident_id in out) + (second.incident_id in out) == expected:
                return out
            await asyncio.sleep(0.1)
        raise AssertionError(f"the list never showed {expected} incidents: {out}")

    out = await listed(2)
    assert out.splitlines()[0].split() == [
        "incident", "status", "level", "district", "category", "priority", "started", "workflow"
    ]  # fmt: skip
    line = next(line for line in out.splitlines() if first.incident_id in line)
    assert line.split()[1:5] == ["dispatched", "street", district, "street_lamp"]
    assert second.incident_id in await listed(1, "--status", "closed")
    assert first.incident_id in await listed(1, "--query", "GridflowLevel = 'street'")


async def test_a_missing_incident_is_a_clear_error(
    server: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await gridflow(capsys, "incident", "show", "inc-never-reported", *server)
    assert (code, out) == (1, "")
    assert err.startswith("no incident inc-never-reported")
    code, _, err = await gridflow(
        capsys, "incident", "resume", "inc-never-reported", "--unit", "g-1", *server
    )
    assert code == 1 and err.startswith("no incident inc-never-reported")


async def test_bad_input_and_an_unreachable_server_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "incident.json"
    report.write_text(json.dumps({"incident_id": "inc-1", "category": "street_lamp"}), encoding="utf-8")
    code, _, err = await gridflow(capsys, "incident", "report", str(report))
    assert code == 1 and err.startswith(f"{report}:1: invalid Incident:")
    assert "priority: Field required" in err

    nowhere = ["--temporal-address", "127.0.0.1:1", "--log-level", "error"]
    code, _, err = await gridflow(capsys, "incident", "show", "inc-1", *nowhere)
    assert code == 1 and err.startswith("cannot connect to Temporal at 127.0.0.1:1")


async def test_an_incident_reported_as_a_cloudevent_on_standard_input_starts(
    server: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = make_incident()
    event = {
        "specversion": "1.0",
        "type": "gridflow.incident.reported.v1",
        "source": "hotline",
        "id": f"evt-{uuid.uuid4().hex[:8]}",
        "data": incident.model_dump(mode="json"),
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(event)))

    code, out, err = await gridflow(capsys, "incident", "report", "-", *server)

    assert code == 0, err
    assert out.startswith(f"started incident {incident.incident_id}")


async def test_report_refuses_a_file_of_several_incidents_and_starts_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incidents = tmp_path / "incidents.json"
    incidents.write_text(f"[\n{make_incident().model_dump_json()},\n{make_incident().model_dump_json()}\n]\n")
    nowhere = ["--temporal-address", "127.0.0.1:1", "--log-level", "error"]

    code, out, err = await gridflow(capsys, "incident", "report", str(incidents), *nowhere)

    # Refused before any connection: the unreachable server is never tried.
    assert (code, out) == (1, "")
    assert err == f"{incidents}: 2 JSON objects (lines 2, 3): this command takes one incident\n"
