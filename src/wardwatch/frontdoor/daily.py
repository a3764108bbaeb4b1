"""The daily report: a SitRep-style summary of one local day, per site and for the system.

Every figure comes from a service that already defines it, so the report and the screens
never disagree: beds, G&A occupancy and long stays from the 08:00 SitRep snapshot
(``OccupancyService.sitrep``), handovers and ED figures from the front door's services,
hourly occupancy from ``OccupancyService.history``. Two figures have no service yet and are
read here: patients without criteria to reside (open stays at the snapshot whose
discharge-ready date is on or before the day) and OPEL (the ``opel_levels`` history, which
the OPEL engine writes; only the table is shared, not its code). Definitions:
docs/daily-report.md.

A day in the future is refused; today is reported up to now and marked ``partial``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, HealthSystem, Site, Stay, Ward
from wardwatch.capacity.reports import MIN_YEAR, SITREP_CATEGORIES, OccupancyService
from wardwatch.core.clock import Clock
from wardwatch.core.errors import NotFound, ValidationFailed
from wardwatch.db.session import Database
from wardwatch.frontdoor.measures import handover_minutes, lost_minutes
from wardwatch.frontdoor.models import OpelLevel
from wardwatch.frontdoor.service import FrontDoor

if TYPE_CHECKING:
    from wardwatch.runtime import Runtime

HOUR = timedelta(hours=1)
SYSTEM_CODE = "SYSTEM"
#: The scope the OPEL engine uses for the whole system.
SYSTEM_OPEL_SCOPE = "system"
#: More handovers than any health system has in a day: the list is never cut short.
MAX_HANDOVERS = 1_000_000


@dataclass(frozen=True)
class Window:
    """The day being reported: its UTC bounds, the time figures run to, and the snapshot."""

    day: date
    since: datetime
    until: datetime
    now: datetime
    #: The 08:00 SitRep snapshot, or None before it is due (today, before 08:00).
    snapshot_at: datetime | None

    @property
    def as_of(self) -> datetime:
        """The end of the day, or now for today."""
        return min(self.now, self.until)

    @property
    def partial(self) -> bool:
        return self.now < self.until

    def hours(self) -> list[datetime]:
        """The start of each hour of the day up to ``as_of`` (23 or 25 when clocks change)."""
        out, at = [], self.since
        while at < self.until and at <= self.as_of:
            out.append(at)
            at += HOUR
        return out


class DailyReport:
    def __init__(
        self, db: Database, clock: Clock, occupancy: OccupancyService, frontdoor: FrontDoor
    ) -> None:
        self.db = db
        self.clock = clock
        self.occupancy = occupancy
        self.frontdoor = frontdoor
        self.tz = frontdoor.tz

    @classmethod
    def of(cls, rt: Runtime) -> DailyReport:
        return cls(rt.db, rt.clock, rt.occupancy, rt.frontdoor)

    def window(self, day: date) -> Window:
        if day.year < MIN_YEAR:
            raise ValidationFailed(f"{day.isoformat()}: days before {MIN_YEAR} are not supported")
        now = self.clock.now()
        since, until = self.frontdoor.day(day)
        if since > now:
            raise ValidationFailed(
                f"{day.isoformat()} is in the future: a daily report covers today or a past day"
            )
        snapshot = self.occupancy.sitrep_time(day).astimezone(UTC)
        return Window(day, since, until, now, snapshot if snapshot <= now else None)

    def build(self, day: date) -> dict[str, Any]:
        """The whole report as JSON-able data (times are ISO 8601 strings in UTC)."""
        w = self.window(day)
        sitrep = self.occupancy.sitrep(day) if w.snapshot_at is not None else None
        target = sitrep["target"] if sitrep is not None else self.occupancy.target()
        beds = {row["site"]: row for row in (sitrep or {"rows": []})["rows"]}
        with self.db.read() as s:
            system = s.get(HealthSystem, 1)
            if system is None:
                raise NotFound("no system is loaded yet: run `wardwatch system load FILE`")
            system_code, system_name = system.code, system.name
            sites = _sites(s, beds)
            ready = _not_ready_to_stay(s, w) if w.snapshot_at is not None else None
            opel = _opel(s, w)
        entries = [
            self._entry(w, code, name, kind, beds.get(code), ready, opel.get(code), target)
            for code, name, kind in sites
        ]
        total = self._entry(
            w,
            SYSTEM_CODE,
            system_name,
            "system",
            beds.get(SYSTEM_CODE),
            ready,
            opel.get(SYSTEM_OPEL_SCOPE),
            target,
        )
        notes = []
        if w.snapshot_at is None:
            notes.append(
                "The 08:00 bed snapshot is not due yet: beds, long stays and patients "
                "without criteria to reside appear once it is."
            )
        if w.partial:
            notes.append(f"Partial day: figures run to {w.as_of.isoformat()}.")
        return {
            "day": day.isoformat(),
            "system": {"code": system_code, "name": system_name},
            "timezone": str(self.tz),
            "since": w.since.isoformat(),
            "until": w.until.isoformat(),
            "as_of": w.as_of.isoformat(),
            "generated_at": w.now.isoformat(),
            "partial": w.partial,
            "snapshot_at": None if w.snapshot_at is None else w.snapshot_at.isoformat(),
            "target": target,
            "notes": notes,
            "sites": entries,
            "total": total,
            "hourly": self._hourly(w, [code for code, _, _ in sites]),
        }

    # --- one site (or the system) ----------------------------------------------------------

    def _entry(
        self,
        w: Window,
        code: str,
        name: str,
        kind: str,
        sitrep_row: dict[str, Any] | None,
        ready: dict[str, int] | None,
        opel: dict[str, Any] | None,
        target: float,
    ) -> dict[str, Any]:
        front_door = kind in ("acute", "system")
        site = None if code == SYSTEM_CODE else code
        entry: dict[str, Any] = {
            "site": code,
            "name": name,
            "kind": kind,
            "beds": None if sitrep_row is None else beds_figures(sitrep_row, target),
            "long_stays": None if sitrep_row is None else _long_stays(sitrep_row),
            "no_criteria_to_reside": None if ready is None else ready.get(code, 0),
            "handovers": None,
            "ed": None,
            "ed_waiting": None,
            "opel": opel,
        }
        if front_door:
            handovers = self.frontdoor.handovers.figures(since=w.since, until=w.until, site=site)
            ed = self.frontdoor.ed
            entry["handovers"] = handovers.as_dict()
            entry["ed"] = ed.figures(since=w.since, until=w.until, site=site).as_dict()
            entry["ed_waiting"] = {
                "at": w.as_of.isoformat(),
                **ed.now(at=w.as_of, site=site).as_dict(),
            }
        return entry

    # --- the charts' hourly series ---------------------------------------------------------

    def _hourly(self, w: Window, sites: list[str]) -> dict[str, Any]:
        hours = w.hours()
        arrivals = {code: [0] * len(hours) for code in [SYSTEM_CODE, *sites]}
        lost = {code: [0.0] * len(hours) for code in [SYSTEM_CODE, *sites]}
        # Waits counted as HandoverService.figures counts them, so the hours add up to it.
        until = min(w.now, w.until + timedelta(days=1))
        for h in self.frontdoor.handovers.list(
            open_only=False, since=w.since, until=w.until, limit=MAX_HANDOVERS
        ):
            if h.status == "cancelled" or h.arrived_at is None:
                continue
            # (An arrival stamped a few seconds ahead of our clock goes in the current hour.)
            i = min(int((h.arrived_at - w.since) / HOUR), len(hours) - 1)
            hours_lost = lost_minutes(handover_minutes(h.arrived_at, h.handover_at, until)) / 60
            for code in (SYSTEM_CODE, h.site):
                if code in arrivals:
                    arrivals[code][i] += 1
                    lost[code][i] += hours_lost
        occupancy = {
            code: self._occupancy_series(hours, None if code == SYSTEM_CODE else code)
            for code in [SYSTEM_CODE, *sites]
        }
        return {
            "hours": [h.isoformat() for h in hours],
            "labels": [h.astimezone(self.tz).strftime("%H:%M") for h in hours],
            "handover_arrivals": arrivals,
            "handover_hours_lost": {k: [round(x, 3) for x in v] for k, v in lost.items()},
            "ga_occupancy": occupancy,
        }

    def _occupancy_series(self, hours: list[datetime], site: str | None) -> list[float | None]:
        """G&A occupancy at the start of each hour, replayed from the event log."""
        if not hours:
            return []
        # The history needs two points at least: start an hour early and drop that one.
        start = hours[0] if len(hours) > 1 else hours[0] - HOUR
        points = self.occupancy.history(
            start=start, end=hours[-1], step=HOUR, site=site, general_acute_only=True
        )
        return [p["occupancy"] for p in points[-len(hours) :]]


# --- figures from one SitRep row --------------------------------------------------------------


def beds_figures(row: dict[str, Any], target: float) -> dict[str, Any]:
    """Beds at the snapshot from one SitRep row: all beds, G&A against the target, and the
    G&A escalation beds open (adult and paediatric)."""
    occupied = sum(row[f"{c}_occupied"] for c in SITREP_CATEGORIES)
    open_ = row["beds_total"] - row["beds_closed"] - row["beds_blocked"]
    ga_occ = row["ga_occupancy"]
    return {
        "total": row["beds_total"],
        "open": open_,
        "closed": row["beds_closed"],
        "blocked": row["beds_blocked"],
        "available": row["beds_available"],
        "vacant_not_ready": row["beds_vacant_not_ready"],
        "occupied": occupied,
        "occupancy": round(occupied / open_, 4) if open_ else None,
        "ga_open": row["ga_open"],
        "ga_occupied": row["ga_occupied"],
        "ga_occupancy": ga_occ,
        "ga_over_target": None if ga_occ is None else ga_occ > target,
        "escalation_open": row["ga_adult_escalation_open"] + row["ga_paediatric_escalation_open"],
        "escalation_occupied": (
            row["ga_adult_escalation_occupied"] + row["ga_paediatric_escalation_occupied"]
        ),
        "critical_care_open": row["critical_care_open"],
        "critical_care_occupied": row["critical_care_occupied"],
    }


def _long_stays(row: dict[str, Any]) -> dict[str, int]:
    return {f"{d}+": row[f"long_stay_{d}_plus"] for d in (7, 14, 21)}


# --- reads of our own --------------------------------------------------------------------------


def _sites(s: Session, with_beds: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Acute sites (they have a front door), then any other site with beds at the snapshot."""
    rows = s.execute(select(Site.code, Site.name, Site.kind)).all()
    chosen = [(c, n, k) for c, n, k in rows if k == "acute" or c in with_beds]
    return sorted(chosen, key=lambda r: (r[2] != "acute", r[0]))


