"""The report's charts as inline SVG, drawn by matplotlib: the trend by week, the ranking bars and the
breach heat map. Text is SVG text (no glyph paths, no fonts to load), math parsing is off (ids and
categories are shown as they are), and each chart's ids are prefixed so several live in one page."""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any, Final

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gridflow.app.report import formats
from gridflow.domain.report import PeriodReport

#: Bars in the ranking chart at most (the table below it has every group).
MOST_BARS: Final = 40
TREND_RATES: Final = ("response", "resolution", "satisfaction")


def _drawing(salt: str) -> contextlib.AbstractContextManager[None]:
    """matplotlib's settings for a chart: SVG text, no math parsing, the chart's own id salt."""
    return matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": salt,
            "text.parse_math": False,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


# No creator, date or format links in the SVG: the page loads nothing.
_NO_METADATA: Final[dict[str, Any]] = {"Creator": None, "Date": None, "Format": None, "Type": None}


def trend(report: PeriodReport) -> str:
    """Lines of the score and the headline rates, week by week (gaps where a week has no value)."""
    with _drawing("trend"):
        figure = Figure(figsize=(7.5, 3.2), layout="constrained")
        axes = figure.add_subplot()
        labels = [f"{week.period.week_label}\n{week.period.first:%m-%d}" for week in report.weeks]
        positions = list(range(len(labels)))
        series = [("score", [week.figures.score for week in report.weeks])]
        series += [
            (formats.RATE_TITLES[n], [week.figures.rate(n) for week in report.weeks]) for n in TREND_RATES
        ]
        for title, values in series:
            axes.plot(
                positions,
                [float("nan") if value is None else value * 100 for value in values],
                marker="o",
                linewidth=2.5 if title == "score" else 1.5,
                label=title,
            )
        axes.set_xticks(positions, labels)
        axes.set_ylim(0, 105)
        axes.set_ylabel("%")
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="lower left", ncols=len(series), frameon=False)
        return _svg(figure, "trend")


def ranking(report: PeriodReport) -> str:
    """Horizontal bars of the score, best at the top; groups without a score are left out."""
    scored = [row for row in report.rows if row.figures.score is not None][:MOST_BARS]
    with _drawing("ranking"):
        figure = Figure(figsize=(7.5, 0.9 + 0.28 * max(len(scored), 1)), layout="constrained")
        axes = figure.add_subplot()
        names = [f"{row.rank}. {row.name}" for row in scored]
        values = [(row.figures.score or 0.0) * 100 for row in scored]
        bars = axes.barh(range(len(scored)), values, color="#3b6ea5")
        axes.bar_label(bars, labels=[formats.score(row.figures.score) for row in scored], padding=3)
        axes.set_yticks(range(len(scored)), names)
        axes.invert_yaxis()
        axes.set_xlim(0, 110)
        axes.set_xlabel("score")
        return _svg(figure, "ranking")


def heat_map(report: PeriodReport) -> str:
    """SLA breaches by district (rows) and category (columns), each cell with its count."""
    districts, categories = report.districts, report.categories
    counts = [[report.breaches.get((d, c), 0) for c in categories] for d in districts]
    with _drawing("breaches"):
        figure = Figure(
            figsize=(1.8 + 1.0 * max(len(categories), 1), 1.0 + 0.4 * max(len(districts), 1)),
            layout="constrained",
        )
        axes = figure.add_subplot()
        if not districts:
            axes.text(0.5, 0.5, "no SLA breach in the period", ha="center", va="center")
            axes.set_axis_off()
            return _svg(figure, "breaches")
        image = axes.imshow(counts, cmap="Reds", aspect="auto", vmin=0)
        highest = max(max(line) for line in counts)
        for y, line in enumerate(counts):
            for x, count in enumerate(line):
                colour = "white" if highest and count > highest * 0.6 else "black"
                axes.text(x, y, str(count), ha="center", va="center", color=colour)
        axes.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        axes.set_yticks(range(len(districts)), districts)
        bar = figure.colorbar(image, ax=axes, label="SLA breaches")
        bar.locator = MaxNLocator(integer=True)  # counts: no 0.25 of a breach
        bar.update_ticks()
        return _svg(figure, "breaches")


_ID = re.compile(r'(\bid="|href="#|url\(#)')


def _svg(figure: Figure, prefix: str) -> str:
    """The figure as an `<svg>` element for an HTML page: no XML prolog, doctype or namespace links, its
    ids (and the references to them) prefixed."""
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata=_NO_METADATA)
    text = out.getvalue()
    start = text.index("<svg")
    end = text.index(">", start)
    # Inline SVG in HTML needs no namespace declarations (the parser knows svg and xlink:href).
    tag = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text[start:end])
    return _ID.sub(lambda found: f"{found.group(1)}{prefix}-", tag + text[end:])
