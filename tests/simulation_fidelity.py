"""The fidelity check of `gridflow simulate`: one stream through both engines, compared step by step.

The discrete-event engine (gridflow.domain.simulation.engine) claims to give, on the same grid of instants,
the very timelines the real IncidentWorkflow gives on Temporal's time-skipping test server. This module holds
what checks that claim, for the test (tests/gridflow/app/test_simulation_fidelity.py) and the benchmark:
- a rules file that exercises every feature of the rules (`fidelity_rules`): the default ladder, an
  urgent ladder to the city with overdue reminders, a business calendar with working hours, holidays and
  an extra working day, a file-defined level with a whistle, reopen-by-escalation with one reopen
  allowed, several warning fractions;
- a stream whose people take every path (`fidelity_stream`), reproducible by seed;
- `compare_engines`, which runs both engines and reports every difference, and which paths the stream
  really took (so a test can tell a check that passed from one that checked nothing).

Both engines must be deterministic for the comparison to mean anything. Two rules keep them so:
- the stream is dated in the future (`fidelity_start`): the Temporal engine plays it on its own instants,
  while one in the past is moved by whole weeks (and holidays would fall elsewhere);
- nobody acts at the very instant a clock of their incident fires. Every limit is whole minutes and every
  warning fraction of it too, reports are at whole minutes plus an even number of seconds, and every delay
  of the people is whole minutes plus an odd number of seconds; `clock_ties` checks what the stream did.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gridflow.app.simulate import NamedRules, simulate_discrete, simulate_temporal
from gridflow.domain.incident import Incident, Location, Priority, Rating, Reporter
from gridflow.domain.lifecycle import IncidentState, StepKind
from gridflow.domain.rules import RuleSet, WorkingDays, parse_rule_set
from gridflow.domain.simulation.model import Behaviour, SimulatedIncident
from gridflow.domain.simulation.results import Simulation

#: How long each incident is followed: long enough for every path of the stream to close (the longest
#: feedback window is 72 h), short enough that an incident left overdue is reminded only a few times.
FIDELITY_HORIZON = timedelta(days=6)
# The grid both engines count on: 15 s absorbs the test server's jitter (seconds, on a loaded 2-core
# machine running a hundred incidents at once), and every instant of the stream and the rules is on it.
FIDELITY_RESOLUTION = timedelta(seconds=15)
#: The stream's reports span this many days from its start (Monday to Sunday).
DAYS = 7
CALENDAR = "fidelity-office"
ZONE = ZoneInfo("Asia/Shanghai")

# Where an incident goes under the fidelity rules, and its ladder there.
URGENT, OFFICE, DISPUTES, PATROL, DEFAULT = (
    "urgent-city",
    "office-hours",
    "disputes",
    "pudong-patrol",
    "default",
)
LADDERS = {
    URGENT: ("grid", "street", "district", "city"),
    OFFICE: ("grid", "street", "district"),
    DISPUTES: ("grid", "elders", "district"),
    PATROL: ("street", "district"),
    DEFAULT: ("grid", "street", "district"),
}

# Every limit below is whole minutes, and so is every warning fraction of it (checked by
# `fraction_minutes_are_whole`), so that the clocks of an incident only fire at its report's instant, at
# a person's instant, or (a calendar clock started outside working hours) at a whole minute.
_RULES = """
version: fidelity-1
calendars:
  {calendar}:
    timezone: Asia/Shanghai
    working_hours:
      mon: ["09:00-12:00", "13:00-18:00"]
      tue: ["09:00-12:00", "13:00-18:00"]
      wed: ["09:00-12:00", "13:00-18:00"]
      thu: ["09:00-12:00", "13:00-18:00"]
      fri: ["09:00-12:00", "13:00-18:00"]
    holidays: [{holiday_1}, {holiday_2}]
    extra_working_days: [{extra_day}]
levels:
  elders: {{unit: "elders-{{street_id}}", description: respected elders of the street}}
