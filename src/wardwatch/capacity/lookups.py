"""Lookups and checks shared by the moves, the service and the feeds (no writes but new
patients). Reads that precede a change lock their rows (PostgreSQL ``FOR UPDATE``).

A feed that applies many messages in one transaction (HL7 group commit) looks up what they
name in advance, a statement for all of them: :func:`lock_beds` locks their beds (in id
order) and :func:`know_patients` reads their patients. Both remember what they found for the
rest of the transaction (``Session.info``), so :func:`lock_bed` and :func:`find_patient`
then answer from memory. A step of the transaction that is rolled back forgets what it
added (``Database.step`` restores ``Session.info``), as PostgreSQL releases the row locks
taken inside a savepoint rolled back. Without them, every look-up reads the database.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from wardwatch.capacity.models import Bed, HealthSystem, Patient, Site, Stay, Ward
from wardwatch.capacity.nhs import nhs_number_problem, normalise_nhs_number
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.states import ADMITTABLE, BedState
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.filters import one_of
from wardwatch.db.session import made

#: ``Session.info`` keys: the beds this transaction has locked, by id; the patients it has
#: looked up, by ("nhs" | "local", identifier), None for "not on record"; and the open stays
#: it has locked, by patient id (None: no open stay then; a stay found closed since is none).
LOCKED_BEDS = "wardwatch.locked_beds"
KNOWN_PATIENTS = "wardwatch.known_patients"
OPEN_STAYS = "wardwatch.open_stays"


def lock_system(session: Session) -> bool:
    """Lock the health system's row for the rest of the transaction, so that one periodic
    checker runs at a time (SQLite: BEGIN IMMEDIATE already serialises writers). False when
    no system is loaded."""
    lock = select(HealthSystem.id).where(HealthSystem.id == 1).with_for_update()
    return session.scalar(lock) is not None


def site_by_code(session: Session, code: str) -> Site:
    """The site with ``code``, or a 404 that names it."""
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"no site with code {code!r}")
    return site


def lock_bed(session: Session, bed_id: str) -> Bed:
    """Read a bed (with its ward and site, which every move logs) and lock the bed's row."""
    locked: dict[str, Bed] | None = session.info.get(LOCKED_BEDS)
    if locked is not None and bed_id in locked:
        return locked[bed_id]  # locked already in this transaction (see lock_beds)
    bed = session.execute(
        select(Bed)
        .options(joinedload(Bed.ward).joinedload(Ward.site))
        .where(Bed.id == bed_id)
        .with_for_update(of=Bed)
    ).scalar()
    if bed is None:
        raise NotFound(f"no bed with id {bed_id!r}")
    if locked is not None:
        locked[bed_id] = bed
    return bed


def lock_beds(session: Session, bed_ids: Iterable[str]) -> None:
    """Lock these beds in one statement, in id order (so two such batches cannot deadlock
    on them), and remember them: :func:`lock_bed` of any bed of this transaction then reads
    nothing again. Unknown ids are left to :func:`lock_bed` to refuse."""
    locked: dict[str, Bed] = session.info.setdefault(LOCKED_BEDS, {})
    wanted = sorted(set(bed_ids) - locked.keys())
    if not wanted:
        return
    query = (
        select(Bed)
        .options(joinedload(Bed.ward).joinedload(Ward.site))
        .where(one_of(session, Bed.id, wanted))
        .order_by(Bed.id)
        .with_for_update(of=Bed)
    )
    for bed in session.scalars(query):
        locked[bed.id] = bed


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


def stay_here(session: Session, stay_id: str) -> Stay | None:
    """A stay this transaction holds (one it made and has not flushed yet included), without
    a flush or a read when it does; else read."""
    for obj in session.new:
        if isinstance(obj, Stay) and obj.id == stay_id:
            return obj
    return session.get(Stay, stay_id)


