"""`gridflow incident`: report an incident, handle it through its lifecycle, show it, list incidents."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio.client import WorkflowExecution

from gridflow.app.cli.inputs import read_incident
from gridflow.app.cli.shared import (
    EXIT_OK,
    TEMPORAL,
    add_command,
    add_group,
    connect_to_temporal,
    fail,
    table,
    temporal_errors,
)
from gridflow.app.settings import Settings
from gridflow.domain.incident import Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    IncidentState,
    IncidentSummary,
    LifecycleCommand,
    Pause,
    Progress,
    RequestEscalation,
    Resolve,
    Resume,
    Withdraw,
)
from gridflow.domain.rules import format_duration
from gridflow.domain.step_text import step_details, when
from workflows import search_attributes as sa
from workflows.client import incident_state, report_incident, send_command

# ---------------------------------------------------------------------- report, show, list


async def report(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow incident report FILE`: start the incident's workflow (again: nothing)."""
    incident = read_incident(args.file)
    client = await connect_to_temporal(settings, writes="gridflow incident report")
    with temporal_errors(settings, incident.incident_id):
        reported = await report_incident(client, settings.task_queue, incident)
    what = f"incident {incident.incident_id} (workflow {incident.workflow_id}"
    if reported.started:
        print(f"started {what}, run {reported.run_id})")
    else:
        print(f"{what}) already exists; nothing started")
    return EXIT_OK


def _state_text(state: IncidentState, now: datetime) -> str:
    rule = state.rule
    ladder = rule.rule.levels if rule else []
    level = state.level or "-"
    if state.level in ladder:
        level += f" ({ladder.index(state.level) + 1} of {len(ladder)}: {' > '.join(ladder)})"
    fields = [
        ("category", f"{state.category}, priority {state.priority.value}, district {state.district_id}"),
        ("reported", when(state.reported_at)),
        ("rule", f"{rule.rule.name} (rules version {rule.rules_version})" if rule else "- (not matched yet)"),
        ("level", level),
        ("status", state.status.value),
        ("holder", state.holder_unit or "-"),
        ("overdue", "yes" if state.overdue else "no"),
        ("accept by", when(state.accept_deadline, now)),
        ("resolve by", when(state.resolve_deadline, now)),
        ("feedback by", when(state.feedback_deadline, now)),
        (
            "paused",
            format_duration(state.paused_total) + (" (paused now)" if state.status is Status.PAUSED else ""),
        ),
        ("reopened", str(state.reopen_count)),
        ("escalations", str(state.escalations)),
        ("outcome", state.outcome.value if state.outcome else "-"),
        ("rating", state.rating.value if state.rating else "-"),
        ("flagged", "yes" if state.flagged else "no"),
        ("closed", when(state.closed_at)),
    ]
    lines = [f"incident {state.incident_id}"]
    lines += [f"  {name:<12} {value}" for name, value in fields]
    lines.append("")
    lines.append("timeline")
    rows = [["seq", "time", "kind", "level", "unit", "details"]]
    rows += [
        [str(s.seq), when(s.at), s.kind.value, s.level or "", s.unit_id or "", step_details(s)]
        for s in state.timeline
    ]
    lines += ["  " + line for line in table(rows).splitlines()]
    return "\n".join(lines)


