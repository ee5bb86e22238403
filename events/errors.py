"""Why a message went to the dead-letter topic: the one list of reasons (its `gridflow.error.type` header).

The event contract gives some of them (`CONTRACT_ERRORS`: `parse_message` raises `EventRejected`), the
bridge the rest (what Temporal answered, what the Kafka client could not read, a bug). README.md's
"Dead letters" table lists exactly these, with their meaning; a test keeps the two equal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

#: Longest error message carried (it ends up in a Kafka header of the dead letter).
MAX_MESSAGE_LENGTH = 1000


class ErrorType(StrEnum):
    """Why a message was dead-lettered. The values are stable: dashboards, alerts and replays key on them."""

    # The event contract's (a message gridflow cannot read as an event):
    OVERSIZED = "oversized"  # the value is larger than the configured maximum
    MALFORMED = "malformed"  # not UTF-8, not JSON, too deeply nested, not an object, no data, data not JSON
    UNSUPPORTED_SPECVERSION = "unsupported_specversion"  # specversion is not "1.0"
    MISSING_ATTRIBUTE = "missing_attribute"  # specversion, id, source or type absent or empty
    INVALID_ATTRIBUTE = "invalid_attribute"  # an attribute of the wrong JSON type, a bad time or extension
    UNKNOWN_TYPE = "unknown_type"  # a CloudEvents type the contract does not know
    INVALID_DATA = "invalid_data"  # the data does not validate against the type's model
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is present and differs from data.incident_id
    # The bridge's (a good event that cannot be applied, or a record that cannot be read):
    UNKNOWN_INCIDENT = "unknown_incident"  # a lifecycle event for an incident never reported
    REJECTED = "rejected"  # the workflow refused the command (the message is its reason)
    INCIDENT_CLOSED = "incident_closed"  # a lifecycle event for a closed incident, or one closing meanwhile
    CONFLICT = "conflict"  # a second report of a known incident with different content
    TEMPORAL_REFUSED = "temporal_refused"  # Temporal refused the call itself (permissions, namespace, ...)
    UNREADABLE_RECORD = "unreadable_record"  # the Kafka client cannot decode the record at all
    INTERNAL_ERROR = "internal_error"  # a bug in gridflow while handling the message


#: The reasons the event contract gives (`EventRejected`); the others are the bridge's.
CONTRACT_ERRORS: Final = frozenset(
    {
        ErrorType.OVERSIZED,
        ErrorType.MALFORMED,
        ErrorType.UNSUPPORTED_SPECVERSION,
        ErrorType.MISSING_ATTRIBUTE,
        ErrorType.INVALID_ATTRIBUTE,
        ErrorType.UNKNOWN_TYPE,
        ErrorType.INVALID_DATA,
        ErrorType.KEY_MISMATCH,
    }
)


def clip(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Shorten text to at most `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class EventRejected(Exception):
    """A message that breaks the event contract, with one of `CONTRACT_ERRORS` as its `error_type`."""

    def __init__(self, error_type: ErrorType | str, message: str) -> None:
        self.error_type = ErrorType(error_type)
        self.message: str = clip(message)
        super().__init__(f"{self.error_type}: {self.message}")

    def __reduce__(self) -> tuple[type[EventRejected], tuple[str, str]]:
        return (type(self), (self.error_type.value, self.message))
