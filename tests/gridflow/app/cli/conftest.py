"""The CLI's tests run `main` as a user would; main configures logging, which each test puts back."""

from __future__ import annotations

import asyncio

import pytest

from gridflow.app.cli import main


@pytest.fixture(autouse=True)
def _logging_put_back(restore_logging: None) -> None:
    """main() configures logging for the whole process: every CLI test puts it back after."""


async def gridflow(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command as a user would (it runs its own event loop, so in a thread); (code, out, err)."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
