"""`gridflow incident`: report, handle, show and list incidents on a real Temporal dev server."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from gridflow.app.compose import build_worker
from gridflow.domain.incident import Outcome, Rating, Status
from gridflow.domain.lifecycle import (
    EscalationRequestReason,
    IncidentState,
    RequestEscalation,
    StepKind,
    Withdraw,
)
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from tests.gridflow.app.cli.conftest import gridflow
from workflows.client import report_incident, send_command


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
    # The return visit: satisfied, but the resident says the lamp is still not fixed: back to the grid.
    code, out, _ = await gridflow(
        capsys, "incident", "feedback", incident_id, "--rating", "satisfied", "--solved", "no", *server
    )
    assert (code, out) == (0, f"incident {incident_id}: dispatched at grid, held by {grid}\n")
    for step in (("accept", "--unit", grid), ("resolve", "--unit", grid, "--resolution", "new fuse")):
        code, out, err = await gridflow(capsys, "incident", step[0], incident_id, *step[1:], *server)
        assert code == 0, err
    code, out, _ = await gridflow(
        capsys, "incident", "feedback", incident_id, "--rating", "satisfied", "--solved", "yes", *server
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
    assert "solved       yes" in out and "reopened     1" in out
    assert "rating=satisfied, not solved" in out and "reason=not_solved" in out
    assert "rating=satisfied, solved" in out and "outcome=resolved" in out


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


async def test_incidents_due_soon_are_listed_with_when_their_clock_runs_out(
    server: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    district = f"d-due-{uuid.uuid4().hex[:8]}"
    at_grid, at_street = make_incident(district=district), make_incident(district=district)
    for incident in (at_grid, at_street):
        (tmp_path / "i.json").write_text(incident.model_dump_json(), encoding="utf-8")
        assert (await gridflow(capsys, "incident", "report", str(tmp_path / "i.json"), *server))[0] == 0
    # Passed up at once: the street has 4h to accept, the grid 2h (the default rule).
    escalate = ("escalate", at_street.incident_id, "--unit", at_street.location.grid_id)
    code, _, err = await gridflow(capsys, "incident", *escalate, "--reason", "not_responsible", *server)
    assert code == 0, err

    async def due(within: str, expected: set[str]) -> str:
        out = ""
        for _ in range(100):  # visibility is eventually consistent
            code, out, err = await gridflow(
                capsys, "incident", "list", "--district", district, "--due-within", within, *server
            )
            assert code == 0, err
            if {i for i in (at_grid.incident_id, at_street.incident_id) if i in out} == expected:
                return out
            await asyncio.sleep(0.1)
        raise AssertionError(f"the list never showed {expected}: {out}")

    out = await due("3h", {at_grid.incident_id})
    assert out.splitlines()[0].split()[-1] == "due"
    line = next(line for line in out.splitlines() if at_grid.incident_id in line)
    assert "(in 1h59m" in line or "(in 2h" in line  # accepted within 2h of its report, a moment ago
    await due("5h", {at_grid.incident_id, at_street.incident_id})
    await due("1h", set())

    code, out, _ = await gridflow(
        capsys, "incident", "list", "--district", district, "--due-within", "5h", "--json", *server
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(datetime.fromisoformat(row["next_deadline"]) > datetime.now(UTC) for row in rows)

    for bad, message in (
        ("--due-within=soon", "'soon' is not a duration"),
        ("--due-before=2026-12-04T18:00", "no time zone"),
    ):
        with pytest.raises(SystemExit) as exit:
            await gridflow(capsys, "incident", "list", bad, *server)
        assert exit.value.code == 2 and message in capsys.readouterr().err


async def test_the_dispatch_centre_transfers_an_incident_to_the_right_unit(
    server: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = make_incident()
    (tmp_path / "i.json").write_text(incident.model_dump_json(), encoding="utf-8")
    assert (await gridflow(capsys, "incident", "report", str(tmp_path / "i.json"), *server))[0] == 0
    move = ("transfer", incident.incident_id, "--to", "g-nanjing-08", "--reason", "the next grid's lamp")

    code, out, err = await gridflow(capsys, "incident", *move, *server)

    assert (code, out) == (
        0,
        f"incident {incident.incident_id}: dispatched at grid, held by g-nanjing-08\n",
    ), err
    code, _, err = await gridflow(capsys, "incident", *move, *server)
    assert code == 2 and "is already held by g-nanjing-08" in err
    code, out, _ = await gridflow(capsys, "incident", "show", incident.incident_id, *server)
    assert " transferred " in out and "from g-nanjing-07" in out and "reason=the next grid's lamp" in out


async def test_a_holder_asks_for_more_time_and_the_street_refuses_it(
    server: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incident = make_incident()
    (tmp_path / "i.json").write_text(incident.model_dump_json(), encoding="utf-8")
    assert (await gridflow(capsys, "incident", "report", str(tmp_path / "i.json"), *server))[0] == 0
    grid = ("--unit", incident.location.grid_id)
    assert (await gridflow(capsys, "incident", "accept", incident.incident_id, *grid, *server))[0] == 0

    ask = ("extend", incident.incident_id, *grid, "--extra", "8h", "--reason", "crane")
    code, out, err = await gridflow(capsys, "incident", *ask, *server)
    assert code == 0, err
    code, _, err = await gridflow(capsys, "incident", *ask, *server)
    assert code == 2 and "already has an extension request waiting for s-nanjing-east" in err
    no = ("refuse-extension", incident.incident_id, "--unit", "s-nanjing-east", "--reason", "ladder")
    assert (await gridflow(capsys, "incident", *no, *server))[0] == 0
    code, out, _ = await gridflow(capsys, "incident", "show", incident.incident_id, *server)
    assert " extension_requested " in out and "8h more" in out
    assert " extension_refused " in out and "by s-nanjing-east" in out and "reason=ladder" in out
    with pytest.raises(SystemExit):
        await gridflow(
            capsys, "incident", "extend", incident.incident_id, *grid, "--extra=soon", "--reason=x"
        )
    assert "'soon' is not a limit" in capsys.readouterr().err


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


# ---------------------------------------------------------------------- paging and counting


async def _reported(env: WorkflowEnvironment, server: list[str], district: str, n: int) -> list[str]:
    """`n` incidents reported in `district` to the server fixture's worker; their ids."""
    task_queue = server[server.index("--task-queue") + 1]
    incidents = [make_incident(district=district) for _ in range(n)]
    await asyncio.gather(*(report_incident(env.client, task_queue, incident) for incident in incidents))
    return [incident.incident_id for incident in incidents]


