"""The one reader of the commands' JSON input, from a file or standard input (`-`).

Every command that takes JSON reads it here, in the same forms: one JSON object (pretty-printed or
not), a JSON array of objects, or JSON lines; each object a CloudEvent envelope in structured mode
(`{"specversion": ..., "data": {...}}`) or the plain data. A problem names the file and the line.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gridflow.app.cli.shared import CommandError, validation_problems
from gridflow.domain.incident import Incident

STDIN = "-"
_BLANK = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


class InputError(CommandError):
    """Input that cannot be read or is not in one of the accepted forms; the message says where."""


@dataclass(frozen=True)
class Document:
    """One JSON object of an input, and where it starts."""

    source: str  # the file's name, or "standard input"
    line: int
    value: dict[str, Any]

    @property
    def where(self) -> str:
        """`FILE:LINE`, to put before a message about this document."""
        return f"{self.source}:{self.line}"

    @property
    def is_envelope(self) -> bool:
        """Whether the object is a whole CloudEvent (structured mode) rather than its data."""
        return "specversion" in self.value

    @property
    def data(self) -> dict[str, Any]:
        """The event's data: the envelope's `data`, or the object itself."""
        if not self.is_envelope:
            return self.value
        data = self.value.get("data")
        if not isinstance(data, dict):
            raise InputError(f"{self.where}: the CloudEvent has no JSON object as its data")
        return data


def read_documents(path: str) -> list[Document]:
    """Every JSON object in the file at `path` (`-`: standard input), in order."""
    source = "standard input" if path == STDIN else path
    try:
        text = sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    documents = []
    for line, value in _json_values(text, source):
        if not isinstance(value, dict):
            raise InputError(f"{source}:{line}: a JSON {_kind(value)} where an object was expected")
        documents.append(Document(source, line, value))
    if not documents:
        raise InputError(f"{source}: no JSON object in it")
    return documents


def read_incident(path: str) -> Incident:
    """The one incident in the file at `path`: a reported event's data, or its whole CloudEvent."""
    documents = read_documents(path)
    if len(documents) > 1:
        lines = ", ".join(str(document.line) for document in documents[:3])
        more = ", ..." if len(documents) > 3 else ""
        raise InputError(
            f"{documents[0].source}: {len(documents)} JSON objects (lines {lines}{more}): "
            "this command takes one incident"
        )
    (document,) = documents
    try:
        return Incident.model_validate(document.data)
    except ValidationError as exc:
        raise InputError(f"{document.where}: {validation_problems(exc)}") from None


class _Lines:
    """The line numbers of positions met in increasing order: each newline counted once, so a large
    input of JSON lines is not rescanned from its start for every value."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._position = 0
        self._line = 1

    def of(self, position: int) -> int:
        """The line `position` is on (a position before the last one asked is counted afresh)."""
        if position < self._position:
            return self._text.count("\n", 0, position) + 1
        self._line += self._text.count("\n", self._position, position)
        self._position = position
        return self._line


def _json_values(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """Each JSON value in `text` with the line it starts on; a top-level array's items one by one."""
    lines = _Lines(text)
    position = _skip_blank(text, 0)
    while position < len(text):
        if text[position] == "[":
            position = yield from _array_items(text, position, source, lines)
        else:
            line = lines.of(position)
            value, position = _decode(text, position, source, line)
            yield line, value
        position = _skip_blank(text, position)


def _array_items(text: str, start: int, source: str, lines: _Lines) -> Generator[tuple[int, Any], None, int]:
    """The items of the array that opens at `start`; returns the position after its `]`."""
    position = _skip_blank(text, start + 1)
    if text.startswith("]", position):
        return position + 1
    while True:
        line = lines.of(position)
        value, position = _decode(text, position, source, line)
        yield line, value
        position = _skip_blank(text, position)
        if text.startswith("]", position):
            return position + 1
        if not text.startswith(",", position):
            at = lines.of(position)
            raise InputError(f"{source}:{at}: not JSON: the array goes on without a ',' or its ']'")
        position = _skip_blank(text, position + 1)


def _decode(text: str, position: int, source: str, start: int) -> tuple[Any, int]:
    """The JSON value at `position` (on line `start`), and where it ends."""
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        # A value cut short (a truncated JSON line) fails only on the next line: name the line it starts on.
        where = f"column {exc.colno}" if exc.lineno == start else f"line {exc.lineno}, column {exc.colno}"
        raise InputError(f"{source}:{start}: not JSON: {exc.msg} ({where})") from None


def _skip_blank(text: str, position: int) -> int:
    match = _BLANK.match(text, position)
    return match.end() if match else position


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"
