"""Occupancy reads for the API and CLI: live, past, history, long stays, daily SitRep."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.capacity import occupancy as occ
from wardwatch.capacity.models import HealthSystem
from wardwatch.core.clock import Clock
from wardwatch.core.errors import ValidationFailed
from wardwatch.db.session import Database

SITREP_CATEGORIES = (
    "ga_adult_core",
    "ga_adult_escalation",
    "ga_paediatric_core",
    "ga_paediatric_escalation",
    "critical_care",
    "other",
)
MAX_HISTORY_POINTS = 5000
MIN_YEAR = 1900


class OccupancyService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        default_target: float = 0.92,
        timezone: str = "Europe/London",
        sitrep_hour: int = 8,
    ) -> None:
        self.db = db
        self.clock = clock
        self.default_target = default_target
        self.tz = ZoneInfo(timezone)
        self.sitrep_hour = sitrep_hour
        self._cache: tuple[int, occ.Structure] | None = None

    def target(self) -> float:
        with self.db.read() as s:
            return self._target(s)

    def _target(self, s: Session) -> float:
        system = s.get(HealthSystem, 1)
        return system.occupancy_target if system else self.default_target

    def _structure(self, s: Session) -> occ.Structure:
        """Wards and sites, re-read only when the system's structure version moves."""
        version = s.scalar(select(HealthSystem.structure_version).where(HealthSystem.id == 1))
        cached = self._cache
        if cached is not None and version is not None and cached[0] == version:
            return cached[1]
        struct = occ.structure(s)
        self._cache = (version if version is not None else -1, struct)
        return struct

    def live(self, *, include_wards: bool = False) -> dict[str, Any]:
        with self.db.read() as s:
            struct = self._structure(s)
            if include_wards:
                return occ.snapshot(
                    occ.live_counts(s),
                    struct,
                    at=self.clock.now(),
                    target=self._target(s),
                    include_wards=True,
                )
            # System and sites only: sum in the database, a few thousand rows at most.
            groups = occ.Structure(wards=struct.groups, sites=struct.sites, groups={})
            return occ.snapshot(
                occ.live_group_counts(s), groups, at=self.clock.now(), target=self._target(s)
            )

    def at(self, when: datetime, *, include_wards: bool = False) -> dict[str, Any]:
        self._check_past(when)
        with self.db.read() as s:
            return occ.snapshot(
                occ.counts_at(s, when),
                self._structure(s),
                at=when,
                target=self._target(s),
                include_wards=include_wards,
            )

    def history(
        self,
        *,
        start: datetime,
        end: datetime,
        step: timedelta,
        site: str | None = None,
        ward: str | None = None,
        general_acute_only: bool = False,
    ) -> list[dict[str, Any]]:
        for label, value in (("from", start), ("to", end)):
            if value.tzinfo is None:
                raise ValidationFailed(f"'{label}' must carry a time zone (e.g. ...T08:00Z)")
            _check_year(value)
        if end > self.clock.now():
            raise ValidationFailed(f"'to' ({end.isoformat()}) is in the future")
        if end <= start:
            raise ValidationFailed("'to' must be after 'from'")
        if step <= timedelta(0):
            raise ValidationFailed("step must be positive")
        if (end - start) / step > MAX_HISTORY_POINTS:
            raise ValidationFailed(f"at most {MAX_HISTORY_POINTS} points: use a longer step")
        with self.db.read() as s:
            return occ.history(
                s,
                start=start,
                end=end,
                step=step,
                site=site,
                ward=ward,
                general_acute_only=general_acute_only,
            )

    def long_stays(self) -> dict[str, dict[str, int]]:
        with self.db.read() as s:
            return occ.long_stays(s, at=self.clock.now())

    def sitrep_time(self, day: date) -> datetime:
        return datetime.combine(day, time(self.sitrep_hour), tzinfo=self.tz)

    def sitrep(self, day: date) -> dict[str, Any]:
        """The SitRep-style snapshot at 08:00 (local) on ``day``, rebuilt from the event log."""
        when = self.sitrep_time(day)
        self._check_past(when)
        with self.db.read() as s:
            meta = occ.ward_meta(s)
            per_site: dict[str, dict[str, occ.Counts]] = {}
            for ward_id, state, n in occ.counts_at(s, when):
                m = meta[ward_id]
                cats = per_site.setdefault(m.site_code, {})
                for key in (m.sitrep_category, "all"):
                    cats.setdefault(key, occ.Counts()).add(state, n)
            stays = occ.long_stays(s, at=when)
            target = self._target(s)
            names = {m.site_code: (m.site_name, m.site_kind) for m in meta.values()}
        rows = [
            _sitrep_row(code, *names[code], per_site[code], stays.get(code))
            for code in sorted(per_site)
        ]
        system: dict[str, occ.Counts] = {}
        for cats in per_site.values():
            for key, counts in cats.items():
                system.setdefault(key, occ.Counts()).merge(counts)
        rows.append(_sitrep_row("SYSTEM", "Whole system", "system", system, stays["SYSTEM"]))
        return {
            "date": day.isoformat(),
            "snapshot_at": when.isoformat(),
            "target": target,
            "rows": rows,
        }

    def _check_past(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValidationFailed("times must carry a time zone (e.g. 2026-01-05T08:00Z)")
        _check_year(when)
        if when > self.clock.now():
            raise ValidationFailed(f"{when.isoformat()} is in the future")


def _check_year(when: datetime) -> None:
    if when.year < MIN_YEAR:
        raise ValidationFailed(
            f"{when.date().isoformat()}: dates before {MIN_YEAR} are not supported"
        )


def _sitrep_row(
    code: str, name: str, kind: str, cats: dict[str, occ.Counts], stays: dict[str, int] | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"site": code, "name": name, "kind": kind}
    ga = occ.Counts()
    for cat in SITREP_CATEGORIES:
        c = cats.get(cat, occ.Counts())
        row[f"{cat}_open"] = c.open
        row[f"{cat}_occupied"] = c.occupied
        if cat.startswith("ga_"):
            ga.merge(c)
    total = cats.get("all", occ.Counts()).to_json(0)
    ga_occ = ga.occupancy
    row.update(
        {
            "ga_open": ga.open,
            "ga_occupied": ga.occupied,
            "ga_occupancy": None if ga_occ is None else round(ga_occ, 4),
            "beds_total": total["total"],
            "beds_available": total["available"],
            "beds_vacant_not_ready": total["vacant_not_ready"],
            "beds_blocked": total["blocked"],
            "beds_closed": total["closed"],
        }
    )
    for key, n in (stays or {"7+": 0, "14+": 0, "21+": 0}).items():
        row[f"long_stay_{key.rstrip('+')}_plus"] = n
    return row


def sitrep_csv(report: dict[str, Any]) -> str:
    rows = report["rows"]
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["date", "snapshot_at", *rows[0].keys()], lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({"date": report["date"], "snapshot_at": report["snapshot_at"], **row})
    return out.getvalue()
