"""The dev stack's live view: the board follows the steps the core takes, tells them in plain words, and
reads the rates from gridflow's own metrics; drawn, it fits the screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from rich.console import Console

from activities.metrics import LifecycleMetrics
from gridflow.app.devstack import demo_name, demo_rules
from gridflow.app.live_view import CLOSED_KEPT, Board, LiveRates, render
from gridflow.domain.incident import Incident, Priority, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    Feedback,
    IncidentState,
    LifecycleCommand,
    Resolve,
    Step,
    StepBatch,
    apply,
    fire_due,
    next_due,
    report,
    start,
)
from gridflow.domain.rates import rate_report
from tests.conftest import make_incident

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)  # make_incident's reported_at
SECOND = timedelta(seconds=1)
RULES = demo_rules().current()
GRID = "g-nanjing-07"


class Played:
    """One incident run on the pure core with the demo rules, its steps handed to a board and metrics as
    the worker hands them to its sinks."""

    def __init__(self, board: Board, metrics: LifecycleMetrics, incident: Incident) -> None:
        self.board, self.metrics, self.incident = board, metrics, incident
        self.state: IncidentState
        self.state, steps = report(incident, T0)
        self._hand(steps + start(self.state, incident, RULES.snapshot_for(incident), T0))

    def _hand(self, steps: list[Step]) -> None:
        batch = StepBatch.publishing(self.state, steps)
        self.board.take(batch)
        self.metrics.observe(batch)

    def until(self, seconds: float) -> None:
        """Let the clocks fire up to T0 + seconds."""
        until = T0 + seconds * SECOND
        while (due := next_due(self.state)) is not None and due <= until:
            self._hand(fire_due(self.state, self.incident, due))

    def do(self, seconds: float, command: LifecycleCommand) -> None:
        """Fire what is due, then apply the command at T0 + seconds."""
        self.until(seconds)
        self._hand(apply(self.state, self.incident, command, T0 + seconds * SECOND))


def play_demo_round() -> tuple[Board, CollectorRegistry, dict[str, Played]]:
    """The demo's story on the core: a lamp fixed to the resident's liking, an elevator whose resident
    is unsatisfied (it reopens), an urgent drain nobody touches (it climbs to the city)."""
    board, registry = Board(name=demo_name), CollectorRegistry()
    metrics = LifecycleMetrics(registry)
    played = {
        name: Played(board, metrics, make_incident(priority=priority, incident_id=f"demo-080000-1-{name}"))
        for name, priority in (
            ("lamp", Priority.NORMAL),
            ("elevator", Priority.HIGH),
            ("drain", Priority.URGENT),
        )
    }
    for name, rating in (("lamp", Rating.SATISFIED), ("elevator", Rating.UNSATISFIED)):
        played[name].do(3, Accept(unit_id=GRID))
        played[name].do(7, Resolve(unit_id=GRID, resolution="done"))
        played[name].do(9, Feedback(rating=rating))
    for each in played.values():
        each.until(60)
    return board, registry, played


def feed(board: Board) -> list[str]:
    return [line.text for line in board.feed]


def test_each_step_of_the_demo_reads_as_a_sentence_and_routine_ones_stay_out_of_the_feed() -> None:
    board, _, _ = play_demo_round()
    lines = feed(board)
    assert lines[:3] == [
        "lamp-1 reported (street_lamp, normal), sent to g-nanjing-07 at grid",
        "elevator-1 reported (street_lamp, high), sent to g-nanjing-07 at grid",
        "drain-1 reported (street_lamp, urgent), sent to g-nanjing-07 at grid",
    ]
    assert "lamp-1 accepted by g-nanjing-07 in 3s" in lines
    assert "lamp-1 resolved by g-nanjing-07 7s after the report" in lines
    assert "lamp-1: the resident is satisfied" in lines
    assert "lamp-1 closed at grid: resolved, the resident satisfied" in lines
    assert "elevator-1 reopened: the resident was unsatisfied, back to grid" in lines
    # The urgent rule gives each level 8-10 s to accept: the drain climbs and tells why.
    assert "drain-1 climbed grid → street: not accepted in 8s" in lines
    assert "drain-1 climbed street → district: not accepted in 8s" in lines
    assert "drain-1 climbed district → city: not accepted in 10s" in lines
    assert "drain-1 is overdue at the top of its ladder (city): nobody above to climb to" in lines
    assert not any("warned" in line or "still overdue" in line for line in lines)
    assert board.so_far() == "3 reported · 5 climbed a level · 2 resolved · 1 reopened · 1 closed"


def test_the_panel_holds_each_incidents_level_holder_deadline_and_climbs() -> None:
    board, _, played = play_demo_round()
    soon = T0 + 30 * SECOND
    names = [incident.name for incident in board.in_play(soon)]
    assert names[-1] == "lamp-1"  # open incidents first, the closed lamp last
    lamp = {incident.name: incident for incident in board.in_play(soon)}["lamp-1"]
    assert lamp.closed_at == T0 + 9 * SECOND and lamp.deadline is None and lamp.status is Status.CLOSED

    now = T0 + 60 * SECOND  # the lamp has been closed longer than CLOSED_KEPT: forgotten
    assert lamp.closed_at + CLOSED_KEPT < now
    panel = {incident.name: incident for incident in board.in_play(now)}
    assert set(panel) == {"elevator-1", "drain-1"}
    drain = panel["drain-1"]
    assert (drain.level, drain.holder, drain.status, drain.escalations) == (
        "city",
        "c-shanghai",
        Status.DISPATCHED,
        3,
    )
    assert drain.overdue and drain.deadline is not None and drain.deadline < now
    elevator = panel["elevator-1"]
    assert elevator.reopens == 1 and elevator.closed_at is None
    accept_clock = played["elevator"].state.accept_clock
    assert accept_clock is not None and elevator.deadline == accept_clock.deadline


def test_the_rates_read_from_the_metrics_equal_the_rates_of_the_timelines() -> None:
    _, registry, played = play_demo_round()
    rates = LiveRates.read(registry, "grid")
    expected = rate_report(each.state for each in played.values())
    assert rates.response == expected.response_rate
    assert rates.resolution == expected.resolution_rate
    assert rates.satisfaction == expected.satisfaction_rate
    assert rates.containment == expected.containment(["grid"])["grid"]
    assert (rates.satisfaction, rates.resolution) == (0.5, 1.0)
    assert rates.line().startswith("response ") and "satisfaction 50%" in rates.line()


def test_no_metrics_yet_shows_dashes_not_zeros() -> None:
    rates = LiveRates.read(CollectorRegistry())
    assert rates.line() == "response - · resolution - · satisfaction - · containment at grid -"


def test_the_drawn_view_fits_the_screen_with_many_incidents_and_keeps_the_addresses_on_top() -> None:
    board, registry, _ = play_demo_round()
    metrics = LifecycleMetrics(CollectorRegistry())
    for number in range(2, 40):
        Played(
            board, metrics, make_incident(incident_id=f"demo-080000-{number}-drain", priority=Priority.URGENT)
        )
    console = Console(width=150, height=40, record=True, color_system=None)
    header = "gridflow dev · Temporal UI http://127.0.0.1:8233 · Kafka 127.0.0.1:9092"
    console.print(render(board, LiveRates.read(registry), header, "Ctrl-C stops", T0 + 60 * SECOND, 40))
    lines = console.export_text().splitlines()
    assert len(lines) <= 40
    assert lines[0] == header
    assert any("more not shown" in line for line in lines)
    assert any(line.startswith("Rates") and "%" in line for line in lines)
    assert lines[-1] == "Ctrl-C stops"
