"""What starts an incident workflow: the report, and on continue-as-new the state carried over."""

from __future__ import annotations

from pydantic import BaseModel

from gridflow.incident import Incident
from gridflow.lifecycle.state import IncidentState


class IncidentInput(BaseModel):
    """What starts an incident workflow: the report, and on continue-as-new the state so far."""

    incident: Incident
    carried: IncidentState | None = None
