"""The health system's structure: load it from YAML, edit sites, wards and beds.

Loading is all-or-nothing: a file with any problem changes nothing. Loading again updates
names and attributes and adds beds; it never deletes a bed with history (close it instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from wardwatch.capacity import counts as bed_counts
from wardwatch.capacity.lookups import site_by_code
from wardwatch.capacity.models import Bed, HealthSystem, Patient, Site, Stay, Ward
from wardwatch.capacity.schemas import (
    BedsAdd,
    LoadResult,
    SiteRead,
    SiteSpec,
    SiteUpdate,
    SystemSpec,
    WardCreate,
    WardRead,
    WardSpec,
    WardUpdate,
)
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Database, Tx

UNSTAFFED = "unstaffed"


def parse_system_yaml(text: str, source: str = "system file") -> SystemSpec:
    """Parse and validate a system file, naming every problem found."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValidationFailed(f"{source} must be a mapping with 'system' and 'sites'")
    return validate_system(raw, source)


def validate_system(raw: dict[str, Any], source: str = "system") -> SystemSpec:
    try:
        return SystemSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
        raise ValidationFailed(
            f"{source} has {len(problems)} problem(s): " + "; ".join(problems), problems
        ) from exc


def load_system_file(path: Path) -> SystemSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationFailed(f"cannot read {path}: {exc.strerror}") from exc
    return parse_system_yaml(text, str(path))


def _describe(err: Any) -> str:
    loc = ""
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


