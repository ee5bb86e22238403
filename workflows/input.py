"""What starts an incident workflow: the report, and on continue-as-new the state carried over."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from gridflow.domain.incident import Incident
from gridflow.domain.lifecycle.state import IncidentState


class IncidentInput(BaseModel):
    """What starts an incident workflow: the report, and on continue-as-new the state so far."""

    incident: Incident
    carried: IncidentState | None = None
    # Simulations on the time-skipping server only: count time on a grid of this resolution, so the
    # server's few milliseconds of jitter per timer and command vanish (gridflow.domain.lifecycle.resolution).
    clock_resolution: timedelta | None = None
