"""Front-door figures computed from times alone, so tests can check them by hand.

Definitions (docs/front-door.md):

* A handover's time is arrival → clinical handover complete. A crew still waiting counts
  with its wait so far, up to ``now``. Breaches are waits *over* 15, 30, 45 and 60 minutes;
  hours lost are the minutes beyond 15, summed. A handover belongs to the day (and the site)
  of its arrival.
* ED: an attendance belongs to the day it left the department. 4-hour performance is the
  share of those that left within 4 hours of arrival; a 12-hour wait is over 12 hours from
  arrival to departure; a 12-hour trolley wait is over 12 hours from the decision to admit to
  departure. "Now" figures count patients still in the department at ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

STANDARDS = (15, 30, 45, 60)
LOST_AFTER = timedelta(minutes=15)
RELEASE_AFTER = timedelta(minutes=45)
FOUR_HOURS = timedelta(hours=4)
TWELVE_HOURS = timedelta(hours=12)


def handover_minutes(arrived: datetime, handed_over: datetime | None, now: datetime) -> float:
    end = handed_over if handed_over is not None else max(now, arrived)
    return (end - arrived).total_seconds() / 60


def lost_minutes(minutes: float) -> float:
    return max(0.0, minutes - LOST_AFTER.total_seconds() / 60)


def breaches(minutes: float) -> list[int]:
    return [m for m in STANDARDS if minutes > m]


@dataclass(frozen=True)
class HandoverTimes:
    arrived_at: datetime
    handover_at: datetime | None


@dataclass
class HandoverFigures:
    arrivals: int = 0
    handed_over: int = 0
    waiting: int = 0
    within_15: int = 0
    over_15: int = 0
    over_30: int = 0
    over_45: int = 0
    over_60: int = 0
    hours_lost: float = 0.0
    mean_minutes: float | None = None
    longest_minutes: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "arrivals": self.arrivals,
            "handed_over": self.handed_over,
            "waiting": self.waiting,
            "within_15": self.within_15,
            "over_15": self.over_15,
            "over_30": self.over_30,
            "over_45": self.over_45,
            "over_60": self.over_60,
            "hours_lost": round(self.hours_lost, 2),
            "mean_minutes": None if self.mean_minutes is None else round(self.mean_minutes, 1),
            "longest_minutes": (
                None if self.longest_minutes is None else round(self.longest_minutes, 1)
            ),
        }


def handover_figures(rows: Iterable[HandoverTimes], now: datetime) -> HandoverFigures:
    """Figures over the handovers given (the caller picks them by site and arrival day)."""
    out = HandoverFigures()
    total = 0.0
    for row in rows:
        minutes = handover_minutes(row.arrived_at, row.handover_at, now)
        out.arrivals += 1
        if row.handover_at is None:
            out.waiting += 1
        else:
            out.handed_over += 1
        total += minutes
        out.longest_minutes = max(out.longest_minutes or 0.0, minutes)
        passed = breaches(minutes)
        out.within_15 += not passed
        out.over_15 += 15 in passed
        out.over_30 += 30 in passed
        out.over_45 += 45 in passed
        out.over_60 += 60 in passed
        out.hours_lost += lost_minutes(minutes) / 60
    if out.arrivals:
        out.mean_minutes = total / out.arrivals
    return out


@dataclass(frozen=True)
class AttendanceTimes:
    arrived_at: datetime
    dta_at: datetime | None
    departed_at: datetime | None
    disposition: str | None = None


@dataclass
class EdFigures:
    departures: int = 0
    within_4h: int = 0
    over_12h_from_arrival: int = 0
    trolley_waits_12h: int = 0
    admitted: int = 0

    @property
    def four_hour_pct(self) -> float | None:
        return None if not self.departures else 100 * self.within_4h / self.departures

    def as_dict(self) -> dict[str, object]:
        pct = self.four_hour_pct
        return {
            "departures": self.departures,
            "within_4h": self.within_4h,
            "four_hour_pct": None if pct is None else round(pct, 1),
            "over_12h_from_arrival": self.over_12h_from_arrival,
            "trolley_waits_12h": self.trolley_waits_12h,
            "admitted": self.admitted,
        }


def ed_figures(rows: Iterable[AttendanceTimes]) -> EdFigures:
    """Figures over attendances that have left (the caller picks them by departure day)."""
    out = EdFigures()
    for row in rows:
        if row.departed_at is None:
            continue
        stay = row.departed_at - row.arrived_at
        out.departures += 1
        out.within_4h += stay <= FOUR_HOURS
        out.over_12h_from_arrival += stay > TWELVE_HOURS
        out.admitted += row.disposition == "admitted"
        if row.dta_at is not None and row.departed_at - row.dta_at > TWELVE_HOURS:
            out.trolley_waits_12h += 1
    return out


@dataclass
class EdNow:
    in_department: int = 0
    over_4h: int = 0
    over_12h_from_arrival: int = 0
    waiting_for_bed: int = 0
    dta_over_4h: int = 0
    dta_over_12h: int = 0
    longest_dta_wait_hours: float | None = None
    dta_waits_hours: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        longest = self.longest_dta_wait_hours
        return {
            "in_department": self.in_department,
            "over_4h": self.over_4h,
            "over_12h_from_arrival": self.over_12h_from_arrival,
            "waiting_for_bed": self.waiting_for_bed,
            "dta_over_4h": self.dta_over_4h,
            "dta_over_12h": self.dta_over_12h,
            "longest_dta_wait_hours": None if longest is None else round(longest, 2),
        }


def ed_now(rows: Sequence[AttendanceTimes], now: datetime) -> EdNow:
    """Who is in the department at ``now`` (arrived, not yet left) and how long."""
    out = EdNow()
    for row in rows:
        if row.arrived_at > now or (row.departed_at is not None and row.departed_at <= now):
            continue
        out.in_department += 1
        out.over_4h += now - row.arrived_at > FOUR_HOURS
        out.over_12h_from_arrival += now - row.arrived_at > TWELVE_HOURS
        if row.dta_at is not None and row.dta_at <= now:
            wait = now - row.dta_at
            out.waiting_for_bed += 1
            out.dta_over_4h += wait > FOUR_HOURS
            out.dta_over_12h += wait > TWELVE_HOURS
            hours = wait.total_seconds() / 3600
            out.dta_waits_hours.append(hours)
            out.longest_dta_wait_hours = max(out.longest_dta_wait_hours or 0.0, hours)
    return out
