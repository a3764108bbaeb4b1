"""OPEL levels per acute site and for the system, computed from live data and kept as history.

``compute`` measures every parameter at a moment and scores it (opel_config.py); ``check``
(run by the app's periodic loop) writes an ``opel_levels`` row whenever a scope's level
differs from its latest row, with the score and every parameter that produced it, and records
``opel.changed`` (the default notify rule sends it to the control centre's feed). A scope's
first row records ``opel.started`` instead: knowing where a site stands is not a change, and
a restart must not page anyone. The system level is the mean of the acute sites' scores
weighted by their open G&A beds, held by the system config's cut-offs and hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from wardwatch.capacity.lookups import lock_system, site_by_code
from wardwatch.capacity.models import Bed, HealthSystem, Site, Stay, Ward
from wardwatch.capacity.reports import OccupancyService
from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.session import Database, Tx
from wardwatch.frontdoor.days import local_day
from wardwatch.frontdoor.measures import HandoverTimes, handover_figures
from wardwatch.frontdoor.models import Handover, OpelLevel
from wardwatch.frontdoor.opel_config import DEFAULT, OpelConfig, config_from
from wardwatch.frontdoor.opel_scoring import SYSTEM_SCOPE, Measured, OpelSnapshot, score
from wardwatch.frontdoor.service import FrontDoor

MAX_HISTORY = 5000


@dataclass(frozen=True)
class _Scope:
    scope: str
    site_id: str | None
    name: str
    level: int
    score: float
    parameters: list[dict[str, Any]]
    why: str


@dataclass(frozen=True)
class OpelChange:
    """A row ``check`` wrote: ``previous`` None for a scope's first row (not notified)."""

    scope: str
    level: int
    previous: int | None
    score: float
    at: datetime
    summary: str


