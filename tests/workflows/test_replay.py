"""Safe deploys: the current workflow code replays every recorded incident history.

The histories under `histories/` were recorded from the path tests (GRIDFLOW_RECORD_HISTORIES=1).
A change to IncidentWorkflow that alters the commands it issues for an existing history fails here;
ship such a change behind `workflow.patched(...)` and keep the old histories (see the README).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from gridflow.domain.lifecycle import IncidentSummary
from workflows.incident import IncidentWorkflow
from workflows.input import IncidentInput

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """A recorded history, named by its file."""
    return WorkflowHistory.from_json(f"incident-{path.stem}", path.read_text())


def test_every_path_has_a_recorded_history() -> None:
    assert len(HISTORIES) >= 15


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: path.stem)
async def test_the_current_code_replays_the_recorded_history(path: Path) -> None:
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(load(path))


@workflow.defn(name="IncidentWorkflow", sandboxed=False)
class ChangedIncidentWorkflow:
    """A 'new version' that waits before dispatching: a change that must be caught before deploy."""

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentSummary:
        await workflow.sleep(timedelta(seconds=1))
        raise AssertionError("unreachable in replay")


async def test_a_change_to_the_command_sequence_is_caught_by_replay() -> None:
    path = next(p for p in HISTORIES if p.stem.startswith("an_incident_accepted_and_resolved"))
    replayer = Replayer(workflows=[ChangedIncidentWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert (
        "Nondeterminism" in type(result.replay_failure).__name__
        or "nondetermin" in str(result.replay_failure).lower()
    )
