"""Chaos soak: nothing lost, doubled or miscounted while workers, bridges and Temporal are SIGKILLed.

The soak (tests/faults/chaos.py) starts its own Temporal dev server on a SQLite file, two workers and two
bridges as OS processes (demo rules: clocks of seconds, so warnings, breaches and escalations happen during
the run), and publishes a seeded stream: incidents that are reported and then accepted, resolved and rated
at once ("rated"), accepted and resolved but never rated ("unrated": closed when the feedback window
ends), or left alone until withdrawn 12-28 s later ("withdrawn": escalated on the way), with a sample of
the hostile corpus mixed in. A seeded schedule SIGKILLs bridges, workers and the Temporal server (restarted
on the same file), one worker together with Temporal. Then:

- timelines: every input of an incident's script is on its timeline exactly once, or was refused exactly
  once (an acceptance that reaches the grid after an outage let its deadline pass and the incident
  escalated is refused and dead-lettered as `rejected`, as are the resolution and rating behind it; the
  soak then withdraws that incident, as its app would); each incident closes with the outcome its script
  implies; seq has no gaps, nothing that happens once happens twice; and every SLA clock (accept from a
  dispatch, resolve from an acceptance) has its warning and breach exactly when the clock ran past them
  (within 1 s of the step that stopped it), none early; a feedback window is never closed early;
- the lifecycle topic holds every step's id and no other (an activity retry may publish an id again:
  copies by id are counted apart), and no logical step under two ids;
- every hostile message is on the dead-letter topic from exactly one source offset, with its expected
  reason (a bridge killed between a dead letter and its commit writes it again: such copies, same source
  offset, are counted as redelivered); nothing else is there except the refused late inputs above;
- metrics: counters live in a worker's memory and a SIGKILL loses them, so the comparison is made on a
  final worker that is never killed: it starts beside the survivors once the schedule is over, they are
  killed, and when the chaos incidents are all closed its counters are scraped; a last batch of incidents
  then runs with no faults and each counter's increase over that batch must equal the batch's steps of
  its kind, exactly. (What the killed workers counted is lost with them, by design: that loss window is
  the kill schedule, and Prometheus sees it as counter resets.)
- lateness: a clock's step may be late by no more than the outages it overlapped plus 6 s: Temporal down
  (kill to answering again), or the 10 s after a worker kill while its sticky task queue times out (the
  SDK's default); the largest lateness and the total downtime are printed.

A command that reaches a workflow in the same task as its overdue timers (after an outage) used to be
applied before them, so a withdrawn incident could miss its warning and breach: the soak found it, and
counts such steps as `lost_clock_steps` (now 0: tests/workflows/test_late_commands.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.chaos import SoakConfig, run_soak


@pytest.mark.timeout(300)
async def test_a_soak_of_kills_of_workers_bridges_and_temporal_loses_doubles_and_miscounts_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = SoakConfig()
    report = await run_soak(config, kafka_bootstrap, tmp_path)
    print(f"\n[chaos soak] {report.as_json()}")
    assert report.problems == []
    assert report.lost_clock_steps == 0
    assert report.kills == {"bridge": 2, "worker": 3, "temporal": 2}
    assert report.simultaneous_kills == 1
    assert report.lost_steps == report.lost_inputs == report.doubled_steps == 0
    assert report.hostile_dead_lettered == f"{config.hostile}/{config.hostile}"
    assert report.temporal_downtime_s > 0