rules:
  - name: {urgent}
    match: {{priority: [urgent]}}
    ladder:
      grid:     {{accept: 10m, resolve: 1h}}
      street:   {{accept: 10m, resolve: 2h}}
      district: {{accept: 20m, resolve: 4h, warn_at: [0.25, 0.5, 0.75]}}
      city:     {{accept: 40m, resolve: 8h, overdue_reminder: 2h, notify: ["mayor-hotline-{{city_id}}"]}}
    warn_at: 0.5
    overdue_reminder: 1h
    feedback: {{window: 24h, on_unsatisfied: reopen_same_level, max_reopens: 2}}
  - name: {office}
    match: {{category: [elevator, water_supply]}}
    calendar: {calendar}
    ladder:
      grid:     {{accept: 1h, resolve: 4h}}
      street:   {{accept: 2h, resolve: 8h, notify: ["market-supervision-{{district_id}}"]}}
      district: {{accept: 4h, resolve: 2d, warn_at: [0.9], calendar: null}}
    warn_at: [0.5, 0.75]
    overdue_reminder: 8h
    feedback: {{window: 48h, on_unsatisfied: escalate, max_reopens: 1}}
  - name: {disputes}
    match: {{category: [neighbour_dispute, noise]}}
    ladder:
      grid:     {{accept: 40m, resolve: 4h}}
      elders:   {{accept: 1h, resolve: 8h, notify: ["justice-{{district_id}}"]}}
      district: {{accept: 2h, resolve: 1d}}
    warn_at: [0.75, 0.9]
    overdue_reminder: 6h
    feedback: {{window: 72h, on_unsatisfied: escalate, max_reopens: 1}}
  - name: {patrol}
    match: {{district: [d-pudong], channel: [patrol]}}
    ladder:
      street:   {{accept: 20m, resolve: 6h}}
      district: {{accept: 1h, resolve: 12h}}
    warn_at: [0.25, 0.75]
    overdue_reminder: 12h
    feedback: {{window: 36h, max_reopens: 1}}
  - name: {default}
    ladder:
      grid:     {{accept: 2h, resolve: 24h}}
      street:   {{accept: 4h, resolve: 48h}}
      district: {{accept: 8h, resolve: 5d}}
    warn_at: [0.5, 0.9]
    overdue_reminder: 8h
    feedback: {{window: 72h, on_unsatisfied: reopen_same_level, max_reopens: 2}}
"""


def fidelity_start(now: datetime | None = None) -> datetime:
    """Midnight (UTC) of the first Monday at least 60 days after `now` (the real present by default):
    a stream from there is in the future of the test server's clock, and never goes stale."""
    now = now or datetime.now(UTC)
    day = (now.astimezone(UTC) + timedelta(days=60)).date()
    day += timedelta(days=-day.weekday() % 7)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def calendar_days(start: datetime) -> tuple[date, date, date]:
    """The office calendar's two holidays (the Wednesday and Thursday of the stream's week, local time)
    and its extra working day (the Saturday after them)."""
    monday = start.astimezone(ZONE).date()
    monday -= timedelta(days=monday.weekday())
    return monday + timedelta(days=2), monday + timedelta(days=3), monday + timedelta(days=5)


def fidelity_rules_text(start: datetime) -> str:
    """The fidelity rules file, its calendar's special days in the week of `start`."""
    holiday_1, holiday_2, extra_day = calendar_days(start)
    return _RULES.format(
        calendar=CALENDAR,
        holiday_1=holiday_1.isoformat(),
        holiday_2=holiday_2.isoformat(),
        extra_day=extra_day.isoformat(),
        urgent=URGENT,
        office=OFFICE,
        disputes=DISPUTES,
        patrol=PATROL,
        default=DEFAULT,
    )


def fidelity_rules(start: datetime) -> RuleSet:
    """The fidelity rules file, parsed."""
    return parse_rule_set(fidelity_rules_text(start), "fidelity.yaml")


def fraction_minutes_are_whole(rules: RuleSet) -> bool:
    """Whether every limit of the rules, and every warning fraction of it, is a whole number of minutes."""
    minute = timedelta(minutes=1)
    for rule in rules.rules:
        for level in rule.levels:
            limits = rule.limits(level)
            for limit in (limits.accept, limits.resolve):
                if isinstance(limit, WorkingDays):
                    return False  # its length depends on when the clock starts
                for part in (1.0, *rule.warn_at_for(level)):
                    if (limit * part) % minute:
                        return False
    return True


# ---------------------------------------------------------------------- the stream

