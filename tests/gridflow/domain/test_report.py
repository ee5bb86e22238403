"""The monthly report on a scenario worked out by hand: every count, rate, score, rank, change, week and
breach of November 2026 against October, from timelines run on the pure lifecycle core.

The incidents (built-in rules: `default` grid accept 2h / resolve 24h, street 4h / 48h; `urgent` grid
15m / 2h, street 15m / 4h; feedback window 72h, reopened at the same level):

  O1 d-huangpu street_lamp  Oct 30 reported, grid accepts in 30m, resolves Oct 31 09:00 (the 75% resolve
                            warning Oct 31 04:30); satisfied Nov 2 09:00 -> closed resolved at grid
  O2 d-huangpu drain        Oct 5 grid accepts, resolves; unsatisfied -> reopened at grid, accepted,
                            resolved; satisfied -> closed resolved at grid
  O3 d-jingan  street_lamp  Oct 12 grid accepts, resolves; satisfied -> closed resolved at grid
  O4 d-jingan  drain        Oct 20 grid does not accept in 2h (breach) -> street accepts, resolves;
                            satisfied -> closed resolved at street, escalated
  H1 d-huangpu street_lamp  Nov 3 grid accepts, resolves; satisfied, solved -> closed resolved at grid
  H2 d-huangpu drain        Nov 10 grid does not accept in 2h (breach) -> street accepts, resolves;
                            unsatisfied, not solved -> reopened at street, accepted, resolved;
                            basically satisfied, solved Nov 11 -> closed resolved at street, escalated
  J1 d-jingan  street_lamp  Nov 17 urgent: grid accepts in 5m, does not resolve in 2h (breach) -> street
                            accepts in 5m, resolves; no rating in 72h -> closed resolved_unrated Nov 20
  J2 d-jingan  drain        Nov 24 grid accepts; withdrawn -> closed withdrawn at grid
  J3 d-jingan  drain        Nov 30 grid accepts, resolves; satisfied Dec 1 (after the period) -> closed

Each step counts in the period its `at` falls in: O1's feedback and closure are November's, J3's
rating and closure December's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gridflow.domain.incident import Incident, Location, Priority, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    Feedback,
    IncidentContext,
    IncidentState,
    IncidentStep,
    LifecycleCommand,
    Resolve,
    StepKind,
    Withdraw,
    apply,
    fire_due,
    next_due,
    report,
    start,
)
from gridflow.domain.rates import RateReport, rate_report
from gridflow.domain.report import (
    UNKNOWN,
    Grouping,
    Period,
    PeriodError,
    PeriodReport,
    Weights,
    WeightsError,
    build_report,
)
from gridflow.domain.rules import builtin_rule_set

RULES = builtin_rule_set()
WEIGHTS = Weights.parse("response=30,resolution=35,satisfaction=35")
NOVEMBER = Period.month("2026-11")
PLACES = {"d-huangpu": ("g-nanjing-07", "s-nanjing-east"), "d-jingan": ("g-jingan-03", "s-jingansi")}
H_GRID, H_STREET = PLACES["d-huangpu"]
J_GRID, J_STREET = PLACES["d-jingan"]
HUANGPU, JINGAN = "d-huangpu", "d-jingan"
LAMP, DRAIN = "street_lamp", "drain"


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of 2026, in UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def play(
    incident_id: str,
    district: str,
    category: str,
    reported: datetime,
    script: list[tuple[datetime, LifecycleCommand]],
    priority: Priority = Priority.NORMAL,
) -> IncidentState:
    """Report and start an incident, apply each command at its instant (firing whatever falls due
    before it), then let time run until everything is closed."""
    grid, street = PLACES[district]
    incident = Incident(
        incident_id=incident_id,
        category=category,
        title="As reported",
        priority=priority,
        location=Location(grid_id=grid, street_id=street, district_id=district, city_id="c-shanghai"),
        reported_at=reported,
    )
    state, _ = report(incident, reported)
    start(state, incident, RULES.snapshot_for(incident), reported)

    def run_until(until: datetime) -> None:
        while (due := next_due(state)) is not None and due <= until:
            fire_due(state, incident, due)

    for when, command in script:
        run_until(when)
        apply(state, incident, command, when)
    run_until(at(12, 31, 0))
    assert state.status is Status.CLOSED
    return state


def accept(unit: str) -> Accept:
    return Accept(unit_id=unit)


def resolve(unit: str) -> Resolve:
    return Resolve(unit_id=unit, resolution="fixed")


def rating(value: Rating, solved: bool | None = None) -> Feedback:
    return Feedback(rating=value, solved=solved)


SATISFIED, BASICALLY, UNSATISFIED = Rating.SATISFIED, Rating.BASICALLY_SATISFIED, Rating.UNSATISFIED


def scenario() -> list[IncidentState]:
    """The incidents of the module's docstring."""
    return [
        play(
            "O1",
            HUANGPU,
            LAMP,
            at(10, 30, 10),
            [
                (at(10, 30, 10, 30), accept(H_GRID)),
                (at(10, 31, 9), resolve(H_GRID)),
                (at(11, 2, 9), rating(SATISFIED)),
            ],
        ),
        play(
            "O2",
            HUANGPU,
            DRAIN,
            at(10, 5, 9),
            [
                (at(10, 5, 9, 20), accept(H_GRID)),
                (at(10, 5, 12), resolve(H_GRID)),
                (at(10, 5, 14), rating(UNSATISFIED)),
                (at(10, 5, 15), accept(H_GRID)),
                (at(10, 6, 9), resolve(H_GRID)),
                (at(10, 6, 10), rating(SATISFIED)),
            ],
        ),
        play(
            "O3",
            JINGAN,
            LAMP,
            at(10, 12, 9),
            [
                (at(10, 12, 9, 10), accept(J_GRID)),
                (at(10, 12, 11), resolve(J_GRID)),
                (at(10, 12, 12), rating(SATISFIED)),
            ],
        ),
        play(
            "O4",
            JINGAN,
            DRAIN,
            at(10, 20, 9),
            [
                (at(10, 20, 12), accept(J_STREET)),
                (at(10, 20, 13), resolve(J_STREET)),
                (at(10, 20, 15), rating(SATISFIED)),
            ],
        ),
        play(
            "H1",
            HUANGPU,
            LAMP,
            at(11, 3, 9),
            [
                (at(11, 3, 9, 30), accept(H_GRID)),
                (at(11, 3, 13, 30), resolve(H_GRID)),
                (at(11, 3, 15), rating(SATISFIED, solved=True)),
            ],
        ),
        play(
            "H2",
            HUANGPU,
            DRAIN,
            at(11, 10, 9),
            [
                (at(11, 10, 12), accept(H_STREET)),
                (at(11, 10, 16), resolve(H_STREET)),
                (at(11, 10, 18), rating(UNSATISFIED, solved=False)),
                (at(11, 10, 19), accept(H_STREET)),
                (at(11, 11, 10), resolve(H_STREET)),
                (at(11, 11, 12), rating(BASICALLY, solved=True)),
            ],
        ),
        play(
            "J1",
            JINGAN,
            LAMP,
            at(11, 17, 8),
            [
                (at(11, 17, 8, 5), accept(J_GRID)),
                (at(11, 17, 10, 10), accept(J_STREET)),
                (at(11, 17, 11), resolve(J_STREET)),
            ],
            priority=Priority.URGENT,
        ),
        play(
            "J2",
            JINGAN,
            DRAIN,
            at(11, 24, 9),
            [(at(11, 24, 10), accept(J_GRID)), (at(11, 24, 12), Withdraw())],
        ),
        play(
            "J3",
            JINGAN,
            DRAIN,
            at(11, 30, 20),
            [
                (at(11, 30, 20, 30), accept(J_GRID)),
                (at(11, 30, 22), resolve(J_GRID)),
                (at(12, 1, 9), rating(SATISFIED)),
            ],
        ),
    ]


