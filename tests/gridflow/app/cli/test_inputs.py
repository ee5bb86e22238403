"""The one reader of the commands' JSON input: every form it takes, and errors that say where."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridflow.app.cli.inputs import InputError, read_documents, read_incident
from tests.conftest import make_incident


def write(tmp_path: Path, text: str, name: str = "input.json") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problem(read: Callable[[str], object], path: str) -> str:
    """The message of the InputError that reading `path` raises."""
    with pytest.raises(InputError) as error:
        read(path)
    return str(error.value)


def envelope(data: dict[str, Any]) -> dict[str, Any]:
    """A structured-mode CloudEvent around `data`."""
    return {
        "specversion": "1.0",
        "type": "gridflow.incident.reported.v1",
        "source": "hotline",
        "id": "evt-1",
        "data": data,
    }


def test_one_json_object_is_one_document(tmp_path: Path) -> None:
    (document,) = read_documents(write(tmp_path, '{"incident_id": "inc-1"}\n'))
    assert document.value == {"incident_id": "inc-1"} and document.line == 1


def test_a_pretty_printed_object_is_one_document_named_by_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "\n" + json.dumps({"incident_id": "inc-1", "title": "dark"}, indent=2))
    (document,) = read_documents(path)
    assert document.value["title"] == "dark"
    assert document.where == f"{path}:2"


def test_a_json_array_gives_each_object_with_the_line_it_starts_on(tmp_path: Path) -> None:
    text = '[\n  {"incident_id": "inc-1"},\n  {\n    "incident_id": "inc-2"\n  }\n]\n'
    documents = read_documents(write(tmp_path, text))
    assert [(d.value["incident_id"], d.line) for d in documents] == [("inc-1", 2), ("inc-2", 3)]


def test_json_lines_give_one_document_a_line_and_skip_blank_lines(tmp_path: Path) -> None:
    documents = read_documents(write(tmp_path, '{"n": 1}\n\n{"n": 2}\n{"n": 3}\n', "input.jsonl"))
    assert [(d.value["n"], d.line) for d in documents] == [(1, 1), (2, 3), (3, 4)]


def test_a_cloudevent_envelope_gives_its_data_and_plain_data_gives_itself(tmp_path: Path) -> None:
    plain = {"incident_id": "inc-1"}
    wrapped, bare = read_documents(write(tmp_path, json.dumps(envelope(plain)) + "\n" + json.dumps(plain)))
    assert wrapped.is_envelope and wrapped.data == plain and wrapped.value["id"] == "evt-1"
    assert not bare.is_envelope and bare.data == plain


def test_a_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"n": 1}\n{"n": 2}\n'))
    documents = read_documents("-")
    assert [d.value["n"] for d in documents] == [1, 2]
    assert documents[1].where == "standard input:2"


def test_a_bad_json_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"n": 1}\n{"n": 2}\n{"n": }\n')
    assert problem(read_documents, path) == f"{path}:3: not JSON: Expecting value (column 7)"


def test_a_line_cut_short_is_named_by_the_line_it_starts_on(tmp_path: Path) -> None:
    path = write(tmp_path, '{"n": 1}\n{"n": 2\n{"n": 3}\n')
    assert problem(read_documents, path) == f"{path}:2: not JSON: Expecting ',' delimiter (line 3, column 1)"


def test_an_array_item_that_is_not_an_object_is_named_by_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[\n  {"n": 1},\n  "two"\n]')
    assert problem(read_documents, path) == f"{path}:3: a JSON string where an object was expected"


def test_an_array_without_its_closing_bracket_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[\n  {"n": 1}\n  {"n": 2}\n]')
    assert problem(read_documents, path).startswith(f"{path}:3: not JSON: the array goes on without a ','")


def test_an_empty_input_and_a_missing_file_are_clear_errors(tmp_path: Path) -> None:
    empty = write(tmp_path, "\n  \n")
    assert problem(read_documents, empty) == f"{empty}: no JSON object in it"
    nowhere = str(tmp_path / "nowhere.json")
    assert problem(read_documents, nowhere) == f"cannot read {nowhere}: No such file or directory"


def test_an_envelope_without_data_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"n": 1}\n{"specversion": "1.0", "type": "x"}\n')
    _, without_data = read_documents(path)
    assert (
        problem(lambda _: without_data.data, path)
        == f"{path}:2: the CloudEvent has no JSON object as its data"
    )


def test_an_incident_is_read_from_its_data_or_its_whole_cloudevent(tmp_path: Path) -> None:
    incident = make_incident()
    data = incident.model_dump(mode="json")
    assert read_incident(write(tmp_path, json.dumps(data), "plain.json")) == incident
    assert read_incident(write(tmp_path, json.dumps(envelope(data), indent=2), "event.json")) == incident


def test_a_command_that_takes_one_incident_refuses_several(tmp_path: Path) -> None:
    lines = "".join(make_incident().model_dump_json() + "\n" for _ in range(3))
    path = write(tmp_path, lines, "three.jsonl")
    assert (
        problem(read_incident, path)
        == f"{path}: 3 JSON objects (lines 1, 2, 3): this command takes one incident"
    )


def test_an_invalid_incident_names_the_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"incident_id": "inc-1", "category": "street_lamp"}))
    message = problem(read_incident, path)
    assert message.startswith(f"{path}:1: invalid Incident:")
    assert "\n  priority: Field required" in message
