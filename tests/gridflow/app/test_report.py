"""`gridflow report` over a real archive (SQLite): the scenario of tests/gridflow/domain/test_report.py
written to it, then the table, CSV and JSON carry the same figures, and the HTML page, self-contained,
shows them: opened in headless Chromium, every number read from the rendered page equals the JSON's."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gridflow.app.cli import main
from gridflow.app.report import formats
from gridflow.archive.store import Archive
from gridflow.domain.lifecycle import IncidentStep
from gridflow.domain.report import RATES, Grouping, Period, Weights, build_report
from tests.gridflow.domain.test_report import scenario_steps

# Each test configures logging for the whole process: put it back after.
pytestmark = pytest.mark.usefixtures("restore_logging")

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def steps() -> list[IncidentStep]:
    return scenario_steps()


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory: pytest.TempPathFactory, steps: list[IncidentStep]) -> str:
    """A SQLite archive holding the scenario's steps."""
    url = f"sqlite:///{tmp_path_factory.mktemp('archive') / 'archive.db'}"
    with Archive.open(url) as archive:
        assert archive.write(steps) == len(steps)
    return url


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `gridflow report ARGV` as a user would; (exit code, stdout, stderr)."""
    code = main(["report", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def november(capsys: pytest.CaptureFixture[str], archive_url: str, *argv: str) -> str:
    """November's report in a format, from the archive; its standard output."""
    code, out, err = report(capsys, "--month", "2026-11", "--archive-url", archive_url, *argv)
    assert code == 0, err
    return out


# ---------------------------------------------------------------------- table, CSV, JSON


def test_the_json_from_the_archive_is_the_report_of_the_steps_written_to_it(
    capsys: pytest.CaptureFixture[str], archive_url: str, steps: list[IncidentStep]
) -> None:
    document = json.loads(november(capsys, archive_url, "--format", "json"))

    weights = Weights.parse("response=30,resolution=35,satisfaction=35")
    expected = build_report(steps, Period.month("2026-11"), Grouping.DISTRICT, weights).as_dict()
    assert document == expected
    # The figures worked out by hand in tests/gridflow/domain/test_report.py.
    assert [(g["group"], g["rank"], g["previous_rank"]) for g in document["groups"]] == [
        ("d-huangpu", 1, 2),
        ("d-jingan", 2, 1),
    ]
    assert document["groups"][0]["score"] == pytest.approx(0.8375)
    assert document["overall"]["rates"]["response"] == pytest.approx(7 / 8)


def test_the_table_and_the_csv_carry_the_json_figures(
    capsys: pytest.CaptureFixture[str], archive_url: str
) -> None:
    document = json.loads(november(capsys, archive_url, "--format", "json"))
    table = november(capsys, archive_url)
    lines = list(csv.DictReader(io.StringIO(november(capsys, archive_url, "--format", "csv"))))

    heading, weights, _, header, *rows = table.splitlines()
    assert heading.startswith("Evaluation report 2026-11 by district (2026-11-01 to 2026-11-30, UTC)")
    assert "against 2026-10" in heading and "response 30, resolution 35, satisfaction 35" in weights
    assert header.split()[:4] == ["rank", "moved", "district", "score"]
    assert [row.split()[:3] for row in rows] == [
        ["1", "up", "1"],
        ["2", "down", "1"],
        ["(all)", "80.5", "-5.8"],
    ]
    for group, row in zip(document["groups"], rows, strict=False):
        cells = row.split()
        assert cells[3] == group["group"]
        assert cells[4] == formats.score(group["score"])
        assert formats.percent(group["rates"]["response"]) in cells
        assert f"{group['counts']['reported']}" == cells[7]

    assert [(line["scope"], line["group"]) for line in lines] == [
        ("overall", ""),
        ("group", "d-huangpu"),
        ("group", "d-jingan"),
    ]
    for line, figures in zip(lines, [document["overall"], *document["groups"]], strict=True):
        assert (line["period"], line["by"]) == ("2026-11", "district")
        for name in RATES:
            assert number(line[name]) == figures["rates"][name], name
            assert number(line[f"{name}_change_points"]) == figures["change"]["rates"][name], name
        assert number(line["score"]) == figures["score"]
        assert number(line["score_change_points"]) == figures["change"]["score"]
        for name, value in figures["counts"].items():
            if name != "closures_by_outcome":
                assert int(line[name]) == value, name
    assert (lines[1]["rank"], lines[1]["previous_rank"], lines[1]["rank_change"]) == ("1", "2", "1")


def number(cell: str) -> float | None:
    """A CSV cell as the number it holds (empty: none)."""
    return None if cell == "" else float(cell)


def test_an_empty_period_says_so_plainly(capsys: pytest.CaptureFixture[str], archive_url: str) -> None:
    code, out, _ = report(capsys, "--month", "2027-02", "--archive-url", archive_url)
    assert code == 0
    assert out.startswith("nothing happened in 2027-02 (2027-02-01 to 2027-02-28, UTC)")

    code, out, err = report(capsys, "--month", "2027-02", "--archive-url", archive_url, "--format", "json")
    assert code == 0 and json.loads(out)["groups"] == [] and err.startswith("nothing happened in 2027-02")