def incident_steps(state: IncidentState) -> list[IncidentStep]:
    """A state's timeline as the archive keeps it: each step with its incident's context."""
    context = IncidentContext.of(state)
    return [IncidentStep.in_context(context, step) for step in state.timeline]


def scenario_steps() -> list[IncidentStep]:
    """Every step of the scenario, in the archive's order (at, incident, seq)."""
    steps = [step for state in scenario() for step in incident_steps(state)]
    return sorted(steps, key=lambda step: (step.at, step.incident_id, step.seq))


@pytest.fixture(scope="module")
def steps() -> list[IncidentStep]:
    return scenario_steps()


@pytest.fixture(scope="module")
def by_district(steps: list[IncidentStep]) -> PeriodReport:
    return build_report(steps, NOVEMBER, Grouping.DISTRICT, WEIGHTS)


def row(report: PeriodReport, name: str) -> dict[str, object]:
    """A group's line of the report, as JSON."""
    return next(line for line in report.as_dict()["groups"] if line["group"] == name)


# ---------------------------------------------------------------------- counts, rates and scores


def test_huangpu_in_november_counts_and_rates_as_worked_out_by_hand(by_district: PeriodReport) -> None:
    line = row(by_district, HUANGPU)

    assert line["counts"] == {
        "reported": 2,  # H1, H2 (O1 was reported in October)
        "dispatches": 4,  # H1 grid; H2 grid, street, street again after the reopen
        "transfers": 0,
        "extension_requests": 0,
        "extensions_granted": 0,
        "closures_due": 3,  # O1, H1, H2: resolved, never paused, each last resolution in time
        "closures_on_time": 3,
        "verifications": 0,
        "rejections": 0,
        "accepted_in_time": 3,  # H1 grid; H2 street twice
        "accept_breaches": 1,  # H2's grid
        "sla_breaches": 1,
        "resolutions": 3,  # H1; H2 twice
        "resolutions_in_time": 3,
        "ratings": 4,  # O1 satisfied, H1 satisfied, H2 unsatisfied then basically satisfied
        "satisfied_ratings": 3,
        "return_visits": 3,  # H1 solved, H2 not solved then solved (O1 was not asked)
        "solved_visits": 2,
        "closed": 3,  # O1, H1, H2
        "resolved_closures": 3,
        "escalated_closures": 1,  # H2
        "escalations": 1,
        "reopens": 1,
        "closures_by_outcome": {"resolved": 3},
    }
    assert line["rates"] == pytest.approx(
        {
            "response": 3 / 4,
            "resolution": 3 / 3,
            "satisfaction": 3 / 4,
            "resident_resolution": 2 / 3,
            "on_time": 3 / 3,
            "escalation": 1 / 3,
            "dispatch_accuracy": 4 / 4,
            "extension": 0 / 3,
            "rework": None,
            "on_time_closure": 3 / 3,
            "grid_containment": 2 / 3,  # O1, H1 at grid; H2 at street
            "street_containment": 3 / 3,
            "district_containment": 3 / 3,
        }
    )
    assert line["score"] == pytest.approx((30 * 3 / 4 + 35 * 1 + 35 * 3 / 4) / 100)  # 0.8375


