"""Charts drawn on the server as SVG: no script, no library, nothing fetched by the browser.

Each chart is an ``<svg role="img">`` labelled by its ``<title>`` and a ``<desc>`` that says in
words what it shows (the series and their headline figures), so a screen reader gets the chart's
point; the pages print the exact numbers in tables beside it. Colours are the Okabe-Ito palette
(distinguishable with the common colour-vision deficiencies) set as SVG presentation attributes,
which the dashboard's Content-Security-Policy allows (inline ``style`` would not be).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: plot area inside the SVG's view box (400 wide; as tall as the legend needs)
LEFT, TOP, WIDTH, HEIGHT = 52, 28, 330, 230
#: series a chart shows a legend entry for
MAX_SERIES = 10
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    """One line (or set of points) and what its legend says."""

    name: str
    points: Sequence[tuple[float, float]]
    summary: str = ""  # added to the legend and the description, e.g. "AUC 0.712"


def _x(value: float) -> float:
    return round(LEFT + max(0.0, min(1.0, value)) * WIDTH, 2)


def _y(value: float) -> float:
    return round(TOP + HEIGHT - max(0.0, min(1.0, value)) * HEIGHT, 2)


def _frame(title: str, x_label: str, y_label: str, description: str, legend_rows: int) -> list[str]:
    number = next(_ids)
    title_id, desc_id = f"chart-{number}-title", f"chart-{number}-desc"
    height = TOP + HEIGHT + 46 + 14 * legend_rows
    parts = [
        f'<svg class="chart" viewBox="0 0 400 {height}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(description)}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff" '
        'stroke="#888888" stroke-width="1"/>',
    ]
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        x, y = _x(tick), _y(tick)
        parts.append(
            f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + HEIGHT}" stroke="#e3e3e3" '
            'stroke-width="1"/>'
            f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + WIDTH}" y2="{y}" stroke="#e3e3e3" '
            'stroke-width="1"/>'
            f'<text x="{x}" y="{TOP + HEIGHT + 16}" font-size="11" text-anchor="middle" '
            f'fill="#333333">{tick:.1f}</text>'
            f'<text x="{LEFT - 6}" y="{y + 4}" font-size="11" text-anchor="end" '
            f'fill="#333333">{tick:.1f}</text>'
        )
    parts.append(
        f'<text x="{LEFT + WIDTH / 2}" y="{TOP + HEIGHT + 34}" font-size="12" '
        f'text-anchor="middle" fill="#111111">{escape(x_label)}</text>'
        f'<text x="14" y="{TOP + HEIGHT / 2}" font-size="12" text-anchor="middle" '
        f'fill="#111111" transform="rotate(-90 14 {TOP + HEIGHT / 2})">{escape(y_label)}</text>'
        f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold" '
        f'fill="#111111">{escape(title)}</text>'
    )
    return parts


def line_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    markers: bool = False,
) -> Markup:
    """Lines on [0, 1] x [0, 1] axes (ROC, precision-recall, reliability).

    Args:
        diagonal: draw the y = x reference line (chance for ROC, perfect calibration for
            reliability).
        markers: mark every point (reliability bins), not only join them.
    """
    described = "; ".join(
        f"{s.name}{' (' + s.summary + ')' if s.summary else ''}, {len(s.points)} points"
        for s in series
    )
    series = list(series)[:MAX_SERIES]
    parts = _frame(title, x_label, y_label, f"{title}: {described or 'no data'}.", len(series))
    if diagonal:
        parts.append(
            f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#999999" '
            'stroke-width="1" stroke-dasharray="4 4"/>'
        )
    for position, line in enumerate(series):
        colour = PALETTE[position % len(PALETTE)]
        coordinates = " ".join(f"{_x(x)},{_y(y)}" for x, y in line.points)
        if coordinates:
            parts.append(
                f'<polyline points="{coordinates}" fill="none" stroke="{colour}" '
                f'stroke-width="2" stroke-linejoin="round"/>'
            )
        if markers:
            parts.extend(
                f'<circle cx="{_x(x)}" cy="{_y(y)}" r="3" fill="{colour}"/>' for x, y in line.points
            )
    parts.extend(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(series: Sequence[Series]) -> list[str]:
    parts = []
    for position, line in enumerate(series):
        colour = PALETTE[position % len(PALETTE)]
        x, y = LEFT, TOP + HEIGHT + 50 + position * 14
        label = line.name[:44] + (f" ({line.summary})" if line.summary else "")
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y}" font-size="11" fill="#111111">{escape(label)}</text>'
        )
    return parts


def bar_chart(title: str, values: Sequence[tuple[str, float]], value_label: str) -> Markup:
    """Horizontal bars of shares in [0, 1] (feature importances), largest first."""
    number = next(_ids)
    title_id, desc_id = f"chart-{number}-title", f"chart-{number}-desc"
    rows = list(values)
    height = 40 + 18 * len(rows)
    top = ", ".join(f"{name} {value:.1%}" for name, value in rows[:5])
    parts = [
        f'<svg class="chart" viewBox="0 0 400 {height}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(f"{title}, {value_label}: {top}")}</desc>',
        f'<text x="4" y="18" font-size="13" font-weight="bold" fill="#111111">'
        f"{escape(title)}</text>",
    ]
    widest = max((value for _, value in rows), default=0.0) or 1.0
    for position, (name, value) in enumerate(rows):
        y = 30 + 18 * position
        width = round(170 * max(0.0, value) / widest, 2)
        parts.append(
            f'<text x="176" y="{y + 11}" font-size="11" text-anchor="end" fill="#111111">'
            f"{escape(name[:30])}</text>"
            f'<rect x="182" y="{y}" width="{width}" height="13" fill="{PALETTE[0]}"/>'
            f'<text x="{182 + width + 4}" y="{y + 11}" font-size="11" fill="#333333">'
            f"{value:.1%}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
