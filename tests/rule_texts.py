"""Rules files the tests of several packages run incidents on."""

from __future__ import annotations

#: The default ladder's first two levels, with an inspector who checks each fix within 4h.
VERIFYING = """
version: verify-1
rules:
  - name: verifying
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 4h, resolve: 2d}
    verification: {inspector: "inspector-{grid_id}", within: 4h}
"""