# Offsets in steps of the comparison's grid (FIDELITY_RESOLUTION): people act an odd number of steps after
# a whole minute, reports come an even number, so a person's action and a clock never share an instant.
_ODD_SECONDS = tuple(15 * k for k in (1, 3, 5, 7, 9, 11))
_EVEN_SECONDS = tuple(15 * k for k in (2, 4, 6, 8, 10, 12, 14, 16))
_DISTRICTS = ("d-huangpu", "d-jingan", "d-xuhui", "d-pudong")
_CHANNELS = ("app", "hotline", "patrol")
_TARGETS = (URGENT, OFFICE, DISPUTES, PATROL, DEFAULT)
_CATEGORIES = {
    OFFICE: ("elevator", "water_supply"),
    DISPUTES: ("neighbour_dispute", "noise"),
    PATROL: ("road_damage", "garbage", "street_lamp"),
    DEFAULT: ("street_lamp", "garbage", "drain", "road_damage", "illegal_construction"),
}
_ALL_CATEGORIES = tuple(sorted({category for names in _CATEGORIES.values() for category in names}))
# How long a late resolution takes at each target: past its first level's resolve limit, under the
# built-in rules too (where the grid has 2 h for an urgent incident, 24 h for any other).
_LATE_RESOLVE_MINUTES = {
    URGENT: (130, 170),
    OFFICE: (26 * 60, 30 * 60),
    DISPUTES: (25 * 60, 27 * 60),
    PATROL: (25 * 60, 30 * 60),
    DEFAULT: (25 * 60, 40 * 60),
}


