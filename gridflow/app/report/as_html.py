"""The report as one self-contained HTML page a supervisor can open or mail: the style and the charts
(inline SVG) are in the page, which loads nothing. Every text from the archive is escaped.

Every number sits in an element that says what it is, for people and for checks alike:
`<td data-scope="group" data-group="d-huangpu" data-figure="rates.satisfaction" data-value="0.875">`
`87.5%</td>`.
`data-scope` is overall, group, week or breaches; `data-group` the group's name (the week's ISO week,
the breach's district, with `data-category`); `data-figure` the figure's path in the JSON document
(`counts.reported`, `rates.response`, `score`, `previous.score`, `change.rates.response`, `change.rank`,
...); `data-value` the raw value as the JSON has it (empty for none).
"""

from __future__ import annotations

from datetime import timedelta
from html import escape
from typing import Any, Final

from gridflow.app.report import charts, formats
from gridflow.domain.report import RATES, PeriodReport

_STYLE: Final = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 78rem; padding: 0 1rem; color: #1d2430; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #d5dbe3; padding-bottom: 0.2rem; }
p.meta { color: #4a5566; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { padding: 0.25rem 0.55rem; border-bottom: 1px solid #e6e9ee; text-align: right; white-space: nowrap; }
th { background: #f2f4f7; font-weight: 600; }
th:first-child, td.name { text-align: left; }
td.up { color: #1d7a38; } td.down { color: #b3261e; }
svg { max-width: 100%; height: auto; }
dl { font-size: 0.85rem; } dt { font-weight: 600; margin-top: 0.5rem; } dd { margin-left: 1rem; }
@media print { h2 { break-after: avoid; } svg { break-inside: avoid; } }
"""

#: What each figure is, as the page explains it (gridflow.domain.rates defines them).
DEFINITIONS: Final = {
    "response": "dispatches accepted within the accept limit / (those + accept-clock breaches)",
    "resolution": "closures that were resolved (resolved, resolved unrated, resolved unsatisfied) / closures",
    "satisfaction": "ratings satisfied or basically satisfied / ratings",
    "resident_resolution": "return visits where the resident says solved / return visits that asked",
    "on_time": "resolutions within the resolve limit / resolutions",
    "escalation": "closures of incidents escalated at least once / closures (lower is better)",
    "dispatch_accuracy": "dispatches not corrected by a transfer to another unit / dispatches",
    "extension": "extensions granted / resolutions (lower is better)",
    "rework": "verifications that sent the fix back / verifications (lower is better)",
    "on_time_closure": "resolved closures never deferred, last resolution in time / those closures",
    "grid_containment": "resolved closures whose highest level was grid / resolved closures",
    "street_containment": "resolved closures whose highest level was grid or street / resolved closures",
    "district_containment": "resolved closures whose highest level was at most district / resolved closures",
}


def render(report: PeriodReport) -> str:
    """The whole page."""
    period = report.period
    title = f"Evaluation report {period.label} by {report.grouping.value}"
    weights = ", ".join(f"{formats.RATE_TITLES[n]} {w:g}" for n, w in report.weights.weights)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(f"{period.first} to {period.last} ({period.tz})")}, compared with '
        f"{escape(report.previous_period.label)}. Score: the weighted mean of {escape(weights)} "
        "(rates without a value left out), 0 to 100.</p>",
    ]
    if report.empty:
        parts.append("<p><strong>Nothing happened in this period.</strong></p>")
    parts += _overall(report)
    parts += _ranking(report)
    parts += _trend(report)
    parts += _breaches(report)
    parts += _definitions()
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------- cells


def _text(figure: str, value: Any) -> str:
    """A figure as it reads, by what it is."""
    if value is None:
        return formats.NONE
    if figure.startswith("change.rates.") or figure == "change.score":
        return formats.points(value)
    if figure == "change.rank":
        return formats.places(value, 0)
    if figure.endswith("score"):
        return formats.score(value)
    if ".rates." in f".{figure}":
        return formats.percent(value)
    if figure.startswith("time_to_resolve_seconds."):
        return formats.duration(timedelta(seconds=value))
    return str(value)


def _raw(value: Any) -> str:
    return "" if value is None else str(value)


def _cell(
    scope: str, group: str, figure: str, value: Any, category: str | None = None, text: str | None = None
) -> str:
    """A `<td>` with the figure's text (or `text`) and what it is in its data attributes."""
    extra = f' data-category="{escape(category)}"' if category is not None else ""
    css = ""
    if figure.startswith("change.") and isinstance(value, (int, float)) and value:
        css = f' class="{"up" if (value > 0) != (figure == "change.rates.escalation") else "down"}"'
    shown = _text(figure, value) if text is None else text
    return (
        f'<td{css} data-scope="{scope}" data-group="{escape(group)}"{extra} data-figure="{escape(figure)}" '
        f'data-value="{escape(_raw(value))}">{escape(shown)}</td>'
    )


def _row(cells: list[str]) -> str:
    return "<tr>" + "".join(cells) + "</tr>"


def _header(titles: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{escape(title)}</th>" for title in titles) + "</tr>"


def _table(header: list[str], rows: list[str]) -> list[str]:
    return [
        '<div class="scroll"><table>',
        "<thead>",
        _header(header),
        "</thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table></div>",
    ]


# ---------------------------------------------------------------------- sections


def _overall(report: PeriodReport) -> list[str]:
    document = report.as_dict()["overall"]
    scope, group = "overall", ""
    lines = []
    figures: list[tuple[str, str]] = [("score", "score")]
    figures += [(f"rates.{name}", formats.RATE_TITLES[name]) for name in RATES]
    figures += [(f"counts.{name}", _COUNT_TITLES[name]) for name in _COUNTS]
    for path, title in figures:
        change_path = {"score": "change.score"}.get(
            path, f"change.{path}" if path.startswith("rates.") else ""
        )
        cells = [
            f'<td class="name">{escape(title)}</td>',
            _cell(scope, group, path, _at(document, path)),
            _cell(scope, group, f"previous.{path}", _at(document, f"previous.{path}")),
            _cell(scope, group, change_path, _at(document, change_path)) if change_path else "<td></td>",
        ]
        lines.append(_row(cells))
    header = ["all groups", report.period.label, report.previous_period.label, "change"]
    return ["<h2>Overall</h2>", *_table(header, lines)]


_COUNTS: Final = ("reported", "closed", "resolutions", "ratings", "sla_breaches", "escalations", "reopens")
_RANKING_COUNTS: Final = ("reported", "closed", "sla_breaches", "reopens")
_COUNT_TITLES: Final = {
    "reported": "reported",
    "closed": "closed",
    "resolutions": "resolutions",
    "ratings": "ratings",
    "sla_breaches": "SLA breaches",
    "escalations": "escalations",
    "reopens": "reopens",
}


def _ranking(report: PeriodReport) -> list[str]:
    by = report.grouping.value
    header = [
        "rank",
        "moved",
        by,
        "score",
        "change",
        *_RANKING_COUNTS,
        *(formats.RATE_TITLES[n] for n in RATES),
    ]
    header += ["p50 to resolve", "previous rank", "previous score"]
    lines = []
    for row in report.as_dict()["groups"]:
        name = row["group"]
        moved = formats.places(row["change"]["rank"], row["previous_rank"])
        cells = [
            _cell("group", name, "rank", row["rank"]),
            _cell("group", name, "change.rank", row["change"]["rank"], text=moved),
            f'<td class="name">{escape(name)}</td>',
            _cell("group", name, "score", row["score"]),
            _cell("group", name, "change.score", row["change"]["score"]),
            *(_cell("group", name, f"counts.{count}", row["counts"][count]) for count in _RANKING_COUNTS),
            *(_cell("group", name, f"rates.{rate}", row["rates"][rate]) for rate in RATES),
            _cell("group", name, "time_to_resolve_seconds.p50", row["time_to_resolve_seconds"]["p50"]),
            _cell("group", name, "previous_rank", row["previous_rank"]),
            _cell("group", name, "previous.score", _at(row, "previous.score")),
        ]
        lines.append(_row(cells))
    shown = sum(1 for row in report.rows if row.figures.score is not None)
    note = ""
    if shown > charts.MOST_BARS:
        note = f"<p>The chart shows the first {charts.MOST_BARS} of {shown}; the table has them all.</p>"
    return [
        f"<h2>Ranking by {escape(by)}</h2>",
        charts.ranking(report),
        note,
        *_table(header, lines),
        _changes_table(report),
    ]


def _changes_table(report: PeriodReport) -> str:
    """Each group's change of every rate, in points, from the previous period."""
    header = [report.grouping.value, *(formats.RATE_TITLES[n] for n in RATES)]
    lines = [
        _row(
            [
                f'<td class="name">{escape(row.name)}</td>',
                *(_cell("group", row.name, f"change.rates.{n}", row.change.rates[n]) for n in RATES),
            ]
        )
        for row in report.rows
    ]
    title = f"<h3>Change from {escape(report.previous_period.label)}, in points</h3>"
    return "\n".join([title, *_table(header, lines)])


def _trend(report: PeriodReport) -> list[str]:
    header = ["week", "days", "score", "reported", "closed", *(formats.RATE_TITLES[n] for n in RATES)]
    lines = []
    for week, document in zip(report.weeks, report.as_dict()["weeks"], strict=True):
        label = week.period.week_label
        days = f"{week.period.first:%m-%d}" + (
            f" to {week.period.last:%m-%d}" if week.period.last != week.period.first else ""
        )
        cells = [
            f'<td class="name">{escape(label)}</td>',
            f'<td class="name">{escape(days)}</td>',
            _cell("week", label, "score", document["score"]),
            _cell("week", label, "counts.reported", document["counts"]["reported"]),
            _cell("week", label, "counts.closed", document["counts"]["closed"]),
            *(_cell("week", label, f"rates.{n}", document["rates"][n]) for n in RATES),
        ]
        lines.append(_row(cells))
    return ["<h2>Trend by week</h2>", charts.trend(report), *_table(header, lines)]


def _breaches(report: PeriodReport) -> list[str]:
    categories = report.categories
    header = ["district", *categories]
    lines = []
    for district in report.districts:
        counts = [report.breaches.get((district, category), 0) for category in categories]
        cells = [f'<td class="name">{escape(district)}</td>']
        cells += [
            _cell("breaches", district, "sla_breaches", count, category)
            for category, count in zip(categories, counts, strict=True)
        ]
        lines.append(_row(cells))
    return [
        "<h2>SLA breaches by district and category</h2>",
        "<p>Clocks that ran out in the period (accept or resolve), where the incident was.</p>",
        charts.heat_map(report),
        *(_table(header, lines) if lines else ["<p>No SLA breach in the period.</p>"]),
    ]


def _definitions() -> list[str]:
    items = [
        "<dt>score</dt><dd>sum of weight x rate over the weighted rates that have a value, divided by the "
        "sum of their weights (0 to 100)</dd>",
        *(
            f"<dt>{escape(formats.RATE_TITLES[name])}</dt><dd>{escape(text)}</dd>"
            for name, text in DEFINITIONS.items()
        ),
        "<dt>change</dt><dd>this period's figure minus the previous period's, in points; the rank moved "
        "up or down that many places</dd>",
        "<dt>counting</dt><dd>each step counts in the period its time falls in: an incident reported in "
        "one month and closed in the next counts its closure in the next</dd>",
    ]
    return ["<h2>How each figure is computed</h2>", "<dl>", *items, "</dl>"]


def _at(document: dict[str, Any] | None, path: str) -> Any:
    """The value at a dotted path of a JSON document (None where it has none)."""
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


__all__ = ["DEFINITIONS", "render"]
