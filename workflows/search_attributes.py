"""Search attributes operators list incidents by in the Temporal UI. Never personal data."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.common import SearchAttributeKey

from gridflow.domain.incident import CLOCK_STATUSES

CATEGORY = SearchAttributeKey.for_keyword("GridflowCategory")
PRIORITY = SearchAttributeKey.for_keyword("GridflowPriority")
LEVEL = SearchAttributeKey.for_keyword("GridflowLevel")
STATUS = SearchAttributeKey.for_keyword("GridflowStatus")
DISTRICT = SearchAttributeKey.for_keyword("GridflowDistrict")
RULE = SearchAttributeKey.for_keyword("GridflowRule")
#: When the running SLA clock (accept, resolve or verify) of an open incident runs out. It holds while
#: the status is dispatched, accepted or verifying (those with a running clock); a paused, resolved or closed
#: incident keeps its last value, which `due_by` leaves out. (Never unset: Temporal's time-skipping
#: test server cannot describe a workflow with an unset datetime attribute.)
NEXT_DEADLINE = SearchAttributeKey.for_datetime("GridflowNextDeadline")

ALL = (CATEGORY, PRIORITY, LEVEL, STATUS, DISTRICT, RULE, NEXT_DEADLINE)


def query_instant(moment: datetime) -> str:
    """An instant as a visibility query compares a datetime attribute with it: `'2026-12-04T18:00:00Z'`."""
    return "'" + moment.astimezone(UTC).isoformat().replace("+00:00", "Z") + "'"


def due_between(start: datetime | None, end: datetime) -> str:
    """A visibility query for the running incidents whose running SLA clock runs out in [start, end]
    (from any time up to `end` when `start` is None: overdue ones too)."""
    clauses = [
        "ExecutionStatus = 'Running'",
        f"{STATUS.name} IN ({', '.join(repr(status.value) for status in CLOCK_STATUSES)})",
        f"{NEXT_DEADLINE.name} <= {query_instant(end)}",
    ]
    if start is not None:
        clauses.append(f"{NEXT_DEADLINE.name} >= {query_instant(start)}")
    return " AND ".join(clauses)