class _People:
    """The delays of one incident's people: whole minutes plus an odd number of seconds."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def delay(self, low: int, high: int) -> timedelta:
        """Between `low` and `high` minutes, and an odd number of seconds."""
        return timedelta(minutes=self._rng.randint(low, high), seconds=self._rng.choice(_ODD_SECONDS))

    def quick(self) -> timedelta:
        """Acting well within any accept limit of any rule (the shortest is 10 minutes)."""
        return self.delay(2, 7)

    def rating(self) -> Rating:
        """Satisfied, or basically satisfied."""
        return self._rng.choice([Rating.SATISFIED, Rating.BASICALLY_SATISFIED])


# A scenario: the behaviour of an incident's people at a target of the fidelity rules.
Scenario = Callable[[_People, str], Behaviour]


def _satisfied(people: _People, target: str) -> Behaviour:
    return Behaviour(
        accept_after=people.quick(),
        resolve_after=people.delay(20, 50),
        ratings=[people.rating()],
        feedback_after=people.delay(30, 300),
    )


def _grid_never_accepts(people: _People, target: str) -> Behaviour:
    # The first level never accepts (it is left out): its accept clock runs out.
    levels = LADDERS[target]
    return Behaviour(
        accept_after={level: people.quick() for level in levels[1:]},
        resolve_after=people.delay(20, 50),
        feedback_after=people.delay(30, 300),
    )


def _only_the_top_accepts(people: _People, target: str) -> Behaviour:
    # Every level but the top never accepts (the first is null, the others are left out); the top
    # accepts in time.
    levels = LADDERS[target]
    accept_after: dict[str, timedelta | None] = {levels[0]: None, levels[-1]: people.quick()}
    return Behaviour(
        accept_after=accept_after, resolve_after=people.delay(20, 50), ratings=[Rating.SATISFIED]
    )


def _top_accepts_late(people: _People, target: str) -> Behaviour:
    # Nobody below the top accepts, and the top only after its own limit: overdue, reminded, then
    # accepted late. (The longest top accept limit is 8 h.)
    levels = LADDERS[target]
    late = people.delay(70, 80) if target == URGENT else people.delay(9 * 60, 10 * 60)
    return Behaviour(
        accept_after={levels[-1]: late},
        resolve_after=people.delay(20, 50),
        ratings=[Rating.BASICALLY_SATISFIED],
    )


def _passed_up(people: _People, target: str) -> Behaviour:
    # Only the top level can solve it: every level below passes it up.
    return Behaviour(
        accept_after=people.quick(),
        solvable_from=LADDERS[target][-1],
        resolve_after=people.delay(20, 50),
        ratings=[Rating.SATISFIED],
        feedback_after=people.delay(30, 300),
    )


def _passed_up_once(people: _People, target: str) -> Behaviour:
    # The second level can solve it: the first passes it up; the second takes its time (past the first
    # level's resolve limit).
    low, high = _LATE_RESOLVE_MINUTES[target]
    return Behaviour(
        accept_after=people.quick(),
        solvable_from=LADDERS[target][1],
        resolve_after=people.delay(low, high),
        ratings=[Rating.SATISFIED],
    )


def _late_resolution(people: _People, target: str) -> Behaviour:
    low, high = _LATE_RESOLVE_MINUTES[target]
    return Behaviour(
        accept_after=people.quick(),
        resolve_after=people.delay(low, high),
        ratings=[Rating.SATISFIED],
        feedback_after=people.delay(30, 300),
    )


def _reopened_once(people: _People, target: str) -> Behaviour:
    return Behaviour(
        accept_after=people.quick(),
        resolve_after=people.delay(20, 50),
        ratings=[Rating.UNSATISFIED, Rating.SATISFIED],
        feedback_after=people.delay(30, 300),
    )


def _reopened_to_the_cap(people: _People, target: str) -> Behaviour:
    # Unsatisfied more often than any rule reopens: flagged when the reopens run out.
    return Behaviour(
        accept_after=people.quick(),
        resolve_after=people.delay(20, 50),
        ratings=[Rating.UNSATISFIED, Rating.UNSATISFIED, Rating.UNSATISFIED],
        feedback_after=people.delay(30, 120),
    )


def _no_feedback(people: _People, target: str) -> Behaviour:
    return Behaviour(accept_after=people.quick(), resolve_after=people.delay(20, 50), ratings=[])


def _feedback_too_late(people: _People, target: str) -> Behaviour:
    # The resident would rate after the longest feedback window (72 h): closed unrated first.
    return Behaviour(
        accept_after=people.quick(),
        resolve_after=people.delay(20, 50),
        ratings=[Rating.SATISFIED],
        feedback_after=people.delay(73 * 60, 80 * 60),
    )


def _withdrawn_before_acceptance(people: _People, target: str) -> Behaviour:
    return Behaviour(accept_after=None, withdraw_after=people.delay(3, 50))


def _withdrawn_while_overdue(people: _People, target: str) -> Behaviour:
    # Nobody ever accepts: up every level, overdue at the top and reminded, until the reporter gives up.
    withdraw = people.delay(5 * 60, 6 * 60) if target == URGENT else people.delay(28 * 60, 30 * 60)
    return Behaviour(accept_after=None, withdraw_after=withdraw)


def _withdrawn_after_resolution(people: _People, target: str) -> Behaviour:
    # Resolved within 2 hours; withdrawn a few hours later, before the resident would have rated.
    return Behaviour(
        accept_after=people.quick(),
        resolve_after=people.delay(20, 50),
        ratings=[Rating.SATISFIED],
        feedback_after=people.delay(20 * 60, 22 * 60),
        withdraw_after=people.delay(4 * 60, 8 * 60),
    )


def _resolved_late_at_the_top(people: _People, target: str) -> Behaviour:
    # At the patrol rule (street 6 h, district 12 h to resolve): past both limits, overdue at the top,
    # resolved late there.
    return Behaviour(
        accept_after=people.quick(), resolve_after=people.delay(13 * 60, 15 * 60), ratings=[Rating.SATISFIED]
    )


def _across_the_calendar(people: _People, target: str) -> Behaviour:
    # At the office rule, reported before a night, the holidays or the extra working day: the grid
    # never accepts, and its hour of working time runs out across them.
    return Behaviour(
        accept_after={level: people.quick() for level in LADDERS[target][1:]},
        resolve_after=people.delay(20, 50),
        ratings=[people.rating()],
        feedback_after=people.delay(30, 300),
    )


def _open_at_the_horizon(people: _People, target: str) -> Behaviour:
    # Resolving takes longer than the horizon: the default ladder's resolve limits (24 h, 48 h, 5 d)
    # carry the incident up, and it is still open at the district when the simulation stops following it.
    return Behaviour(accept_after=people.quick(), resolve_after=people.delay(9 * 24 * 60, 10 * 24 * 60))


SCENARIOS: dict[str, Scenario] = {
    "satisfied": _satisfied,
    "grid_never_accepts": _grid_never_accepts,
    "only_the_top_accepts": _only_the_top_accepts,
    "top_accepts_late": _top_accepts_late,
    "passed_up": _passed_up,
    "passed_up_once": _passed_up_once,
    "late_resolution": _late_resolution,
    "reopened_once": _reopened_once,
    "reopened_to_the_cap": _reopened_to_the_cap,
    "no_feedback": _no_feedback,
    "feedback_too_late": _feedback_too_late,
    "withdrawn_before_acceptance": _withdrawn_before_acceptance,
    "withdrawn_while_overdue": _withdrawn_while_overdue,
    "withdrawn_after_resolution": _withdrawn_after_resolution,
    "resolved_late_at_the_top": _resolved_late_at_the_top,
    "reopened_up_the_ladder": _reopened_once,
    "across_the_calendar": _across_the_calendar,
}
# Incidents still open at their horizon, played only on request: the Temporal engine's people then
# cancel their incident and finish at once (workflows/simulated_handlers.py, the `wake > give_up`
# branch), and that race between a parent finishing and its abandoned child being cancelled now and
# then leaves the time-skipping test server's clock locked: time stops skipping and the run hangs.
# (A handler that awaits its cancelled incident before it returns never hangs.)
OPEN_AT_THE_HORIZON = "open_at_the_horizon"
# Scenarios played at some targets only, in turn (elsewhere they would not take their path, or their
# incidents would be reminded for days).
_ONLY_AT = {
    OPEN_AT_THE_HORIZON: (DEFAULT,),
    "resolved_late_at_the_top": (PATROL,),
    "reopened_up_the_ladder": (OFFICE, DISPUTES),  # the rules that reopen one level up
    "across_the_calendar": (OFFICE,),
}
# Local times (day of the stream's week from Monday, hour, minute) just before the office calendar's
# off-hours: Monday night, Tuesday evening and night before the two holidays, Friday before the extra
# working Saturday, the Saturday itself, Sunday morning.
_CALENDAR_MOMENTS = ((0, 21, 40), (1, 17, 35), (1, 23, 10), (4, 17, 25), (5, 11, 50), (6, 9, 5))


def _incident(rng: random.Random, number: int, seed: int, target: str, reported_at: datetime) -> Incident:
    priority = rng.choice([Priority.LOW, Priority.NORMAL, Priority.NORMAL, Priority.HIGH])
    district, channel = rng.choice(_DISTRICTS), rng.choice(_CHANNELS)
    if target == URGENT:
        priority, category = Priority.URGENT, rng.choice(_ALL_CATEGORIES)
    elif target == PATROL:
        district, channel, category = "d-pudong", "patrol", rng.choice(_CATEGORIES[PATROL])
    else:
        category = rng.choice(_CATEGORIES[target])
        if target == DEFAULT and district == "d-pudong" and channel == "patrol":
            channel = "hotline"
    street = f"{district.removeprefix('d-')}-{rng.randrange(3)}"
    return Incident(
        incident_id=f"fidelity-{seed}-{number:04d}",
        category=category,
        title=f"Fidelity {category.replace('_', ' ')}",
        priority=priority,
        location=Location(
            grid_id=f"g-{street}-{rng.randrange(4)}",
            street_id=f"s-{street}",
            district_id=district,
            city_id="c-shanghai",
        ),
        reported_at=reported_at,
        reporter=Reporter(channel=channel),
    )


def _reported_at(rng: random.Random, start: datetime, scenario: str) -> datetime:
    # Any minute of the week, day or night, working day or holiday (or, across the calendar, a moment
    # before its off-hours); an even number of 15-second steps past the minute.
    seconds = timedelta(seconds=rng.choice(_EVEN_SECONDS))
    if scenario == "across_the_calendar":
        day, hour, minute = rng.choice(_CALENDAR_MOMENTS)
        monday = datetime.combine(calendar_days(start)[0] - timedelta(days=2), dtime(0), ZONE)
        moment = (monday + timedelta(days=day, hours=hour, minutes=minute)).astimezone(UTC) + seconds
        if start <= moment < start + timedelta(days=DAYS):
            return moment
    return start + timedelta(minutes=rng.randrange(DAYS * 24 * 60)) + seconds


def fidelity_stream(
    count: int, seed: int, start: datetime, *, open_at_horizon: bool = False
) -> list[SimulatedIncident]:
    """`count` incidents reported over the week from `start`, in report order, the same for a seed.

    Scenarios (every path of the behaviour model) and targets (every rule of the fidelity rules) take
    turns, in an order shuffled by the seed, so that any count of a few dozen covers them all. With
    `open_at_horizon`, some incidents are still open when the simulation stops following them (see
    OPEN_AT_THE_HORIZON for why that is not the default).
    """
    rng = random.Random(seed)
    scenarios = dict(SCENARIOS)
    if open_at_horizon:
        scenarios[OPEN_AT_THE_HORIZON] = _open_at_the_horizon
    names = list(scenarios)
    rng.shuffle(names)
    targets = list(_TARGETS)
    rng.shuffle(targets)
    stream = []
    for number in range(count):
        name = names[number % len(names)]
        # The target moves on by one each round of scenarios, so each scenario meets every target.
        round_ = number // len(names)
        target = targets[(number + round_) % len(targets)]
        if name in _ONLY_AT:
            target = _ONLY_AT[name][round_ % len(_ONLY_AT[name])]
        incident = _incident(rng, number, seed, target, _reported_at(rng, start, name))
        stream.append(SimulatedIncident(incident=incident, behaviour=scenarios[name](_People(rng), target)))
    return sorted(stream, key=lambda item: (item.incident.reported_at, item.incident.incident_id))


# ---------------------------------------------------------------------- what the timelines show

# Steps a person's action makes (and what follows from it at the same instant).
_PERSON_STEPS = {StepKind.ACCEPTED, StepKind.RESOLVED, StepKind.FEEDBACK}
# Steps the passing of time makes.
_CLOCK_STEPS = {StepKind.SLA_WARNING, StepKind.SLA_BREACHED, StepKind.OVERDUE_REMINDER}


def clock_ties(states: Iterable[IncidentState]) -> list[str]:
    """Instants at which a person of an incident acted just as one of its clocks fired: there the
    order of the two is the engines' to choose, and a stream meant to compare them must have none."""
    ties = []
    for state in states:
        acted = {step.at for step in state.timeline if step.kind in _PERSON_STEPS}
        acted |= {
            step.at
            for step in state.timeline
            if (step.kind is StepKind.ESCALATED and step.reason == "requested")
            or (
                step.kind is StepKind.CLOSED
                and step.outcome is not None
                and step.outcome.value == "withdrawn"
            )
        }
        fired = {step.at for step in state.timeline if step.kind in _CLOCK_STEPS}
        fired |= {
            step.at
            for step in state.timeline
            if step.kind is StepKind.CLOSED and step.reason == "no_feedback"
        }
        ties += [f"{state.incident_id} at {at.isoformat()}" for at in sorted(acted & fired)]
    return ties