async def _until_visible(env: WorkflowEnvironment, query: str, expected: int) -> None:
    """Until visibility (eventually consistent) counts `expected` matches of `query`."""
    count = -1
    for _ in range(300):
        count = (await env.client.count_workflows(query)).count
        if count == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility counted {count} of {expected} for {query}")


def _listed_ids(out: str) -> list[str]:
    """The incident ids of a listed table, under its header."""
    lines = out.splitlines()
    assert lines[0].split() == [
        "incident", "status", "level", "district", "category", "priority", "started", "workflow"
    ]  # fmt: skip
    return [line.split()[0] for line in lines[1:]]


_NEXT_PAGE = re.compile(r"^more incidents match: add --page (\S+) for the next page$")


def _next_page_token(err: str) -> str | None:
    matches = [m for line in err.splitlines() if (m := _NEXT_PAGE.match(line))]
    assert len(matches) <= 1, err
    return matches[0][1] if matches else None


async def test_twenty_three_incidents_page_by_ten_in_three_disjoint_pages_that_hold_them_all(
    dev_server_env: WorkflowEnvironment, server: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    district = f"d-page-{uuid.uuid4().hex[:8]}"
    reported = await _reported(dev_server_env, server, district, 23)
    # Paged once every incident is matched: a status set later would not move it, but waiting
    # keeps the test's expectations exact.
    await _until_visible(
        dev_server_env, f"GridflowDistrict = '{district}' AND GridflowStatus = 'dispatched'", 23
    )
    listing = ("incident", "list", "--district", district, "--page-size", "10", *server)

    pages: list[list[str]] = []
    tokens: list[str | None] = []
    for _ in range(3):
        more = ["--page", tokens[-1]] if tokens and tokens[-1] else []
        code, out, err = await gridflow(capsys, *listing, *more)
        assert code == 0, err
        pages.append(_listed_ids(out))
        tokens.append(_next_page_token(err))
    assert [len(page) for page in pages] == [10, 10, 3]
    assert tokens[0] and tokens[1] and tokens[2] is None  # the hint on the first two pages only
    assert tokens[0] != tokens[1]
    listed = [incident_id for page in pages for incident_id in page]
    assert len(set(listed)) == len(listed) == 23 and set(listed) == set(reported)

    # A last page that is full: the server still hands out a token, but no hint leads to an empty page.
    code, out, err = await gridflow(capsys, *listing, "--page-size", "23")
    assert code == 0 and len(_listed_ids(out)) == 23 and _next_page_token(err) is None, err

    code, out, err = await gridflow(capsys, *listing, "--all")
    assert code == 0, err
    assert sorted(_listed_ids(out)) == sorted(reported)  # the header once: every other line a row
    assert err.splitlines() == ["listed 10 incidents...", "listed 20 incidents...", "listed 23 incidents"]

    code, out, err = await gridflow(capsys, *listing, "--json")
    assert code == 0, err
    first_page = [json.loads(line) for line in out.splitlines()]
    assert [row["incident_id"] for row in first_page] == pages[0]
    assert _next_page_token(err) is not None
    code, out, err = await gridflow(capsys, *listing, "--json", "--all")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(row["incident_id"] for row in rows) == sorted(reported)
    assert {row["incident_id"]: row for row in rows}[reported[0]] | {
        "started": "-",
        "next_deadline": "-",
    } == {
        "incident_id": reported[0],
        "status": "dispatched",
        "level": "grid",
        "district": district,
        "category": "street_lamp",
        "priority": "normal",
        "rule": "default",
        "next_deadline": "-",
        "started": "-",
        "workflow": "running",
    }
    assert all(row["started"].startswith("20") and row["next_deadline"] > row["started"] for row in rows)


async def test_a_bad_page_token_is_a_one_line_usage_error(
    dev_server_env: WorkflowEnvironment, server: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    district = f"d-token-{uuid.uuid4().hex[:8]}"
    await _reported(dev_server_env, server, district, 3)
    await _until_visible(dev_server_env, f"GridflowDistrict = '{district}'", 3)
    listing = ("incident", "list", "--district", district, "--page-size", "2", *server)
    code, _, err = await gridflow(capsys, *listing)
    token = _next_page_token(err)
    assert code == 0 and token, err

    not_a_token = (
        "--page: not a page token of `gridflow incident list`, or not all of one "
        "(copy it whole from the list's `more incidents match` line)\n"
    )
    for bad in ("not a token!", "bm90IGEgdG9rZW4", token[:-6], token[:20] + "x" + token[21:]):
        code, out, err = await gridflow(capsys, *listing, "--page", bad)
        assert (code, out, err) == (2, "", not_a_token), bad
    code, out, err = await gridflow(capsys, *listing, "--status", "closed", "--page", token)
    assert (code, out) == (2, "")
    assert err == (
        "--page: this token continues a list with other filters: give the filters of the list it came from\n"
    )
    code, out, err = await gridflow(capsys, *listing, "--page", token)
    assert code == 0 and len(_listed_ids(out)) == 1 and _next_page_token(err) is None, err


async def test_count_gives_the_totals_per_level_and_status_that_were_reported(
    dev_server_env: WorkflowEnvironment,
    server: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    district = f"d-count-{uuid.uuid4().hex[:8]}"
    ids = await _reported(dev_server_env, server, district, 6)
    await _until_visible(
        dev_server_env, f"GridflowDistrict = '{district}' AND GridflowStatus = 'dispatched'", 6
    )
    for incident_id in ids[:2]:
        await send_command(
            dev_server_env.client,
            incident_id,
            RequestEscalation(unit_id="g-nanjing-07", reason=EscalationRequestReason.REQUESTED),
        )
    await send_command(dev_server_env.client, ids[2], Withdraw(reason="duplicate"))
    counting = ("incident", "list", "--district", district, "--count", *server)
    expected = [
        ["level", "status", "count"],
        ["grid", "dispatched", "3"],
        ["grid", "closed", "1"],
        ["street", "dispatched", "2"],
        ["total", "6"],
    ]

    async def counted(*more: str, want: list[list[str]]) -> list[list[str]]:
        """The count's table once visibility shows what the test did (it is eventually consistent)."""
        rows: list[list[str]] = []
        for _ in range(300):
            code, out, err = await gridflow(capsys, *counting, *more)
            assert code == 0, err
            rows = [line.split() for line in out.splitlines()]
            if rows == want:
                return rows
            await asyncio.sleep(0.1)
        raise AssertionError(f"the count never showed {want}: {rows}")

    await counted(want=expected)
    code, out, err = await gridflow(capsys, *counting, "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "counts": [
            {"level": "grid", "status": "dispatched", "count": 3},
            {"level": "grid", "status": "closed", "count": 1},
            {"level": "street", "status": "dispatched", "count": 2},
        ],
        "other": 0,
        "total": 6,
    }
    await counted(
        "--status", "closed", want=[["level", "status", "count"], ["grid", "closed", "1"], ["total", "1"]]
    )

    # Rules that name only the grid: the street's two are counted, as (other), in the total.
    grid_only = tmp_path / "rules.yaml"
    grid_only.write_text(
        'version: "grid-only"\nrules:\n  - name: all\n    match: {}\n'
        "    ladder:\n      grid: {accept: 2h, resolve: 24h}\n",
        encoding="utf-8",
    )
    await counted(
        "--rules",
        str(grid_only),
        want=[
            ["level", "status", "count"],
            ["grid", "dispatched", "3"],
            ["grid", "closed", "1"],
            ["(other)", "2"],
            ["total", "6"],
        ],
    )

    code, out, err = await gridflow(capsys, *counting, "--all")
    assert (code, out) == (2, "")
    assert err == "--count counts every match: it takes no --page, --page-size or --all\n"
