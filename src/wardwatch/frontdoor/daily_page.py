"""The daily report's HTML page: header and headline figures, one section per subject
(each starts a new printed page), tables with the system as the last row, inline SVG charts
(daily_svg), and print CSS for A4. Every text value passes through ``html.escape``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from wardwatch.frontdoor import daily_svg as svg

Entry = dict[str, Any]


def _get(entry: Entry, section: str, key: str) -> Any:
    part = entry.get(section)
    return None if part is None else part.get(key)


STYLE = """
:root { color-scheme: light; --ink: #1a1a1a; --muted: #555; --line: #d0d0d0; --bad: #b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0 auto; padding: 16px 20px 40px; max-width: 1000px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 2px; }
h2 { font-size: 1.25em; margin: 0 0 8px; border-bottom: 2px solid var(--ink); padding-bottom: 2px; }
.sub { color: var(--muted); margin: 0 0 10px; }
.notes { border-left: 4px solid #e07a1f; background: #fff5e6; padding: 6px 10px; margin: 8px 0; }
.notes p { margin: 2px 0; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr));
  gap: 8px; margin: 12px 0 18px; padding: 0; }
.headline div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; }
.headline dt { font-size: 0.8em; color: var(--muted); }
.headline dd { margin: 0; font-size: 1.35em; font-weight: 600; }
section { margin: 0 0 26px; }
figure { margin: 0 0 12px; }
figcaption { font-size: 0.85em; color: var(--muted); }
svg.chart { display: block; width: 100%; max-width: 720px; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 4px 0 8px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 5px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid var(--ink); vertical-align: bottom; }
tr.total th, tr.total td { font-weight: 700; border-top: 2px solid var(--ink); }
.over { color: var(--bad); font-weight: 700; }
.badges { display: flex; flex-wrap: wrap; gap: 8px; margin: 6px 0 12px; padding: 0;
  list-style: none; }
