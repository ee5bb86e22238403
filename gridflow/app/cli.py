"""The `gridflow` command: the dev stack, the worker, rules, incidents and the event schemas.

Every setting comes from the environment (`GRIDFLOW_*`, see gridflow.app.settings) and can be overridden by
a flag, before or after the command's name. Exit codes: 0 done, 1 error, 2 a command the incident
refused (or a usage error), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecution, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from events.schema import export_schemas
from gridflow.app import authoring_commands, pipeline_commands
from gridflow.app.codec_server import DEFAULT_CORS_ORIGIN
from gridflow.app.compose import run_worker, stop_on_signals
from gridflow.app.devstack import DevStack, DevStackError, demo_rules, run_demo
from gridflow.app.logs import FORMATS, LEVELS, configure_logging, forward_temporal_core_logs
from gridflow.app.settings import Settings, add_setting_flag
from gridflow.app.temporal import connect
from gridflow.domain.incident import Incident, Rating, Status
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
from gridflow.domain.rules import Rule, RulesFileError, builtin_rule_set, format_duration, load_rule_set
from gridflow.domain.rules.explain import lint
from gridflow.domain.simulation.stream import StreamError
from gridflow.domain.step_text import step_details, when
from workflows import search_attributes as sa
from workflows.client import (
    TemporalErrorKind,
    classify_temporal_error,
    incident_state,
    report_incident,
    send_command,
)

Handler = Callable[[argparse.Namespace, Settings], int | Coroutine[Any, Any, int]]

EXIT_OK, EXIT_ERROR, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A failure to report to the user in one message, with the exit code to end with."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- shared helpers


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    raise CommandError(message, code)


@contextlib.contextmanager
def _temporal(settings: Settings, incident_id: str | None = None) -> Iterator[None]:
    """Turn Temporal's errors into one clear line each: unreachable, missing, closed, refused."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        _fail(f"refused: {classify_temporal_error(exc).detail}", EXIT_REFUSED)
    except WorkflowQueryFailedError as exc:
        _fail(f"the query on incident {incident_id} failed: {exc}")
    except RPCError as exc:
        failure = classify_temporal_error(exc)
        if incident_id is not None and failure.kind is TemporalErrorKind.CLOSED:
            _fail(f"refused: incident {incident_id} is closed; nothing more can happen to it", EXIT_REFUSED)
        if incident_id is not None and failure.kind is TemporalErrorKind.NO_INCIDENT:
            _fail(f"no incident {incident_id} in namespace {settings.temporal_namespace}")
        if incident_id is not None and exc.status is RPCStatusCode.DEADLINE_EXCEEDED:
            # Queries and updates are answered by a worker: without one, the server times out.
            _fail(f"incident {incident_id} did not answer ({exc.message}): is a worker running on its queue?")
        _fail(f"Temporal at {settings.temporal_address} answered: {exc.message}")
    except RuntimeError as exc:
        if "client connect" not in str(exc):
            raise
        _fail(f"cannot connect to Temporal at {settings.temporal_address}: {exc}")


async def _connect(settings: Settings) -> Client:
    with _temporal(settings):
        client = await connect(settings)
    return client


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _summary_line(summary: IncidentSummary) -> str:
    text = f"incident {summary.incident_id}: {summary.status.value}"
    if summary.level:
        text += f" at {summary.level}"
    if summary.holder_unit and summary.status is not Status.CLOSED:
        text += f", held by {summary.holder_unit}"
    if summary.outcome:
        text += f" ({summary.outcome.value})"
    return text


# ---------------------------------------------------------------------- worker, dev, schema


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    with _temporal(settings):
        await run_worker(settings, stop_on_signals())
    return EXIT_OK


async def _dev(args: argparse.Namespace, settings: Settings) -> int:
    stack = DevStack(
        settings,
        state_dir=Path(args.state_dir),
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        kafka_port=args.kafka_port,
        metrics_port=settings.metrics_port,
        prometheus_port=args.prometheus_port if args.prometheus else None,
        rules=demo_rules() if args.demo else None,
        demo=run_demo if args.demo else None,
    )
    await stack.serve(stop_on_signals(), on_ready=lambda up: print(up.banner(), flush=True))
    return EXIT_OK


def _schema_export(args: argparse.Namespace, settings: Settings) -> int:
    for path in export_schemas(Path(args.dir)):
        print(path)
    return EXIT_OK


# ---------------------------------------------------------------------- rules