class SystemService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def load(self, spec: SystemSpec, actor: Actor) -> LoadResult:
        result = LoadResult(
            system=spec.system.code,
            sites_created=0,
            sites_updated=0,
            wards_created=0,
            wards_updated=0,
            beds_created=0,
        )
        with self.db.transaction() as tx:
            s = tx.session
            system = s.get(HealthSystem, 1)
            if system is None:
                s.add(HealthSystem(id=1, **spec.system.model_dump()))
            else:
                for key, value in spec.system.model_dump().items():
                    setattr(system, key, value)
            sites = {x.code: x for x in s.scalars(select(Site))}
            wards = {x.code: x for x in s.scalars(select(Ward))}
            have_beds = _bed_counts(s)
            for site_spec in spec.sites:
                site = sites.get(site_spec.code)
                if site is None:
                    site = _new_site(s, site_spec)
                    result.sites_created += 1
                else:
                    _update_site(site, site_spec)
                    result.sites_updated += 1
                for ward_spec in site_spec.wards:
                    ward = wards.get(ward_spec.code)
                    if ward is None:
                        ward = _new_ward(s, site, ward_spec)
                        result.wards_created += 1
                    else:
                        if ward_spec.sex_policy != ward.sex_policy and ward_spec.sex_policy in (
                            "male",
                            "female",
                        ):
                            _require_no_other_sex(s, ward, ward_spec.sex_policy)
                        _update_ward(ward, site, ward_spec)
                        result.wards_updated += 1
                    have = have_beds.get(ward.id, 0)
                    if ward_spec.beds < have:
                        raise ValidationFailed(
                            f"ward {ward.code} has {have} beds but the file says "
                            f"{ward_spec.beds}: beds with history are never deleted; close "
                            f"them through the API instead"
                        )
                    result.beds_created += self._add_beds(
                        tx,
                        site,
                        ward,
                        have,
                        ward_spec.beds - have,
                        staffed=ward_spec.staffed_beds,
                        side_rooms=ward_spec.side_rooms,
                        actor=actor,
                    )
            _bump(s)
            tx.record("system.loaded", at=self.clock.now(), actor=actor, data=result.model_dump())
        return result

    # --- editing through the API -----------------------------------------------------------

    def create_site(self, spec: SiteSpec, actor: Actor) -> SiteRead:
        with self.db.read() as s:
            if s.scalar(select(Site.id).where(Site.code == spec.code)):
                raise Conflict(
                    f"a site with code {spec.code!r} already exists: change it with "
                    f"PATCH /api/sites/{spec.code}"
                )
        self.load_fragment(sites=[spec], actor=actor)
        return self.get_site(spec.code)

    def update_site(self, code: str, req: SiteUpdate, actor: Actor) -> SiteRead:
        with self.db.transaction() as tx:
            site = site_by_code(tx.session, code)
            changes = req.model_dump(exclude_unset=True)
            for key, value in changes.items():
                setattr(site, key, value)
            _bump(tx.session)
            tx.record(
                "site.updated",
                at=self.clock.now(),
                actor=actor,
                site_id=site.id,
                site_code=site.code,
                data=changes,
            )
        return self.get_site(code)

    def create_ward(self, req: WardCreate, actor: Actor) -> WardRead:
        with self.db.read() as s:
            site = site_by_code(s, req.site)
            if s.scalar(select(Ward.id).where(Ward.code == req.code)):
                raise Conflict(f"a ward with code {req.code!r} already exists")
        spec = SiteSpec(
            code=site.code,
            name=site.name,
            kind=site.kind,
            lat=site.lat,
            lon=site.lon,
            pas_facility=site.pas_facility,
            wards=[WardSpec(**req.model_dump(exclude={"site"}))],
            opel=site.opel,  # the stored settings, validated again
        )
        self.load_fragment(sites=[spec], actor=actor)
        return self.get_ward(req.code)

    def update_ward(self, code: str, req: WardUpdate, actor: Actor) -> WardRead:
        with self.db.transaction() as tx:
            ward = _ward_by_code(tx.session, code)
            changes = req.model_dump(exclude_unset=True)
            if changes.get("sex_policy") in ("male", "female"):
                _require_no_other_sex(tx.session, ward, changes["sex_policy"])
            for key, value in changes.items():
                setattr(ward, key, value)
            _bump(tx.session)
            tx.record(
                "ward.updated",
                at=self.clock.now(),
                actor=actor,
                ward_id=ward.id,
                ward_code=ward.code,
                site_id=ward.site_id,
                site_code=ward.site.code,
                data=changes,
            )
        return self.get_ward(code)

    def add_beds(self, code: str, req: BedsAdd, actor: Actor) -> WardRead:
        if req.side_rooms > req.count:
            raise ValidationFailed("side_rooms cannot exceed count")
        with self.db.transaction() as tx:
            ward = _ward_by_code(tx.session, code)
            have = _bed_counts(tx.session).get(ward.id, 0)
            self._add_beds(
                tx,
                ward.site,
                ward,
                have,
                req.count,
                staffed=have + req.count if req.state == "available" else have,
                side_rooms=req.side_rooms,
                actor=actor,
                side_room_offset=have,
            )
            _bump(tx.session)
        return self.get_ward(code)

    def load_fragment(self, *, sites: list[SiteSpec], actor: Actor) -> None:
        """Add sites or wards without restating the whole system."""
        with self.db.read() as s:
            system = s.get(HealthSystem, 1)
            if system is None:
                raise Conflict("no system is loaded yet: load a system file first")
            info = {
                "code": system.code,
                "name": system.name,
                "occupancy_target": system.occupancy_target,
                "opel": system.opel,  # kept: a fragment must not reset the OPEL settings
            }
        spec = validate_system({"system": info, "sites": [x.model_dump() for x in sites]})
        self.load(spec, actor)

    # --- reads ---------------------------------------------------------------------------

    def system_info(self) -> dict[str, Any]:
        with self.db.read() as s:
            system = s.get(HealthSystem, 1)
            if system is None:
                raise NotFound("no system is loaded yet: run `wardwatch system load FILE`")
            return {
                "code": system.code,
                "name": system.name,
                "occupancy_target": system.occupancy_target,
            }

    def list_sites(self) -> list[SiteRead]:
        with self.db.read() as s:
            wards = dict(s.execute(select(Ward.site_id, func.count()).group_by(Ward.site_id)).all())
            beds = dict(
                s.execute(
                    select(Ward.site_id, func.count())
                    .join(Bed, Bed.ward_id == Ward.id)
                    .group_by(Ward.site_id)
                ).all()
            )
            return [
                SiteRead(
                    id=x.id,
                    code=x.code,
                    name=x.name,
                    kind=x.kind,
                    lat=x.lat,
                    lon=x.lon,
                    ward_count=wards.get(x.id, 0),
                    bed_count=beds.get(x.id, 0),
                )
                for x in s.scalars(select(Site).order_by(Site.code))
            ]

    def get_site(self, code: str) -> SiteRead:
        for site in self.list_sites():
            if site.code == code:
                return site
        raise NotFound(f"no site with code {code!r}")

    def list_wards(
        self, *, site: str | None = None, specialty: str | None = None, kind: str | None = None
    ) -> list[WardRead]:
        query = select(Ward, Site.code).join(Site, Ward.site_id == Site.id).order_by(Ward.code)
        if site:
            query = query.where(Site.code == site)
        if specialty:
            query = query.where(Ward.specialty == specialty)
        if kind:
            query = query.where(Ward.kind == kind)
        with self.db.read() as s:
            counts = _bed_counts(s)
            return [_ward_read(w, sc, counts.get(w.id, 0)) for w, sc in s.execute(query)]

    def get_ward(self, code: str) -> WardRead:
        with self.db.read() as s:
            ward = _ward_by_code(s, code)
            return _ward_read(ward, ward.site.code, _bed_counts(s).get(ward.id, 0))

    # --- internals -----------------------------------------------------------------------

    def _add_beds(
        self,
        tx: Tx,
        site: Site,
        ward: Ward,
        have: int,
        count: int,
        *,
        staffed: int | None,
        side_rooms: int,
        actor: Actor,
        side_room_offset: int = 0,
    ) -> int:
        if count <= 0:
            return 0
        now = self.clock.now()
        width = max(2, len(str(have + count)))
        beds, events = [], []
        for n in range(have + 1, have + count + 1):
            closed = staffed is not None and n > staffed
            state = BedState.CLOSED if closed else BedState.AVAILABLE
            bed_id = new_id("bed")
            code = f"{ward.code}-{n:0{width}d}"
            beds.append(
                {
                    "id": bed_id,
                    "ward_id": ward.id,
                    "code": code,
                    "virtual": site.kind == "virtual_ward",
                    "side_room": n - side_room_offset <= side_rooms and n > side_room_offset,
                    "state": state.value,
                    "state_since": now,
                    "state_reason": UNSTAFFED if closed else None,
                    "stay_id": None,
                    "version": 1,
                }
            )
            events.append(
                {
                    "at": now,
                    "type": "bed.created",
                    "actor": actor.label,
                    "site_id": site.id,
                    "ward_id": ward.id,
                    "bed_id": bed_id,
                    "stay_id": None,
                    "from_state": None,
                    "to_state": state.value,
                    "reason": UNSTAFFED if closed else None,
                    "data": {"bed": code},
                }
            )
        tx.session.flush()
        tx.session.execute(insert(Bed), beds)
        for bed in beds:
            bed_counts.add(tx, ward.id, str(bed["state"]), +1)
        tx.session.execute(insert(EventRecord), events)
        return count