.badge { border-radius: 6px; padding: 4px 10px; font-weight: 600; border: 1px solid #0003; }
.opel-1 { background: #3a7d44; color: #fff; } .opel-2 { background: #f2b134; color: #1a1a1a; }
.opel-3 { background: #e07a1f; color: #1a1a1a; } .opel-4 { background: #b3261e; color: #fff; }
.opel-none { background: #eee; color: #333; }
dl.defs dt { font-weight: 600; } dl.defs dd { margin: 0 0 6px 0; color: var(--muted); }
footer { font-size: 0.85em; color: var(--muted); border-top: 1px solid var(--line);
  margin-top: 24px; padding-top: 8px; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section { break-before: page; margin: 0; }
  section:first-of-type { break-before: auto; }
  h2 { break-after: avoid; }
  figure, svg.chart, .badges, tr, .headline { break-inside: avoid; }
  thead { display: table-header-group; }
  table { font-size: 8.5pt; }
}
"""


#: What a table shows where a figure does not apply or is not known (an en dash).
NONE = "\u2013"


def _e(value: Any) -> str:
    return escape(str(value))


def _n(value: Any, suffix: str = "") -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.1f}{suffix}" if suffix != " h" else f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _p(value: float | None) -> str:
    return NONE if value is None else f"{100 * value:.1f}%"


class Page:
    """Builds the page from the report; a small class so helpers share the time zone."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.r = report
        self.tz = ZoneInfo(report["timezone"])
        self.entries: list[Entry] = [*report["sites"], report["total"]]
        self.target: float = report["target"]

    def local(self, iso: str | None, fmt: str = "%H:%M") -> str:
        return (
            NONE if iso is None else datetime.fromisoformat(iso).astimezone(self.tz).strftime(fmt)
        )

    def label(self, e: Entry) -> str:
        return "Whole system" if e["site"] == "SYSTEM" else f"{e['name']} ({e['site']})"

    def table(
        self,
        caption: str,
        columns: Sequence[tuple[str, Callable[[Entry], str]]],
        rows: Sequence[Entry],
    ) -> str:
        head = "".join(f'<th scope="col">{_e(name)}</th>' for name, _ in columns)
        body = []
        for e in rows:
            cells = [f'<th scope="row">{_e(self.label(e))}</th>']
            cells += [f"<td>{cell(e)}</td>" for _, cell in columns[1:]]
            cls = ' class="total"' if e["site"] == "SYSTEM" else ""
            body.append(f"<tr{cls}>{''.join(cells)}</tr>")
        return (
            f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def cell(self, section: str, key: str, suffix: str = "") -> Callable[[Entry], str]:
        return lambda e: _e(_n(_get(e, section, key), suffix))

    def occupancy_cell(self, e: Entry) -> str:
        value = _get(e, "beds", "ga_occupancy")
        text = _e(_p(value))
        return f'<span class="over">{text} ▲</span>' if _get(e, "beds", "ga_over_target") else text

    # --- sections ------------------------------------------------------------------------------

    def header(self) -> str:
        day = date.fromisoformat(self.r["day"])
        name = self.r["system"]["name"]
        total = self.r["total"]
        when = f"{day:%A} {day.day} {day:%B %Y}"
        notes = "".join(f"<p>{_e(n)}</p>" for n in self.r["notes"])
        opel = _get(total, "opel", "level")
        headline = [
            ("G&A occupancy at 08:00", _p(_get(total, "beds", "ga_occupancy"))),
            ("Target", _p(self.target)),
            ("Ambulance arrivals", _n(_get(total, "handovers", "arrivals"))),
            ("Handover hours lost", _n(_get(total, "handovers", "hours_lost"), " h")),
            ("ED 4-hour performance", _n(_get(total, "ed", "four_hour_pct"), "%")),
            ("Waiting for a bed (DTA)", _n(_get(total, "ed_waiting", "waiting_for_bed"))),
            ("System OPEL", NONE if opel is None else f"OPEL {opel}"),
        ]
        cards = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in headline)
        return (
            f"<header><h1>Daily report: {_e(name)}</h1>"
            f'<p class="sub">{_e(when)} · times in {_e(self.r["timezone"])} · figures to '
            f"{_e(self.local(self.r['as_of'], '%d %b %H:%M'))} · generated "
            f"{_e(self.local(self.r['generated_at'], '%d %b %Y %H:%M'))}</p>"
            + (f'<div class="notes" role="note">{notes}</div>' if notes else "")
            + f'<dl class="headline">{cards}</dl></header>'
        )

    def beds(self) -> str:
        rows = [e for e in self.entries if e["beds"] is not None]
        chart = svg.occupancy_bars(
            "occupancy-0800",
            [(self.label(e), _get(e, "beds", "ga_occupancy")) for e in rows],
            self.target,
            "G&A bed occupancy at 08:00 against the target",
        )
        table = self.table(
            "Beds at the 08:00 snapshot",
            [
                ("Site", str),
                ("Beds", self.cell("beds", "total")),
                ("Open", self.cell("beds", "open")),
                ("Closed", self.cell("beds", "closed")),
                ("Blocked", self.cell("beds", "blocked")),
                ("Available", self.cell("beds", "available")),
                ("G&A open", self.cell("beds", "ga_open")),
                ("G&A occupied", self.cell("beds", "ga_occupied")),
                ("G&A occupancy", self.occupancy_cell),
                ("Escalation open", self.cell("beds", "escalation_open")),
            ],
            rows,
        )
        body = f"<figure>{chart}</figure>{table}" if rows else "<p>No bed snapshot yet.</p>"
        return f'<section id="beds"><h2>Beds and occupancy at 08:00</h2>{body}</section>'

    def through_the_day(self) -> str:
        h = self.r["hourly"]
        series = [
            (self.label(e), h["ga_occupancy"].get(e["site"], []))
            for e in [self.r["total"], *self.r["sites"]]
        ]
        chart = svg.occupancy_lines(
            "occupancy-hourly",
            h["labels"],
            series,
            self.target,
            "G&A bed occupancy at the start of each hour",
        )
        return (
            '<section id="through-the-day"><h2>G&amp;A occupancy through the day</h2>'
            f"<figure>{chart}<figcaption>At the start of each hour, all wards marked general "
            "and acute; the dashed line is the target.</figcaption></figure></section>"
        )

    def handovers(self) -> str:
        h = self.r["hourly"]
        chart = svg.handovers_per_hour(
            "handovers-hourly",
            h["labels"],
            h["handover_arrivals"]["SYSTEM"],
            h["handover_hours_lost"]["SYSTEM"],
            "Ambulance arrivals and hours lost by hour",
        )
        rows = [e for e in self.entries if e["handovers"] is not None]
        table = self.table(
            "Ambulance handovers (arrival to handover complete), by arrival",
            [
                ("Site", str),
                ("Arrivals", self.cell("handovers", "arrivals")),
                ("Within 15 min", self.cell("handovers", "within_15")),
                ("Over 15", self.cell("handovers", "over_15")),
                ("Over 30", self.cell("handovers", "over_30")),
                ("Over 45", self.cell("handovers", "over_45")),
                ("Over 60", self.cell("handovers", "over_60")),
                ("Hours lost", self.cell("handovers", "hours_lost", " h")),
                ("Mean", self.cell("handovers", "mean_minutes", " min")),
                ("Longest", self.cell("handovers", "longest_minutes", " min")),
            ],
            rows,
        )
        return (
            '<section id="handovers"><h2>Ambulance handovers</h2>'
            f"<figure>{chart}<figcaption>Whole system, by hour of arrival; hours lost are the "
            f"minutes beyond 15 of each handover.</figcaption></figure>{table}</section>"
        )

    def ed(self) -> str:
        rows = [e for e in self.entries if e["ed"] is not None]
        at = self.local(self.r["as_of"], "%H:%M on %d %b")
        table = self.table(
            "Emergency department: departures of the day, and who waits at " + at,
            [
                ("Site", str),
                ("Departures", self.cell("ed", "departures")),
                ("Within 4 h", self.cell("ed", "within_4h")),
                ("4-hour %", self.cell("ed", "four_hour_pct", "%")),
                ("Over 12 h from arrival", self.cell("ed", "over_12h_from_arrival")),
                ("12 h trolley waits", self.cell("ed", "trolley_waits_12h")),
                ("In department", self.cell("ed_waiting", "in_department")),
                ("Waiting for a bed", self.cell("ed_waiting", "waiting_for_bed")),
                ("DTA over 12 h", self.cell("ed_waiting", "dta_over_12h")),
                ("Longest DTA wait", self.cell("ed_waiting", "longest_dta_wait_hours", " h")),
            ],
            rows,
        )
        return f'<section id="ed"><h2>Emergency department</h2>{table}</section>'

    def patients(self) -> str:
        rows = [e for e in self.entries if e["long_stays"] is not None]
        table = self.table(
            "Patients in a bed at 08:00",
            [
                ("Site", str),
                ("Occupied", self.cell("beds", "occupied")),
                ("Stay 7+ days", self.cell("long_stays", "7+")),
                ("14+ days", self.cell("long_stays", "14+")),
                ("21+ days", self.cell("long_stays", "21+")),
                ("No criteria to reside", lambda e: _e(_n(e["no_criteria_to_reside"]))),
            ],
            rows,
        )
        body = table if rows else "<p>No bed snapshot yet.</p>"
        return f'<section id="patients"><h2>Long stays and discharge</h2>{body}</section>'

    def opel(self) -> str:
        since = datetime.fromisoformat(self.r["since"])
        span = (datetime.fromisoformat(self.r["until"]) - since).total_seconds()
        badges: list[str] = []
        strips: list[tuple[str, list[tuple[float, int]]]] = []
        for e in [self.r["total"], *self.r["sites"]]:
            o = e["opel"]
            if o is None:
                badges.append(f'<li class="badge opel-none">{_e(self.label(e))}: no level</li>')
                strips.append((self.label(e), []))
                continue
            text = (
                f"{self.label(e)}: OPEL {o['level']} (highest {o['highest']}, "
                f"{o['changes']} change{'s' if o['changes'] != 1 else ''})"
            )
            badges.append(f'<li class="badge opel-{int(o["level"])}">{_e(text)}</li>')
            spans = [
                ((datetime.fromisoformat(p["at"]) - since).total_seconds() / span, p["level"])
                for p in o["timeline"]
            ]
            strips.append((self.label(e), spans))
        as_of = (datetime.fromisoformat(self.r["as_of"]) - since).total_seconds() / span
        day = date.fromisoformat(self.r["day"])
        ticks = []
        for hour in (0, 6, 12, 18, 24):
            local = datetime.combine(day + timedelta(days=hour // 24), time(hour % 24), self.tz)
            ticks.append(((local - since).total_seconds() / span, f"{hour:02d}:00"))
        chart = svg.opel_strips("opel-day", strips, ticks, "OPEL level through the day", end=as_of)
        return (
            '<section id="opel"><h2>OPEL</h2>'
            f'<ul class="badges">{"".join(badges)}</ul><figure>{chart}<figcaption>Level at '
            "the end of the day (or now), the highest of the day and the number of changes, "
            "from the OPEL history.</figcaption></figure></section>"
        )

    def footer(self) -> str:
        defs = [
            (
                "Occupancy",
                "occupied beds ÷ open beds (open = all beds less closed and blocked); "
                "G&A = general and acute wards, core and escalation, adult and paediatric.",
            ),
            ("Escalation beds open", "open beds on G&A escalation wards at 08:00."),
            (
                "Hours lost",
                "the minutes beyond 15 of each ambulance handover, summed, by the "
                "day of arrival; a crew still waiting counts its wait so far.",
            ),
            (
                "4-hour performance",
                "share of ED attendances that left the department within "
                "4 hours of arrival, by the day they left.",
            ),
            ("12 h trolley wait", "over 12 hours from the decision to admit to leaving the ED."),
            (
                "No criteria to reside",
                "patients in a bed at 08:00 whose discharge-ready date is on or before the day.",
            ),
        ]
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in defs)
        return (
            f'<footer><dl class="defs">{items}</dl><p>WardWatch daily report for '
            f"{_e(self.r['day'])}. Full definitions: docs/daily-report.md.</p></footer>"
        )

    def document(self) -> str:
        title = f"Daily report {self.r['day']}: {self.r['system']['name']}"
        body = "".join(
            [
                self.header(),
                "<main>",
                self.beds(),
                self.through_the_day(),
                self.handovers(),
                self.ed(),
                self.patients(),
                self.opel(),
                "</main>",
                self.footer(),
            ]
        )
        return (
            '<!doctype html>\n<html lang="en-GB"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
        )
