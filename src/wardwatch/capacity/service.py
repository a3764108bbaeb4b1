"""Beds and stays: the only writer of bed states and patients' stays.

Every method runs in one transaction that also appends to the event log; events reach live
subscribers only after the commit. Bed rows are locked (PostgreSQL ``FOR UPDATE``; SQLite
serialises writers with ``BEGIN IMMEDIATE``) and version-checked, so two clients allocating
the same bed at the same moment cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, Patient, Site, Stay, Ward
from wardwatch.capacity.nhs import nhs_number_problem, normalise_nhs_number
from wardwatch.capacity.schemas import (
    AdmitRequest,
    BedRead,
    DischargeRequest,
    PatientIn,
    StayRead,
    StayUpdate,
    TransferRequest,
)
from wardwatch.capacity.states import (
    ADMITTABLE,
    CLEANING_TRANSITIONS,
    BedState,
    check_manual,
)
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.session import Database, Tx


@dataclass(frozen=True, slots=True)
class BedFilter:
    site: str | None = None
    ward: str | None = None
    state: BedState | None = None
    code: str | None = None
    limit: int = 500
    offset: int = 0


class CapacityService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # --- reads ---------------------------------------------------------------------------

    def list_beds(self, f: BedFilter) -> list[BedRead]:
        query = _bed_query()
        if f.site:
            query = query.where(Site.code == f.site)
        if f.ward:
            query = query.where(Ward.code == f.ward)
        if f.state:
            query = query.where(Bed.state == f.state.value)
        if f.code:
            query = query.where(Bed.code == f.code)
        query = query.order_by(Bed.code).limit(f.limit).offset(f.offset)
        now = self.clock.now()
        with self.db.read() as s:
            return [_bed_read(b, w, st, now) for b, w, st in s.execute(query)]

    def get_bed(self, bed_id: str) -> BedRead:
        with self.db.read() as s:
            row = s.execute(_bed_query().where(Bed.id == bed_id)).first()
            if row is None:
                raise NotFound(f"no bed with id {bed_id!r}")
            return _bed_read(*row, self.clock.now())

    def get_stay(self, stay_id: str) -> StayRead:
        with self.db.read() as s:
            row = s.execute(_stay_query().where(Stay.id == stay_id)).first()
            if row is None:
                raise NotFound(f"no stay with id {stay_id!r}")
            return _stay_read(*row, self.clock.now())

    def list_stays(
        self,
        *,
        active: bool = True,
        site: str | None = None,
        ward: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[StayRead]:
        query = _stay_query()
        if active:
            query = query.where(Stay.discharged_at.is_(None))
        if site:
            query = query.where(Site.code == site)
        if ward:
            query = query.where(Ward.code == ward)
        query = query.order_by(Stay.admitted_at).limit(limit).offset(offset)
        now = self.clock.now()
        with self.db.read() as s:
            return [_stay_read(*row, now) for row in s.execute(query)]

    # --- bed states ------------------------------------------------------------------------

    def change_bed_state(
        self,
        bed_id: str,
        target: BedState,
        reason: str | None,
        actor: Actor,
        *,
        cleaning_only: bool = False,
    ) -> BedRead:
        with self.db.transaction() as tx:
            bed = _lock_bed(tx.session, bed_id)
            current = BedState(bed.state)
            problem = check_manual(current, target, reason)
            if problem:
                raise Conflict(f"bed {bed.code}: {problem}")
            if cleaning_only and (current, target) not in CLEANING_TRANSITIONS:
                raise Forbidden(
                    f"your role may only move beds through cleaning, not "
                    f"{current.value} to {target.value}"
                )
            self._set_state(tx, bed, target, actor, "bed.state_changed", reason=reason)
        return self.get_bed(bed_id)

    # --- patients ------------------------------------------------------------------------

    def admit(self, req: AdmitRequest, actor: Actor) -> StayRead:
        patient_in = _validated_patient(req.patient)
        with self.db.transaction() as tx:
            bed = _lock_bed(tx.session, req.bed_id)
            _require_admittable(bed)
            patient = _find_or_create_patient(tx.session, patient_in)
            _check_sex_policy(bed.ward, patient)
            _require_no_open_stay(tx.session, patient)
            now = self.clock.now()
            stay = Stay(
                id=new_id("stay"),
                patient_id=patient.id,
                bed_id=bed.id,
                admitted_at=now,
                source=req.source,
                expected_discharge_date=req.expected_discharge_date,
            )
            tx.session.add(stay)
            tx.session.flush()
            self._set_state(tx, bed, BedState.OCCUPIED, actor, "stay.admitted", stay_id=stay.id)
            tx.audit(at=now, actor=actor, action="create", resource="stay", ids=[stay.id])
            stay_id = stay.id
        return self.get_stay(stay_id)

    def transfer(self, stay_id: str, req: TransferRequest, actor: Actor) -> StayRead:
        with self.db.transaction() as tx:
            stay = _open_stay(tx.session, stay_id)
            if stay.bed_id == req.bed_id:
                raise Conflict("the patient is already in that bed")
            # Lock both beds in a fixed order so two crossing transfers cannot deadlock.
            first, second = sorted([stay.bed_id, req.bed_id])
            locked = {b: _lock_bed(tx.session, b) for b in (first, second)}
            source, target = locked[stay.bed_id], locked[req.bed_id]
            _require_admittable(target)
            _check_sex_policy(target.ward, stay.patient)
            data = {"from_bed": source.code, "to_bed": target.code}
            self._set_state(
                tx,
                source,
                BedState.AWAITING_CLEAN,
                actor,
                "stay.transferred_out",
                stay_id=None,
                log_stay_id=stay.id,
                reason=req.reason,
                data=data,
            )
            self._set_state(
                tx,
                target,
                BedState.OCCUPIED,
                actor,
                "stay.transferred_in",
                stay_id=stay.id,
                reason=req.reason,
                data=data,
            )
            stay.bed_id = target.id
            tx.audit(
                at=self.clock.now(),
                actor=actor,
                action="update",
                resource="stay",
                ids=[stay.id],
                detail="transfer",
            )
        return self.get_stay(stay_id)

    def discharge(self, stay_id: str, req: DischargeRequest, actor: Actor) -> StayRead:
        with self.db.transaction() as tx:
            stay = _open_stay(tx.session, stay_id)
            bed = _lock_bed(tx.session, stay.bed_id)
            now = self.clock.now()
            stay.discharged_at = now
            stay.discharge_destination = req.destination
            stay.discharge_pathway = req.pathway
            self._set_state(
                tx,
                bed,
                BedState.AWAITING_CLEAN,
                actor,
                "stay.discharged",
                stay_id=None,
                log_stay_id=stay.id,
                data={"destination": req.destination, "pathway": req.pathway},
            )
            tx.audit(
                at=now,
                actor=actor,
                action="update",
                resource="stay",
                ids=[stay.id],
                detail="discharge",
            )
        return self.get_stay(stay_id)

    def update_stay(self, stay_id: str, req: StayUpdate, actor: Actor) -> StayRead:
        changes = req.model_dump(exclude_unset=True)
        if not changes:
            raise ValidationFailed(
                "nothing to change: give expected_discharge_date or discharge_ready_date"
            )
        with self.db.transaction() as tx:
            stay = _open_stay(tx.session, stay_id)
            bed = tx.session.get_one(Bed, stay.bed_id)
            for key, value in changes.items():
                setattr(stay, key, value)
            now = self.clock.now()
            tx.record(
                "stay.updated",
                at=now,
                actor=actor,
                bed_id=bed.id,
                stay_id=stay.id,
                ward_id=bed.ward_id,
                ward_code=bed.ward.code,
                site_id=bed.ward.site_id,
                site_code=bed.ward.site.code,
                data={k: v.isoformat() if v else None for k, v in changes.items()},
            )
            tx.audit(
                at=now,
                actor=actor,
                action="update",
                resource="stay",
                ids=[stay.id],
                detail=",".join(sorted(changes)),
            )
        return self.get_stay(stay_id)

    # --- internals -----------------------------------------------------------------------

    def _set_state(
        self,
        tx: Tx,
        bed: Bed,
        target: BedState,
        actor: Actor,
        event_type: str,
        *,
        stay_id: str | None = None,
        log_stay_id: str | None = None,
        reason: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> None:
        now = self.clock.now()
        previous, since = bed.state, bed.state_since
        bed.state = target.value
        bed.state_since = now
        bed.state_reason = reason if target in (BedState.BLOCKED, BedState.CLOSED) else None
        bed.stay_id = stay_id
        payload: dict[str, object] = {
            "bed": bed.code,
            "seconds_in_previous": max(0.0, (now - since).total_seconds()),
        }
        payload.update(data or {})
        tx.record(
            event_type,
            at=now,
            actor=actor,
            site_id=bed.ward.site_id,
            site_code=bed.ward.site.code,
            ward_id=bed.ward_id,
            ward_code=bed.ward.code,
            bed_id=bed.id,
            stay_id=stay_id or log_stay_id,
            from_state=previous,
            to_state=target.value,
            reason=reason,
            data=payload,
        )


def _bed_query() -> Select[Bed, Ward, Site]:
    return (
        select(Bed, Ward, Site)
        .join(Ward, Bed.ward_id == Ward.id)
        .join(Site, Ward.site_id == Site.id)
    )


def _stay_query() -> Select[Stay, Patient, Bed, Ward, Site]:
    return (
        select(Stay, Patient, Bed, Ward, Site)
        .join(Patient, Stay.patient_id == Patient.id)
        .join(Bed, Stay.bed_id == Bed.id)
        .join(Ward, Bed.ward_id == Ward.id)
        .join(Site, Ward.site_id == Site.id)
    )


def _bed_read(bed: Bed, ward: Ward, site: Site, now: datetime) -> BedRead:
    return BedRead(
        id=bed.id,
        code=bed.code,
        ward=ward.code,
        site=site.code,
        virtual=bed.virtual,
        side_room=bed.side_room,
        state=BedState(bed.state),
        state_since=bed.state_since,
        state_reason=bed.state_reason,
        seconds_in_state=max(0.0, (now - bed.state_since).total_seconds()),
        stay_id=bed.stay_id,
    )


def _stay_read(
    stay: Stay, patient: Patient, bed: Bed, ward: Ward, site: Site, now: datetime
) -> StayRead:
    end = stay.discharged_at or now
    return StayRead(
        id=stay.id,
        bed_id=bed.id,
        bed_code=bed.code,
        ward=ward.code,
        site=site.code,
        nhs_number=patient.nhs_number,
        local_id=patient.local_id,
        sex=patient.sex,
        admitted_at=stay.admitted_at,
        source=stay.source,
        expected_discharge_date=stay.expected_discharge_date,
        discharge_ready_date=stay.discharge_ready_date,
        discharged_at=stay.discharged_at,
        discharge_destination=stay.discharge_destination,
        discharge_pathway=stay.discharge_pathway,
        length_of_stay_days=round((end - stay.admitted_at).total_seconds() / 86400, 2),
    )


def _lock_bed(session: Session, bed_id: str) -> Bed:
    bed = session.execute(
        select(Bed).where(Bed.id == bed_id).with_for_update()
    ).scalar_one_or_none()
    if bed is None:
        raise NotFound(f"no bed with id {bed_id!r}")
    return bed


def _require_admittable(bed: Bed) -> None:
    if BedState(bed.state) not in ADMITTABLE:
        hint = " (it has a patient in it)" if bed.state == BedState.OCCUPIED else ""
        raise Conflict(
            f"bed {bed.code} is {bed.state}{hint}: a patient can only be admitted "
            f"or moved into an available or reserved bed"
        )


def _open_stay(session: Session, stay_id: str) -> Stay:
    stay = session.get(Stay, stay_id)
    if stay is None:
        raise NotFound(f"no stay with id {stay_id!r}")
    if stay.discharged_at is not None:
        raise Conflict(f"stay {stay_id} was already discharged at {stay.discharged_at.isoformat()}")
    return stay


def _validated_patient(p: PatientIn) -> PatientIn:
    if p.nhs_number is None:
        return p
    problem = nhs_number_problem(p.nhs_number)
    if problem:
        raise ValidationFailed(f"patient.nhs_number: {problem}")
    return p.model_copy(update={"nhs_number": normalise_nhs_number(p.nhs_number)})


def _find_or_create_patient(session: Session, p: PatientIn) -> Patient:
    by_nhs = (
        session.execute(select(Patient).where(Patient.nhs_number == p.nhs_number)).scalar()
        if p.nhs_number
        else None
    )
    by_local = (
        session.execute(select(Patient).where(Patient.local_id == p.local_id)).scalar()
        if p.local_id
        else None
    )
    if by_nhs and by_local and by_nhs.id != by_local.id:
        raise Conflict("the NHS number and the local id belong to two different patients")
    patient = by_nhs or by_local
    if patient is None:
        patient = Patient(id=new_id("pat"), nhs_number=p.nhs_number, local_id=p.local_id, sex=p.sex)
        session.add(patient)
        session.flush()
        return patient
    if p.nhs_number and patient.nhs_number is None:
        patient.nhs_number = p.nhs_number
    if p.local_id and patient.local_id is None:
        patient.local_id = p.local_id
    if p.sex and p.sex != "unknown":
        patient.sex = p.sex
    return patient


def _require_no_open_stay(session: Session, patient: Patient) -> None:
    open_bed = session.execute(
        select(Bed.code)
        .join(Stay, Stay.bed_id == Bed.id)
        .where(Stay.patient_id == patient.id, Stay.discharged_at.is_(None))
    ).scalar()
    if open_bed is not None:
        raise Conflict(f"this patient is already admitted (bed {open_bed}): transfer them instead")


def _check_sex_policy(ward: Ward, patient: Patient) -> None:
    if (
        ward.sex_policy in ("male", "female")
        and patient.sex in ("male", "female")
        and patient.sex != ward.sex_policy
    ):
        raise Conflict(
            f"ward {ward.code} is {ward.sex_policy}-only; this patient is recorded "
            f"as {patient.sex} (a mixed-sex breach)"
        )


def count_open_stays(session: Session) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Stay).where(Stay.discharged_at.is_(None))
        ).scalar_one()
    )
