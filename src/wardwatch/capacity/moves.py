"""Bed and patient moves inside an open transaction: the one place bed states change.

:class:`CapacityService` wraps each move in its own transaction for the API and CLI; feeds
(HL7 ADT) run several moves and their own bookkeeping in one transaction, so a message is
acknowledged only when everything it did is durable.

Times: a move may say when it really happened (a feed's event time). The bed's clock never
runs backwards: the time recorded is clamped between the bed's last change and now.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from wardwatch.capacity.lookups import (
    check_sex_policy,
    find_or_create_patient,
    lock_bed,
    lock_two,
    remember_open_stay,
    require_admittable,
    require_no_open_stay,
    require_open,
    validated_patient,
)
from wardwatch.capacity.models import Bed, Stay
from wardwatch.capacity.pending import PendingMoves
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.states import CLEANING_TRANSITIONS, BedState, check_manual
from wardwatch.core.actor import Actor
from wardwatch.core.errors import Conflict, Forbidden
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Tx

S = BedState
#: Where a bed may be taken back from when a discharge or transfer is cancelled.
#: (A reserved bed is held for someone: it is never taken back.)
RECLAIMABLE = frozenset({S.AWAITING_CLEAN, S.CLEANING, S.AVAILABLE})


def vacated(bed: Bed) -> BedState:
    """The state a bed is left in when its patient goes: a physical bed needs cleaning; a
    virtual-ward place (a patient at home) is free again at once."""
    return S.AVAILABLE if bed.virtual else S.AWAITING_CLEAN


class BedMoves(PendingMoves):
    """Every move of a bed or a patient, inside the caller's transaction."""

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
        locked: Bed | None = None,
    ) -> Bed:
        """A manual change of state. ``locked``: the bed, if the caller already locked it."""
        bed = locked if locked is not None and locked.id == bed_id else lock_bed(tx.session, bed_id)
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
            patient=patient,  # read before the flush, as the row is
            bed_id=bed.id,
            admitted_at=when,
            source=source,
            expected_discharge_date=expected_discharge_date,
            visit_number=visit_number,
        )
        s.add(stay)  # flushed with the rest (a savepoint flushes at its end)
        remember_open_stay(s, stay)
        self.take_reservation(tx, bed.id, patient.id)
        self.set_state(tx, bed, S.OCCUPIED, actor, "stay.admitted", stay_id=stay.id, at=when)
        self.close_pending(tx, patient.id, "admit", "done", actor, at=when)
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
            vacated(source),
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
        self.take_reservation(tx, target.id, stay.patient_id)
        self.close_pending(tx, stay.patient_id, "transfer", "done", actor, at=when)
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
        cleaning: str = "standard",
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
            vacated(bed),
            actor,
            "stay.discharged",
            log_stay_id=stay.id,
            at=when,
            data={"destination": destination, "pathway": pathway, "cleaning": cleaning},
        )
        self.close_pendings(
            tx, stay.patient_id, {"discharge": "done", "transfer": "cancelled"}, actor, at=when
        )
        _audit_stay(tx, stay, actor, when, "discharge")
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
        admitted = self._logged(tx.session, bed.id, stay.id, "stay.admitted")
        if admitted is None:
            # Moved since (a transfer, a swap): the bed it lies in now was never its
            # admission's, so there is nothing there to put back exactly, and the bed it
            # left has been dealt with since. Someone must decide what is true.
            raise Conflict(
                f"the patient has moved since the admission (now in bed {bed.code}): "
                "cancel the move first (A12 for a transfer), then the admission"
            )
        before = _restored(admitted.from_state)
        if before == S.RESERVED and not self.reopen_pending(tx, stay.patient_id, "admit", bed.id):
            before = S.AVAILABLE
        when = self.when(bed, at)
        stay.discharged_at = when
        stay.cancelled_at = when
        for kind in ("transfer", "discharge"):
            self.close_pending(tx, stay.patient_id, kind, "cancelled", actor, at=when)
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
        _audit_stay(tx, stay, actor, when, "admission cancelled")
        return stay

    def cancel_transfer(
        self, tx: Tx, stay: Stay, actor: Actor, *, at: datetime | None = None
    ) -> Stay:
        """Undo the last transfer: back to the bed the patient came from."""
        require_open(stay)
        last = self._last_open_transfer(tx.session, stay)
        if last is None or last.bed_id is None:
            raise Conflict("this stay has no transfer to cancel")
        current, previous = lock_two(tx.session, stay.bed_id, last.bed_id)
        if BedState(previous.state) not in RECLAIMABLE:
            held = " (held for another patient)" if previous.state == S.RESERVED.value else ""
            raise Conflict(
                f"cannot cancel the transfer: the previous bed {previous.code} is "
                f"now {previous.state}{held}"
            )
        before = self._state_before(tx.session, current.id, stay.id, "stay.transferred_in")
        if before == S.RESERVED and not self.reopen_pending(
            tx, stay.patient_id, "transfer", current.id
        ):
            before = S.AVAILABLE
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
        _audit_stay(tx, stay, actor, when, "transfer cancelled")
        return stay

    @staticmethod
    def _last_open_transfer(s: Session, stay: Stay) -> EventRecord | None:
        """The stay's latest transfer that no later cancellation has undone."""
        events = s.scalars(
            select(EventRecord)
            .where(
                EventRecord.stay_id == stay.id,
                EventRecord.type.in_(["stay.transferred_out", "stay.transfer_cancelled_out"]),
            )
            .order_by(EventRecord.seq)
        ).all()
        undone: list[EventRecord] = []
        for event in events:
            if event.type == "stay.transferred_out":
                undone.append(event)
            elif undone:
                undone.pop()
        return undone[-1] if undone else None

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
            held = " (held for another patient)" if bed.state == S.RESERVED.value else ""
            raise Conflict(f"cannot cancel the discharge: bed {bed.code} is now {bed.state}{held}")
        require_no_open_stay(tx.session, stay.patient)
        when = self.when(bed, at)
        stay.discharged_at = None
        stay.discharge_destination = None
        stay.discharge_pathway = None
        remember_open_stay(tx.session, stay)
        self.set_state(
            tx, bed, S.OCCUPIED, actor, "stay.discharge_cancelled", stay_id=stay.id, at=when
        )
        _audit_stay(tx, stay, actor, when, "discharge cancelled")
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
        _audit_stay(tx, stay, actor, when, "leave started" if out else "leave ended")
        self.log(
            tx,
            bed,
            "stay.leave_started" if out else "stay.leave_ended",
            actor,
            at=when,
            stay_id=stay.id,
        )

    def _logged(
        self, s: Session, bed_id: str, stay_id: str, event_type: str
    ) -> Row[int, str | None] | None:
        """The stay's last ``event_type`` event on this bed (its from_state), if any."""
        return s.execute(
            select(EventRecord.seq, EventRecord.from_state)
            .where(
                EventRecord.bed_id == bed_id,
                EventRecord.stay_id == stay_id,
                EventRecord.type == event_type,
            )
            .order_by(EventRecord.seq.desc())
            .limit(1)
        ).first()

    def _state_before(self, s: Session, bed_id: str, stay_id: str, event_type: str) -> BedState:
        logged = self._logged(s, bed_id, stay_id, event_type)
        return _restored(logged.from_state if logged is not None else None)


def _restored(from_state: str | None) -> BedState:
    """The state a bed goes back to when the move that took it from ``from_state`` is undone
    (never occupied: its patient is the one leaving)."""
    state = BedState(from_state) if from_state else S.AVAILABLE
    return S.AVAILABLE if state == S.OCCUPIED else state


def _audit_stay(tx: Tx, stay: Stay, actor: Actor, when: datetime, detail: str) -> None:
    tx.audit(at=when, actor=actor, action="update", resource="stay", ids=[stay.id], detail=detail)
