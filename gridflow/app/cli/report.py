"""`gridflow report`: the evaluation report of a month (or of days) over the archive, for supervisors."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gridflow.app.cli.shared import EXIT_OK, EXIT_REFUSED, add_command, fail, table
from gridflow.app.report import as_csv, as_json, as_text
from gridflow.app.report.source import read_report
from gridflow.app.settings import Settings, add_setting_flag, env_name, revealed
from gridflow.archive.store import Archive, ArchiveError
from gridflow.domain.report import Grouping, Period, PeriodError, PeriodReport, Weights, WeightsError

FORMATS = ("table", "csv", "json", "html")

EXAMPLES = """\
examples:
  gridflow report                                  this month by district, a table
  gridflow report --month 2026-11 --by street      November's streets, ranked
  gridflow report --month 2026-11 --format html    one HTML file with charts, to open or mail
  gridflow report --from 2026-11-01 --to 2026-11-15 --by unit --format csv --out units.csv
  gridflow report --weights response=20,resolution=40,satisfaction=40 --format json

Each step counts in the period its time falls in, as Prometheus counts it: an incident reported in
October and closed in November counts its closure in November. The score is the weighted mean of the
weighted rates that have a value (sum of weight x rate / sum of those weights), 0 to 100; the change
is against the month before (or as many days before --from). The README's "Monthly report for
supervisors" gives the formula of each figure and the JSON's fields."""


def report(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow report`: read the period from the archive, write the report in the format asked."""
    period = _period(args)
    grouping = Grouping(args.by)
    weights = _weights(args, settings)
    with _archive(settings) as archive:
        try:
            built = read_report(archive, period, grouping, weights)
        except SQLAlchemyError as exc:
            fail(f"cannot read the archive at {archive.url}: {_first_line(exc)}")
    if built.empty:
        print(
            f"nothing happened in {period.label} ({period.first} to {period.last}, {period.tz}): "
            f"the archive at {archive.url} has no step in it",
            file=sys.stderr if args.format != "table" else sys.stdout,
        )
        if args.format == "table":
            return EXIT_OK
    _write(args, built)
    return EXIT_OK


def _period(args: argparse.Namespace) -> Period:
    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--timezone {args.timezone!r} is not a time zone (e.g. UTC, Asia/Shanghai)", EXIT_REFUSED)
    given_days = args.first is not None or args.last is not None
    if args.month is not None and given_days:
        fail("give --month or --from/--to, not both", EXIT_REFUSED)
    try:
        if given_days:
            if args.first is None or args.last is None:
                fail(
                    "--from and --to go together: give both (the days from and to, both included)",
                    EXIT_REFUSED,
                )
            return Period.days(_date(args.first, "--from"), _date(args.last, "--to"), tz)
        if args.month is not None:
            return Period.month(args.month, tz)
        return Period.month_of(datetime.now(tz).date(), tz)
    except PeriodError as exc:
        fail(str(exc), EXIT_REFUSED)


def _date(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{flag} {text!r} is not a date: write YYYY-MM-DD, e.g. 2026-11-01", EXIT_REFUSED)


def _weights(args: argparse.Namespace, settings: Settings) -> Weights:
    source = "--weights" if "report_weights" in vars(args) else env_name("report_weights")
    try:
        return Weights.parse(settings.report_weights, source)
    except WeightsError as exc:
        fail(str(exc))


def _archive(settings: Settings) -> Archive:
    """The archive of the settings; one line when there is none (the report never creates one)."""
    url = settings.archive_url
    missing = _missing_file(url)
    if missing is not None:
        fail(
            f"no archive at {missing}: nothing has been archived there (`gridflow dev` or "
            f"`gridflow archiver` keep one; set {env_name('archive_url')} or --archive-url)"
        )
    try:
        return Archive.open(url, revealed(settings.archive_password))
    except ArchiveError as exc:
        fail(f"{exc} (set {env_name('archive_url')} or --archive-url)")


def _missing_file(url: str) -> str | None:
    """A SQLite archive's file when it does not exist (Archive.open would create it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # Archive.open says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if Path(parsed.database).exists() else parsed.database


def _write(args: argparse.Namespace, built: PeriodReport) -> None:
    if args.format == "html":
        from gridflow.app.report import as_html  # matplotlib: loaded only for the page

        text = as_html.render(built)
        out = args.out or f"report-{built.period.label.replace('..', '_')}.html"
    else:
        text = {"table": _table, "csv": as_csv.render, "json": as_json.render}[args.format](built)
        out = args.out
    if out is None or out == "-":
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8", newline="" if args.format == "csv" else None)
    except OSError as exc:
        fail(f"cannot write the report to {out}: {exc.strerror or exc}")
    print(f"report written to {out}", file=sys.stderr)


def _table(built: PeriodReport) -> str:
    return "\n".join([*as_text.heading(built), "", table(as_text.rows(built))]) + "\n"


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def add_report(commands: Any) -> None:
    """`gridflow report`."""
    parser = add_command(
        commands,
        "report",
        report,
        "the monthly evaluation report over the archive: ranking, rates, trend, breaches",
        "The evaluation report of a period over the archive: for each district (street, unit, category\n"
        "or rule) the counts and every rate (response, resolution, satisfaction, on-time, escalation,\n"
        "containment at grid, street and district), a ranking by a weighted score\n"
        "(GRIDFLOW_REPORT_WEIGHTS), and the change against the previous period; with the trend by week\n"
        "and the SLA breaches by district and category. A table on the terminal, CSV, JSON, or one\n"
        "self-contained HTML file with charts.\n\n" + EXAMPLES,
        one_shot=True,
    )
    when = parser.add_argument_group("period (default: this month)")
    when.add_argument("--month", metavar="YYYY-MM", help="a calendar month, e.g. 2026-11")
    when.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="the first day (with --to)")
    when.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="the last day, included (with --from)")
    when.add_argument(
        "--timezone", default="UTC", metavar="ZONE", help="where days begin, e.g. Asia/Shanghai; default UTC"
    )
    what = parser.add_argument_group("report")
    what.add_argument(
        "--by", choices=[g.value for g in Grouping], default=Grouping.DISTRICT.value, help="default district"
    )
    add_setting_flag(what, "report_weights", "--weights", metavar="RATE=W,...")
    what.add_argument("--format", choices=FORMATS, default="table", help="default table")
    what.add_argument(
        "--out",
        metavar="FILE",
        help="write to FILE (default: standard output; html: report-PERIOD.html here)",
    )
    add_setting_flag(parser.add_argument_group("archive"), "archive_url", metavar="URL")