def _rule_text(rule: Rule) -> list[str]:
    match = rule.match
    conditions = [
        f"{name} in {', '.join(str(v) for v in values)}"
        for name, values in (
            ("category", match.category),
            ("priority", match.priority),
            ("district", match.district),
            ("street", match.street),
            ("channel", match.channel),
        )
        if values
    ]
    feedback = rule.feedback
    lines = [
        f"rule {rule.name}",
        f"  match     {'; '.join(conditions) if conditions else 'every incident (default)'}",
        "  ladder",
        *(
            f"    {level:<10} accept within {format_duration(rule.limits(level).accept):<8} "
            f"resolve within {format_duration(rule.limits(level).resolve)}"
            for level in rule.levels
        ),
        f"  warn at   {', '.join(f'{fraction:.0%}' for fraction in rule.warn_at)} of each clock",
        f"  pause     up to {format_duration(rule.max_pause)} in all",
        f"  overdue   reminded every {format_duration(rule.overdue_reminder)} at the top level",
        f"  feedback  within {format_duration(feedback.window)}; unsatisfied: {feedback.on_unsatisfied.value}"
        f", at most {feedback.max_reopens} reopens",
    ]
    return lines


def _rules_check(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or settings.rules_file
    rules = load_rule_set(path) if path else builtin_rule_set()
    source = path or "built-in rules"
    print(f"{source}: valid, version {rules.version}, {len(rules.rules)} rules (the first match wins)")
    for warning in lint(rules):
        print(f"{source}: warning: {warning}", file=sys.stderr)
    for rule in rules.rules:
        print()
        print("\n".join(_rule_text(rule)))
    return EXIT_OK


# ---------------------------------------------------------------------- incidents: report, show, list


def _read_incident(source: str) -> Incident:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {source}: {exc.strerror or exc}")
    return Incident.model_validate_json(text)


async def _incident_report(args: argparse.Namespace, settings: Settings) -> int:
    incident = _read_incident(args.file)
    client = await _connect(settings)
    with _temporal(settings, incident.incident_id):
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
    lines += ["  " + line for line in _table(rows).splitlines()]
    return "\n".join(lines)


async def _incident_show(args: argparse.Namespace, settings: Settings) -> int:
    client = await _connect(settings)
    with _temporal(settings, args.id):
        state = await incident_state(client, args.id)
    print(state.model_dump_json(indent=2) if args.json else _state_text(state, datetime.now(UTC)))
    return EXIT_OK


def _quoted(value: str) -> str:
    if "'" in value or "\\" in value:
        _fail(f"{value!r}: quotes and backslashes are not allowed in a filter value")
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


async def _incident_list(args: argparse.Namespace, settings: Settings) -> int:
    client = await _connect(settings)
    rows = [["incident", "status", "level", "district", "category", "priority", "started", "workflow"]]
    with _temporal(settings):
        async for execution in client.list_workflows(_list_query(args), limit=args.limit):
            rows.append(_execution_row(execution))
    if len(rows) == 1:
        print("no incidents match", file=sys.stderr)
    else:
        print(_table(rows))
    return EXIT_OK


# ---------------------------------------------------------------------- incidents: lifecycle commands

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


async def _incident_command(args: argparse.Namespace, settings: Settings) -> int:
    command = _BUILDERS[args.action](args)
    client = await _connect(settings)
    with _temporal(settings, args.id):
        summary = await send_command(client, args.id, command)
    print(_summary_line(summary))
    return EXIT_OK


# ---------------------------------------------------------------------- the parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _options(*adders: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(parser)
    return parser


def _logging_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logging")
    # Flags default to SUPPRESS (add_setting_flag): one given before the command is not reset by it.
    add_setting_flag(group, "log_format", choices=FORMATS)
    add_setting_flag(group, "log_level", choices=LEVELS)


def _temporal_options(parser: argparse.ArgumentParser, *, address: bool = True) -> None:
    group = parser.add_argument_group("Temporal")
    if address:
        add_setting_flag(group, "temporal_address", metavar="HOST:PORT")
    add_setting_flag(group, "temporal_namespace", "--namespace", metavar="NAME")
    add_setting_flag(group, "task_queue", metavar="NAME")


def _rules_options(parser: argparse.ArgumentParser) -> None:
    add_setting_flag(parser.add_argument_group("rules"), "rules_file", "--rules", metavar="FILE")


_LOGGING = _options(_logging_options)
_TEMPORAL = _options(_temporal_options)
_TEMPORAL_LOCAL = _options(functools.partial(_temporal_options, address=False))  # the dev stack's own server
_RULES = _options(_rules_options)


def _group(subparsers: Any, name: str, help: str, description: str) -> Any:
    parser = subparsers.add_parser(name, help=help, description=description, formatter_class=_Formatter)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def _command(
    subparsers: Any,
    name: str,
    handler: Handler,
    help: str,
    description: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        parents=[*parents, _LOGGING],
        formatter_class=_Formatter,
    )
    # Not `handler`: `incident accept --handler` has that name.
    parser.set_defaults(run_command=handler)
    return parser


def _add_lifecycle_commands(incident: Any) -> None:
    def lifecycle(name: str, help: str, description: str, unit: bool = True) -> argparse.ArgumentParser:
        parser = _command(incident, name, _incident_command, help, description, [_TEMPORAL])
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


def build_parser() -> argparse.ArgumentParser:
    """The `gridflow` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="gridflow",
        description=(
            "Civic incident escalation: incidents start Temporal workflows that escalate\n"
            "grid -> street -> district -> city on timers, until resolved and rated.\n\n"
            "Settings come from GRIDFLOW_* environment variables; flags override them."
        ),
        epilog="Start here: gridflow dev --demo",
        parents=[_LOGGING, _TEMPORAL, _RULES],
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    dev = _command(
        commands,
        "dev",
        _dev,
        "run everything on this machine",
        "Run the embedded dev stack: a Temporal dev server (state in STATE_DIR/temporal.db), a Tansu\n"
        "Kafka-API broker (in memory) and the worker; with --demo, also a demo that reports incidents and\n"
        "plays the handlers on the demo rules (limits of seconds). Server logs go to STATE_DIR.\n"
        "Ctrl-C stops everything.",
        [_TEMPORAL_LOCAL, _RULES],
    )
    dev.add_argument("--demo", action=argparse.BooleanOptionalAction, default=False, help="run the demo")
    dev.add_argument(
        "--state-dir", default=".gridflow", metavar="DIR", help="state and logs (default .gridflow)"
    )
    dev.add_argument("--temporal-port", type=int, default=7233, metavar="PORT", help="Temporal gRPC (7233)")
    dev.add_argument("--ui-port", type=int, default=8233, metavar="PORT", help="Temporal Web UI (8233)")
    dev.add_argument("--kafka-port", type=int, default=9092, metavar="PORT", help="Kafka broker (9092)")
    dev.add_argument(
        "--prometheus",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start Prometheus with gridflow's rules when it is installed (default: yes)",
    )
    dev.add_argument("--prometheus-port", type=int, default=9090, metavar="PORT", help="Prometheus (9090)")
    dev.add_argument(
        "--metrics-port",
        type=int,
        default=argparse.SUPPRESS,
        metavar="PORT",
        help="metrics (GRIDFLOW_METRICS_PORT)",
    )
    dev.set_defaults(core_logs=True)

    _command(
        commands,
        "worker",
        _worker,
        "run a worker",
        "Run a worker for incident workflows on the task queue until SIGINT or SIGTERM.\n"
        "The rules file is re-read when it changes.",
        [_TEMPORAL, _RULES],
    ).set_defaults(core_logs=True)

    rules = _group(commands, "rules", "check escalation rules", "Work with escalation rules files.")
    _command(
        rules,
        "check",
        _rules_check,
        "validate a rules file and show its rules",
        "Validate a rules file (default: GRIDFLOW_RULES_FILE, else the built-in rules) and show each\n"
        "rule's match and ladder. Exits 1 listing every problem, with the path to the bad field.",
        [_RULES],
    ).add_argument("file", nargs="?", metavar="FILE", help="the rules file (YAML)")

    incident = _group(
        commands, "incident", "report, inspect and handle incidents", "Report, inspect and handle incidents."
    )
    _command(
        incident,
        "report",
        _incident_report,
        "report an incident",
        "Start an incident from its JSON (the data of a gridflow.incident.reported.v1 event).\n"
        "Reporting the same incident again starts nothing.",
        [_TEMPORAL],
    ).add_argument("file", metavar="FILE", help="the incident JSON file, or - for standard input")
    show = _command(
        incident,
        "show",
        _incident_show,
        "show an incident's state and timeline",
        "Show an incident's rule, level, status, deadlines and full timeline (closed incidents too).",
        [_TEMPORAL],
    )
    show.add_argument("id", metavar="ID", help="the incident id")
    show.add_argument("--json", action="store_true", help="print the state as JSON")
    listing = _command(
        incident,
        "list",
        _incident_list,
        "list incidents",
        "List incidents by their search attributes, newest first. Filters combine with AND; --query\n"
        "adds a Temporal visibility query, e.g. \"GridflowLevel IN ('district', 'city')\".\n"
        "Search attributes: GridflowStatus, GridflowLevel, GridflowDistrict, GridflowCategory,\n"
        "GridflowPriority, GridflowRule.",
        [_TEMPORAL],
    )
    listing.add_argument("--query", metavar="VISIBILITY_QUERY", help="an extra visibility query")
    listing.add_argument("--status", choices=[s.value for s in Status], help="incident status")
    listing.add_argument("--level", help="current level (grid, street, ...)")
    listing.add_argument("--district", help="district id")
    listing.add_argument("--category", help="category")
    listing.add_argument("--priority", help="priority")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N incidents (50)")
    _add_lifecycle_commands(incident)

    _add_rule_author_commands(commands, rules)
    _add_pipeline_commands(commands)

    schema = _group(commands, "schema", "the event contract's schemas", "The event contract's documents.")
    _command(
        schema,
        "export",
        _schema_export,
        "write the JSON Schemas and AsyncAPI document",
        "Write the JSON Schema of every event's data, the CloudEvents envelope and the AsyncAPI 3.0\n"
        "document into DIR (created if needed); the output is stable, to commit and diff.",
    ).add_argument("dir", metavar="DIR", help="the directory to write into")
    return parser


def _add_rule_author_commands(commands: Any, rules: Any) -> None:
    explain = _command(
        rules,
        "explain",
        authoring_commands.rules_explain,
        "which rule an incident matches, and its timeline",
        "Show which rule the incident in EVENT_FILE matches (and why the earlier rules do not), and the\n"
        "timeline it would follow if nobody acted: every warning, breach and escalation with its time,\n"
        "calendar-aware. EVENT_FILE is a reported event's data or a whole CloudEvent envelope.",
        [_RULES],
    )
    explain.add_argument("file", metavar="EVENT_FILE", help="the incident JSON, or - for standard input")
    explain.add_argument(
        "--reminders", type=int, default=3, metavar="N", help="overdue reminders to show (3)"
    )

    simulate = _command(
        commands,
        "simulate",
        authoring_commands.run_simulation,
        "what a rules file does to the rates, on a stream of incidents",
        "Replay a stream of incidents (JSON lines: an incident and how its handlers and resident behave,\n"
        "in report order) through the rules of the incident loop and print the rates: response,\n"
        "resolution, satisfaction, on-time, escalation, containment per level and time to resolve,\n"
        "overall and per district, category and rule. With --compare, a second rules file side by side,\n"
        "the difference, and the incidents whose fate changed (escalated or breached where they were not,\n"
        "another outcome).\n\n"
        "engines:\n"
        "  discrete  (default) a discrete-event engine on the lifecycle core, the code IncidentWorkflow\n"
        "            runs: thousands of incidents per second, the stream read as it goes\n"
        "  temporal  the real IncidentWorkflow on a time-skipping Temporal test server (whole seconds);\n"
        "            slow (a few incidents per second): a fidelity check of the discrete engine",
        [_RULES],
    )
    simulate.add_argument("--incidents", required=True, metavar="FILE.jsonl", help="the stream")
    simulate.add_argument("--compare", metavar="OTHER_RULES", help="a second rules file to compare with")
    simulate.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    simulate.add_argument(
        "--engine", choices=["discrete", "temporal"], default="discrete", help="the engine (discrete)"
    )
    simulate.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar: simulated date, incidents done, rate (default: on a terminal)",
    )

    generate = _command(
        commands,
        "generate-stream",
        authoring_commands.generate_stream,
        "write a realistic synthetic stream for simulate",
        "Write COUNT synthetic incidents over DAYS days as JSON lines: categories and priorities in\n"
        "hotline proportions, a daily arrival rhythm, and handlers whose speed and reach depend on the\n"
        "level. The same seed gives the same stream.",
    )
    generate.add_argument("--count", type=int, default=1000, metavar="N", help="incidents (1000)")
    generate.add_argument("--days", type=int, default=7, metavar="N", help="days they arrive over (7)")
    generate.add_argument("--seed", type=int, default=1, metavar="N", help="random seed (1)")
    generate.add_argument("--districts", type=int, default=4, metavar="N", help="districts (4)")
    generate.add_argument("--start", metavar="ISO-TIME", help="the first day (default: today, UTC)")
    generate.add_argument("--out", default="-", metavar="FILE", help="where to write (default: stdout)")


def _add_pipeline_commands(commands: Any) -> None:
    _command(
        commands,
        "bridge",
        pipeline_commands.bridge,
        "run a Kafka -> Temporal bridge",
        "Consume the incidents topic in the consumer group and turn events into workflow starts and\n"
        "updates; unusable messages go to the dead-letter topic. Serves metrics on GRIDFLOW_METRICS_PORT\n"
        "(give each process its own). Stops cleanly on SIGINT or SIGTERM.",
        [_TEMPORAL],
    ).set_defaults(core_logs=True)

    publish = _command(
        commands,
        "publish",
        pipeline_commands.publish,
        "publish incident events to Kafka",
        "Publish events from FILE (a JSON object, a JSON array, or JSON lines; - for standard input) to\n"
        "the incidents topic, keyed by incident id. CloudEvent envelopes are sent as they are; plain data\n"
        "is wrapped in a CloudEvent of --type (default reported).",
    )
    publish.add_argument("file", metavar="FILE", help="the events, or - for standard input")
    publish.add_argument(
        "--type", metavar="TYPE", help="for plain data: reported, accepted, ... or a full type name"
    )
    publish.add_argument("--source", default="gridflow-cli", help="the CloudEvents source (gridflow-cli)")
    publish.add_argument("--binary", action="store_true", help="use the binary binding (ce_* headers)")

    dlq = _group(commands, "dlq", "list and replay dead letters", "The dead-letter topic.")
    listing = _command(
        dlq,
        "list",
        pipeline_commands.dlq_list,
        "list dead letters",
        "List every dead letter with its reason.",
    )
    listing.add_argument("--type", metavar="ERROR_TYPE", help="only this gridflow.error.type")
    listing.add_argument("--json", action="store_true", help="one JSON object per line, with the value")
    _command(
        dlq,
        "replay",
        pipeline_commands.dlq_replay,
        "put dead letters back on the incidents topic",
        "Publish dead letters back to the incidents topic with their original key, value and headers\n"
        "(after a fix). Events already applied are not applied again.",
    ).add_argument("--type", metavar="ERROR_TYPE", help="only this gridflow.error.type")

    codec = _group(commands, "codec", "payload encryption keys", "Keys that encrypt incident payloads.")
    _command(
        codec,
        "keygen",
        pipeline_commands.codec_keygen,
        "print a new key entry",
        "Print a new id:base64key entry for GRIDFLOW_CODEC_KEYS. Put it first to make it current; keep\n"
        "the old keys after it so existing histories stay readable.",
    ).add_argument("--id", required=True, help="the key id (e.g. k2026a)")
    server = _command(
        commands,
        "codec-server",
        pipeline_commands.codec_server,
        "decrypt payloads for the Temporal Web UI and CLI",
        "Serve the Temporal codec protocol (POST /encode, /decode) with GRIDFLOW_CODEC_KEYS;\n"
        "GRIDFLOW_CODEC_SERVER_TOKEN, if set, is required in Authorization.",
    )
    server.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    server.add_argument("--port", type=int, default=8081, help="listen port (8081)")
    server.add_argument(
        "--cors-origin", default=DEFAULT_CORS_ORIGIN, help="Web UI origin(s), comma-separated"
    )


# ---------------------------------------------------------------------- main


def _validation_problems(error: ValidationError) -> str:
    lines = [f"invalid {error.title}:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(input)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the `gridflow` command with `argv` (default: the process's arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env().with_overrides(**vars(args))
        configure_logging(settings.log_format, settings.log_level)
        if getattr(args, "core_logs", False):
            forward_temporal_core_logs()
        handler: Handler = args.run_command
        outcome = handler(args, settings)
        return outcome if isinstance(outcome, int) else asyncio.run(outcome)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except RulesFileError as exc:
        print(f"{exc.source}: invalid rules file", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:
        print(_validation_problems(exc), file=sys.stderr)
        return EXIT_ERROR
    except StreamError as exc:  # a bad simulation stream: each line's problem
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:  # a malformed setting (GRIDFLOW_* or flag)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (DevStackError, FileNotFoundError) as exc:  # the dev stack, or a missing server binary
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run() -> NoReturn:
    """The `gridflow` command: main(), then out without the interpreter's teardown.

    The Temporal SDK's native threads can outlive the interpreter's teardown and abort it ("Fatal Python
    error: PyGILState_Release", temporalio/sdk-python#300): once everything is flushed, leave at once.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