def test_a_missing_archive_is_one_line_and_exit_1_and_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "archive.db"
    code, out, err = report(capsys, "--archive-url", f"sqlite:///{missing}")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"no archive at {missing}: nothing has been archived there (`gridflow dev` or `gridflow archiver` "
        "keep one; set GRIDFLOW_ARCHIVE_URL or --archive-url)"
    ]
    assert not missing.parent.exists()

    unreadable = tmp_path / "garbage.db"
    unreadable.write_text("not a database")
    code, _, err = report(capsys, "--archive-url", f"sqlite:///{unreadable}")
    assert code == 1 and len(err.splitlines()) == 1 and "file is not a database" in err


def test_bad_weights_periods_and_time_zones_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], archive_url: str
) -> None:
    code, _, err = report(capsys, "--archive-url", archive_url, "--weights", "response=30,speed=70")
    assert code == 1 and err.startswith("--weights: 'speed=70' names no rate")
    for argv, message in [
        (("--month", "2026-13"), "'2026-13' is not a month: write YYYY-MM"),
        (("--from", "2026-11-01"), "--from and --to go together"),
        (("--month", "2026-11", "--from", "2026-11-01", "--to", "2026-11-02"), "give --month or --from/--to"),
        (("--from", "2026-11-01", "--to", "tomorrow"), "--to 'tomorrow' is not a date"),
        (("--timezone", "Mars/Olympus"), "--timezone 'Mars/Olympus' is not a time zone"),
    ]:
        code, _, err = report(capsys, "--archive-url", archive_url, *argv)
        assert code == 2 and err.startswith(message) and len(err.splitlines()) == 1, (argv, err)