def test_jingan_in_november_has_no_rating_so_its_score_weighs_response_and_resolution_only(
    by_district: PeriodReport,
) -> None:
    line = row(by_district, JINGAN)

    counts = line["counts"]
    assert isinstance(counts, dict)
    assert (counts["reported"], counts["dispatches"]) == (3, 4)  # J1 grid and street, J2, J3
    assert (counts["accepted_in_time"], counts["accept_breaches"], counts["sla_breaches"]) == (4, 0, 1)
    assert (counts["resolutions"], counts["resolutions_in_time"]) == (2, 2)  # J1 at street, J3
    assert (counts["ratings"], counts["closed"], counts["resolved_closures"]) == (0, 2, 1)  # J3's in December
    assert counts["closures_by_outcome"] == {"resolved_unrated": 1, "withdrawn": 1}
    assert line["rates"] == pytest.approx(
        {
            "response": 4 / 4,
            "resolution": 1 / 2,
            "satisfaction": None,
            "resident_resolution": None,
            "on_time": 2 / 2,
            "escalation": 1 / 2,
            "dispatch_accuracy": 4 / 4,
            "extension": 0 / 2,
            "rework": None,
            "on_time_closure": 1 / 1,  # J1, resolved at the street in time; J2 withdrawn
            "grid_containment": 0 / 1,  # J1 was resolved at street; J2 withdrawn is no resolution
            "street_containment": 1 / 1,
            "district_containment": 1 / 1,
        }
    )
    assert line["score"] == pytest.approx((30 * 1 + 35 * 1 / 2) / (30 + 35))  # 0.7308
    time_to_resolve = line["time_to_resolve_seconds"]
    assert isinstance(time_to_resolve, dict)
    # J1 3h after its report, J3 2h: the median of the two, and 90% of the way from 2h to 3h.
    assert time_to_resolve == pytest.approx({"p50": 2.5 * 3600, "p90": 2.9 * 3600})


