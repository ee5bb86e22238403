"""The dead-letter reasons: one enum, and README.md's table of them says the same."""

from __future__ import annotations

import re
from pathlib import Path

from events.errors import CONTRACT_ERRORS, ErrorType, EventRejected

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_HEADER = "| `gridflow.error.type` | why |"


def readme_reasons() -> dict[str, str]:
    """Each reason README.md's "Dead letters" table lists, with the meaning it gives."""
    section = README.read_text().split("### Dead letters\n", 1)[1]
    lines = section[section.index(TABLE_HEADER) :].splitlines()[2:]  # past the header and its rule
    reasons: dict[str, str] = {}
    for line in lines:
        if not line.startswith("|"):
            break
        name, meaning = (cell.strip() for cell in line.strip("|").split("|", 1))
        for reason in re.findall(r"`([^`]+)`", name):
            reasons[reason] = meaning
    return reasons


def test_the_readme_lists_exactly_the_dead_letter_reasons_each_with_its_meaning() -> None:
    documented = readme_reasons()
    assert sorted(documented) == sorted(ErrorType)
    assert all(meaning for meaning in documented.values()), documented


def test_a_contract_rejection_carries_one_of_the_contracts_own_reasons() -> None:
    rejected = EventRejected("malformed", "the value is not JSON")

    assert rejected.error_type is ErrorType.MALFORMED
    assert rejected.error_type in CONTRACT_ERRORS
    assert ErrorType.UNKNOWN_INCIDENT not in CONTRACT_ERRORS
