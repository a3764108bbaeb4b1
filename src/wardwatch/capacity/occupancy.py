"""Occupancy: live snapshots, point-in-time snapshots from the event log, history, long stays.

Definitions (docs/glossary.md):
- *open* beds are all beds less closed and blocked ones (KH03: open and usable);
- *occupancy* = occupied / open; it is compared with the system's target (default 92%);
- *available* beds are vacant, clean and ready now; *vacant not ready* are awaiting clean
  or being cleaned; *reserved* beds are held for an incoming patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, Site, Stay, Ward
from wardwatch.capacity.states import BedState
from wardwatch.db.eventlog import EventRecord

LONG_STAY_DAYS = (7, 14, 21)
CRITICAL_CARE = "critical care"


@dataclass(slots=True)
class Counts:
    by_state: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BedState, 0))

    def add(self, state: str, n: int = 1) -> None:
        self.by_state[BedState(state)] += n

    def merge(self, other: Counts) -> None:
        for state, n in other.by_state.items():
            self.by_state[state] += n

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def occupied(self) -> int:
        return self.by_state[BedState.OCCUPIED]

    @property
    def open(self) -> int:
        return self.total - self.by_state[BedState.CLOSED] - self.by_state[BedState.BLOCKED]

    @property
    def occupancy(self) -> float | None:
        return self.occupied / self.open if self.open else None

    def to_json(self, target: float) -> dict[str, Any]:
        occ = self.occupancy
        s = self.by_state
        return {
            "total": self.total,
            "open": self.open,
            "occupied": self.occupied,
            "available": s[BedState.AVAILABLE],
            "reserved": s[BedState.RESERVED],
            "vacant_not_ready": s[BedState.AWAITING_CLEAN] + s[BedState.CLEANING],
            "awaiting_clean": s[BedState.AWAITING_CLEAN],
            "cleaning": s[BedState.CLEANING],
            "blocked": s[BedState.BLOCKED],
            "closed": s[BedState.CLOSED],
            "occupancy": None if occ is None else round(occ, 4),
            "over_target": None if occ is None else occ > target,
        }


@dataclass(frozen=True, slots=True)
class WardMeta:
    id: str
    code: str
    name: str
    specialty: str
    kind: str
    general_acute: bool
    age_group: str
    site_code: str
    site_name: str
    site_kind: str

    @property
    def sitrep_category(self) -> str:
        if self.specialty == CRITICAL_CARE:
            return "critical_care"
        if self.general_acute:
            return f"ga_{self.age_group}_{self.kind}"
        return "other"


def ward_meta(s: Session) -> dict[str, WardMeta]:
    rows = s.execute(
        select(
            Ward.id,
            Ward.code,
            Ward.name,
            Ward.specialty,
            Ward.kind,
            Ward.general_acute,
            Ward.age_group,
            Site.code,
            Site.name,
            Site.kind,
        ).join(Site, Ward.site_id == Site.id)
    )
    return {
        r[0]: WardMeta(
            id=r[0],
            code=r[1],
            name=r[2],
            specialty=r[3],
            kind=r[4],
            general_acute=r[5],
            age_group=r[6],
            site_code=r[7],
            site_name=r[8],
            site_kind=r[9],
        )
        for r in rows
    }


def live_counts(s: Session) -> list[tuple[str, str, int]]:
    """(ward id, state, beds) for every ward and state present, now."""
    rows = s.execute(select(Bed.ward_id, Bed.state, func.count()).group_by(Bed.ward_id, Bed.state))
    return [(w, st, int(n)) for w, st, n in rows]


def bed_states_at(s: Session, when: datetime) -> dict[str, tuple[str, str]]:
    """Each bed's (ward id, state) at ``when``, rebuilt from the event log."""
    last = (
        select(func.max(EventRecord.seq).label("seq"))
        .where(
            EventRecord.at <= when,
            EventRecord.bed_id.is_not(None),
            EventRecord.to_state.is_not(None),
        )
        .group_by(EventRecord.bed_id)
        .subquery()
    )
    rows = s.execute(
        select(EventRecord.bed_id, Bed.ward_id, EventRecord.to_state)
        .join(last, EventRecord.seq == last.c.seq)
        .join(Bed, Bed.id == EventRecord.bed_id)
    )
    return {bed: (ward, str(state)) for bed, ward, state in rows if bed is not None}


def counts_at(s: Session, when: datetime) -> list[tuple[str, str, int]]:
    tally: dict[tuple[str, str], int] = {}
    for ward, state in bed_states_at(s, when).values():
        tally[(ward, state)] = tally.get((ward, state), 0) + 1
    return [(w, st, n) for (w, st), n in tally.items()]