def test_all_of_november_together(by_district: PeriodReport) -> None:
    overall = by_district.overall

    assert overall.counts.incidents == 5
    assert overall.rates() == pytest.approx(
        {
            "response": 7 / 8,
            "resolution": 4 / 5,
            "satisfaction": 3 / 4,
            "resident_resolution": 2 / 3,  # all in Huangpu
            "on_time": 5 / 5,
            "escalation": 2 / 5,
            "dispatch_accuracy": 8 / 8,
            "extension": 0 / 5,
            "rework": None,
            "on_time_closure": 4 / 4,
            "grid_containment": 2 / 4,
            "street_containment": 4 / 4,
            "district_containment": 4 / 4,
        }
    )
    assert overall.score == pytest.approx((30 * 7 / 8 + 35 * 4 / 5 + 35 * 3 / 4) / 100)  # 0.805
    # October: 5 accepted in time of 6, 3 of 4 ratings satisfied (O2's unsatisfied), 3 closures resolved.
    before = by_district.previous_overall
    assert (before.rate("response"), before.rate("satisfaction"), before.rate("resolution")) == pytest.approx(
        (5 / 6, 3 / 4, 1.0)
    )
    assert before.score == pytest.approx((30 * 5 / 6 + 35 * 1 + 35 * 3 / 4) / 100)  # 0.8625
    change = by_district.overall_change
    assert change.score == pytest.approx((0.805 - 0.8625) * 100)
    assert change.rates["response"] == pytest.approx((7 / 8 - 5 / 6) * 100)
    assert change.rank is None


# ---------------------------------------------------------------------- ranking and change


def test_the_ranking_and_the_change_from_october(by_district: PeriodReport) -> None:
    ranking = [(line.rank, line.name, line.previous_rank) for line in by_district.rows]
    # October: d-jingan 0.9 (response 2/3, all rated satisfied, all resolved), d-huangpu 0.825
    # (response 3/3, satisfaction 1/2, resolution 1/1).
    assert ranking == [(1, HUANGPU, 2), (2, JINGAN, 1)]

    huangpu, jingan = by_district.rows
    assert huangpu.previous is not None and jingan.previous is not None
    assert huangpu.previous.score == pytest.approx((30 * 1 + 35 * 1 + 35 * 1 / 2) / 100)
    assert jingan.previous.score == pytest.approx((30 * 2 / 3 + 35 * 1 + 35 * 1) / 100)
    assert huangpu.change.rank == 1 and jingan.change.rank == -1
    assert huangpu.change.score == pytest.approx((0.8375 - 0.825) * 100)
    assert jingan.change.score == pytest.approx(((30 + 17.5) / 65 - 0.9) * 100)
    assert huangpu.change.rates["response"] == pytest.approx(-25.0)
    assert huangpu.change.rates["satisfaction"] == pytest.approx(25.0)
    assert huangpu.change.rates["resolution"] == pytest.approx(0.0)
    assert jingan.change.rates["response"] == pytest.approx((1 - 2 / 3) * 100)
    assert jingan.change.rates["resolution"] == pytest.approx(-50.0)
    assert jingan.change.rates["satisfaction"] is None  # no rating in November


