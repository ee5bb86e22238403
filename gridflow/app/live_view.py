"""The dev stack's live view on a terminal: the incidents in play, each step in plain words, the rates.

The worker in the dev stack hands every published step to a `BoardSink` as well as to the log and
Kafka; the `Board` keeps what the screen needs (each incident's level, status, holder and next
deadline; the latest steps as sentences; how many of each thing happened). `LiveView` draws it with
rich a few times a second, with the rates read from the process's own gridflow metrics (the same
counters Prometheus scrapes) and the stack's addresses at the top, so the banner's addresses are never
out of sight. Everything runs on the event loop: the board is only touched there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO

from prometheus_client import CollectorRegistry
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gridflow.app.devstack import DevStack, NamedComponent
from gridflow.app.settings import Settings
from gridflow.domain.incident import Outcome, Rating, Status
from gridflow.domain.lifecycle import Step, StepBatch, StepKind
from gridflow.domain.rules import format_duration

#: How long a closed incident stays in the panel after it closed.
CLOSED_KEPT = timedelta(seconds=45)
#: Steps that only move the panel, not the story: a sentence beside them already says it (the first
#: dispatch tells the report; a climb or a reopening says where the incident went), or they repeat
#: (reminders, warnings) and would drown the rest.
QUIET_KINDS = frozenset(
    {
        StepKind.REPORTED,
        StepKind.DISPATCHED,
        StepKind.NOTIFIED,
        StepKind.SLA_WARNING,
        StepKind.SLA_BREACHED,  # the climb, or at the top the overdue step, says it
        StepKind.OVERDUE_REMINDER,
    }
)

_RATINGS = {
    Rating.SATISFIED: "satisfied",
    Rating.BASICALLY_SATISFIED: "basically satisfied",
    Rating.UNSATISFIED: "unsatisfied",
}
_OUTCOMES = {
    Outcome.RESOLVED: "resolved, the resident satisfied",
    Outcome.RESOLVED_UNRATED: "resolved, not rated in time",
    Outcome.RESOLVED_UNSATISFIED: "resolved, the resident still unsatisfied",
    Outcome.WITHDRAWN: "withdrawn",
}
_CLIMB_REASONS = {
    "requested": "{unit} asked to pass it up",
    "not_responsible": "{unit} says it is not its matter",
    "unsatisfied": "the resident was unsatisfied",
}
#: What the "so far" line counts, in the order it says them.
_TALLIED = (
    (StepKind.REPORTED, "reported"),
    (StepKind.ESCALATED, "climbed a level"),
    (StepKind.RESOLVED, "resolved"),
    (StepKind.REOPENED, "reopened"),
    (StepKind.CLOSED, "closed"),
)


def _span(delta: timedelta) -> str:
    return format_duration(delta) if delta >= timedelta(seconds=1) else "0s"


@dataclass
class InPlay:
    """One incident as the panel shows it."""

    incident_id: str
    name: str
    category: str
    priority: str
    level: str | None = None
    status: Status = Status.REPORTED
    holder: str | None = None
    deadline: datetime | None = None
    escalations: int = 0
    reopens: int = 0
    reported_at: datetime | None = None
    level_since: datetime | None = None  # dispatched at its current level
    accepted_at: datetime | None = None
    overdue: bool = False  # past its limit at the top of its ladder
    outcome: Outcome | None = None
    closed_at: datetime | None = None

    def follow(self, step: Step) -> None:
        """Take one step in: level, status, holder and the next deadline."""
        if step.kind is StepKind.NOTIFIED:
            return  # another department told: the holder and the clocks stay
        self.level, self.status = step.level or self.level, step.status
        self.holder = step.unit_id or self.holder
        if step.kind is StepKind.REPORTED:
            self.reported_at = step.at
        elif step.kind is StepKind.DISPATCHED:
            self.level_since, self.accepted_at, self.overdue = step.at, None, False
        elif step.kind is StepKind.OVERDUE:
            self.overdue = True
        elif step.kind is StepKind.ACCEPTED:
            self.accepted_at = step.at
        elif step.kind is StepKind.ESCALATED:
            self.escalations += 1
        elif step.kind is StepKind.REOPENED:
            self.reopens += 1
        elif step.kind is StepKind.CLOSED:
            self.outcome, self.closed_at, self.deadline = step.outcome, step.at, None
        if step.deadline is not None and step.kind is not StepKind.CLOSED:
            self.deadline = step.deadline


def step_in_words(incident: InPlay, step: Step) -> str:
    """One step as a sentence ("drain-3 climbed street → district: not accepted in 8s"), told before the
    incident follows the step (so the time at the level is still the old level's)."""
    name, unit, level = incident.name, step.unit_id or incident.holder or "?", step.level or "?"
    kind = step.kind
    if kind is StepKind.REPORTED:
        return f"{name} reported: {incident.category}, {incident.priority}"
    if kind is StepKind.DISPATCHED:
        if incident.level_since is None:  # the first dispatch: the report's sentence
            return f"{name} reported ({incident.category}, {incident.priority}), sent to {unit} at {level}"
        return f"{name} sent to {unit} ({level})"
    if kind is StepKind.NOTIFIED:
        return f"{name}: {unit} told, as the rule says at {level}"
    if kind is StepKind.SLA_WARNING:
        left = f", {_span(step.deadline - step.at)} left" if step.deadline else ""
        used = f"{step.fraction:.0%} of " if step.fraction is not None else ""
        return f"{name} warned at {level}: {used}the {_clock(step)} limit gone{left}"
    if kind is StepKind.SLA_BREACHED:
        return f"{name} missed its {_clock(step)} limit at {level}"
    if kind is StepKind.ESCALATED:
        return f"{name} climbed {step.from_level} → {step.to_level}: {_climb_reason(incident, step)}"
    if kind is StepKind.OVERDUE:
        return f"{name} is overdue at the top of its ladder ({level}): nobody above to climb to"
    if kind is StepKind.OVERDUE_REMINDER:
        return f"{name} still overdue at {level}"
    if kind is StepKind.ACCEPTED:
        late = "" if step.within_limit else ", after the limit"
        waited = f" in {_span(step.elapsed)}" if step.elapsed is not None else ""
        return f"{name} accepted by {unit}{waited}{late}"
    if kind is StepKind.PROGRESS:
        return f"{name}: {unit} reported progress"
    if kind is StepKind.TRANSFERRED:
        return f"{name} moved from {step.from_unit} to {unit} at {level} ({step.reason})"
    if kind is StepKind.EXTENSION_REQUESTED:
        return f"{name}: {unit} asks for {step.extension} more ({step.reason})"
    if kind is StepKind.EXTENSION_GRANTED:
        return f"{name}: {step.actor} gave {unit} {step.extension} more"
    if kind is StepKind.EXTENSION_REFUSED:
        who = f"{step.actor} refused" if step.actor else step.reason or "refused"
        return f"{name}: no more time for {unit} ({who})"
    if kind is StepKind.VERIFIED:
        return f"{name}: {step.actor} verified the fix"
    if kind is StepKind.REJECTED:
        return f"{name}: {step.actor} sent the fix back to {unit} ({step.reason})"
    if kind is StepKind.PAUSED:
        return f"{name} paused by {unit} ({step.reason or 'no reason given'})"
    if kind is StepKind.RESUMED:
        return f"{name} resumed at {level}"
    if kind is StepKind.RESOLVED:
        took = f" {_span(step.elapsed)} after the report" if step.elapsed is not None else ""
        return f"{name} resolved by {unit}{took}"
    if kind is StepKind.FEEDBACK:
        rating = _RATINGS.get(step.rating, "no rating") if step.rating else "no rating"
        solved = {True: " and says it is solved", False: " but says it is not solved", None: ""}[step.solved]
        return f"{name}: the resident is {rating}{solved}"
    if kind is StepKind.REOPENED:
        where = f", back to {step.to_level}" if step.to_level else ""
        why = "said it is not solved" if step.reason == "not_solved" else "was unsatisfied"
        return f"{name} reopened: the resident {why}{where}"
    if kind is StepKind.CLOSED:
        outcome = _OUTCOMES.get(step.outcome, "closed") if step.outcome else "closed"
        climbs = f" after {_count(step.escalations, 'climb')}" if step.escalations else ""
        return f"{name} closed at {level}: {outcome}{climbs}"
    return f"{name}: {kind.value} at {level}"


def _count(amount: int, noun: str) -> str:
    return f"{amount} {noun}" + ("" if amount == 1 else "s")


def _clock(step: Step) -> str:
    return step.clock.value if step.clock else "its"


def _climb_reason(incident: InPlay, step: Step) -> str:
    reason = step.reason or ""
    if reason == "accept_timeout" and incident.level_since is not None:
        return f"not accepted in {_span(step.at - incident.level_since)}"
    if reason == "resolve_timeout":
        since = incident.accepted_at or incident.level_since
        return f"not resolved in {_span(step.at - since)}" if since else "not resolved in time"
    if reason in _CLIMB_REASONS:
        return _CLIMB_REASONS[reason].format(unit=step.unit_id or incident.holder or "the holder")
    return reason.replace("_", " ") or "escalated"


@dataclass(frozen=True)
class StepLine:
    """A step as the feed shows it."""

    at: datetime
    text: str
    kind: StepKind


@dataclass
class Board:
    """What the live view knows: the incidents seen, the latest steps in words, and a tally by kind.

    `name` shortens an incident id for the screen (the demo's ids carry a run id nobody needs to read).
    """

    name: Callable[[str], str] = str
    feed_size: int = 200
    incidents: dict[str, InPlay] = field(default_factory=dict)
    feed: deque[StepLine] = field(init=False)
    tally: Counter[StepKind] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.feed = deque(maxlen=self.feed_size)

    def take(self, batch: StepBatch) -> None:
        """Follow a batch of published steps."""
        incident = self.incidents.get(batch.incident_id)
        if incident is None:
            incident = self.incidents[batch.incident_id] = InPlay(
                incident_id=batch.incident_id,
                name=self.name(batch.incident_id),
                category=batch.category,
                priority=batch.priority.value,
            )
        for step in batch.steps:
            first_dispatch = step.kind is StepKind.DISPATCHED and incident.level_since is None
            if step.kind not in QUIET_KINDS or first_dispatch:
                self.feed.append(StepLine(step.at, step_in_words(incident, step), step.kind))
            incident.follow(step)
            self.tally[step.kind] += 1

    def in_play(self, now: datetime) -> list[InPlay]:
        """Open incidents, newest first, then those closed within CLOSED_KEPT; older ones are forgotten."""
        for incident_id in [
            i.incident_id for i in self.incidents.values() if i.closed_at and now - i.closed_at > CLOSED_KEPT
        ]:
            del self.incidents[incident_id]
        ordered = sorted(self.incidents.values(), key=lambda i: i.reported_at or now, reverse=True)
        return [i for i in ordered if i.closed_at is None] + [i for i in ordered if i.closed_at is not None]

    def so_far(self) -> str:
        """The tally in words: "12 reported · 7 climbed a level · 5 resolved · 2 reopened · 5 closed"."""
        return " · ".join(f"{self.tally[kind]} {words}" for kind, words in _TALLIED)


class BoardSink:
    """A step sink (activities.sinks.StepSink) that feeds a board."""

    def __init__(self, board: Board) -> None:
        self.board = board

    async def publish(self, batch: StepBatch) -> None:
        """Follow the batch on the board."""
        self.board.take(batch)


# ---------------------------------------------------------------------- rates from the metrics


@dataclass(frozen=True)
class LiveRates:
    """The rates of PRODUCT.md section 1 since the process started, from its own gridflow_* counters.

    The formulas are the recording rules' (deploy/prometheus/recording_rules.yml) over all time rather
    than five minutes: response = accepted within limit / (that + accept-clock breaches); resolution =
    resolved closures / closures; satisfaction = satisfied or basically satisfied / ratings;
    containment at the bottom level = resolved closures there / resolved closures.
    """

    response: float | None
    resolution: float | None
    satisfaction: float | None
    containment: float | None
    bottom_level: str

    @classmethod
    def read(cls, registry: CollectorRegistry, bottom_level: str = "grid") -> LiveRates:
        """Read the counters now."""
        samples = [s for metric in registry.collect() for s in metric.samples if s.name.endswith("_total")]

        def total(name: str, **labels: str | Iterable[str]) -> float:
            def matches(sample_labels: dict[str, str]) -> bool:
                for key, wanted in labels.items():
                    value = sample_labels.get(key, "")
                    if value != wanted if isinstance(wanted, str) else value not in wanted:
                        return False
                return True

            return sum(s.value for s in samples if s.name == name and matches(s.labels))

        resolved = [o.value for o in Outcome if o.is_resolved]
        liked = [r.value for r in Rating if r is not Rating.UNSATISFIED]
        in_time = total("gridflow_incidents_accepted_total", within_limit="true")
        breaches = total("gridflow_sla_breaches_total", clock="accept")
        closures = total("gridflow_incidents_closed_total")
        resolved_closures = total("gridflow_incidents_closed_total", outcome=resolved)
        at_bottom = total("gridflow_incidents_closed_total", outcome=resolved, level=bottom_level)
        return cls(
            response=_ratio(in_time, in_time + breaches),
            resolution=_ratio(resolved_closures, closures),
            satisfaction=_ratio(
                total("gridflow_feedback_total", rating=liked), total("gridflow_feedback_total")
            ),
            containment=_ratio(at_bottom, resolved_closures),
            bottom_level=bottom_level,
        )

    def line(self) -> str:
        """`response 67% · resolution 100% · satisfaction 50% · containment at grid 50%` (`-` for none)."""
        parts = (
            ("response", self.response),
            ("resolution", self.resolution),
            ("satisfaction", self.satisfaction),
            (f"containment at {self.bottom_level}", self.containment),
        )
        return " · ".join(f"{name} {'-' if value is None else f'{value:.0%}'}" for name, value in parts)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


# ---------------------------------------------------------------------- drawing


def _countdown(deadline: datetime | None, now: datetime) -> Text:
    if deadline is None:
        return Text("-")
    left = deadline - now
    if left >= timedelta(0):
        return Text(f"in {_span(left)}", style="yellow" if left < timedelta(seconds=5) else "")
    return Text(f"{_span(-left)} over", style="bold red")


def _status(incident: InPlay) -> Text:
    if incident.closed_at is not None:
        return Text(f"closed: {incident.outcome.value if incident.outcome else '-'}", style="green")
    if incident.overdue:
        return Text(f"{incident.status.value}, overdue", style="bold red")
    return Text(incident.status.value, style="cyan" if incident.status is Status.ACCEPTED else "")


def render(
    board: Board,
    rates: LiveRates,
    header: str,
    footer: str,
    now: datetime,
    height: int,
) -> RenderableType:
    """The screen: addresses, the incidents in play, the latest steps, the tally and the rates, sized to
    fit `height` lines (the table and the feed share what the fixed lines leave)."""
    incidents = board.in_play(now)
    room = max(height - 12, 6)  # header, table head, titles, tally, rates, footer
    table_rows = min(len(incidents), max(room // 2, 3))
    feed_rows = max(room - table_rows, 3)

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("incident", "category", "level", "status", "holder", "deadline", "climbs", "reopens"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for incident in incidents[:table_rows]:
        table.add_row(
            incident.name,
            incident.category,
            incident.level or "-",
            _status(incident),
            incident.holder or "-",
            _countdown(incident.deadline, now),
            str(incident.escalations),
            str(incident.reopens),
        )
    open_count = sum(1 for i in incidents if i.closed_at is None)
    hidden = len(incidents) - table_rows
    title = f"Incidents in play: {open_count} open" + (f", {hidden} more not shown" if hidden > 0 else "")

    feed = Text()
    for line in list(board.feed)[-feed_rows:]:
        style = _FEED_STYLES.get(line.kind, "")
        feed.append(f"{line.at.astimezone().strftime('%H:%M:%S')}  ", style="dim")
        feed.append(line.text + "\n", style=style)

    return Group(
        Text(header, style="bold"),
        Text(""),
        Text(title, style="bold underline"),
        table,
        Text(""),
        Text("Steps as they happen", style="bold underline"),
        feed if board.feed else Text("(waiting for the first incident)", style="dim"),
        Text("So far   ", style="bold").append(board.so_far()),
        Text("Rates    ", style="bold").append(f"{rates.line()}  (since start)"),
        Text(footer, style="dim"),
    )


_FEED_STYLES = {
    StepKind.ESCALATED: "bold yellow",
    StepKind.SLA_BREACHED: "red",
    StepKind.OVERDUE: "bold red",
    StepKind.REOPENED: "magenta",
    StepKind.CLOSED: "green",
    StepKind.RESOLVED: "green",
}


@dataclass
class LiveView:
    """Draws the board on a terminal until stopped; the stack's addresses stay at the top.

    `run` has the dev stack's component shape: it waits for `shown` (the banner is out), then redraws
    `per_second` times a second until `stop`, and leaves the last screen in place.
    """

    board: Board
    registry: CollectorRegistry
    header: str
    footer: str
    bottom_level: str = "grid"
    per_second: float = 2.0
    file: IO[str] | None = None
    shown: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, settings: Settings, stop: asyncio.Event) -> None:
        """Draw until `stop` is set."""
        waiting = asyncio.ensure_future(self.shown.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiting, stopped], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        stopped.cancel()
        if stop.is_set():
            return
        console = Console(file=self.file)
        # Lines written to stdout or stderr meanwhile (warnings, errors) appear above the view.
        with Live(self._screen(console), console=console, auto_refresh=False, transient=False) as live:
            while not stop.is_set():
                live.update(self._screen(console), refresh=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1 / self.per_second)

    def _screen(self, console: Console) -> RenderableType:
        rates = LiveRates.read(self.registry, self.bottom_level)
        return render(self.board, rates, self.header, self.footer, datetime.now(UTC), console.size.height)


def watch_live(stack: DevStack, name: Callable[[str], str] = str) -> LiveView:
    """Give the stack a live view: a board fed by its worker's steps, drawn as one of its components
    once `shown` is set (after the banner). Call before the stack starts."""
    board = Board(name=name)
    stack.extra_sinks.append(BoardSink(board))
    prometheus = stack.prometheus_url if stack.prometheus_port else None
    header = " · ".join(
        [
            "gridflow dev",
            f"Temporal UI {stack.ui_url}",
            f"Temporal {stack.temporal_address}",
            f"Kafka {stack.kafka_bootstrap}",
            f"Metrics {stack.metrics_url}",
            *([f"Prometheus {prometheus}"] if prometheus else []),
        ]
    )
    footer = (f"Full log: {stack.log_file} · " if stack.log_file else "") + "Ctrl-C stops"
    rules = stack.rules.current().rules if stack.rules else []
    bottom = rules[0].levels[0] if rules and rules[0].levels else "grid"
    view = LiveView(board, stack.registry, header, footer, bottom_level=bottom)
    stack.components.append(NamedComponent("live view", view.run))
    return view


__all__ = ["Board", "BoardSink", "InPlay", "LiveRates", "LiveView", "render", "step_in_words", "watch_live"]
