"""Bed and patient moves inside an open transaction: the one place bed states change.

:class:`CapacityService` wraps each move in its own transaction for the API and CLI; feeds
(HL7 ADT) run several moves and their own bookkeeping in one transaction, so a message is
acknowledged only when everything it did is durable.

Times: a move may say when it really happened (a feed's event time). The bed's clock never
runs backwards: the time recorded is clamped between the bed's last change and now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.capacity import counts
from wardwatch.capacity.models import Bed, Patient, PendingMove, Stay
from wardwatch.capacity.nhs import nhs_number_problem, normalise_nhs_number
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.states import ADMITTABLE, CLEANING_TRANSITIONS, BedState, check_manual
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Tx

S = BedState
#: Where a bed may be taken back from when a discharge or transfer is cancelled.
RECLAIMABLE = frozenset({S.AWAITING_CLEAN, S.CLEANING, S.AVAILABLE, S.RESERVED})


class BedMoves:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    # --- beds ----------------------------------------------------------------------------

    def change_state(
        self,
        tx: Tx,
        bed_id: str,
        target: BedState,
        reason: str | None,
        actor: Actor,
        *,
        cleaning_only: bool = False,
        at: datetime | None = None,
    ) -> Bed:
        bed = lock_bed(tx.session, bed_id)
        current = BedState(bed.state)
        problem = check_manual(current, target, reason)
        if problem:
            raise Conflict(f"bed {bed.code}: {problem}")
        if cleaning_only and (current, target) not in CLEANING_TRANSITIONS:
            raise Forbidden(
                f"your role may only move beds through cleaning, not "
                f"{current.value} to {target.value}"
            )
        self.set_state(tx, bed, target, actor, "bed.state_changed", reason=reason, at=at)
        return bed

    def set_state(
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
        at: datetime | None = None,
    ) -> datetime:
        """Write a bed's new state and its event; returns the time recorded."""
        when = self.when(bed, at)
        previous, since = bed.state, bed.state_since
        if previous != target.value:
            counts.add(tx, bed.ward_id, previous, -1)
            counts.add(tx, bed.ward_id, target.value, +1)
        bed.state = target.value
        bed.state_since = when
        bed.state_reason = reason if target in (S.BLOCKED, S.CLOSED) else None
        bed.stay_id = stay_id
        payload: dict[str, object] = {
            "bed": bed.code,
            "seconds_in_previous": max(0.0, (when - since).total_seconds()),
        }
        payload.update(data or {})
        self.log(
            tx,
            bed,
            event_type,
            actor,
            at=when,
            stay_id=stay_id or log_stay_id,
            from_state=previous,
            to_state=target.value,
            reason=reason,
            data=payload,
        )
        return when

    def log(
        self,
        tx: Tx,
        bed: Bed,
        event_type: str,
        actor: Actor,
        *,
        at: datetime,
        stay_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> None:
        tx.record(
            event_type,
            at=at,
            actor=actor,
            site_id=bed.ward.site_id,
            site_code=bed.ward.site.code,
            ward_id=bed.ward_id,
            ward_code=bed.ward.code,
            bed_id=bed.id,
            stay_id=stay_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=dict(data or {"bed": bed.code}),
        )

    def when(self, bed: Bed, at: datetime | None) -> datetime:
        now = self.clock.now()
        if at is None:
            return now
        if at.tzinfo is None:
            raise ValidationFailed("event times must carry a time zone")
        return min(now, max(at, bed.state_since))

    # --- patients ------------------------------------------------------------------------

    def admit(
        self,
        tx: Tx,
        bed_id: str,
        patient_in: PatientIn,
        actor: Actor,
        *,
        at: datetime | None = None,
        source: str | None = None,
        expected_discharge_date: object = None,
        visit_number: str | None = None,
    ) -> Stay:
        s = tx.session
        patient = find_or_create_patient(s, validated_patient(patient_in))
        bed = lock_bed(s, bed_id)
        require_admittable(bed)
        check_sex_policy(bed, patient)
        require_no_open_stay(s, patient)
        when = self.when(bed, at)
        stay = Stay(
            id=new_id("stay"),
            patient_id=patient.id,
            bed_id=bed.id,
            admitted_at=when,
            source=source,
            expected_discharge_date=expected_discharge_date,
            visit_number=visit_number,
        )
        s.add(stay)
        s.flush()
        self.set_state(tx, bed, S.OCCUPIED, actor, "stay.admitted", stay_id=stay.id, at=when)
        self._close_pending(tx, patient.id, "admit", "done", actor)
        tx.audit(at=when, actor=actor, action="create", resource="stay", ids=[stay.id])
        return stay

    def transfer(
        self,
        tx: Tx,
        stay: Stay,
        bed_id: str,
        actor: Actor,
        *,
        at: datetime | None = None,
        reason: str | None = None,
        event: str = "transfer",
    ) -> Stay:
        require_open(stay)
        if stay.bed_id == bed_id:
            raise Conflict("the patient is already in that bed")
        source, target = lock_two(tx.session, stay.bed_id, bed_id)
        require_admittable(target)
        check_sex_policy(target, stay.patient)
        when = max(self.when(source, at), self.when(target, at))
        data = {"from_bed": source.code, "to_bed": target.code}
        self.set_state(
            tx,
            source,
            S.AWAITING_CLEAN,
            actor,
            f"stay.{event}red_out",
            log_stay_id=stay.id,
            reason=reason,
            data=data,
            at=when,
        )
        self.set_state(
            tx,
            target,
            S.OCCUPIED,
            actor,
            f"stay.{event}red_in",
            stay_id=stay.id,
            reason=reason,
            data=data,
            at=when,
        )
        stay.bed_id = target.id
        self._close_pending(tx, stay.patient_id, "transfer", "done", actor)
        tx.audit(
            at=when, actor=actor, action="update", resource="stay", ids=[stay.id], detail=event
        )
        return stay

    def discharge(
        self,
        tx: Tx,
        stay: Stay,
        actor: Actor,
        *,
        destination: str | None,
        pathway: int | None,
        at: datetime | None = None,
    ) -> Stay:
        require_open(stay)
        bed = lock_bed(tx.session, stay.bed_id)
        when = self.when(bed, at)
        stay.discharged_at = when
        stay.discharge_destination = destination
        stay.discharge_pathway = pathway
        stay.on_leave_since = None
        self.set_state(
            tx,
            bed,
            S.AWAITING_CLEAN,
            actor,
            "stay.discharged",
            log_stay_id=stay.id,
            at=when,
            data={"destination": destination, "pathway": pathway},
        )
        self._close_pending(tx, stay.patient_id, "discharge", "done", actor)
        tx.audit(
            at=when,
            actor=actor,
            action="update",
            resource="stay",
            ids=[stay.id],
            detail="discharge",
        )
        return stay

    # --- undoing (HL7 A11, A12, A13) -----------------------------------------------------

    def cancel_admission(
        self, tx: Tx, stay: Stay, actor: Actor, *, at: datetime | None = None
    ) -> Stay:
        """Undo an admission: the bed goes back to the state it was in before.

        If the admission used a bed reserved for this patient, the reservation and its
        pending admission come back too.
        """
        require_open(stay)
        bed = lock_bed(tx.session, stay.bed_id)
        before = self._state_before(tx.session, bed.id, stay.id, "stay.admitted")
        if before == S.RESERVED and not self._reopen_pending(tx.session, stay, bed):
            before = S.AVAILABLE
        when = self.when(bed, at)
        stay.discharged_at = when
        stay.cancelled_at = when
        self.set_state(
            tx,
            bed,
            before,
            actor,
            "stay.admission_cancelled",
            log_stay_id=stay.id,
            at=when,
            reason="expected admit" if before == S.RESERVED else None,
        )
        tx.audit(
            at=when,
            actor=actor,
            action="update",
            resource="stay",
            ids=[stay.id],
            detail="admission cancelled",
        )
        return stay

    def _reopen_pending(self, s: Session, stay: Stay, bed: Bed) -> bool:
        move = s.scalars(
            select(PendingMove)
            .where(
                PendingMove.patient_id == stay.patient_id,
                PendingMove.kind == "admit",
                PendingMove.status == "done",
                PendingMove.to_bed_id == bed.id,
            )
            .order_by(PendingMove.closed_at.desc())
            .limit(1)
        ).first()
        if move is None:
            return False
        move.status, move.closed_at = "pending", None
        return True

    def cancel_transfer(
        self, tx: Tx, stay: Stay, actor: Actor, *, at: datetime | None = None
    ) -> Stay:
        """Undo the last transfer: back to the bed the patient came from."""
        require_open(stay)
        last = tx.session.scalars(
            select(EventRecord)
            .where(EventRecord.stay_id == stay.id, EventRecord.type == "stay.transferred_out")
            .order_by(EventRecord.seq.desc())
            .limit(1)
        ).first()
        if last is None or last.bed_id is None:
            raise Conflict("this stay has no transfer to cancel")
        current, previous = lock_two(tx.session, stay.bed_id, last.bed_id)
        if BedState(previous.state) not in RECLAIMABLE:
            raise Conflict(
                f"cannot cancel the transfer: the previous bed {previous.code} is "
                f"now {previous.state}"
            )
        before = self._state_before(tx.session, current.id, stay.id, "stay.transferred_in")
        when = max(self.when(current, at), self.when(previous, at))
        data = {"from_bed": current.code, "to_bed": previous.code}
        self.set_state(
            tx,
            current,
            before,
            actor,
            "stay.transfer_cancelled_out",
            log_stay_id=stay.id,
            data=data,
            at=when,
        )
        self.set_state(
            tx,
            previous,
            S.OCCUPIED,
            actor,
            "stay.transfer_cancelled_in",
            stay_id=stay.id,
            data=data,
            at=when,
        )
        stay.bed_id = previous.id
        tx.audit(
            at=when,
            actor=actor,
            action="update",
            resource="stay",
            ids=[stay.id],
            detail="transfer cancelled",
        )
        return stay

    def cancel_discharge(
        self, tx: Tx, stay: Stay, actor: Actor, *, at: datetime | None = None
    ) -> Stay:
        """Undo a discharge: the patient is back in their bed, if nobody else has it."""
        if stay.discharged_at is None:
            raise Conflict("this stay is not discharged")
        if stay.cancelled_at is not None:
            raise Conflict("this admission was cancelled")
        bed = lock_bed(tx.session, stay.bed_id)
        if BedState(bed.state) not in RECLAIMABLE:
            raise Conflict(f"cannot cancel the discharge: bed {bed.code} is now {bed.state}")
        require_no_open_stay(tx.session, stay.patient)
        when = self.when(bed, at)
        stay.discharged_at = None
        stay.discharge_destination = None
        stay.discharge_pathway = None
        self.set_state(
            tx, bed, S.OCCUPIED, actor, "stay.discharge_cancelled", stay_id=stay.id, at=when
        )
        tx.audit(
            at=when,
            actor=actor,
            action="update",
            resource="stay",
            ids=[stay.id],
            detail="discharge cancelled",
        )
        return stay

    # --- swaps and leave -----------------------------------------------------------------

    def swap(self, tx: Tx, a: Stay, b: Stay, actor: Actor, *, at: datetime | None = None) -> None:
        """Two patients exchange beds (HL7 A17); both beds stay occupied."""
        require_open(a)
        require_open(b)
        bed_a, bed_b = lock_two(tx.session, a.bed_id, b.bed_id)
        check_sex_policy(bed_b, a.patient)
        check_sex_policy(bed_a, b.patient)
        when = max(self.when(bed_a, at), self.when(bed_b, at))
        # One open stay per bed is a unique index checked row by row: park b as closed for
        # the moment a moves, then move b and reopen it (all inside this transaction).
        b.discharged_at = when
        tx.session.flush()
        a.bed_id = bed_b.id
        tx.session.flush()
        b.bed_id, b.discharged_at = bed_a.id, None
        tx.session.flush()
        for bed, stay in ((bed_a, b), (bed_b, a)):
            self.set_state(
                tx,
                bed,
                S.OCCUPIED,
                actor,
                "stay.swapped",
                stay_id=stay.id,
                at=when,
                data={"swapped_with": (bed_b if bed is bed_a else bed_a).code},
            )
        tx.audit(
            at=when, actor=actor, action="update", resource="stay", ids=[a.id, b.id], detail="swap"
        )

    def leave(
        self, tx: Tx, stay: Stay, actor: Actor, *, out: bool, at: datetime | None = None
    ) -> None:
        """Leave of absence starts (A21) or ends (A22): the bed is held, still occupied."""
        require_open(stay)
        bed = lock_bed(tx.session, stay.bed_id)
        when = self.when(bed, at)
        if out == (stay.on_leave_since is not None):
            raise Conflict(
                "the patient is already on leave" if out else "the patient is not on leave"
            )
        stay.on_leave_since = when if out else None
        tx.audit(
            at=when,
            actor=actor,
            action="update",
            resource="stay",
            ids=[stay.id],
            detail="leave started" if out else "leave ended",
        )
        self.log(
            tx,
            bed,
            "stay.leave_started" if out else "stay.leave_ended",
            actor,
            at=when,
            stay_id=stay.id,
        )

    # --- pending moves (HL7 A05/A14, A15, A16 and their cancellations) ---------------------

    def expect(
        self,
        tx: Tx,
        kind: str,
        patient: Patient,
        actor: Actor,
        *,
        stay: Stay | None = None,
        to_bed_id: str | None = None,
        to_ward_id: str | None = None,
        expected_at: datetime | None = None,
        source: str | None = None,
    ) -> PendingMove:
        """Record an expected move; reserve the bed it names if that bed is available."""
        s = tx.session
        self._close_pending(tx, patient.id, kind, "cancelled", actor)  # newer plan replaces
        move = PendingMove(
            id=new_id("pend"),
            kind=kind,
            status="pending",
            patient_id=patient.id,
            stay_id=stay.id if stay else None,
            from_bed_id=stay.bed_id if stay else None,
            to_bed_id=to_bed_id,
            to_ward_id=to_ward_id,
            expected_at=expected_at,
            created_at=self.clock.now(),
            source=source,
        )
        if to_bed_id is not None:
            bed = lock_bed(s, to_bed_id)
            if bed.state == S.AVAILABLE.value:
                self.set_state(
                    tx,
                    bed,
                    S.RESERVED,
                    actor,
                    "bed.reserved",
                    reason=f"expected {kind}",
                    data={"pending": move.id},
                )
                move.reserved = True
        s.add(move)
        tx.audit(
            at=self.clock.now(),
            actor=actor,
            action="create",
            resource="pending",
            ids=[move.id],
            detail=f"expected {kind}",
        )
        data = {
            "pending": move.id,
            "kind": kind,
            "expected_at": expected_at.isoformat() if expected_at else None,
        }
        anchor = to_bed_id or (stay.bed_id if stay else None)
        if anchor:
            self.log(
                tx,
                lock_bed(s, anchor),
                f"pending.{kind}",
                actor,
                at=self.clock.now(),
                stay_id=stay.id if stay else None,
                data=data,
            )
        else:
            tx.record(
                f"pending.{kind}", at=self.clock.now(), actor=actor, ward_id=to_ward_id, data=data
            )
        return move

    def cancel_expected(self, tx: Tx, kind: str, patient: Patient, actor: Actor) -> None:
        if not self._close_pending(tx, patient.id, kind, "cancelled", actor):
            raise Conflict(f"there is no pending {kind} for this patient to cancel")

    def _close_pending(self, tx: Tx, patient_id: str, kind: str, status: str, actor: Actor) -> int:
        """Close a patient's pending moves of ``kind``; release beds still held for them."""
        moves = tx.session.scalars(
            select(PendingMove).where(
                PendingMove.patient_id == patient_id,
                PendingMove.kind == kind,
                PendingMove.status == "pending",
            )
        ).all()
        for move in moves:
            move.status = status
            move.closed_at = self.clock.now()
            if move.reserved and move.to_bed_id:
                bed = lock_bed(tx.session, move.to_bed_id)
                if bed.state == S.RESERVED.value:
                    self.set_state(
                        tx,
                        bed,
                        S.AVAILABLE,
                        actor,
                        "bed.reservation_released",
                        data={"pending": move.id},
                    )
        return len(moves)

    def _state_before(self, s: Session, bed_id: str, stay_id: str, event_type: str) -> BedState:
        from_state = s.scalar(
            select(EventRecord.from_state)
            .where(
                EventRecord.bed_id == bed_id,
                EventRecord.stay_id == stay_id,
                EventRecord.type == event_type,
            )
            .order_by(EventRecord.seq.desc())
            .limit(1)
        )
        state = BedState(from_state) if from_state else S.AVAILABLE
        return S.AVAILABLE if state == S.OCCUPIED else state


# --- lookups and checks shared by the service and the feeds --------------------------------


def lock_bed(session: Session, bed_id: str) -> Bed:
    bed = session.execute(select(Bed).where(Bed.id == bed_id).with_for_update()).scalar()
    if bed is None:
        raise NotFound(f"no bed with id {bed_id!r}")
    return bed


def lock_two(session: Session, first_id: str, second_id: str) -> tuple[Bed, Bed]:
    """Lock two beds in a fixed order so two crossing moves cannot deadlock."""
    locked = {b: lock_bed(session, b) for b in sorted([first_id, second_id])}
    return locked[first_id], locked[second_id]


def require_admittable(bed: Bed) -> None:
    if BedState(bed.state) not in ADMITTABLE:
        hint = " (it has a patient in it)" if bed.state == S.OCCUPIED else ""
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