def test_the_weights_decide_the_ranking(steps: list[IncidentStep]) -> None:
    # On response alone d-jingan (4/4) is ahead of d-huangpu (3/4).
    report = build_report(steps, NOVEMBER, Grouping.DISTRICT, Weights.parse("response=1"))
    assert [(line.name, line.figures.score) for line in report.rows] == [(JINGAN, 1.0), (HUANGPU, 0.75)]


def test_equal_scores_rank_by_name_and_groups_without_a_score_come_last() -> None:
    def closing(incident_id: str, district: str, kind: StepKind, **fields: object) -> IncidentStep:
        return IncidentStep(
            incident_id=incident_id,
            seq=1,
            kind=kind,
            at=at(11, 5, 9),
            status=Status.CLOSED,
            category=LAMP,
            priority=Priority.NORMAL,
            district_id=district,
            rule_name="default",
            rules_version="1",
            **fields,
        )

    steps = [
        closing("a", "d-b", StepKind.ACCEPTED, within_limit=True),
        closing("b", "d-a", StepKind.ACCEPTED, within_limit=True),
        closing("c", "d-0", StepKind.REPORTED),  # counted, but none of the weighted rates has a value
    ]
    report = build_report(steps, NOVEMBER, Grouping.DISTRICT, WEIGHTS)
    assert [(line.rank, line.name) for line in report.rows] == [(1, "d-a"), (2, "d-b"), (None, "d-0")]


# ---------------------------------------------------------------------- trend and breaches


def test_the_weekly_trend(by_district: PeriodReport) -> None:
    weeks = [
        (week.period.week_label, week.period.first.day, week.period.last.day, week.figures.score)
        for week in by_district.weeks
    ]
    # November 2026 starts on a Sunday: its first and last weeks are a day each.
    assert weeks == [
        ("2026-W44", 1, 1, None),  # nothing happened
        ("2026-W45", 2, 8, pytest.approx(1.0)),  # O1's rating and closure, H1: all perfect
        ("2026-W46", 9, 15, pytest.approx((30 * 2 / 3 + 35 * 1 + 35 * 1 / 2) / 100)),  # H2
        ("2026-W47", 16, 22, pytest.approx((30 * 1 + 35 * 1) / 65)),  # J1, never rated
        ("2026-W48", 23, 29, pytest.approx((30 * 1 + 35 * 0) / 65)),  # J2 withdrawn
        ("2026-W49", 30, 30, pytest.approx(1.0)),  # J3 accepted in time; not closed yet
    ]
    assert sum(week.figures.counts.incidents for week in by_district.weeks) == 5
    assert by_district.weeks[2].figures.rate("satisfaction") == pytest.approx(1 / 2)


def test_the_breach_heat_map_counts_clocks_that_ran_out_by_district_and_category(
    by_district: PeriodReport,
) -> None:
    # H2's grid accept clock and J1's grid resolve clock; O4's October breach is not November's.
    assert by_district.breaches == {(HUANGPU, DRAIN): 1, (JINGAN, LAMP): 1}
    assert (by_district.districts, by_district.categories) == ([HUANGPU, JINGAN], [DRAIN, LAMP])


# ---------------------------------------------------------------------- other groupings


def test_by_category_rule_and_unit(steps: list[IncidentStep]) -> None:
    by_category = build_report(steps, NOVEMBER, Grouping.CATEGORY, WEIGHTS)
    lamps = by_category.rows[[line.name for line in by_category.rows].index(LAMP)].figures
    # O1's rating and closure, H1, J1: 3 acceptances in time and no accept breach, 2 ratings satisfied,
    # 3 closures resolved.
    assert (lamps.rate("response"), lamps.rate("satisfaction"), lamps.rate("resolution")) == (1.0, 1.0, 1.0)

    by_rule = build_report(steps, NOVEMBER, Grouping.RULE, WEIGHTS)
    assert [line.name for line in by_rule.rows] == ["urgent", "default"]
    urgent = by_rule.rows[0].figures.counts  # J1 alone
    assert (urgent.incidents, urgent.dispatches, urgent.accepted_in_time, urgent.sla_breaches) == (1, 2, 2, 1)
    assert (urgent.resolutions, urgent.closures_by_outcome, urgent.escalations) == (
        1,
        {"resolved_unrated": 1},
        1,
    )

    by_unit = {line.name: line.figures for line in build_report(steps, NOVEMBER, Grouping.UNIT, WEIGHTS).rows}
    # Each step counts for the unit that held the incident: H2's accept breach for the grid, its two
    # acceptances for the street; no unit holds an incident when it is reported.
    assert by_unit[H_GRID].rate("response") == 1 / 2  # H1 accepted in time, H2 not
    assert by_unit[H_STREET].rate("response") == 2 / 2
    assert by_unit[UNKNOWN].counts.incidents == 5


