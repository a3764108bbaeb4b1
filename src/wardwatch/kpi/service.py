"""KPIs for a period, read from the event log: bed turnaround, task times, bed waits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from wardwatch.capacity.models import Site, Ward
from wardwatch.core.clock import Clock
from wardwatch.core.errors import ValidationFailed
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Database
from wardwatch.kpi import measures as m

#: How long after the period an episode that began in it may end and still be counted.
TAIL = timedelta(days=3)
MAX_PERIOD = timedelta(days=400)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

TurnaroundBy = Literal["ward", "site", "day", "site_day", "ward_day", "system"]
TasksBy = Literal["team", "kind", "day", "team_day", "system"]
WaitsBy = Literal["site", "day", "site_day", "system"]


class KpiService:
    def __init__(self, db: Database, clock: Clock, *, timezone: str = "Europe/London") -> None:
        self.db = db
        self.clock = clock
        self.tz = ZoneInfo(timezone)

    def period(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """The period asked for (default: the last 7 days), checked."""
        until = until or self.clock.now()
        if since is None:
            if until.tzinfo is not None and until < EARLIEST + timedelta(days=7):
                raise ValidationFailed("to must be between the years 2000 and 2100")
            since = until - timedelta(days=7)
        for name, value in (("from", since), ("to", until)):
            if value.tzinfo is None:
                raise ValidationFailed(f"{name} must carry a time zone")
            if not EARLIEST <= value <= LATEST:
                raise ValidationFailed(f"{name} must be between the years 2000 and 2100")
        if since >= until:
            raise ValidationFailed("from must be before to")
        if until - since > MAX_PERIOD:
            raise ValidationFailed(f"a period may be at most {MAX_PERIOD.days} days")
        return since, until

    def rows(self, since: datetime, until: datetime, *, prefixes: tuple[str, ...]) -> list[m.Row]:
        """Event-log rows from ``since`` to ``until`` + the tail, in log order."""
        e = EventRecord
        query = (
            select(
                e.seq,
                e.at,
                e.type,
                e.site_id,
                e.ward_id,
                e.bed_id,
                e.from_state,
                e.to_state,
                e.data,
            )
            .where(e.at >= since, e.at < until + TAIL)
            .order_by(e.seq)
        )
        conditions = [e.type.like(f"{p}%") for p in prefixes if p != "*bed"]
        if "*bed" in prefixes:
            conditions.append(e.to_state.is_not(None))
        query = query.where(or_(*conditions))
        with self.db.read() as s:
            return [
                m.Row(seq, at, type_, site, ward, bed, frm, to, dict(data or {}))
                for seq, at, type_, site, ward, bed, frm, to, data in s.execute(query)
            ]

    def _labels(self) -> tuple[dict[str, str], dict[str, str]]:
        with self.db.read() as s:
            sites = {i: c for i, c in s.execute(select(Site.id, Site.code))}
            wards = {i: c for i, c in s.execute(select(Ward.id, Ward.code))}
        return sites, wards

    def day(self, when: datetime) -> str:
        return when.astimezone(self.tz).date().isoformat()

    # --- the three reports ----------------------------------------------------------------

    def turnaround(
        self, since: datetime | None = None, until: datetime | None = None, by: str = "ward"
    ) -> list[dict[str, Any]]:
        since, until = self.period(since, until)
        episodes = [
            t
            for t in m.turnarounds(self.rows(since, until, prefixes=("*bed",)))
            if since <= t.dirty_at < until
        ]
        sites, wards = self._labels()
        keys: dict[str, Callable[[m.Turnaround], m.Key]] = {
            "ward": lambda t: (sites.get(t.site_id or "", "?"), wards.get(t.ward_id or "", "?")),
            "site": lambda t: (sites.get(t.site_id or "", "?"),),
            "day": lambda t: (self.day(t.dirty_at),),
            "site_day": lambda t: (sites.get(t.site_id or "", "?"), self.day(t.dirty_at)),
            "ward_day": lambda t: (wards.get(t.ward_id or "", "?"), self.day(t.dirty_at)),
            "system": lambda t: ("all",),
        }
        names = {
            "ward": ("site", "ward"),
            "site": ("site",),
            "day": ("day",),
            "site_day": ("site", "day"),
            "ward_day": ("ward", "day"),
            "system": ("scope",),
        }
        summary = m.summarise(
            episodes,
            _key(keys, by),
            {
                "turnaround": lambda t: t.minutes,
                "wait_to_clean": lambda t: t.wait_minutes,
                "cleaning": lambda t: t.cleaning_minutes,
            },
        )
        return _table(summary, names[by])

    def tasks(
        self, since: datetime | None = None, until: datetime | None = None, by: str = "team"
    ) -> list[dict[str, Any]]:
        since, until = self.period(since, until)
        found = [
            t
            for t in m.task_times(self.rows(since, until, prefixes=("task.",)))
            if since <= t.created_at < until
        ]
        keys: dict[str, Callable[[m.TaskTimes], m.Key]] = {
            "team": lambda t: (t.team,),
            "kind": lambda t: (t.kind,),
            "day": lambda t: (self.day(t.created_at),),
            "team_day": lambda t: (t.team, self.day(t.created_at)),
            "system": lambda t: ("all",),
        }
        names = {
            "team": ("team",),
            "kind": ("kind",),
            "day": ("day",),
            "team_day": ("team", "day"),
            "system": ("scope",),
        }
        summary = m.summarise(
            found,
            _key(keys, by),
            {
                "to_accept": lambda t: _minutes(t.created_at, t.accepted_at),
                "to_finish": lambda t: _minutes(t.created_at, t.done_at),
            },
            {
                "escalated": lambda t: t.escalated,
                "cancelled": lambda t: t.cancelled,
                "open": lambda t: t.done_at is None and not t.cancelled,
            },
        )
        return _table(summary, names[by])

    def bed_waits(
        self, since: datetime | None = None, until: datetime | None = None, by: str = "site"
    ) -> list[dict[str, Any]]:
        since, until = self.period(since, until)
        found = [
            w
            for w in m.bed_waits(self.rows(since, until, prefixes=("bed_request.",)))
            if since <= w.decided_at < until
        ]
        sites, _ = self._labels()
        keys: dict[str, Callable[[m.BedWait], m.Key]] = {
            "site": lambda w: (sites.get(w.site_id or "", "?"),),
            "day": lambda w: (self.day(w.decided_at),),
            "site_day": lambda w: (sites.get(w.site_id or "", "?"), self.day(w.decided_at)),
            "system": lambda w: ("all",),
        }
        names = {
            "site": ("site",),
            "day": ("day",),
            "site_day": ("site", "day"),
            "system": ("scope",),
        }
        summary = m.summarise(
            found,
            _key(keys, by),
            {
                "to_bed": lambda w: _minutes(w.decided_at, w.allocated_at),
                "to_arrival": lambda w: _minutes(w.decided_at, w.arrived_at),
            },
        )
        return _table(summary, names[by])


def _key(keys: dict[str, Any], by: str) -> Any:
    if by not in keys:
        raise ValidationFailed(f"by must be one of {', '.join(keys)}, not {by!r}")
    return keys[by]


def _minutes(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds() / 60


def _table(
    summary: dict[m.Key, dict[str, float | None]], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [{**dict(zip(names, key, strict=True)), **stats} for key, stats in summary.items()]
