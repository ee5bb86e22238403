"""`gridflow rules check` and `rules explain`: a rules file's rules, and what one incident would meet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gridflow.app.cli import main
from tests.conftest import make_incident


def test_rules_check_shows_the_built_in_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out
    assert "built-in rules: valid" in out
    assert "rule urgent" in out and "rule default" in out
    assert "match     priority in urgent" in out
    assert "grid       accept within 15m" in out
    assert "resolve within 2h" in out


def test_rules_check_names_every_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: fast\n"
        "    ladder: {grid: {accept: 2x, resolve: 1h}}\n"
        "  - name: default\n"
        "    ladder: {grid: {accept: 1h}}\n",
        encoding="utf-8",
    )
    assert main(["rules", "check", str(rules)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{rules}: invalid rules file" in captured.err
    assert "rules[0].ladder.grid.accept" in captured.err
    assert "rules[1].ladder.grid.resolve: is required" in captured.err


def test_rules_check_takes_the_rules_file_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 7\nrules:\n  - name: only\n    ladder: {grid: {accept: 1h, resolve: 2h}}\n")
    monkeypatch.setenv("GRIDFLOW_RULES_FILE", str(rules))
    assert main(["rules", "check"]) == 0
    assert "version 7" in capsys.readouterr().out


def test_rules_explain_reads_a_cloudevent_from_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRIDFLOW_RULES_FILE", raising=False)
    incident = make_incident()
    event = {
        "specversion": "1.0",
        "type": "gridflow.incident.reported.v1",
        "source": "hotline",
        "id": "evt-1",
        "data": incident.model_dump(mode="json"),
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(event, indent=2)))

    assert main(["rules", "explain", "-"]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"incident {incident.incident_id}: street_lamp, priority normal")
    assert "rule default: matches" in out and "timeline if nobody acts" in out


def test_rules_explain_refuses_a_file_of_several_incidents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = tmp_path / "two.jsonl"
    stream.write_text(make_incident().model_dump_json() + "\n" + make_incident().model_dump_json() + "\n")

    assert main(["rules", "explain", str(stream)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"{stream}: 2 JSON objects (lines 1, 2): this command takes one incident\n"