def test_a_step_without_a_street_counts_for_the_unknown_street() -> None:
    step = IncidentStep(
        incident_id="old-1",
        seq=1,
        kind=StepKind.REPORTED,
        at=at(11, 5, 9),
        status=Status.REPORTED,
        category=LAMP,
        priority=Priority.NORMAL,
        district_id=HUANGPU,
        street_id=None,
        rule_name=None,
        rules_version=None,
    )
    report = build_report([step], NOVEMBER, Grouping.STREET, WEIGHTS)
    assert [(line.name, line.figures.counts.incidents) for line in report.rows] == [(UNKNOWN, 1)]
    assert Grouping.RULE.key(step) == UNKNOWN


def test_a_period_with_nothing_in_it_is_empty(steps: list[IncidentStep]) -> None:
    report = build_report(steps, Period.month("2027-03"), Grouping.DISTRICT, WEIGHTS)
    assert report.empty and report.rows == [] and report.overall.score is None
    assert not build_report(steps, NOVEMBER, Grouping.DISTRICT, WEIGHTS).empty


# ---------------------------------------------------------------------- counting steps


def test_counting_every_step_of_closed_incidents_gives_the_counts_of_the_whole_incidents() -> None:
    states = scenario()
    whole = rate_report(states)
    stepwise = RateReport()
    for state in states:
        for step in state.timeline:
            stepwise.add_step(step)

    assert stepwise.incidents == whole.incidents == 9
    assert {name: getattr(stepwise, name) for name in COUNTS} == {
        name: getattr(whole, name) for name in COUNTS
    }
    # Step by step every resolution has its time (O2 and H2 were resolved twice); whole incidents keep
    # the last resolution of each one closed resolved (all but J2, withdrawn).
    assert len(stepwise.resolve_seconds) == 10 and len(whole.resolve_seconds) == 8


COUNTS = (
    "closed",
    "dispatches",
    "accepted_in_time",
    "accept_breaches",
    "sla_breaches",
    "resolutions",
    "resolutions_in_time",
    "ratings",
    "satisfied_ratings",
    "resolved_closures",
    "escalated_closures",
    "escalations",
    "reopens",
    "closures_by_outcome",
    "resolved_closures_by_level",
)


# ---------------------------------------------------------------------- periods


def test_a_month_its_previous_month_and_its_bounds_in_a_time_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    january = Period.month("2027-01", shanghai)

    assert (january.label, january.first, january.last, january.day_count) == (
        "2027-01",
        date(2027, 1, 1),
        date(2027, 1, 31),
        31,
    )
    assert january.start == datetime(2026, 12, 31, 16, tzinfo=UTC)  # midnight in Shanghai
    assert january.end == datetime(2027, 1, 31, 16, tzinfo=UTC)
    assert datetime(2026, 12, 31, 16, tzinfo=UTC) in january
    assert datetime(2027, 1, 31, 16, tzinfo=UTC) not in january
    assert january.previous() == Period.month("2026-12", shanghai)
    assert Period.month("2028-03").previous().last == date(2028, 2, 29)


def test_days_compare_with_as_many_days_before() -> None:
    fortnight = Period.days(date(2026, 11, 1), date(2026, 11, 14))

    assert fortnight.label == "2026-11-01..2026-11-14"
    assert fortnight.previous() == Period.days(date(2026, 10, 18), date(2026, 10, 31))
    assert Period.days(date(2026, 11, 3), date(2026, 11, 3)).label == "2026-11-03"
    assert [week.week_label for week in fortnight.weeks()] == ["2026-W44", "2026-W45", "2026-W46"]


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "November", "2026-11-01", ""])
def test_a_month_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(PeriodError, match="not a month: write YYYY-MM"):
        Period.month(text)