def _bump(s: Session) -> None:
    """Tell readers that cache the structure (wards, sites) that it changed."""
    s.execute(
        update(HealthSystem)
        .where(HealthSystem.id == 1)
        .values(structure_version=HealthSystem.structure_version + 1)
    )


def _require_no_other_sex(s: Session, ward: Ward, policy: str) -> None:
    others = s.scalar(
        select(func.count())
        .select_from(Stay)
        .join(Bed, Stay.bed_id == Bed.id)
        .join(Patient, Stay.patient_id == Patient.id)
        .where(
            Bed.ward_id == ward.id,
            Stay.discharged_at.is_(None),
            Patient.sex.in_([x for x in ("male", "female") if x != policy]),
        )
    )
    if others:
        raise Conflict(
            f"ward {ward.code} has {others} patient(s) who are not {policy}: "
            f"move them before making it {policy}-only"
        )


def _bed_counts(s: Session) -> dict[str, int]:
    return dict(s.execute(select(Bed.ward_id, func.count()).group_by(Bed.ward_id)).all())


def _new_site(s: Session, spec: SiteSpec) -> Site:
    site = Site(id=new_id("site"), **spec.model_dump(exclude={"wards"}))
    s.add(site)
    s.flush()
    return site


def _update_site(site: Site, spec: SiteSpec) -> None:
    if site.kind != spec.kind:
        raise ValidationFailed(
            f"site {site.code} is a {site.kind}; the file says {spec.kind}: a site's kind "
            f"cannot change"
        )
    for key, value in spec.model_dump(exclude={"wards", "code", "kind"}).items():
        setattr(site, key, value)


_WARD_ATTRS = (
    "name",
    "specialty",
    "kind",
    "age_group",
    "general_acute",
    "sex_policy",
    "pas_point_of_care",
    "pas_beds",
)


def _new_ward(s: Session, site: Site, spec: WardSpec) -> Ward:
    ward = Ward(
        id=new_id("ward"),
        site_id=site.id,
        code=spec.code,
        **{k: getattr(spec, k) for k in _WARD_ATTRS},
    )
    s.add(ward)
    s.flush()
    return ward


def _update_ward(ward: Ward, site: Site, spec: WardSpec) -> None:
    if ward.site_id != site.id:
        raise ValidationFailed(f"ward {ward.code} already belongs to another site")
    for key in _WARD_ATTRS:
        setattr(ward, key, getattr(spec, key))


def _ward_read(ward: Ward, site_code: str, beds: int) -> WardRead:
    return WardRead(
        id=ward.id,
        code=ward.code,
        site=site_code,
        name=ward.name,
        specialty=ward.specialty,
        kind=ward.kind,
        age_group=ward.age_group,
        general_acute=ward.general_acute,
        sex_policy=ward.sex_policy,
        bed_count=beds,
    )


def _ward_by_code(s: Session, code: str) -> Ward:
    ward = s.scalar(select(Ward).where(Ward.code == code))
    if ward is None:
        raise NotFound(f"no ward with code {code!r}")
    return ward