def _not_ready_to_stay(s: Session, w: Window) -> dict[str, int]:
    """Patients in a bed at the snapshot whose discharge-ready date is on or before the day
    (they no longer meet the criteria to reside), per site code and for the system.

    The site is that of the stay's bed now (as the SitRep's long stays count it).
    """
    at = w.snapshot_at
    rows = s.execute(
        select(Site.code, func.count())
        .select_from(Stay)
        .join(Bed, Stay.bed_id == Bed.id)
        .join(Ward, Bed.ward_id == Ward.id)
        .join(Site, Ward.site_id == Site.id)
        .where(
            Stay.admitted_at <= at,
            or_(Stay.discharged_at.is_(None), Stay.discharged_at > at),
            Stay.cancelled_at.is_(None),
            Stay.discharge_ready_date.is_not(None),
            Stay.discharge_ready_date <= w.day,
        )
        .group_by(Site.code)
    ).all()
    out = {code: int(n) for code, n in rows}
    out[SYSTEM_CODE] = sum(out.values())
    return out


@dataclass(frozen=True)
class OpelPoint:
    at: datetime
    level: int
    score: float


def _opel(s: Session, w: Window) -> dict[str, dict[str, Any]]:
    """Each scope's OPEL over the day, from the history table: the level in force when the
    day began, and every row written during it (up to now, for today)."""
    end = [OpelLevel.at < w.until, OpelLevel.at <= w.now]
    last_before = (
        select(OpelLevel.scope, func.max(OpelLevel.at).label("at"))
        .where(OpelLevel.at < w.since)
        .group_by(OpelLevel.scope)
        .subquery()
    )
    carried: dict[str, OpelPoint] = {}
    for scope, at, level, score in s.execute(
        select(OpelLevel.scope, OpelLevel.at, OpelLevel.level, OpelLevel.score)
        .join(
            last_before,
            (OpelLevel.scope == last_before.c.scope) & (OpelLevel.at == last_before.c.at),
        )
        .order_by(OpelLevel.id)
    ):
        carried[scope] = OpelPoint(at, level, score)
    during: dict[str, list[OpelPoint]] = {}
    for scope, at, level, score in s.execute(
        select(OpelLevel.scope, OpelLevel.at, OpelLevel.level, OpelLevel.score)
        .where(OpelLevel.at >= w.since, *end)
        .order_by(OpelLevel.scope, OpelLevel.at, OpelLevel.id)
    ):
        during.setdefault(scope, []).append(OpelPoint(at, level, score))
    return {
        scope: opel_day(carried.get(scope), during.get(scope, []), w.since)
        for scope in sorted(set(carried) | set(during))
    }


def opel_day(
    carried: OpelPoint | None, rows: Sequence[OpelPoint], since: datetime
) -> dict[str, Any]:
    """The level at the end of the day (or now), the highest of the day, and how many times
    it changed. The level in force at midnight counts for the day; the first level ever
    computed is a start, not a change."""
    timeline = ([OpelPoint(since, carried.level, carried.score)] if carried else []) + list(rows)
    changes, previous = 0, carried.level if carried else None
    for row in rows:
        changes += previous is not None and row.level != previous
        previous = row.level
    last = timeline[-1]
    start = len(timeline) - 1
    while start > 0 and timeline[start - 1].level == last.level:  # the run at this level
        start -= 1
    began = carried.at if carried is not None and start == 0 else timeline[start].at
    return {
        "level": last.level,
        "score": last.score,
        "level_since": began.isoformat(),
        "highest": max(p.level for p in timeline),
        "changes": changes,
        "timeline": [{"at": p.at.isoformat(), "level": p.level} for p in timeline],
    }
