"""The daily report as CSV (one row per site and the system) and as a self-contained HTML
page that reads well on screen and prints to A4 (or PDF) without cut-off charts.

The page needs no script and loads nothing: styles and SVG charts are inline, so it can be
mailed, archived or printed as it is. Every text value is escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from wardwatch.frontdoor.daily_page import Page

Entry = dict[str, Any]


def _get(entry: Entry, section: str, key: str) -> Any:
    part = entry.get(section)
    return None if part is None else part.get(key)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _col(section: str, key: str) -> Callable[[Entry], Any]:
    return lambda e: _get(e, section, key)


#: CSV columns: the header names carry the unit (_pct, _h, _min); other figures are counts.
COLUMNS: list[tuple[str, Callable[[Entry], Any]]] = [
    ("site", lambda e: e["site"]),
    ("name", lambda e: e["name"]),
    ("kind", lambda e: e["kind"]),
    ("beds_total", _col("beds", "total")),
    ("beds_open", _col("beds", "open")),
    ("beds_closed", _col("beds", "closed")),
    ("beds_blocked", _col("beds", "blocked")),
    ("beds_occupied", _col("beds", "occupied")),
    ("occupancy_pct", lambda e: _pct(_get(e, "beds", "occupancy"))),
    ("ga_beds_open", _col("beds", "ga_open")),
    ("ga_beds_occupied", _col("beds", "ga_occupied")),
    ("ga_occupancy_pct", lambda e: _pct(_get(e, "beds", "ga_occupancy"))),
    ("ga_over_target", _col("beds", "ga_over_target")),
    ("escalation_beds_open", _col("beds", "escalation_open")),
    ("escalation_beds_occupied", _col("beds", "escalation_occupied")),
    ("long_stay_7plus", _col("long_stays", "7+")),
    ("long_stay_14plus", _col("long_stays", "14+")),
    ("long_stay_21plus", _col("long_stays", "21+")),
    ("no_criteria_to_reside", lambda e: e["no_criteria_to_reside"]),
    ("handover_arrivals", _col("handovers", "arrivals")),
    ("handover_within_15min", _col("handovers", "within_15")),
    ("handover_over_15min", _col("handovers", "over_15")),
    ("handover_over_30min", _col("handovers", "over_30")),
    ("handover_over_45min", _col("handovers", "over_45")),
    ("handover_over_60min", _col("handovers", "over_60")),
    ("handover_hours_lost_h", _col("handovers", "hours_lost")),
    ("handover_mean_min", _col("handovers", "mean_minutes")),
    ("handover_longest_min", _col("handovers", "longest_minutes")),
    ("handover_still_waiting", _col("handovers", "waiting")),
    ("ed_departures", _col("ed", "departures")),
    ("ed_within_4h", _col("ed", "within_4h")),
    ("ed_4h_pct", _col("ed", "four_hour_pct")),
    ("ed_over_12h_from_arrival", _col("ed", "over_12h_from_arrival")),
    ("ed_trolley_waits_12h", _col("ed", "trolley_waits_12h")),
    ("ed_admitted", _col("ed", "admitted")),
    ("ed_in_department_at_end", _col("ed_waiting", "in_department")),
    ("dta_waiting_for_bed_at_end", _col("ed_waiting", "waiting_for_bed")),
    ("dta_over_4h_at_end", _col("ed_waiting", "dta_over_4h")),
    ("dta_over_12h_at_end", _col("ed_waiting", "dta_over_12h")),
    ("dta_longest_wait_h", _col("ed_waiting", "longest_dta_wait_hours")),
    ("opel_level", _col("opel", "level")),
    ("opel_highest", _col("opel", "highest")),
    ("opel_changes", _col("opel", "changes")),
]


def to_csv(report: dict[str, Any]) -> str:
    """One row per site, then the system; blank where a figure does not apply."""
    head = ["day", "as_of", "partial", "snapshot_at"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*head, *(name for name, _ in COLUMNS)])
    for entry in [*report["sites"], report["total"]]:
        values = [get(entry) for _, get in COLUMNS]
        writer.writerow(
            [
                report["day"],
                report["as_of"],
                str(report["partial"]).lower(),
                report["snapshot_at"] or "",
                *(
                    "" if v is None else str(v).lower() if isinstance(v, bool) else v
                    for v in values
                ),
            ]
        )
    return out.getvalue()


def to_html(report: dict[str, Any]) -> str:
    """The readable, printable page (A4; each section starts a new printed page)."""
    return Page(report).document()
