"""Occupancy: live snapshots, point-in-time snapshots from the event log, history, long stays.

Definitions (docs/glossary.md):
- *open* beds are all beds less closed and blocked ones (KH03: open and usable);
- *occupancy* = occupied / open; it is compared with the system's target (default 92%);
- *available* beds are vacant, clean and ready now; *vacant not ready* are awaiting clean
  or being cleaned; *reserved* beds are held for an incoming patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from wardwatch.capacity import counts
from wardwatch.capacity.models import Bed, Site, Stay, Ward
from wardwatch.capacity.states import BedState
from wardwatch.db.eventlog import EventRecord

LONG_STAY_DAYS = (7, 14, 21)
CRITICAL_CARE = "critical care"


STATES: tuple[BedState, ...] = tuple(BedState)
INDEX: dict[str, int] = {state.value: i for i, state in enumerate(STATES)}
_OCC, _AWAIT, _CLEAN, _AVAIL, _RES, _BLOCK, _CLOSED = (
    INDEX[s]
    for s in (
        "occupied",
        "awaiting_clean",
        "cleaning",
        "available",
        "reserved",
        "blocked",
        "closed",
    )
)


class Counts:
    """Beds by state: a small vector, cheap to add up (snapshots add thousands of them)."""

    __slots__ = ("v",)

    def __init__(self, v: list[int] | None = None) -> None:
        self.v = v if v is not None else [0] * len(STATES)

    def add(self, state: str, n: int = 1) -> None:
        self.v[INDEX[state]] += n

    def merge(self, other: Counts) -> None:
        v, o = self.v, other.v
        for i in range(len(v)):
            v[i] += o[i]

    @property
    def by_state(self) -> dict[BedState, int]:
        return dict(zip(STATES, self.v, strict=True))

    @property
    def total(self) -> int:
        return sum(self.v)

    @property
    def occupied(self) -> int:
        return self.v[_OCC]

    @property
    def open(self) -> int:
        return self.total - self.v[_CLOSED] - self.v[_BLOCK]

    @property
    def occupancy(self) -> float | None:
        return self.occupied / self.open if self.open else None

    def to_json(self, target: float) -> dict[str, Any]:
        v = self.v
        total = sum(v)
        open_ = total - v[_CLOSED] - v[_BLOCK]
        occ = v[_OCC] / open_ if open_ else None
        return {
            "total": total,
            "open": open_,
            "occupied": v[_OCC],
            "available": v[_AVAIL],
            "reserved": v[_RES],
            "vacant_not_ready": v[_AWAIT] + v[_CLEAN],
            "awaiting_clean": v[_AWAIT],
            "cleaning": v[_CLEAN],
            "blocked": v[_BLOCK],
            "closed": v[_CLOSED],
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
        if " ".join(self.specialty.split()).lower() == CRITICAL_CARE:  # as staff type it
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
    """(ward id, state, beds) for every ward and state present, now (the kept counters)."""
    return counts.rows(s)


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


@dataclass(frozen=True, slots=True)
class Structure:
    """Wards and sites, as the snapshot needs them (cached between snapshots)."""

    wards: dict[str, WardMeta]
    sites: list[tuple[str, str, str]]  # (code, name, kind), sorted by code
    #: One stand-in "ward" per (site, ward kind, G&A) for snapshots summed in the database,
    #: keyed as :func:`group_key` makes them.
    groups: dict[str, WardMeta]


def group_key(site_id: str, kind: str, general_acute: bool) -> str:
    return f"{site_id}|{kind}|{int(general_acute)}"


def structure(s: Session) -> Structure:
    sites = sorted((c, n, k) for c, n, k in s.execute(select(Site.code, Site.name, Site.kind)))
    wards = ward_meta(s)
    site_of = dict(s.execute(select(Ward.id, Ward.site_id)).all())
    groups: dict[str, WardMeta] = {}
    for m in wards.values():
        key = group_key(site_of[m.id], m.kind, m.general_acute)
        groups.setdefault(
            key,
            WardMeta(
                id=key,
                code=key,
                name="",
                specialty="",
                kind=m.kind,
                general_acute=m.general_acute,
                age_group=m.age_group,
                site_code=m.site_code,
                site_name=m.site_name,
                site_kind=m.site_kind,
            ),
        )
    return Structure(wards=wards, sites=sites, groups=groups)


def live_group_counts(s: Session) -> list[tuple[str, str, int]]:
    """Counts summed in the database per (site, ward kind, G&A) and state: a few thousand
    rows at national scale, keyed like :attr:`Structure.groups`."""
    return [
        (group_key(site, kind, ga), state, n) for site, kind, ga, state, n in counts.group_rows(s)
    ]


def snapshot(
    rows: Iterable[tuple[str, str, int]],
    meta: dict[str, WardMeta] | Structure,
    *,
    at: datetime,
    target: float,
    include_wards: bool = False,
) -> dict[str, Any]:
    """Aggregate (ward, state, n) rows to wards, sites and the system, with breakdowns."""
    struct = (
        meta
        if isinstance(meta, Structure)
        else Structure(
            wards=meta,
            sites=sorted({(m.site_code, m.site_name, m.site_kind) for m in meta.values()}),
            groups={},
        )
    )
    per_ward: dict[str, Counts] = {}
    for ward_id, state, n in rows:
        c = per_ward.get(ward_id)
        if c is None:
            c = per_ward[ward_id] = Counts()
        c.v[INDEX[state]] += n
    system = _Group()
    sites = {code: _Group() for code, _, _ in struct.sites}
    for ward_id, ward_counts in per_ward.items():
        m = struct.wards.get(ward_id)
        if m is None:
            continue
        system.add(m, ward_counts)
        sites[m.site_code].add(m, ward_counts)
    wards_by_site: dict[str, list[WardMeta]] = {}
    if include_wards:
        for m in sorted(struct.wards.values(), key=lambda x: x.code):
            wards_by_site.setdefault(m.site_code, []).append(m)
    out_sites = []
    empty = Counts()
    for code, name, kind in struct.sites:
        entry = {"code": code, "name": name, "kind": kind, **sites[code].to_json(target)}
        if include_wards:
            entry["wards"] = [
                {
                    "code": m.code,
                    "name": m.name,
                    "specialty": m.specialty,
                    "kind": m.kind,
                    "general_acute": m.general_acute,
                    **per_ward.get(m.id, empty).to_json(target),
                }
                for m in wards_by_site.get(code, [])
            ]
        out_sites.append(entry)
    return {
        "at": at.isoformat(),
        "target": target,
        "system": system.to_json(target),
        "sites": out_sites,
    }


class _Group:
    __slots__ = ("all", "by_site_kind", "core", "escalation", "general_acute")

    def __init__(self) -> None:
        self.all = Counts()
        self.general_acute = Counts()
        self.core = Counts()
        self.escalation = Counts()
        self.by_site_kind: dict[str, Counts] = {}

    def add(self, m: WardMeta, c: Counts) -> None:
        self.all.merge(c)
        if m.general_acute:
            self.general_acute.merge(c)
        (self.core if m.kind == "core" else self.escalation).merge(c)
        kind = self.by_site_kind.get(m.site_kind)
        if kind is None:
            kind = self.by_site_kind[m.site_kind] = Counts()
        kind.merge(c)

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
        # By time: a feed may record an event at an earlier time than one logged before it
        # (each bed's own events still come in order, by time and then sequence).
        .order_by(EventRecord.at, EventRecord.seq)
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
            Stay.admitted_at <= oldest,
            (Stay.discharged_at.is_(None)) | (Stay.discharged_at > at),
            Stay.cancelled_at.is_(None),  # an admission cancelled (A11) never happened
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