def _calendar_paths(state: IncidentState) -> set[str]:
    """What the calendar did to an incident's clocks: nights (or weekends) skipped, holidays skipped, an
    extra working day counted."""
    snapshot = state.rule
    if snapshot is None:
        return set()
    paths = set()
    for step in state.timeline:
        if step.kind not in (StepKind.DISPATCHED, StepKind.ACCEPTED) or step.level is None:
            continue
        name = snapshot.rule.calendar_for(step.level)
        if name is None or step.deadline is None:
            continue
        calendar = snapshot.calendars[name]
        begin, end = step.at, step.deadline
        if end - begin > calendar.working_between(begin, end):
            paths.add("calendar:off_hours_skipped")
        zone = ZoneInfo(calendar.timezone)
        for day in calendar.holidays:
            # A holiday skipped: the clock ran across what would have been its working day.
            if begin < datetime.combine(day, dtime(18), zone) and end > datetime.combine(day, dtime(9), zone):
                paths.add("calendar:holiday_skipped")
        for day in calendar.extra_working_days:
            midnight = datetime.combine(day, dtime(0), zone)
            if calendar.working_between(max(begin, midnight), min(end, midnight + timedelta(days=1))):
                paths.add("calendar:extra_day_counted")
    return paths


def paths_of(state: IncidentState) -> set[str]:
    """The paths an incident's timeline took: why it went up, reopened, flagged, unrated, withdrawn,
    overdue, whistled, warned, calendared, late, and how it ended."""
    paths: set[str] = set()
    if state.rule is not None:
        paths.add(f"rule:{state.rule.rules_version}:{state.rule.rule.name}")
    for step in state.timeline:
        kind = step.kind
        if kind is StepKind.ESCALATED:
            paths.add(f"escalated:{step.reason}")
        elif kind is StepKind.REOPENED:
            paths.add("reopened:same_level" if step.from_level == step.to_level else "reopened:escalated")
        elif kind is StepKind.SLA_WARNING:
            paths.add(f"warned:{step.clock}")
        elif kind is StepKind.SLA_BREACHED:
            paths.add(f"breached:{step.clock}")
        elif kind is StepKind.ACCEPTED and step.within_limit is False:
            paths.add("accepted_late")
        elif kind is StepKind.RESOLVED and step.within_limit is False:
            paths.add("resolved_late")
        elif kind is StepKind.FEEDBACK and step.rating is not None:
            paths.add(f"rated:{step.rating.value}")
        elif kind is StepKind.CLOSED:
            paths.add(f"closed:{step.outcome.value if step.outcome else '-'}")
            if step.reason == "no_feedback":
                paths.add("unrated")
        elif kind in (StepKind.OVERDUE, StepKind.OVERDUE_REMINDER, StepKind.NOTIFIED, StepKind.PAUSED):
            paths.add(kind.value)
    if state.flagged:
        paths.add("flagged")
    if state.outcome is not None and state.outcome.value == "withdrawn":
        paths.add("withdrawn")
    if state.is_open:
        paths.add("open_at_horizon")
    if any(step.kind is StepKind.DISPATCHED and step.level == "elders" for step in state.timeline):
        paths.add("level:elders")
    return paths | _calendar_paths(state)


