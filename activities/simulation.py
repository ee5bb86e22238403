"""What simulated handlers do to the real incidents: look at them, and act on them."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from gridflow.domain.lifecycle import (
    IncidentState,
)
from gridflow.domain.simulation.model import Action
from workflows.activity_names import SIMULATION_ACT, SIMULATION_OBSERVE
from workflows.client import incident_state, send_command


class SimulationActivities:
    """Activities of the simulated handlers, bound to a client of the simulation's server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=SIMULATION_OBSERVE)
    async def observe(self, incident_id: str) -> IncidentState:
        """The incident's current state."""
        return await incident_state(self._client, incident_id)

    @activity.defn(name=SIMULATION_ACT)
    async def act(self, incident_id: str, action: Action) -> str | None:
        """Do the action; a refusal (the incident moved on meanwhile) is returned, not raised."""
        try:
            await send_command(self._client, incident_id, action.command())
        except WorkflowUpdateFailedError as refused:
            return str(refused.cause or refused)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:  # closed meanwhile (by its own clocks)
                return exc.message
            raise
        return None