def test_days_and_other_groupings(capsys: pytest.CaptureFixture[str], archive_url: str) -> None:
    code, out, _ = report(
        capsys, "--from", "2026-11-16", "--to", "2026-11-30", "--by", "rule", "--format", "json",
        "--archive-url", archive_url,
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    assert document["period"]["label"] == "2026-11-16..2026-11-30"
    assert document["previous_period"]["label"] == "2026-11-01..2026-11-15"
    assert [group["group"] for group in document["groups"]] == ["urgent", "default"]  # J1; J2 and J3


def test_help_gives_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "gridflow report --month 2026-11 --format html" in text and "--archive-url" in text
    assert "--weights" in text and "GRIDFLOW_REPORT_WEIGHTS" in text


# ---------------------------------------------------------------------- the HTML page


def test_html_without_out_is_written_here_and_says_where(
    capsys: pytest.CaptureFixture[str], archive_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = report(capsys, "--month", "2026-11", "--format", "html", "--archive-url", archive_url)
    assert (code, out, err) == (0, "", "report written to report-2026-11.html\n")
    assert (tmp_path / "report-2026-11.html").read_text().startswith("<!DOCTYPE html>")


def test_the_html_page_loads_nothing_and_its_rendered_numbers_are_the_json_figures(
    capsys: pytest.CaptureFixture[str], archive_url: str, tmp_path: Path
) -> None:
    document = json.loads(november(capsys, archive_url, "--format", "json"))
    page = tmp_path / "november.html"
    november(capsys, archive_url, "--format", "html", "--out", str(page))

    text = page.read_text()
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), "the page names an address"
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b|\bsrc=|@import|url\((?!#)", text)
    assert text.count("<svg") == 3  # the trend, the ranking, the heat map

    cells = rendered_cells(page, tmp_path)

    assert len(cells) > 150
    for cell in cells:
        expected = json_figure(document, cell)
        where = f"{cell.scope} {cell.group} {cell.category or ''} {cell.figure}: {cell.text!r}"
        assert cell.value == ("" if expected is None else str(expected)), where
        read = read_number(cell.figure, cell.text)
        if expected is None:
            assert read is None, where
        else:
            assert read == pytest.approx(expected, abs=tolerance(cell.figure)), where
    shown = {(c.scope, c.group, c.figure): c.text for c in cells}
    assert shown["group", "d-huangpu", "rates.satisfaction"] == "75.0%"
    assert shown["group", "d-jingan", "rates.satisfaction"] == "-"  # no rating: no rate, not 0
    assert shown["group", "d-huangpu", "change.rank"] == "up 1"
    assert shown["overall", "", "score"] == "80.5"
    assert shown["week", "2026-W46", "score"] == "72.5"
    assert {(c.group, c.category, c.text) for c in cells if c.scope == "breaches"} == {
        ("d-huangpu", "drain", "1"),
        ("d-huangpu", "street_lamp", "0"),
        ("d-jingan", "drain", "0"),
        ("d-jingan", "street_lamp", "1"),
    }
    # Each figure of each scope is on the page: every rate of every group and week.
    for group in document["groups"]:
        for name in RATES:
            assert ("group", group["group"], f"rates.{name}") in shown
            assert ("group", group["group"], f"change.rates.{name}") in shown
    assert {c.group for c in cells if c.scope == "week"} == {week["week"] for week in document["weeks"]}


def test_text_from_the_archive_is_escaped_in_the_page(
    capsys: pytest.CaptureFixture[str], steps: list[IncidentStep], tmp_path: Path
) -> None:
    # Rule names come from rules files and reach the archive as they are.
    hostile = '<img src=x onerror="alert(1)">&'
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    with Archive.open(url) as archive:
        archive.write([step.model_copy(update={"rule_name": hostile}) for step in steps])
    page = tmp_path / "rules.html"

    code, _, err = report(
        capsys,
        "--month",
        "2026-11",
        "--by",
        "rule",
        "--format",
        "html",
        "--out",
        str(page),
        "--archive-url",
        url,
    )

    assert code == 0, err
    text = page.read_text()
    assert "<img" not in text and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in text
    assert {cell.group for cell in rendered_cells(page, tmp_path) if cell.scope == "group"} == {hostile}


# ---------------------------------------------------------------------- reading the rendered page


class Cell:
    """A figure on the rendered page: what its attributes say it is, and its text."""

    def __init__(self, attributes: dict[str, str | None]) -> None:
        self.scope = attributes.get("data-scope") or ""
        self.group = attributes.get("data-group") or ""
        self.category = attributes.get("data-category")
        self.figure = attributes.get("data-figure") or ""
        self.value = attributes.get("data-value") or ""
        self.text = ""


class Figures(HTMLParser):
    """Collects every element with a `data-figure` from the DOM Chromium dumps, and the other table
    cells that hold a digit (there should be none but names and dates)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[Cell] = []
        self.loose: list[str] = []
        self._open: Cell | None = None
        self._loose: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "data-figure" in attributes:
            self._open = Cell(attributes)
        elif tag == "td" and attributes.get("class") != "name":
            self._loose = ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data
        elif self._loose is not None:
            self._loose += data

    def handle_endtag(self, tag: str) -> None:
        if tag != "td":
            return
        if self._open is not None:
            self.cells.append(self._open)
            self._open = None
        elif self._loose is not None:
            if re.search(r"\d", self._loose):
                self.loose.append(self._loose)
            self._loose = None


def rendered_cells(page: Path, tmp_path: Path) -> list[Cell]:
    """The figures of the page as headless Chromium renders it (its DOM, dumped)."""
    chromium = shutil.which("chromium") or CHROMIUM
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed: run `make deps` (Debian's chromium package)", pytrace=False)
    profile = tmp_path / f"chromium-{page.stem}"
    result = subprocess.run(
        [
            chromium,
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "<body" in result.stdout, result.stderr[-2000:]
    parser = Figures()
    parser.feed(result.stdout)
    assert parser.loose == [], "numbers on the page that do not say what they are"
    return parser.cells


def json_figure(document: dict[str, Any], cell: Cell) -> Any:
    """The JSON's value of the figure a cell says it shows."""
    if cell.scope == "breaches":
        found = [
            entry["sla_breaches"]
            for entry in document["breaches"]
            if (entry["district"], entry["category"]) == (cell.group, cell.category)
        ]
        return found[0] if found else 0
    node: Any = {
        "overall": lambda: document["overall"],
        "group": lambda: next(g for g in document["groups"] if g["group"] == cell.group),
        "week": lambda: next(w for w in document["weeks"] if w["week"] == cell.group),
    }[cell.scope]()
    for key in cell.figure.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def read_number(figure: str, text: str) -> float | None:
    """The number a cell's text shows, read as a person reads it."""
    text = text.strip()
    if text in ("-", "new"):
        return None
    if figure == "change.rank":
        if text == "=":
            return 0
        direction, places = text.split()
        return int(places) * (1 if direction == "up" else -1)
    if figure.startswith("change."):
        return float(text.removesuffix(" pt"))
    if figure.endswith("score"):
        return float(text) / 100
    if text.endswith("%"):
        return float(text.removesuffix("%")) / 100
    if figure.startswith("time_to_resolve_seconds."):
        found = re.fullmatch(r"(?:(\d+)d)?(\d+)h(?:(\d+)m)?", text)
        assert found is not None, text
        days, hours, minutes = (int(part or 0) for part in found.groups())
        return timedelta(days=days, hours=hours, minutes=minutes).total_seconds()
    return int(text)


def tolerance(figure: str) -> float:
    """How far the text may be from the figure: the text rounds it."""
    if figure.startswith("time_to_resolve_seconds."):
        return 3600  # 3d2h: to the hour
    if figure.startswith("change.") and figure != "change.rank":
        return 0.05 + 1e-9  # points, one decimal
    if figure.endswith("score") or figure.startswith(("rates.", "previous.rates.")):
        return 0.0005 + 1e-9  # percentages, one decimal
    return 0