#: The paths the fidelity stream must take on the fidelity rules and the built-in ones together (the
#: behaviour model never pauses, so `paused` is counted but not required; `open_at_horizon` only with
#: `fidelity_stream(..., open_at_horizon=True)`).
REQUIRED_PATHS = (
    "escalated:accept_timeout",
    "escalated:resolve_timeout",
    "escalated:requested",
    "escalated:unsatisfied",
    "reopened:same_level",
    "reopened:escalated",
    "warned:accept",
    "warned:resolve",
    "accepted_late",
    "resolved_late",
    "rated:satisfied",
    "rated:basically_satisfied",
    "rated:unsatisfied",
    "closed:resolved",
    "closed:resolved_unrated",
    "closed:resolved_unsatisfied",
    "closed:withdrawn",
    "unrated",
    "flagged",
    "withdrawn",
    "overdue",
    "overdue_reminder",
    "notified",
    "level:elders",
    "calendar:off_hours_skipped",
    "calendar:holiday_skipped",
    "calendar:extra_day_counted",
)


# ---------------------------------------------------------------------- the comparison

Key = tuple[int, str]  # (lane: which rule set, incident id)


@dataclass
class FidelityReport:
    """What comparing the two engines on one stream found."""

    incidents: int
    steps: int  # steps compared, over every rule set
    differences: list[str]  # one per incident whose final states differ: its first differing step
    rates_equal: bool  # every rate and count of `Simulation.as_dict()` (not wall-clock time or speed)
    rate_differences: list[str]  # which of them differ: `path: discrete != temporal`
    span_differences: list[str]  # rule sets whose simulated span (`simulated_seconds`) differs
    discrete_seconds: float  # wall-clock time of each engine
    temporal_seconds: float
    behaviours: dict[str, int] = field(default_factory=dict)  # path: incidents (x rule sets) taking it
    ties: list[str] = field(default_factory=list)  # see clock_ties
    rounded: list[str] = field(default_factory=list)  # timelines that change off the grid

    @property
    def identical(self) -> bool:
        """Whether the engines agree on every timeline and every rate."""
        return not self.differences and self.rates_equal

    def missing(self, required: Sequence[str] = REQUIRED_PATHS) -> list[str]:
        """The required paths no incident took."""
        return missing_paths(self.behaviours, required)


