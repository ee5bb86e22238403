"""Valid data for every inbound event type, as an upstream app would send it (JSON-ready dicts)."""

from __future__ import annotations

from typing import Any

from events import contract

INCIDENT_ID = "inc-2026-000042"
UNIT_ID = "g-nanjing-07"


def reported_data(incident_id: str = INCIDENT_ID) -> dict[str, Any]:
    """A complete report, every optional field filled in."""
    return {
        "incident_id": incident_id,
        "category": "street_lamp",
        "title": "Street lamp dark at the corner of Nanjing Road",
        "description": "The lamp has been out for three nights.",
        "priority": "high",
        "location": {
            "grid_id": UNIT_ID,
            "street_id": "s-nanjing-east",
            "district_id": "d-huangpu",
            "city_id": "c-shanghai",
            "lat": 31.2354,
            "lon": 121.4737,
            "address": "Nanjing East Road 100",
        },
        "reported_at": "2026-11-23T08:00:00+08:00",
        "reporter": {"name": "Li Wei", "phone": "+86 138 0000 0000", "channel": "app"},
    }


_LIFECYCLE: dict[str, dict[str, Any]] = {
    contract.ACCEPTED: {"unit_id": UNIT_ID, "handler": "Zhang San"},
    contract.PROGRESS: {"unit_id": UNIT_ID, "note": "Electrician on the way."},
    contract.ESCALATION_REQUESTED: {"unit_id": UNIT_ID, "reason": "not_responsible", "note": "Power grid."},
    contract.TRANSFERRED: {"unit_id": UNIT_ID, "to_unit": "g-nanjing-08", "reason": "The next grid's lamp."},
    contract.EXTENSION_REQUESTED: {"unit_id": UNIT_ID, "extra": "8h", "reason": "The pole needs a crane."},
    contract.EXTENSION_GRANTED: {"unit_id": "s-nanjing-east", "note": "Book the crane today."},
    contract.EXTENSION_REFUSED: {"unit_id": "s-nanjing-east", "reason": "A ladder will do."},
    contract.PAUSED: {"unit_id": UNIT_ID, "reason": "waiting for parts"},
    contract.RESUMED: {"unit_id": UNIT_ID},
    contract.RESOLVED: {"unit_id": UNIT_ID, "resolution": "Lamp replaced."},
    contract.VERIFIED: {"unit_id": "inspector-g-nanjing-07", "note": "Lit at 21:00."},
    contract.REJECTED: {"unit_id": "inspector-g-nanjing-07", "reason": "Still dark at 21:00."},
    contract.FEEDBACK: {"rating": "basically_satisfied", "comment": "Took a while."},
    contract.WITHDRAWN: {"reason": "duplicate report"},
}


def sample_data(event_type: str, incident_id: str = INCIDENT_ID) -> dict[str, Any]:
    """Valid data of an inbound type."""
    if event_type == contract.REPORTED:
        return reported_data(incident_id)
    return {"incident_id": incident_id, **_LIFECYCLE[event_type], "at": "2026-11-23T09:30:00Z"}
