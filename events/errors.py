"""Why an inbound message was rejected: stable, machine-readable error types for the dead-letter topic."""

from __future__ import annotations

from enum import StrEnum

#: Longest error message carried (it ends up in a Kafka header of the dead letter).
MAX_MESSAGE_LENGTH = 1000


class ErrorType(StrEnum):
    """Why the contract rejects a message. The values are stable: dashboards and replays key on them."""

    OVERSIZED = "oversized"  # the value is larger than the configured maximum
    MALFORMED = "malformed"  # not UTF-8, not JSON, too deeply nested, not an object, no data, data not JSON
    UNSUPPORTED_SPECVERSION = "unsupported_specversion"  # specversion is not "1.0"
    MISSING_ATTRIBUTE = "missing_attribute"  # specversion, id, source or type absent or empty
    INVALID_ATTRIBUTE = (
        "invalid_attribute"  # an attribute of the wrong JSON type, a bad time, a bad extension
    )
    UNKNOWN_TYPE = "unknown_type"  # a CloudEvents type the contract does not know
    INVALID_DATA = "invalid_data"  # the data does not validate against the type's model
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is present and differs from data.incident_id


def clip(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Shorten text to at most `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class EventRejected(Exception):
    """A message that breaks the event contract. `error_type` is one of `ErrorType`'s values."""

    def __init__(self, error_type: ErrorType | str, message: str) -> None:
        self.error_type: str = str(error_type)
        self.message: str = clip(message)
        super().__init__(f"{self.error_type}: {self.message}")

    def __reduce__(self) -> tuple[type[EventRejected], tuple[str, str]]:
        return (type(self), (self.error_type, self.message))