def _capture(into: dict[Key, IncidentState]) -> Callable[[int, SimulatedIncident, IncidentState], None]:
    def finished(lane: int, item: SimulatedIncident, state: IncidentState) -> None:
        into[(lane, item.incident.incident_id)] = state

    return finished


def _first_difference(key: Key, discrete: IncidentState, temporal: IncidentState) -> str | None:
    lane, incident_id = key
    for mine, theirs in zip(discrete.timeline, temporal.timeline, strict=False):
        if mine != theirs:
            return (
                f"rule set {lane}, {incident_id}, step {mine.seq}:\n"
                f"  discrete: {mine.model_dump(mode='json', exclude_none=True)}\n"
                f"  temporal: {theirs.model_dump(mode='json', exclude_none=True)}"
            )
    if len(discrete.timeline) != len(temporal.timeline):
        shorter = min(len(discrete.timeline), len(temporal.timeline))
        longer = discrete if len(discrete.timeline) > shorter else temporal
        extra = longer.timeline[shorter]
        return (
            f"rule set {lane}, {incident_id}: {len(discrete.timeline)} steps (discrete), "
            f"{len(temporal.timeline)} (temporal); the first extra: "
            f"{extra.model_dump(mode='json', exclude_none=True)}"
        )
    # The same timeline, and the rest of the final state the same too (clocks, counters, rating).
    mine_rest, their_rest = (
        state.model_dump(mode="json", exclude={"timeline"}) for state in (discrete, temporal)
    )
    fields = [name for name in mine_rest if mine_rest[name] != their_rest.get(name)]
    if fields:
        return f"rule set {lane}, {incident_id}: the same timeline, but not the same {', '.join(fields)}"
    return None


def _comparable(simulation: Simulation) -> tuple[dict[str, Any], dict[str, Any]]:
    """The simulation's JSON less what depends on the machine (wall-clock time and speed) or on the order
    in which incidents finish (the example ids of each kind of change); and apart, each rule set's
    simulated span (what the speed is counted in, and what the engines measure differently)."""
    document = simulation.as_dict()
    for key in ("engine", "wall_seconds", "incidents_per_second", "simulated_days_per_second"):
        document.pop(key, None)
    if "changes" in document:
        document["changes"].pop("examples", None)
    spans = {name: result.pop("simulated_seconds", None) for name, result in document["rule_sets"].items()}
    return document, spans


