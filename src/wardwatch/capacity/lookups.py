"""Lookups and checks shared by the moves, the service and the feeds (no writes but new
patients). Reads that precede a change lock their rows (PostgreSQL ``FOR UPDATE``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from wardwatch.capacity.models import Bed, Patient, Site, Stay, Ward
from wardwatch.capacity.nhs import nhs_number_problem, normalise_nhs_number
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.states import ADMITTABLE, BedState
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id


def site_by_code(session: Session, code: str) -> Site:
    """The site with ``code``, or a 404 that names it."""
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"no site with code {code!r}")
    return site


def lock_bed(session: Session, bed_id: str) -> Bed:
    """Read a bed (with its ward and site, which every move logs) and lock the bed's row."""
    bed = session.execute(
        select(Bed)
        .options(joinedload(Bed.ward).joinedload(Ward.site))
        .where(Bed.id == bed_id)
        .with_for_update(of=Bed)
    ).scalar()
    if bed is None:
        raise NotFound(f"no bed with id {bed_id!r}")
    return bed


def lock_two(session: Session, first_id: str, second_id: str) -> tuple[Bed, Bed]:
    """Lock two beds in a fixed order so two crossing moves cannot deadlock."""
    locked = {b: lock_bed(session, b) for b in sorted([first_id, second_id])}
    return locked[first_id], locked[second_id]


def require_admittable(bed: Bed) -> None:
    if BedState(bed.state) not in ADMITTABLE:
        hint = " (it has a patient in it)" if bed.state == BedState.OCCUPIED else ""
        raise Conflict(
            f"bed {bed.code} is {bed.state}{hint}: a patient can only be admitted "
            f"or moved into an available or reserved bed"
        )


def require_open(stay: Stay) -> None:
    if stay.discharged_at is not None:
        raise Conflict(f"stay {stay.id} was already discharged at {stay.discharged_at.isoformat()}")


def lock_stay(session: Session, stay_id: str) -> Stay | None:
    """Read a stay and lock it (PostgreSQL ``FOR UPDATE``) so two moves of one stay queue."""
    return session.scalars(
        select(Stay)
        .where(Stay.id == stay_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def open_stay(session: Session, stay_id: str) -> Stay:
    stay = lock_stay(session, stay_id)
    if stay is None:
        raise NotFound(f"no stay with id {stay_id!r}")
    require_open(stay)
    return stay


def open_stay_of(session: Session, patient: Patient) -> Stay | None:
    """The patient's open stay, locked (see :func:`lock_stay`)."""
    return session.scalars(
        select(Stay)
        .where(Stay.patient_id == patient.id, Stay.discharged_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def validated_patient(p: PatientIn) -> PatientIn:
    if p.nhs_number is None:
        return p
    problem = nhs_number_problem(p.nhs_number)
    if problem:
        raise ValidationFailed(f"patient.nhs_number: {problem}")
    return p.model_copy(update={"nhs_number": normalise_nhs_number(p.nhs_number)})


def find_patient(session: Session, p: PatientIn) -> Patient | None:
    by_nhs = (
        session.scalars(select(Patient).where(Patient.nhs_number == p.nhs_number)).first()
        if p.nhs_number
        else None
    )
    by_local = (
        session.scalars(select(Patient).where(Patient.local_id == p.local_id)).first()
        if p.local_id
        else None
    )
    if by_nhs and by_local and by_nhs.id != by_local.id:
        raise Conflict("the NHS number and the local id belong to two different patients")
    return by_nhs or by_local


def find_or_create_patient(session: Session, p: PatientIn) -> Patient:
    patient = find_patient(session, p)
    if patient is None:
        patient = Patient(id=new_id("pat"), nhs_number=p.nhs_number, local_id=p.local_id, sex=p.sex)
        session.add(patient)
        session.flush()
        return patient
    for field, given in (("nhs_number", p.nhs_number), ("local_id", p.local_id)):
        known = getattr(patient, field)
        if given and known and given != known:
            label = "NHS number" if field == "nhs_number" else "local id"
            raise Conflict(
                f"identity mismatch: this patient is on record with a different "
                f"{label}; check the identifiers before filing anything"
            )
        if given and not known:
            setattr(patient, field, given)
    if p.sex and p.sex != "unknown":
        patient.sex = p.sex
    return patient


def require_no_open_stay(session: Session, patient: Patient) -> None:
    stay = open_stay_of(session, patient)
    if stay is not None:
        code = session.scalar(select(Bed.code).where(Bed.id == stay.bed_id))
        raise Conflict(f"this patient is already admitted (bed {code}): transfer them instead")


def check_sex_policy(bed: Bed, patient: Patient) -> None:
    ward = bed.ward
    if (
        ward.sex_policy in ("male", "female")
        and patient.sex in ("male", "female")
        and patient.sex != ward.sex_policy
    ):
        raise Conflict(
            f"ward {ward.code} is {ward.sex_policy}-only; this patient is recorded "
            f"as {patient.sex} (a mixed-sex breach)"
        )
