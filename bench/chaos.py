"""The long chaos soak: `python -m bench.chaos --minutes N --seed S` (its own Tansu broker and Temporal).

It runs tests/faults/chaos.py's soak with a stream and a kill schedule scaled to the minutes asked for,
prints the report as JSON and writes it to --out (default bench/chaos-<seed>.json). Exit status 1 when the
report lists problems.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

from gridflow.app.broker import local_broker
from tests.conftest import free_port
from tests.faults.chaos import SoakConfig, run_soak

KINDS = ("worker", "bridge", "temporal", "worker+temporal", "bridge+worker")


def config_for(minutes: float, seed: int, incidents_per_minute: int, kills_per_minute: float) -> SoakConfig:
    """A soak whose stream and kills last about `minutes` (the settling and metrics phase come after)."""
    rng = random.Random(seed)
    spread = max(30.0, minutes * 60.0 - 30.0)
    kills = tuple(rng.choice(KINDS) for _ in range(max(3, round(kills_per_minute * minutes))))
    return SoakConfig(
        seed=seed,
        incidents=max(10, round(incidents_per_minute * minutes)),
        spread_s=spread,
        hostile=min(60, 12 + round(6 * minutes)),
        kills=kills,
        kill_window_s=(4.0, spread + 10.0),
        final_incidents=9,
        budget_s=minutes * 60.0 + 300.0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the stream and kill schedule")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--incidents-per-minute", type=int, default=60)
    parser.add_argument("--kills-per-minute", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON report")
    args = parser.parse_args(argv)
    config = config_for(args.minutes, args.seed, args.incidents_per_minute, args.kills_per_minute)
    print(f"chaos soak: {config}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="gridflow-chaos-") as directory,
        local_broker(free_port()) as kafka,
    ):
        report = asyncio.run(
            run_soak(config, kafka, Path(directory), log=lambda line: print(line, flush=True))
        )
    text = report.as_json()
    print(text)
    out = args.out or Path(__file__).parent / f"chaos-{args.seed}.json"
    out.write_text(text + "\n", encoding="utf-8")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