class OpelService:
    def __init__(
        self, db: Database, clock: Clock, occupancy: OccupancyService, frontdoor: FrontDoor
    ) -> None:
        self.db = db
        self.clock = clock
        self.occupancy = occupancy
        self.frontdoor = frontdoor

    # --- computing -----------------------------------------------------------------------

    def compute(self, at: datetime | None = None) -> OpelSnapshot:
        """Every acute site's level and the system's at ``at`` (default now), each held by
        hysteresis against the level recorded before it."""
        now = self.clock.now()
        at = at or now
        if at.tzinfo is None:
            raise ValidationFailed("the time must carry a time zone (e.g. ...T08:00Z)")
        if at > now:
            raise ValidationFailed(f"{at.isoformat()} is in the future")
        measured, system_config = self._measure(at, live=at == now)
        with self.db.read() as s:
            latest = _latest(s, at)
        return score(measured, system_config, latest, at)

    def _measure(self, at: datetime, *, live: bool) -> tuple[list[Measured], OpelConfig]:
        snapshot = self.occupancy.live() if live else self.occupancy.at(at)
        occupancy = {x["code"]: x for x in snapshot["sites"]}
        with self.db.read() as s:
            system = s.get(HealthSystem, 1)
            system_config = (config_from(system.opel) if system else None) or DEFAULT
            sites = list(s.scalars(select(Site).where(Site.kind == "acute").order_by(Site.code)))
            configs = {x.id: config_from(x.opel) or system_config for x in sites}
            window = max((c.handover_window_hours for c in configs.values()), default=4)
            crews = _crews(s, at, timedelta(hours=window))
            nctr = _nctr(s, at, local_day(at, self.frontdoor.tz))
        out = []
        for site in sites:
            config = configs[site.id]
            since = at - timedelta(hours=config.handover_window_hours)
            mine = [c for c in crews.get(site.id, []) if c.arrived_at >= since]
            beds = occupancy.get(site.code) or {}
            values, notes = self._values(site.code, at, beds, mine, nctr.get(site.id, 0), config)
            ga = beds.get("general_acute", {})
            out.append(
                Measured(
                    site_id=site.id,
                    code=site.code,
                    name=site.name,
                    lat=site.lat,
                    lon=site.lon,
                    config=config,
                    values=values,
                    notes=notes,
                    ga_open=int(ga.get("open", 0)),
                    available_beds=int(ga.get("available", 0)),
                )
            )
        return out, system_config

    def _values(
        self,
        code: str,
        at: datetime,
        beds: dict[str, Any],
        crews: list[HandoverTimes],
        nctr: int,
        config: OpelConfig,
    ) -> tuple[dict[str, float | None], dict[str, str]]:
        """Every known parameter's value (None, with a note, where it has none)."""
        values: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        ga, esc = beds.get("general_acute", {}), beds.get("escalation", {})
        open_, occupied = int(ga.get("open", 0)), int(ga.get("occupied", 0))
        values["ga_occupancy_pct"] = 100 * occupied / open_ if open_ else None
        if not open_:
            notes["ga_occupancy_pct"] = "no open G&A beds"
        values["nctr_pct"] = 100 * nctr / occupied if occupied else None
        if not occupied:
            notes["nctr_pct"] = "no occupied G&A beds"
        figures = handover_figures(crews, at)
        values["mean_handover_minutes"] = figures.mean_minutes
        values["longest_handover_minutes"] = figures.longest_minutes
        if not crews:
            hours = f"{config.handover_window_hours:g}"
            notes["mean_handover_minutes"] = f"no ambulance arrivals in the last {hours} h"
            notes["longest_handover_minutes"] = notes["mean_handover_minutes"]
        ed = self.frontdoor.ed.now(at=at, site=code)
        values["dta_over_4h"] = ed.dta_over_4h
        values["ed_over_12h"] = ed.over_12h_from_arrival
        values["escalation_beds_open"] = int(esc.get("total", 0)) - int(esc.get("closed", 0))
        values["four_hour_pct"] = None
        if config.uses("four_hour_pct"):
            day = self.frontdoor.ed.figures(since=at - timedelta(hours=24), until=at, site=code)
            values["four_hour_pct"] = day.four_hour_pct
            if day.four_hour_pct is None:
                notes["four_hour_pct"] = "no ED departures in the last 24 h"
        return values, notes

    # --- recording -----------------------------------------------------------------------

    def check(self, actor: Actor = SYSTEM) -> list[OpelChange]:
        """Compute now and write a row (and an event) for every scope whose level moved."""
        now = self.clock.now()
        measured, system_config = self._measure(now, live=True)
        written: list[OpelChange] = []
        with self.db.transaction() as tx:
            if not lock_system(tx.session):
                return []
            latest = _latest(tx.session, now)
            snap = score(measured, system_config, latest, now)
            scopes = [
                _Scope(x.code, x.measured.site_id, x.name, x.level, x.score, x.summary(), x.why)
                for x in snap.sites
            ]
            system = snap.system
            scopes.append(
                _Scope(
                    SYSTEM_SCOPE,
                    None,
                    "System",
                    system.level,
                    system.score,
                    system.sites,
                    system.why,
                )
            )
            for scope in scopes:
                last = latest.get(scope.scope)
                # At most one row per scope and instant: a tie would make "latest" ambiguous.
                if last is not None and (last.level == scope.level or last.at >= now):
                    continue
                written.append(_write(tx, scope, None if last is None else last.level, now, actor))
        return written

    # --- reading -------------------------------------------------------------------------

    def current(self) -> list[dict[str, Any]]:
        """The latest recorded row of every scope (what the control centre was told)."""
        with self.db.read() as s:
            rows = _latest(s, self.clock.now())
        return [_row(r, None) for _, r in sorted(rows.items())]

    def history(
        self,
        scope: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Periods at a level, oldest first, that overlap [since, until]; each ends when
        the next row of its scope begins (``until`` None: still in force)."""
        for label, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed(f"'{label}' must carry a time zone (e.g. ...T08:00Z)")
        if since is not None and until is not None and until < since:
            raise ValidationFailed("'until' is before 'since'")
        with self.db.read() as s:
            if scope is not None and scope != SYSTEM_SCOPE:
                self.require_acute(s, scope)
            q = select(OpelLevel).order_by(OpelLevel.scope, OpelLevel.at)
            if scope is not None:
                q = q.where(OpelLevel.scope == scope)
            if until is not None:
                q = q.where(OpelLevel.at <= until)
            rows = list(s.scalars(q))
        out: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1].scope == row.scope else None
            end = None if nxt is None else nxt.at
            if since is not None and end is not None and end <= since:
                continue
            out.append(_row(row, end))
        out.sort(key=lambda r: (r["at"], r["scope"]))
        return out[-MAX_HISTORY:]

    def require_acute(self, s: Session, code: str) -> Site:
        site = site_by_code(s, code)
        if site.kind != "acute":
            raise ValidationFailed(
                f"{code} is a {site.kind.replace('_', ' ')} site: OPEL levels are kept for "
                f"acute sites and the system"
            )
        return site


# --- helpers ---------------------------------------------------------------------------------


def _latest(s: Session, at: datetime) -> dict[str, OpelLevel]:
    last = (
        select(OpelLevel.scope, func.max(OpelLevel.at).label("at"))
        .where(OpelLevel.at <= at)
        .group_by(OpelLevel.scope)
        .subquery()
    )
    rows = s.scalars(
        select(OpelLevel).join(
            last, and_(OpelLevel.scope == last.c.scope, OpelLevel.at == last.c.at)
        )
    )
    return {r.scope: r for r in rows}


def _crews(s: Session, at: datetime, window: timedelta) -> dict[str, list[HandoverTimes]]:
    """Crews that arrived in the window before ``at``, by site id; a handover after ``at``
    counts as still waiting at ``at``."""
    rows = s.execute(
        select(Handover.site_id, Handover.arrived_at, Handover.handover_at).where(
            Handover.arrived_at >= at - window,
            Handover.arrived_at <= at,
            Handover.status != "cancelled",
        )
    )
    out: dict[str, list[HandoverTimes]] = {}
    for site_id, arrived, handed in rows:
        if arrived is None:  # the filter excludes it; this tells the type checker
            continue
        done = handed if handed is not None and handed <= at else None
        out.setdefault(site_id, []).append(HandoverTimes(arrived, done))
    return out


def _nctr(s: Session, at: datetime, today: date) -> dict[str, int]:
    """Open G&A stays at ``at`` whose discharge-ready date has come, by site id."""
    rows = s.execute(
        select(Ward.site_id, func.count())
        .select_from(Stay)
        .join(Bed, Stay.bed_id == Bed.id)
        .join(Ward, Bed.ward_id == Ward.id)
        .where(
            Ward.general_acute.is_(True),
            Stay.admitted_at <= at,
            (Stay.discharged_at.is_(None)) | (Stay.discharged_at > at),
            Stay.cancelled_at.is_(None),
            Stay.discharge_ready_date <= today,
        )
        .group_by(Ward.site_id)
    )
    return {site_id: int(n) for site_id, n in rows}


def _write(tx: Tx, x: _Scope, previous: int | None, now: datetime, actor: Actor) -> OpelChange:
    tx.session.add(
        OpelLevel(
            id=new_id("opel"),
            scope=x.scope,
            site_id=x.site_id,
            level=x.level,
            score=round(x.score, 2),
            at=now,
            previous=previous,
            parameters=x.parameters,
        )
    )
    # The why begins "OPEL <level> (score ...)": say where the level came from instead.
    detail = x.why.removeprefix(f"OPEL {x.level} ")
    change = OpelChange(
        x.scope, x.level, previous, x.score, now, f"{x.name}: {_arrow(previous, x.level)} {detail}"
    )
    site = None if x.site_id is None else x.scope
    tx.record(
        "opel.started" if previous is None else "opel.changed",
        at=now,
        actor=actor,
        site_id=x.site_id,
        site_code=site,
        data={
            "scope": x.scope,
            "site": site,
            "level": x.level,
            "previous": previous,
            "score": round(x.score, 1),
            "summary": change.summary[:300],
        },
    )
    return change


def _arrow(previous: int | None, level: int) -> str:
    return f"OPEL {level}" if previous is None else f"OPEL {previous} → {level}"


def _row(row: OpelLevel, until: datetime | None) -> dict[str, Any]:
    return {
        "scope": row.scope,
        "level": row.level,
        "previous": row.previous,
        "score": row.score,
        "at": row.at.isoformat(),
        "until": None if until is None else until.isoformat(),
        "parameters": row.parameters,
    }