def open_stay_of(session: Session, patient: Patient) -> Stay | None:
    """The patient's open stay, locked (see :func:`lock_stay`)."""
    known: dict[str, Stay | None] | None = session.info.get(OPEN_STAYS)
    if known is not None and patient.id in known:
        stay = known[patient.id]  # locked already (know_open_stays, or a stay made here)
        return stay if stay is not None and stay.discharged_at is None else None
    stay = session.scalars(
        select(Stay)
        .where(Stay.patient_id == patient.id, Stay.discharged_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if stay is not None:  # locked: remembered (and held) for the rest of the transaction
        session.info.setdefault(OPEN_STAYS, {})[patient.id] = stay
    return stay


def know_open_stays(session: Session, patient_ids: Iterable[str]) -> list[Stay]:
    """Lock these patients' open stays in one statement and remember them (and who has
    none): :func:`open_stay_of` then reads nothing again. The stays."""
    known: dict[str, Stay | None] = session.info.setdefault(OPEN_STAYS, {})
    wanted = set(patient_ids) - known.keys()
    if not wanted:
        return []
    stays = list(
        session.scalars(
            select(Stay)
            .where(one_of(session, Stay.patient_id, wanted), Stay.discharged_at.is_(None))
            .order_by(Stay.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    known.update(dict.fromkeys(wanted))
    known.update((stay.patient_id, stay) for stay in stays)
    return stays


def remember_open_stay(session: Session, stay: Stay) -> None:
    """A stay made (or reopened) in this transaction is its patient's open stay now."""
    known: dict[str, Stay | None] | None = session.info.get(OPEN_STAYS)
    if known is not None:
        known[stay.patient_id] = stay


def validated_patient(p: PatientIn) -> PatientIn:
    if p.nhs_number is None:
        return p
    problem = nhs_number_problem(p.nhs_number)
    if problem:
        raise ValidationFailed(f"patient.nhs_number: {problem}")
    return p.model_copy(update={"nhs_number": normalise_nhs_number(p.nhs_number)})


def _by_identifier(session: Session, kind: str, value: str | None) -> Patient | None:
    if not value:
        return None
    # Remembered for the transaction, found or not (the identity map holds a patient only
    # while something else does): an admission asks once, not again when it files them.
    known: dict[tuple[str, str], Patient | None] = session.info.setdefault(KNOWN_PATIENTS, {})
    if (kind, value) in known:
        return known[(kind, value)]
    column = Patient.nhs_number if kind == "nhs" else Patient.local_id
    found = session.scalars(select(Patient).where(column == value)).first()
    known[(kind, value)] = found
    return found


def _remember(session: Session, patient: Patient) -> None:
    known: dict[tuple[str, str], Patient | None] = session.info.setdefault(KNOWN_PATIENTS, {})
    for kind, value in (("nhs", patient.nhs_number), ("local", patient.local_id)):
        if value:
            known[(kind, value)] = patient


def know_patients(session: Session, people: Iterable[PatientIn]) -> list[Patient]:
    """Look these patients up in one statement and remember who is on record and who is
    not: :func:`find_patient` of any of them then reads nothing again. The patients found."""
    known: dict[tuple[str, str], Patient | None] = session.info.setdefault(KNOWN_PATIENTS, {})
    asked = {(k, v) for p in people for k, v in (("nhs", p.nhs_number), ("local", p.local_id))}
    wanted = {(k, v) for k, v in asked if v and (k, v) not in known}
    if not wanted:
        return []
    nhs = [v for k, v in wanted if k == "nhs"]
    local = [v for k, v in wanted if k == "local"]
    found = list(
        session.scalars(
            select(Patient).where(
                or_(
                    one_of(session, Patient.nhs_number, nhs),
                    one_of(session, Patient.local_id, local),
                )
            )
        )
    )
    for key in wanted:
        known[key] = None
    for patient in found:
        for kind, value in (("nhs", patient.nhs_number), ("local", patient.local_id)):
            if value and ((kind, value) in wanted or (kind, value) not in known):
                known[(kind, value)] = patient
    return found


def find_patient(session: Session, p: PatientIn) -> Patient | None:
    by_nhs = _by_identifier(session, "nhs", p.nhs_number)
    by_local = _by_identifier(session, "local", p.local_id)
    if by_nhs and by_local and by_nhs.id != by_local.id:
        raise Conflict("the NHS number and the local id belong to two different patients")
    return by_nhs or by_local


def find_or_create_patient(session: Session, p: PatientIn) -> Patient:
    patient = find_patient(session, p)
    if patient is None:
        patient = Patient(id=new_id("pat"), nhs_number=p.nhs_number, local_id=p.local_id, sex=p.sex)
        session.add(patient)
        _remember(session, patient)
        # Nothing can name a patient before it exists: no stay, and whatever else the
        # domains registered (db.session.none_when_made).
        session.info.setdefault(OPEN_STAYS, {})[patient.id] = None
        made(session, "patient", patient.id)
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
            _remember(session, patient)
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