def test_a_period_cannot_end_before_it_starts() -> None:
    with pytest.raises(PeriodError, match="cannot end"):
        Period.days(date(2026, 11, 10), date(2026, 11, 9))


# ---------------------------------------------------------------------- weights


def test_the_score_is_the_weighted_mean_of_the_weighted_rates_that_have_a_value() -> None:
    weights = Weights.parse(" response = 30 , resolution=35,satisfaction=35, on_time=0")
    assert weights.as_dict() == {"response": 30, "resolution": 35, "satisfaction": 35, "on_time": 0}
    assert str(weights) == "response=30,resolution=35,satisfaction=35,on_time=0"
    counts = RateReport(accepted_in_time=1, accept_breaches=1, closed=4, resolved_closures=3)
    assert weights.score(counts) == pytest.approx((30 * 0.5 + 35 * 0.75) / 65)
    assert weights.score(RateReport()) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "response=30,speed=70",
            r"GRIDFLOW_REPORT_WEIGHTS: 'speed=70' names no rate; the rates are response",
        ),
        ("response=30,resolution", r"'resolution' is not rate=weight"),
        ("response=thirty", r"'response=thirty': 'thirty' is not a number"),
        ("response=-1,resolution=2", r"'response=-1': a weight is a number of 0 or more"),
        ("response=1,response=2", r"'response=2': response is weighted twice"),
        ("escalation=10", r"'escalation=10': the escalation rate is better lower"),
        ("response=0", r"gives no rate a weight"),
        ("", r"gives no rate a weight"),
    ],
)
def test_weights_that_cannot_be_used_are_refused_naming_the_setting_and_the_bad_part(
    text: str, message: str
) -> None:
    with pytest.raises(WeightsError, match=message) as error:
        Weights.parse(text)
    assert str(error.value).startswith("GRIDFLOW_REPORT_WEIGHTS: ")
    with pytest.raises(WeightsError, match=r"^--weights: "):
        Weights.parse(text, source="--weights")


# ---------------------------------------------------------------------- JSON


def test_the_json_shape(by_district: PeriodReport) -> None:
    document = by_district.as_dict()

    assert list(document) == [
        "format",
        "period",
        "previous_period",
        "by",
        "weights",
        "overall",
        "groups",
        "weeks",
        "breaches",
    ]
    assert document["format"] == "gridflow-report/1"
    assert document["period"] == {
        "label": "2026-11",
        "first": "2026-11-01",
        "last": "2026-11-30",
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-12-01T00:00:00+00:00",
    }
    assert document["previous_period"]["label"] == "2026-10"
    assert (document["by"], document["weights"]) == (
        "district",
        {"response": 30, "resolution": 35, "satisfaction": 35},
    )
    group = document["groups"][0]
    assert list(group) == [
        "group",
        "rank",
        "counts",
        "rates",
        "score",
        "time_to_resolve_seconds",
        "previous",
        "previous_rank",
        "change",
    ]
    assert group["change"]["rank"] == 1 and set(group["change"]["rates"]) == set(group["rates"])
    assert document["breaches"] == [
        {"district": HUANGPU, "category": DRAIN, "sla_breaches": 1},
        {"district": JINGAN, "category": LAMP, "sla_breaches": 1},
    ]
    assert [week["week"] for week in document["weeks"]][:2] == ["2026-W44", "2026-W45"]


def test_only_steps_of_the_period_and_the_one_before_count(steps: list[IncidentStep]) -> None:
    later = [step for step in steps if step.at >= NOVEMBER.end]
    assert [(step.incident_id, step.kind) for step in later] == [
        ("J3", StepKind.FEEDBACK),
        ("J3", StepKind.CLOSED),
    ]
    december = build_report(steps, Period.month("2026-12"), Grouping.DISTRICT, WEIGHTS)
    assert december.overall.counts.closed == 1 and december.previous_overall.counts.closed == 5
