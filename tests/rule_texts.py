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

#: The `calendars:` section of a rules file with one calendar, `cn-office`: China's public holidays and
#: make-up working days, office hours 09:00-12:00 and 13:30-18:00 (7.5 working hours a day), Shanghai time.
CN_OFFICE_CALENDARS = """
calendars:
  cn-office:
    timezone: Asia/Shanghai
    working_hours:
      mon: ["09:00-12:00", "13:30-18:00"]
      tue: ["09:00-12:00", "13:30-18:00"]
      wed: ["09:00-12:00", "13:30-18:00"]
      thu: ["09:00-12:00", "13:30-18:00"]
      fri: ["09:00-12:00", "13:30-18:00"]
    public_holidays: {country: CN}
"""
