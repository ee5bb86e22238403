"""Realistic synthetic incident streams for `gridflow simulate`: what a district's week looks like.

Categories and priorities in city-hotline proportions, arrivals that follow the day (quiet nights,
morning and afternoon peaks), locations spread over districts, streets and grids, and people whose
behaviour depends on the level: grid workers mostly accept quickly and solve most matters, some
matters only a street or district office can solve, and most residents are satisfied.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TypeVar

from gridflow.domain.incident import Incident, Location, Priority, Rating, Reporter
from gridflow.domain.simulation.model import Behaviour, SimulatedIncident

CATEGORIES = {  # category: (weight, level that can solve it most often)
    "street_lamp": (18, "grid"),
    "garbage": (16, "grid"),
    "drain": (12, "grid"),
    "noise": (12, "grid"),
    "neighbour_dispute": (10, "grid"),
    "road_damage": (10, "street"),
    "elevator": (8, "street"),
    "illegal_construction": (6, "district"),
    "water_supply": (8, "street"),
}
PRIORITIES = {Priority.LOW: 20, Priority.NORMAL: 60, Priority.HIGH: 15, Priority.URGENT: 5}
# Relative arrivals per hour of the day (0-23).
HOURLY = [1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 11, 9, 7, 8, 10, 11, 10, 9, 8, 6, 5, 3, 2, 1]
LEVELS = ("grid", "street", "district", "city")
DISTRICTS = (
    "d-huangpu",
    "d-jingan",
    "d-xuhui",
    "d-changning",
    "d-putuo",
    "d-hongkou",
    "d-yangpu",
    "d-pudong",
)
T = TypeVar("T")


def _pick(rng: random.Random, weights: dict[T, int]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _arrival(rng: random.Random, start: datetime, days: int) -> datetime:
    # Hours of the day in the start's own time zone: pass a local start for a local daily rhythm.
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    day = rng.randrange(days)
    hour = rng.choices(range(24), weights=HOURLY)[0]
    return midnight + timedelta(days=day, hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))


def _behaviour(rng: random.Random, usual_level: str) -> Behaviour:
    # Most matters are solved where they usually are; some need one level more.
    solvable = usual_level
    if rng.random() < 0.1 and usual_level != "city":
        solvable = LEVELS[LEVELS.index(usual_level) + 1]
    accept_after: dict[str, timedelta | None] = {}
    for level, (fast, slow_share) in zip(
        LEVELS, ((20, 0.08), (40, 0.05), (60, 0.03), (90, 0.02)), strict=True
    ):
        minutes = rng.expovariate(1 / fast)
        if rng.random() < slow_share:
            minutes += 12 * 60  # the unit is overloaded: the limit will run out
        accept_after[level] = timedelta(minutes=round(minutes, 1))
    roll = rng.random()
    if roll < 0.05:
        ratings: list[Rating] = []  # never answers
    elif roll < 0.13:
        ratings = [Rating.UNSATISFIED, Rating.SATISFIED]
    elif roll < 0.15:
        ratings = [Rating.UNSATISFIED, Rating.UNSATISFIED, Rating.UNSATISFIED]
    elif roll < 0.40:
        ratings = [Rating.BASICALLY_SATISFIED]
    else:
        ratings = [Rating.SATISFIED]
    return Behaviour(
        accept_after=accept_after,
        solvable_from=solvable,
        resolve_after=timedelta(minutes=round(rng.lognormvariate(5.5, 0.8), 1)),
        ratings=ratings,
        # The return visit's second question: an unsatisfied resident says the problem is not solved.
        # No draw of its own, so that a seed gives the streams (and the fates) it always gave.
        solved=[rating is not Rating.UNSATISFIED for rating in ratings],
        feedback_after=timedelta(minutes=round(rng.expovariate(1 / 240), 1)),
        withdraw_after=timedelta(minutes=rng.randrange(10, 120)) if rng.random() < 0.02 else None,
    )


def generate(
    count: int, *, days: int = 7, seed: int = 1, start: datetime, districts: int = 4
) -> list[SimulatedIncident]:
    """`count` incidents over `days` days from `start`, the same for the same seed."""
    rng = random.Random(seed)
    stream = []
    for number in range(count):
        category = _pick(rng, {name: weight for name, (weight, _) in CATEGORIES.items()})
        number_of = rng.randrange(districts)
        district = DISTRICTS[number_of] if number_of < len(DISTRICTS) else f"d-{number_of}"
        street = f"{district.removeprefix('d-')}-{rng.randrange(4)}"
        grid = rng.randrange(8)
        incident = Incident(
            incident_id=f"sim-{seed}-{number:06d}",
            category=category,
            title=f"Simulated {category.replace('_', ' ')}",
            priority=_pick(rng, PRIORITIES),
            location=Location(
                grid_id=f"g-{street}-{grid}",
                street_id=f"s-{street}",
                district_id=district,
                city_id="c-shanghai",
            ),
            reported_at=_arrival(rng, start, days),
            reporter=Reporter(channel=rng.choice(["app", "hotline", "patrol"])),
        )
        stream.append(
            SimulatedIncident(incident=incident, behaviour=_behaviour(rng, CATEGORIES[category][1]))
        )
    return sorted(stream, key=lambda item: item.incident.reported_at)
