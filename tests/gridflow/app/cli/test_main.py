"""The `gridflow` command as a whole: every command has its help, and a group needs a command."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from gridflow.app.cli import build_parser, main


def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(build_parser()))


def test_every_command_is_covered() -> None:
    assert {" ".join(path) for path in COMMANDS} >= {
        "dev",
        "worker",
        "bridge",
        "rules check",
        "rules explain",
        "incident report",
        "incident show",
        "incident list",
        "incident accept",
        "incident progress",
        "incident escalate",
        "incident pause",
        "incident resume",
        "incident resolve",
        "incident feedback",
        "incident withdraw",
        "simulate",
        "generate-stream",
        "publish",
        "dlq list",
        "dlq replay",
        "codec keygen",
        "codec-server",
        "schema export",
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "gridflow")
def test_help_works_for_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([*path, "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gridflow {' '.join(path)}".rstrip())
    description = out.split("\n\n")[1]
    assert len(description) > 20, f"no useful description for {path}: {description!r}"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["incident"])
    assert exit.value.code == 2