def snapshot(
    rows: Iterable[tuple[str, str, int]],
    meta: dict[str, WardMeta],
    *,
    at: datetime,
    target: float,
    include_wards: bool = False,
) -> dict[str, Any]:
    """Aggregate (ward, state, n) rows to wards, sites and the system, with breakdowns."""
    per_ward: dict[str, Counts] = {}
    for ward_id, state, n in rows:
        per_ward.setdefault(ward_id, Counts()).add(state, n)
    system = _Group()
    sites: dict[str, _Group] = {}
    for ward_id, m in meta.items():
        counts = per_ward.get(ward_id, Counts())
        system.add(m, counts)
        sites.setdefault(m.site_code, _Group()).add(m, counts)
    out_sites = []
    for code in sorted(sites):
        any_ward = next(m for m in meta.values() if m.site_code == code)
        entry = {
            "code": code,
            "name": any_ward.site_name,
            "kind": any_ward.site_kind,
            **sites[code].to_json(target),
        }
        if include_wards:
            entry["wards"] = [
                {
                    "code": m.code,
                    "name": m.name,
                    "specialty": m.specialty,
                    "kind": m.kind,
                    "general_acute": m.general_acute,
                    **per_ward.get(m.id, Counts()).to_json(target),
                }
                for m in sorted(meta.values(), key=lambda x: x.code)
                if m.site_code == code
            ]
        out_sites.append(entry)
    return {
        "at": at.isoformat(),
        "target": target,
        "system": system.to_json(target),
        "sites": out_sites,
    }


@dataclass(slots=True)
class _Group:
    all: Counts = field(default_factory=Counts)
    general_acute: Counts = field(default_factory=Counts)
    core: Counts = field(default_factory=Counts)
    escalation: Counts = field(default_factory=Counts)
    by_site_kind: dict[str, Counts] = field(default_factory=dict)

    def add(self, m: WardMeta, c: Counts) -> None:
        self.all.merge(c)
        if m.general_acute:
            self.general_acute.merge(c)
        (self.core if m.kind == "core" else self.escalation).merge(c)
        self.by_site_kind.setdefault(m.site_kind, Counts()).merge(c)

    def to_json(self, target: float) -> dict[str, Any]:
        return {
            **self.all.to_json(target),
            "general_acute": self.general_acute.to_json(target),
            "core": self.core.to_json(target),
            "escalation": self.escalation.to_json(target),
            "by_site_kind": {k: v.to_json(target) for k, v in sorted(self.by_site_kind.items())},
        }


def history(
    s: Session,
    *,
    start: datetime,
    end: datetime,
    step: timedelta,
    site: str | None = None,
    ward: str | None = None,
    general_acute_only: bool = False,
) -> list[dict[str, Any]]:
    """Occupancy at each ``step`` from ``start`` to ``end``, replayed from the event log."""
    meta = ward_meta(s)
    wanted = {
        w
        for w, m in meta.items()
        if (site is None or m.site_code == site)
        and (ward is None or m.code == ward)
        and (not general_acute_only or m.general_acute)
    }
    states = {b: st for b, (w, st) in bed_states_at(s, start).items() if w in wanted}
    bed_ward = dict(s.execute(select(Bed.id, Bed.ward_id)).all())
    events = s.execute(
        select(EventRecord.at, EventRecord.bed_id, EventRecord.to_state)
        .where(
            EventRecord.at > start,
            EventRecord.at <= end,
            EventRecord.bed_id.is_not(None),
            EventRecord.to_state.is_not(None),
        )
        .order_by(EventRecord.seq)
    )
    points: list[dict[str, Any]] = []
    sample = start
    pending = iter(events)
    nxt = next(pending, None)
    while sample <= end:
        while nxt is not None and nxt[0] <= sample:
            _, bed, to_state = nxt
            if bed is not None and bed_ward.get(bed) in wanted:
                states[bed] = str(to_state)
            nxt = next(pending, None)
        points.append(_point(sample, states.values()))
        sample += step
    return points


def _point(at: datetime, states: Iterable[str]) -> dict[str, Any]:
    c = Counts()
    for st in states:
        c.add(st)
    occ = c.occupancy
    return {
        "at": at.isoformat(),
        "occupied": c.occupied,
        "open": c.open,
        "available": c.by_state[BedState.AVAILABLE],
        "occupancy": None if occ is None else round(occ, 4),
    }


def long_stays(s: Session, *, at: datetime) -> dict[str, dict[str, int]]:
    """Patients in a bed at ``at`` for 7+, 14+ and 21+ days, per site code (and 'SYSTEM')."""
    oldest = at - timedelta(days=min(LONG_STAY_DAYS))
    rows = s.execute(
        select(Site.code, Stay.admitted_at)
        .join(Bed, Stay.bed_id == Bed.id)
        .join(Ward, Bed.ward_id == Ward.id)
        .join(Site, Ward.site_id == Site.id)
        .where(
            Stay.admitted_at <= oldest, (Stay.discharged_at.is_(None)) | (Stay.discharged_at > at)
        )
    )
    out: dict[str, dict[str, int]] = {"SYSTEM": {f"{d}+": 0 for d in LONG_STAY_DAYS}}
    for site_code, admitted in rows:
        days = (at - admitted).total_seconds() / 86400
        bucket = out.setdefault(site_code, {f"{d}+": 0 for d in LONG_STAY_DAYS})
        for d in LONG_STAY_DAYS:
            if days >= d:
                bucket[f"{d}+"] += 1
                out["SYSTEM"][f"{d}+"] += 1
    return out
