"""`gridflow incident`: report an incident, handle it through its lifecycle, show it, list incidents."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowExecution

from gridflow.app.cli.inputs import read_incident
from gridflow.app.cli.shared import (
    EXIT_OK,
    EXIT_REFUSED,
    RULES,
    TEMPORAL,
    add_command,
    add_group,
    connect_to_temporal,
    fail,
    rules_or_builtin,
    table,
    temporal_errors,
)
from gridflow.app.open_incidents import count_incidents
from gridflow.app.settings import Settings
from gridflow.domain.incident import CLOCK_STATUSES, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    GrantExtension,
    IncidentState,
    IncidentSummary,
    LifecycleCommand,
    Pause,
    Progress,
    RefuseExtension,
    Reject,
    RequestEscalation,
    RequestExtension,
    Resolve,
    Resume,
    Transfer,
    Verify,
    Withdraw,
)
from gridflow.domain.rules import format_duration, parse_duration, parse_limit
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
        ("solved", {True: "yes", False: "no", None: "-"}[state.solved]),
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
    if args.due_before is not None:
        # Only a running clock is due: paused, resolved and closed incidents are left out.
        clauses.append(sa.due_between(None, args.due_before))
    if args.query:
        clauses.append(f"({args.query})")
    return " AND ".join(clauses)


#: The list's columns, as the table heads them.
_HEADER = ["incident", "status", "level", "district", "category", "priority", "started", "workflow"]
#: With --due-within or --due-before, the list also shows when the running SLA clock runs out.
_DUE_HEADER = [*_HEADER, "due"]
#: Rows on one page when --page-size is not given: one screen; --all fetches bigger pages.
_PAGE_SIZE, _ALL_PAGE_SIZE = 50, 1000
#: A usage error exits 2, as argparse's own do.
EXIT_USAGE = EXIT_REFUSED
#: The first bytes of a page token: its format, should it ever change.
_TOKEN_FORMAT = b"g1"
_FINGERPRINT_BYTES = _CHECK_BYTES = 4
_NOT_A_TOKEN = (
    "--page: not a page token of `gridflow incident list`, or not all of one "
    "(copy it whole from the list's `more incidents match` line)"
)


def _digest(data: bytes, size: int) -> bytes:
    return hashlib.sha256(data).digest()[:size]


def encode_page_token(query: str, token: bytes) -> str:
    """Temporal's next-page token as the terminal shows it: URL-safe base64 of our format, the list's
    query's fingerprint (a token given with other filters is refused instead of listing nothing), the
    token, and a check (a token cut short or mistyped is refused instead of sent)."""
    raw = _TOKEN_FORMAT + _digest(query.encode(), _FINGERPRINT_BYTES) + token
    return base64.urlsafe_b64encode(raw + _digest(raw, _CHECK_BYTES)).decode("ascii").rstrip("=")


def decode_page_token(query: str, text: str) -> bytes:
    """Temporal's next-page token from `--page TEXT`; anything else is a one-line usage error.

    Checked here, before any request: the server answers a malformed token with an internal error
    that the SDK retries for some ten seconds before giving up.
    """
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        fail(_NOT_A_TOKEN, EXIT_USAGE)
    head = len(_TOKEN_FORMAT) + _FINGERPRINT_BYTES
    body, check = raw[:-_CHECK_BYTES], raw[-_CHECK_BYTES:]
    if len(body) <= head or not body.startswith(_TOKEN_FORMAT) or _digest(body, _CHECK_BYTES) != check:
        fail(_NOT_A_TOKEN, EXIT_USAGE)
    if body[len(_TOKEN_FORMAT) : head] != _digest(query.encode(), _FINGERPRINT_BYTES):
        fail(
            "--page: this token continues a list with other filters: give the filters of the list "
            "it came from",
            EXIT_USAGE,
        )
    return body[head:]


def _execution_fields(execution: WorkflowExecution) -> dict[str, str | None]:
    attrs = execution.typed_search_attributes
    return {
        "incident_id": execution.id.removeprefix("incident-"),
        "status": attrs.get(sa.STATUS),
        "level": attrs.get(sa.LEVEL),
        "district": attrs.get(sa.DISTRICT),
        "category": attrs.get(sa.CATEGORY),
        "priority": attrs.get(sa.PRIORITY),
        "rule": attrs.get(sa.RULE),
        "next_deadline": _iso(_running_deadline(execution)),
        "started": _iso(execution.start_time),
        "workflow": execution.status.name.lower() if execution.status else None,
    }


def _running_deadline(execution: WorkflowExecution) -> datetime | None:
    """The deadline of the running SLA clock; None when none runs (the attribute keeps its last value)."""
    attrs = execution.typed_search_attributes
    running = attrs.get(sa.STATUS) in {status.value for status in CLOCK_STATUSES}
    return (
        attrs.get(sa.NEXT_DEADLINE)
        if running and execution.status is not None and execution.status.name == "RUNNING"
        else None
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _execution_row(execution: WorkflowExecution, due_from: datetime | None = None) -> list[str]:
    """A row of the table; with `due_from` (the listing's now), when the running clock runs out."""
    attrs = execution.typed_search_attributes
    incident_id = execution.id.removeprefix("incident-")
    values = [attrs.get(key) or "-" for key in (sa.STATUS, sa.LEVEL, sa.DISTRICT, sa.CATEGORY, sa.PRIORITY)]
    state = execution.status.name.lower() if execution.status else "-"
    row = [incident_id, *values, when(execution.start_time), state]
    if due_from is not None:
        row.append(when(_running_deadline(execution), due_from))
    return row


def _header(args: argparse.Namespace) -> list[str]:
    return _DUE_HEADER if args.due_before is not None else _HEADER


def _due_from(args: argparse.Namespace) -> datetime | None:
    return args.listed_at if args.due_before is not None else None


async def _pages(
    client: Client, query: str, page_size: int, token: bytes | None
) -> AsyncIterator[tuple[Sequence[WorkflowExecution], bytes | None]]:
    """Each page of the list with the token of the next one (None after the last)."""
    pages = client.list_workflows(query, page_size=page_size, next_page_token=token)
    while True:
        await pages.fetch_next_page()
        yield pages.current_page or [], pages.next_page_token
        if pages.next_page_token is None:
            return


async def _more_after(client: Client, query: str, token: bytes) -> bool:
    """Whether anything follows a full page: the server hands out a token after every full page,
    even the last one, and a hint that leads to an empty page would mislead."""
    probe = client.list_workflows(query, page_size=1, next_page_token=token)
    await probe.fetch_next_page()
    return bool(probe.current_page)


def _json_line(execution: WorkflowExecution) -> str:
    return json.dumps(_execution_fields(execution))


async def _one_page(client: Client, query: str, args: argparse.Namespace, token: bytes | None) -> None:
    page_size = args.page_size or _PAGE_SIZE
    page = client.list_workflows(query, page_size=page_size, next_page_token=token)
    await page.fetch_next_page()
    executions, next_token = page.current_page or [], page.next_page_token
    if next_token is not None and not await _more_after(client, query, next_token):
        next_token = None
    if not executions:
        print("no incidents match", file=sys.stderr)
    elif args.json:
        print("\n".join(_json_line(execution) for execution in executions))
    else:
        header, due_from = _header(args), _due_from(args)
        print(table([header, *(_execution_row(execution, due_from) for execution in executions)]))
    if next_token is not None:
        # The next page must ask for the same instant: "within 2h" of a later now is another list.
        same_due = f" --due-before {_iso(args.due_before)}" if args.due_within is not None else ""
        print(
            f"more incidents match: add --page {encode_page_token(query, next_token)}{same_due} for the "
            f"next page{' (instead of --due-within)' if same_due else ''}",
            file=sys.stderr,
        )


async def _every_page(client: Client, query: str, args: argparse.Namespace, token: bytes | None) -> None:
    """Every page, printed as it comes: a city's 500,000 incidents are never held at once. The
    table's columns take the widths of the first page (a longer value later only pushes its row)."""
    listed, widths = 0, None
    async for executions, next_token in _pages(client, query, args.page_size or _ALL_PAGE_SIZE, token):
        if args.json:
            lines = [_json_line(execution) for execution in executions]
        else:
            header, due_from = _header(args), _due_from(args)
            rows = [_execution_row(execution, due_from) for execution in executions]
            if widths is None and rows:
                widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
                rows.insert(0, header)
            lines = [_aligned(row, widths or []) for row in rows]
        if lines:
            print("\n".join(lines), flush=True)
        listed += len(executions)
        more = "..." if next_token is not None else ""
        print(f"listed {listed:,} incidents{more}", file=sys.stderr, flush=True)
    if not listed:
        print("no incidents match", file=sys.stderr)


def _aligned(row: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


async def _count(client: Client, query: str, args: argparse.Namespace, settings: Settings) -> None:
    """Totals per (level, status) from visibility counts: one count query per pair and one in all."""
    if args.level:
        levels = [args.level]
    else:
        rules = rules_or_builtin(settings.rules_file)
        levels = sorted({level for rule in rules.rules for level in rule.levels})
    statuses = [Status(args.status)] if args.status else list(Status)
    counts, total = await asyncio.gather(
        count_incidents(client, levels, statuses, query=query), client.count_workflows(query)
    )
    listed = {pair: count for pair, count in counts.items() if count}
    other = total.count - sum(listed.values())
    if args.json:
        print(
            json.dumps(
                {
                    "counts": [
                        {"level": level, "status": status, "count": count}
                        for (level, status), count in listed.items()
                    ],
                    "other": max(other, 0),
                    "total": total.count,
                }
            )
        )
        return
    rows = [["level", "status", "count"]]
    rows += [[level, status, f"{count:,}"] for (level, status), count in listed.items()]
    if other > 0:  # incidents not matched yet, or at a level no rule names
        rows.append(["(other)", "", f"{other:,}"])
    rows.append(["total", "", f"{total.count:,}"])
    print(table(rows))


async def list_incidents(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow incident list [filters]`: incidents by their search attributes, newest first, a page
    at a time (or --all of them, or --count totals)."""
    args.listed_at = datetime.now(UTC)
    if args.due_within is not None:
        args.due_before = args.listed_at + args.due_within
    query = _list_query(args)
    if args.count and (args.all or args.page or args.page_size):
        fail("--count counts every match: it takes no --page, --page-size or --all", EXIT_USAGE)
    if args.page_size is not None and args.page_size < 1:
        fail("--page-size must be at least 1", EXIT_USAGE)
    token = decode_page_token(query, args.page) if args.page else None
    client = await connect_to_temporal(settings)
    with temporal_errors(settings):
        try:
            if args.count:
                await _count(client, query, args, settings)
            elif args.all:
                await _every_page(client, query, args, token)
            else:
                await _one_page(client, query, args, token)
        except BrokenPipeError:
            # `gridflow incident list --all | head`: the reader has what it wanted. Point standard
            # output at nothing so the interpreter's last flush does not fail as well.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


# ---------------------------------------------------------------------- the lifecycle commands


#: How each lifecycle subcommand's arguments become the workflow command.
T = TypeVar("T")


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type` that reports the parser's own words: argparse would say only "invalid value"."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 instant") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (write e.g. 2026-12-04T18:00:00Z)")
    return moment


#: `--solved` as the resident answers, and what the command carries.
_SOLVED: dict[str, bool | None] = {"yes": True, "no": False, "unasked": None}

_BUILDERS: dict[str, Callable[[argparse.Namespace], LifecycleCommand]] = {
    "accept": lambda a: Accept(unit_id=a.unit, handler=a.handler),
    "progress": lambda a: Progress(unit_id=a.unit, note=a.note),
    "escalate": lambda a: RequestEscalation(unit_id=a.unit, reason=a.reason, note=a.note),
    "transfer": lambda a: Transfer(unit_id=a.unit, to_unit=a.to, reason=a.reason),
    "extend": lambda a: RequestExtension(unit_id=a.unit, extra=a.extra, reason=a.reason),
    "grant-extension": lambda a: GrantExtension(unit_id=a.unit, note=a.note),
    "refuse-extension": lambda a: RefuseExtension(unit_id=a.unit, reason=a.reason),
    "verify": lambda a: Verify(unit_id=a.unit, note=a.note),
    "reject": lambda a: Reject(unit_id=a.unit, reason=a.reason),
    "pause": lambda a: Pause(unit_id=a.unit, reason=a.reason),
    "resume": lambda a: Resume(unit_id=a.unit),
    "resolve": lambda a: Resolve(unit_id=a.unit, resolution=a.resolution),
    "feedback": lambda a: Feedback(rating=a.rating, solved=_SOLVED[a.solved], comment=a.comment),
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
        "list or count incidents, a page at a time",
        "List incidents by their search attributes, newest first. Filters combine with AND; --query\n"
        "adds a Temporal visibility query, e.g. \"GridflowLevel IN ('district', 'city')\".\n"
        "Search attributes: GridflowStatus, GridflowLevel, GridflowDistrict, GridflowCategory,\n"
        "GridflowPriority, GridflowRule, GridflowNextDeadline (when the running SLA clock runs out).\n"
        "\n"
        "--due-within 2h lists the open incidents whose running clock (accept or resolve) runs out\n"
        "within two hours, already overdue ones included, with a `due` column; --due-before INSTANT\n"
        "the same up to an instant (a paused or resolved incident has no running clock: never due).\n"
        "\n"
        f"One page of --page-size incidents ({_PAGE_SIZE}) is printed; when more match, standard error says\n"
        "`more incidents match: add --page TOKEN for the next page`: run the same command (same\n"
        "filters) with --page TOKEN for the next one. --all prints every page as it comes (pages of\n"
        f"{_ALL_PAGE_SIZE} unless --page-size says otherwise), with `listed N incidents...` on standard\n"
        "error after each. --json prints one JSON object per incident and line instead of the table:\n"
        "incident_id, status, level, district, category, priority, rule, next_deadline, started,\n"
        "workflow.\n"
        "\n"
        "--count prints totals per level and status instead of rows, for the same filters, from\n"
        "Temporal visibility counts (one count query per level and status, at most 8 at once, and one\n"
        "for the total; nothing is listed). The levels are those of the rules (--rules). `(other)`\n"
        "counts matches at no level and status pair, e.g. incidents not matched to a rule yet.",
        [TEMPORAL, RULES],
        one_shot=True,
    )
    listing.add_argument("--query", metavar="VISIBILITY_QUERY", help="an extra visibility query")
    listing.add_argument("--status", choices=[s.value for s in Status], help="incident status")
    listing.add_argument("--level", help="current level (grid, street, ...)")
    listing.add_argument("--district", help="district id")
    listing.add_argument("--category", help="category")
    listing.add_argument("--priority", help="priority")
    due = listing.add_mutually_exclusive_group()
    due.add_argument(
        "--due-within",
        type=_argument(parse_duration),
        metavar="DURATION",
        help="only incidents whose running clock runs out within this (e.g. 2h), overdue ones included",
    )
    due.add_argument(
        "--due-before",
        type=_argument(_instant),
        metavar="INSTANT",
        help="only incidents whose running clock runs out by this instant (ISO 8601 with a zone)",
    )
    paging = listing.add_argument_group("paging and counting")
    paging.add_argument(
        "--page-size",
        "--limit",
        type=int,
        metavar="N",
        help=f"incidents per page ({_PAGE_SIZE}; {_ALL_PAGE_SIZE} with --all); --limit is the old name",
    )
    paging.add_argument("--page", metavar="TOKEN", help="continue from a `more incidents match` line's token")
    paging.add_argument("--all", action="store_true", help="every page, printed as it comes")
    paging.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    paging.add_argument(
        "--count", action="store_true", help="totals per level and status instead of rows (visibility counts)"
    )
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
    transfer = lifecycle(
        "transfer",
        "move the incident to another unit at the same level",
        "Move a dispatched or accepted incident to the right unit at the same level (a dispatch\n"
        "corrected, counted against dispatch accuracy). Without --unit the dispatch centre moves it;\n"
        "with it, the holding unit does. The new unit must accept it; the rule's `transfer` says\n"
        "whether its accept clock restarts or continues, and how many transfers a level allows.",
        unit=False,
    )
    transfer.add_argument("--to", required=True, metavar="UNIT", help="the unit that takes it over")
    transfer.add_argument("--reason", required=True, help="why it goes there")
    transfer.add_argument("--unit", help="the holding unit, when it moves the incident itself")
    extend = lifecycle(
        "extend",
        "ask for more time to resolve",
        "The holding unit of an accepted incident asks for more time to resolve, with a reason. The\n"
        "rule's `extension` says who approves (the level above, or a named unit), how soon they must\n"
        "decide (undecided: refused), how many extensions an incident may have and how long each.",
    )
    extend.add_argument(
        "--extra",
        required=True,
        type=_argument(parse_limit),
        help="how much more: a duration (8h, 2d) or working days (2wd)",
    )
    extend.add_argument("--reason", required=True, help="why it takes longer")
    lifecycle(
        "grant-extension",
        "grant the pending extension",
        "The approver (--unit) grants the pending extension: the resolve deadline moves by the time asked.",
    ).add_argument("--note", help="the approver's words")
    lifecycle(
        "refuse-extension",
        "refuse the pending extension",
        "The approver (--unit) refuses the pending extension: the resolve deadline stays.",
    ).add_argument("--reason", required=True, help="why not")
    lifecycle(
        "verify",
        "the inspector confirms the fix",
        "Where the rule verifies resolutions, the inspector (--unit) confirms the reported fix; the\n"
        "resident is asked next.",
    ).add_argument("--note", help="what the inspector saw")
    lifecycle(
        "reject",
        "the inspector sends the fix back (rework)",
        "The inspector (--unit) finds the fix not done: the incident goes back to the unit that\n"
        "resolved it, with a new resolve clock, and the rework is counted.",
    ).add_argument("--reason", required=True, help="what is not done")
    lifecycle(
        "pause", "stop the resolve clock", "Pause the resolve clock (the rule caps the total pause)."
    ).add_argument("--reason", help="what the handler waits for")
    lifecycle("resume", "restart the resolve clock", "Restart a paused resolve clock.")
    lifecycle(
        "resolve", "report the incident solved", "The holding unit reports it solved; the resident is asked."
    ).add_argument("--resolution", required=True, help="what was done to solve it")
    feedback = lifecycle(
        "feedback",
        "the return visit: rating, and whether solved",
        "The resident rates a resolved incident and may say whether the problem was solved: satisfied or\n"
        "basically satisfied closes it; unsatisfied, or not solved, reopens it (as the rule says) until\n"
        "the rule's reopen limit.",
        unit=False,
    )
    feedback.add_argument("--rating", required=True, choices=[r.value for r in Rating], help="the verdict")
    feedback.add_argument(
        "--solved",
        choices=list(_SOLVED),
        default="unasked",
        help="whether the resident says the problem was solved (default: not asked)",
    )
    feedback.add_argument("--comment", help="the resident's words")
    lifecycle(
        "withdraw", "withdraw the incident", "The reporter withdraws the incident; it closes.", unit=False
    ).add_argument("--reason", help="why")