async def show(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow incident show ID [--json]`: the incident's state and whole timeline."""
    client = await connect_to_temporal(settings)
    with temporal_errors(settings, args.id):
        state = await incident_state(client, args.id)
    print(state.model_dump_json(indent=2) if args.json else _state_text(state, datetime.now(UTC)))
    return EXIT_OK


def _quoted(value: str) -> str:
    if "'" in value or "\\" in value:
        fail(f"{value!r}: quotes and backslashes are not allowed in a filter value")
    return f"'{value}'"


def _list_query(args: argparse.Namespace) -> str:
    clauses = ["WorkflowType = 'IncidentWorkflow'"]
    filters = [
        (sa.STATUS, args.status),
        (sa.LEVEL, args.level),
        (sa.DISTRICT, args.district),
        (sa.CATEGORY, args.category),
        (sa.PRIORITY, args.priority),
    ]
    clauses += [f"{key.name} = {_quoted(value)}" for key, value in filters if value]
    if args.query:
        clauses.append(f"({args.query})")
    return " AND ".join(clauses)


def _execution_row(execution: WorkflowExecution) -> list[str]:
    attrs = execution.typed_search_attributes
    incident_id = execution.id.removeprefix("incident-")
    values = [attrs.get(key) or "-" for key in (sa.STATUS, sa.LEVEL, sa.DISTRICT, sa.CATEGORY, sa.PRIORITY)]
    state = execution.status.name.lower() if execution.status else "-"
    return [incident_id, *values, when(execution.start_time), state]


async def list_incidents(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow incident list [filters]`: incidents by their search attributes, newest first."""
    client = await connect_to_temporal(settings)
    rows = [["incident", "status", "level", "district", "category", "priority", "started", "workflow"]]
    with temporal_errors(settings):
        async for execution in client.list_workflows(_list_query(args), limit=args.limit):
            rows.append(_execution_row(execution))
    if len(rows) == 1:
        print("no incidents match", file=sys.stderr)
    else:
        print(table(rows))
    return EXIT_OK


# ---------------------------------------------------------------------- the lifecycle commands

#: How each lifecycle subcommand's arguments become the workflow command.
_BUILDERS: dict[str, Callable[[argparse.Namespace], LifecycleCommand]] = {
    "accept": lambda a: Accept(unit_id=a.unit, handler=a.handler),
    "progress": lambda a: Progress(unit_id=a.unit, note=a.note),
    "escalate": lambda a: RequestEscalation(unit_id=a.unit, reason=a.reason, note=a.note),
    "pause": lambda a: Pause(unit_id=a.unit, reason=a.reason),
    "resume": lambda a: Resume(unit_id=a.unit),
    "resolve": lambda a: Resolve(unit_id=a.unit, resolution=a.resolution),
    "feedback": lambda a: Feedback(rating=a.rating, comment=a.comment),
    "withdraw": lambda a: Withdraw(reason=a.reason),
}


def _summary_line(summary: IncidentSummary) -> str:
    text = f"incident {summary.incident_id}: {summary.status.value}"
    if summary.level:
        text += f" at {summary.level}"
    if summary.holder_unit and summary.status is not Status.CLOSED:
        text += f", held by {summary.holder_unit}"
    if summary.outcome:
        text += f" ({summary.outcome.value})"
    return text


async def send_lifecycle_command(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow incident accept|progress|...|withdraw ID`: one lifecycle command; refused: exit 2."""
    command = _BUILDERS[args.action](args)
    client = await connect_to_temporal(settings, writes=f"gridflow incident {args.action}")
    with temporal_errors(settings, args.id):
        summary = await send_command(client, args.id, command)
    print(_summary_line(summary))
    return EXIT_OK


# ---------------------------------------------------------------------- the parsers


def add_incident(commands: Any) -> None:
    """`gridflow incident report|show|list` and the lifecycle commands."""
    incident = add_group(
        commands, "incident", "report, inspect and handle incidents", "Report, inspect and handle incidents."
    )
    add_command(
        incident,
        "report",
        report,
        "report an incident",
        "Start an incident from its JSON (the data of a gridflow.incident.reported.v1 event).\n"
        "Reporting the same incident again starts nothing.",
        [TEMPORAL],
        one_shot=True,
    ).add_argument("file", metavar="FILE", help="the incident JSON file, or - for standard input")
    shower = add_command(
        incident,
        "show",
        show,
        "show an incident's state and timeline",
        "Show an incident's rule, level, status, deadlines and full timeline (closed incidents too).",
        [TEMPORAL],
        one_shot=True,
    )
    shower.add_argument("id", metavar="ID", help="the incident id")
    shower.add_argument("--json", action="store_true", help="print the state as JSON")
    listing = add_command(
        incident,
        "list",
        list_incidents,
        "list incidents",
        "List incidents by their search attributes, newest first. Filters combine with AND; --query\n"
        "adds a Temporal visibility query, e.g. \"GridflowLevel IN ('district', 'city')\".\n"
        "Search attributes: GridflowStatus, GridflowLevel, GridflowDistrict, GridflowCategory,\n"
        "GridflowPriority, GridflowRule.",
        [TEMPORAL],
        one_shot=True,
    )
    listing.add_argument("--query", metavar="VISIBILITY_QUERY", help="an extra visibility query")
    listing.add_argument("--status", choices=[s.value for s in Status], help="incident status")
    listing.add_argument("--level", help="current level (grid, street, ...)")
    listing.add_argument("--district", help="district id")
    listing.add_argument("--category", help="category")
    listing.add_argument("--priority", help="priority")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N incidents (50)")
    _add_lifecycle_commands(incident)


def _add_lifecycle_commands(incident: Any) -> None:
    def lifecycle(name: str, help: str, description: str, unit: bool = True) -> argparse.ArgumentParser:
        parser = add_command(
            incident, name, send_lifecycle_command, help, description, [TEMPORAL], one_shot=True
        )
        parser.set_defaults(action=name)
        parser.add_argument("id", metavar="ID", help="the incident id")
        if unit:
            parser.add_argument("--unit", required=True, help="the id of the unit that holds the incident")
        return parser

    lifecycle(
        "accept",
        "the holding unit accepts the incident",
        "The holding unit accepts; its resolve clock starts.",
    ).add_argument("--handler", help="who handles it (a name or team)")
    lifecycle("progress", "note work under way", "The holding unit notes progress.").add_argument(
        "--note", required=True, help="what was done"
    )
    escalate = lifecycle(
        "escalate",
        "pass the incident up a level",
        "The holding unit asks to pass the incident to the next level of its ladder.",
    )
    escalate.add_argument(
        "--reason",
        required=True,
        choices=[r.value for r in EscalationRequestReason],
        help="requested: beyond this level's authority or means; not_responsible: not this unit's matter",
    )
    escalate.add_argument("--note", help="why")
    lifecycle(
        "pause", "stop the resolve clock", "Pause the resolve clock (the rule caps the total pause)."
    ).add_argument("--reason", help="what the handler waits for")
    lifecycle("resume", "restart the resolve clock", "Restart a paused resolve clock.")
    lifecycle(
        "resolve", "report the incident solved", "The holding unit reports it solved; the resident is asked."
    ).add_argument("--resolution", required=True, help="what was done to solve it")
    feedback = lifecycle(
        "feedback",
        "the resident's rating",
        "The resident rates a resolved incident: satisfied or basically satisfied closes it, unsatisfied\n"
        "reopens it (as the rule says) until the rule's reopen limit.",
        unit=False,
    )
    feedback.add_argument("--rating", required=True, choices=[r.value for r in Rating], help="the verdict")
    feedback.add_argument("--comment", help="the resident's words")
    lifecycle(
        "withdraw", "withdraw the incident", "The reporter withdraws the incident; it closes.", unit=False
    ).add_argument("--reason", help="why")
