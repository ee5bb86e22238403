"""The baseline of the lifecycle and memory benchmarks: IncidentWorkflow's shape without its logic.

Like an incident it calls one activity when it starts (an incident matches its rule), then takes
commands and calls one activity whenever steps are waiting to be published (an incident publishes its
steps), sleeping on a clock (a timer) in between. `accept`, `resolve` and `feedback` are updates that
answer at once; steps that pile up while a call is under way go out together in the next one, as an
incident's do, so both make the same activity calls for the same timing. `feedback` closes it. The
payloads are tiny and the activity does nothing: what it costs is the server's and the SDK's round trips.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import activity, workflow

ACTIVITY_TIMEOUT = timedelta(seconds=30)
CLOCK = timedelta(days=1)  # how long an open workflow sleeps if nothing happens: longer than any run
START_ACTIVITIES = 2  # activity calls before an untouched workflow sleeps: "match", then "dispatched"


class Noop:
    """The trivial workflow's activity; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    @activity.defn(name="trivial_noop")
    async def noop(self, steps: str) -> None:
        """Does nothing but count."""
        self.calls += 1


@workflow.defn
class TrivialWorkflow:
    """One activity to start, then one per batch of steps; closed by `feedback`."""

    def __init__(self) -> None:
        self._started = False
        self._pending: list[str] = []
        self._closed = False

    @workflow.run
    async def run(self) -> int:
        """Run until `feedback`; return the number of activities called."""
        await workflow.execute_activity_method(Noop.noop, "match", start_to_close_timeout=ACTIVITY_TIMEOUT)
        calls = 1
        self._started = True
        self._pending.append("dispatched")
        while True:
            if self._pending:
                steps, self._pending = ",".join(self._pending), []
                await workflow.execute_activity_method(
                    Noop.noop, steps, start_to_close_timeout=ACTIVITY_TIMEOUT
                )
                calls += 1
                continue
            if self._closed:
                break
            # A clock, as an incident waits on its SLA deadline.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: bool(self._pending), timeout=CLOCK)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return calls

    async def _command(self, step: str, *, close: bool = False) -> str:
        # A command can arrive before the start-up activity is done; it waits, as an incident's does.
        await workflow.wait_condition(lambda: self._started)
        self._pending.append(step)
        self._closed = self._closed or close
        return step

    @workflow.update
    async def accept(self, unit_id: str) -> str:
        """Like IncidentWorkflow.accept."""
        return await self._command("accepted")

    @workflow.update
    async def resolve(self, unit_id: str) -> str:
        """Like IncidentWorkflow.resolve."""
        return await self._command("resolved")

    @workflow.update
    async def feedback(self, rating: str) -> str:
        """Like IncidentWorkflow.feedback with a satisfied rating: closes the workflow."""
        return await self._command("closed", close=True)
