"""Inline SVG charts for the daily report's HTML page: no scripts, no external assets.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that says in words
what it shows (screen readers read those), a ``viewBox`` so it scales to the page or the
printed A4 width, and every value it draws also written as text or in a table beside it.
All text passes through ``html.escape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH = 720
#: Room for the site names left of the bars.
LABELS = 210
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
BAR = "#2f6690"
OVER = "#b3261e"
LOST = "#e07a1f"
TARGET = "#b3261e"
GRID = "#d9d9d9"
#: Line colours for per-site series (the system is drawn thicker, in black).
PALETTE = ("#2f6690", "#e07a1f", "#3a7d44", "#7b4b94", "#8c564b", "#17becf", "#bcbd22")
OPEL_COLOURS = {1: "#3a7d44", 2: "#f2b134", 3: "#e07a1f", 4: "#b3261e"}
OPEL_TEXT = {1: "#ffffff", 2: "#1a1a1a", 3: "#1a1a1a", 4: "#ffffff"}


def _open(key: str, height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" class="chart" '
        f'aria-labelledby="{key}-title {key}-desc" {FONT}>'
        f'<title id="{key}-title">{escape(title)}</title>'
        f'<desc id="{key}-desc">{escape(desc)}</desc>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _pct(value: float | None) -> str:
    return "no beds" if value is None else f"{100 * value:.1f}%"


def occupancy_bars(
    key: str, rows: Sequence[tuple[str, float | None]], target: float, title: str
) -> str:
    """Horizontal bars, one per site, with the target as a dashed line; bars over the
    target are red (and their value is written beside them)."""
    left, right, top, row_h = LABELS, 70, 28, 30
    plot = WIDTH - left - right
    height = top + row_h * max(1, len(rows)) + 28
    scale = max([1.0, *(v for _, v in rows if v is not None)])
    desc = "; ".join(f"{label}: {_pct(v)}" for label, v in rows) + f". Target {_pct(target)}."
    parts = [_open(key, height, title, desc)]
    for tick in range(0, int(scale * 100) + 1, 20):
        x = left + plot * tick / 100 / scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="{GRID}"/>'
        )
        parts.append(_text(x, height - 8, f"{tick}%", "middle"))
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        parts.append(_text(left - 8, y + 17, label, "end"))
        if value is None:
            parts.append(_text(left + 4, y + 17, "no beds", extra=' fill="#666"'))
            continue
        w = plot * value / scale
        colour = OVER if value > target else BAR
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" fill="{colour}"/>'
        )
        parts.append(_text(left + w + 6, y + 17, _pct(value)))
    tx = left + plot * target / scale
    parts.append(
        f'<line x1="{tx:.1f}" y1="{top - 10}" x2="{tx:.1f}" y2="{height - 24}" '
        f'stroke="{TARGET}" stroke-width="2" stroke-dasharray="6 4"/>'
    )
    parts.append(
        _text(
            tx, top - 14, f"target {_pct(target)}", "middle", f' fill="{TARGET}" font-weight="bold"'
        )
    )
    parts.append("</svg>")
    return "".join(parts)


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def handovers_per_hour(
    key: str, labels: Sequence[str], arrivals: Sequence[int], lost: Sequence[float], title: str
) -> str:
    """Arrivals per hour as bars (left axis), hours lost per hour as orange bars beside them
    (right axis)."""
    left, right, top, bottom = 44, 52, 30, 40
    height = 270
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    n = max(1, len(labels))
    slot = plot_w / n
    a_max = _nice_max(max([0, *arrivals]))
    l_max = _nice_max(max([0.0, *lost]))
    busiest = max(range(len(arrivals)), key=lambda i: arrivals[i], default=None)
    desc = (
        f"{sum(arrivals)} ambulance arrivals and {sum(lost):.1f} hours lost over "
        f"{len(labels)} hours"
        + (
            f"; busiest hour {labels[busiest]} with {arrivals[busiest]} arrivals."
            if busiest is not None and arrivals[busiest]
            else "."
        )
    )
    parts = [_open(key, height, title, desc)]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        if (a_max * frac).is_integer():  # arrivals are whole numbers
            parts.append(_text(left - 6, y + 4, f"{a_max * frac:g}", "end"))
        parts.append(
            _text(WIDTH - right + 6, y + 4, f"{l_max * frac:g} h", extra=f' fill="{LOST}"')
        )
    for i, label in enumerate(labels):
        x = left + i * slot
        ah = plot_h * arrivals[i] / a_max
        lh = plot_h * lost[i] / l_max
        parts.append(
            f'<rect class="arrivals" x="{x + slot * 0.12:.1f}" y="{top + plot_h - ah:.1f}" '
            f'width="{slot * 0.4:.1f}" height="{ah:.1f}" fill="{BAR}"/>'
        )
        parts.append(
            f'<rect class="lost" x="{x + slot * 0.52:.1f}" y="{top + plot_h - lh:.1f}" '
            f'width="{slot * 0.36:.1f}" height="{lh:.1f}" fill="{LOST}"/>'
        )
        if i % 3 == 0:
            parts.append(_text(x + slot / 2, height - bottom + 16, label, "middle"))
    parts.append(
        _legend(
            [(BAR, "arrivals (left axis)"), (LOST, "hours lost (right axis)")], left, height - 8
        )
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend_layout(
    items: Sequence[tuple[str, str]], x0: float, x_max: float
) -> list[tuple[float, int, str, str]]:
    """(x, row, colour, label) for each legend entry, wrapping onto new rows at ``x_max``
    (text is about 7 px a character at 12 px)."""
    out, x, row = [], x0, 0
    for colour, label in items:
        width = 24 + 7 * len(label)
        if x > x0 and x + width > x_max:
            x, row = x0, row + 1
        out.append((x, row, colour, label))
        x += width
    return out


def _legend(items: Sequence[tuple[str, str]], x: float, y: float, x_max: float = WIDTH) -> str:
    parts = []
    for lx, row, colour, label in _legend_layout(items, x, x_max):
        ly = y + 18 * row
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly - 10:.1f}" width="12" height="12" fill="{colour}"/>'
        )
        parts.append(_text(lx + 16, ly, label))
    return "".join(parts)


def occupancy_lines(
    key: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    target: float,
    title: str,
) -> str:
    """G&A occupancy per hour: one line per site, the system in black, the target dashed."""
    left, right, top, plot_h = 48, 20, 20, 216
    plot_w = WIDTH - left - right
    legend: list[tuple[str, str]] = [
        ("#1a1a1a" if k == 0 else PALETTE[(k - 1) % len(PALETTE)], name)
        for k, (name, _) in enumerate(series)
    ] + [(TARGET, f"target {_pct(target)}")]
    rows = 1 + max(row for _, row, _, _ in _legend_layout(legend, left, WIDTH - right))
    height = top + plot_h + 44 + 18 * rows
    values = [v for _, vs in series for v in vs if v is not None]
    low = max(0.0, math.floor((min([*values, target]) - 0.05) * 10) / 10)
    high = max(1.0, *values) if values else 1.0
    n = max(1, len(labels))

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)
        return x, top + plot_h * (high - v) / (high - low)

    desc_parts = []
    for name, vs in series:
        known = [v for v in vs if v is not None]
        if known:
            desc_parts.append(
                f"{name} from {_pct(known[0])} to {_pct(known[-1])}, highest {_pct(max(known))}"
            )
    desc = "; ".join(desc_parts or ["no beds"]) + f". Target {_pct(target)}."
    parts = [_open(key, height, title, desc)]
    tick = low
    while tick <= high + 1e-9:
        _, y = xy(0, tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(_text(left - 6, y + 4, f"{100 * tick:.0f}%", "end"))
        tick = round(tick + 0.1, 6)
    for i, label in enumerate(labels):
        if i % 3 == 0:
            x, _ = xy(i, low)
            parts.append(_text(x, top + plot_h + 16, label, "middle"))
    _, ty = xy(0, target)
    parts.append(
        f'<line x1="{left}" y1="{ty:.1f}" x2="{WIDTH - right}" y2="{ty:.1f}" '
        f'stroke="{TARGET}" stroke-width="2" stroke-dasharray="6 4"/>'
    )
    for k, (_, vs) in enumerate(series):
        system = k == 0
        colour = legend[k][0]
        points = [xy(i, v) for i, v in enumerate(vs) if v is not None]
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="{3 if system else 1.8}"/>'
        )
    parts.append(_legend(legend, left, top + plot_h + 44, WIDTH - right))
    parts.append("</svg>")
    return "".join(parts)


def opel_strips(
    key: str,
    rows: Sequence[tuple[str, Sequence[tuple[float, int]]]],
    labels: Sequence[tuple[float, str]],
    title: str,
    *,
    end: float = 1.0,
) -> str:
    """OPEL through the day: one band per site, coloured by level and numbered.

    ``rows`` are (name, [(start as a fraction of the day, level), ...]); a band runs to
    the next start or to ``end`` (the report's end as a fraction of the day: 1 for a whole
    day). ``labels`` mark the time axis.
    """
    left, right, top, row_h = LABELS, 20, 10, 30
    plot = WIDTH - left - right
    height = top + row_h * max(1, len(rows)) + 24
    desc = "; ".join(
        f"{name}: " + (", ".join(f"OPEL {lv}" for _, lv in spans) or "no level recorded")
        for name, spans in rows
    )
    parts = [_open(key, height, title, desc)]
    for i, (name, spans) in enumerate(rows):
        y = top + i * row_h
        parts.append(_text(left - 8, y + 19, name, "end"))
        if not spans:
            parts.append(_text(left + 4, y + 19, "no level recorded", extra=' fill="#666"'))
        for j, (start, level) in enumerate(spans):
            stop = spans[j + 1][0] if j + 1 < len(spans) else end
            x, w = left + plot * start, plot * max(0.0, stop - start)
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{OPEL_COLOURS.get(level, "#999")}"/>'
            )
            if w > 22:
                parts.append(
                    _text(
                        x + w / 2,
                        y + 19,
                        str(level),
                        "middle",
                        f' fill="{OPEL_TEXT.get(level, "#000")}" font-weight="bold"',
                    )
                )
    for frac, label in labels:
        parts.append(_text(left + plot * frac, height - 6, label, "middle"))
    parts.append("</svg>")
    return "".join(parts)
