"""`python -m gridflow.app.cli`: the `gridflow` command (as the tests and the fault drills start it)."""

from gridflow.app.cli import run

run()