def _leaf_differences(path: str, mine: Any, theirs: Any) -> list[str]:
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [
            difference
            for key in sorted(set(mine) | set(theirs), key=str)
            for difference in _leaf_differences(f"{path}.{key}", mine.get(key), theirs.get(key))
        ]
    return [] if mine == theirs else [f"{path}: {mine!r} != {theirs!r}"]


def run_discrete_engine(
    path: Path,
    rule_sets: list[NamedRules],
    resolution: timedelta | None,
    horizon: timedelta = FIDELITY_HORIZON,
) -> tuple[Simulation, dict[Key, IncidentState]]:
    """The discrete engine's simulation of a stream file, and the final state of every incident."""
    states: dict[Key, IncidentState] = {}
    simulation = simulate_discrete(
        path, rule_sets, resolution=resolution, horizon=horizon, finished=_capture(states)
    )
    return simulation, states


def count_paths(states: Iterable[IncidentState]) -> dict[str, int]:
    """For each path (see paths_of): how many of the incidents took it."""
    counts: Counter[str] = Counter()
    for state in states:
        counts.update(paths_of(state))
    return dict(sorted(counts.items()))


def missing_paths(counts: dict[str, int], required: Sequence[str] = REQUIRED_PATHS) -> list[str]:
    """The required paths no incident took."""
    return [path for path in required if not counts.get(path)]


def off_the_grid(on_grid: dict[Key, IncidentState], exact: dict[Key, IncidentState]) -> list[str]:
    """The incidents whose timeline counted on the grid differs from their exact one."""
    return [
        f"rule set {key[0]}, {key[1]}"
        for key in sorted(on_grid)
        if key not in exact or exact[key].timeline != on_grid[key].timeline
    ]


def write_stream(stream: Iterable[SimulatedIncident], path: Path) -> Path:
    """The stream as a JSON-lines file."""
    path.write_text("".join(item.model_dump_json() + "\n" for item in stream), encoding="utf-8")
    return path


async def compare_engines(
    stream: list[SimulatedIncident],
    rule_sets: list[NamedRules],
    tmp_dir: Path,
    resolution: timedelta = FIDELITY_RESOLUTION,
    *,
    horizon: timedelta = FIDELITY_HORIZON,
) -> FidelityReport:
    """Run the stream on the rule sets with both engines on the same grid; compare every timeline step
    by step and every rate, and say which paths the incidents took (on the discrete engine's timelines).

    The stream must be dated in the future (see `fidelity_start`): the Temporal engine moves a stream
    from the past by whole weeks, and its instants would no longer be the discrete engine's.
    """
    first = min(item.incident.reported_at for item in stream)
    if first < datetime.now(UTC) + timedelta(days=1):
        raise ValueError(
            f"the stream starts at {first.isoformat()}: compare engines on a stream in the future"
        )
    path = write_stream(stream, tmp_dir / "fidelity.jsonl")
    started = time.monotonic()
    on_grid, discrete = run_discrete_engine(path, rule_sets, resolution, horizon)
    discrete_seconds = time.monotonic() - started
    temporal: dict[Key, IncidentState] = {}
    started = time.monotonic()
    real = await simulate_temporal(
        stream, rule_sets, resolution=resolution, horizon=horizon, finished=_capture(temporal)
    )
    temporal_seconds = time.monotonic() - started
    # The same run off the grid: on a stream of whole seconds, the grid must change nothing.
    _, exact = run_discrete_engine(path, rule_sets, None, horizon)

    differences, steps = [], 0
    for key in sorted(set(discrete) | set(temporal)):
        mine, theirs = discrete.get(key), temporal.get(key)
        if mine is None or theirs is None:
            differences.append(
                f"rule set {key[0]}, {key[1]}: only the {'temporal' if mine is None else 'discrete'} engine"
            )
            continue
        steps += min(len(mine.timeline), len(theirs.timeline))
        if (difference := _first_difference(key, mine, theirs)) is not None:
            differences.append(difference)
    (mine_rates, mine_spans), (their_rates, their_spans) = _comparable(on_grid), _comparable(real)
    rate_differences = _leaf_differences("simulation", mine_rates, their_rates)
    return FidelityReport(
        incidents=len(stream),
        steps=steps,
        differences=differences,
        rates_equal=not rate_differences,
        rate_differences=rate_differences,
        span_differences=_leaf_differences("simulated_seconds", mine_spans, their_spans),
        discrete_seconds=discrete_seconds,
        temporal_seconds=temporal_seconds,
        behaviours=count_paths(discrete.values()),
        ties=clock_ties(discrete.values()),
        rounded=off_the_grid(discrete, exact),
    )
