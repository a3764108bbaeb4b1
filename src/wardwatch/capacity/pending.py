"""Expected moves (HL7 A05/A14 admissions, A15 transfers, A16 discharges) and their
cancellations (A25-A27): shown as expected arrivals and departures, holding a reservation on
the bed they name while it is available."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from wardwatch.capacity.lookups import lock_bed
from wardwatch.capacity.models import Patient, PendingMove, Stay
from wardwatch.capacity.states import BedState
from wardwatch.capacity.writer import BedWriter
from wardwatch.core.actor import Actor
from wardwatch.core.errors import Conflict
from wardwatch.core.ids import new_id
from wardwatch.db.filters import one_of
from wardwatch.db.session import Tx, absent, none_when_made, note_absent, now_present

S = BedState
#: Look-ahead kinds (``db.session.absent``): patients with no pending move; beds no pending
#: move holds a reservation on.
NO_PENDING = "pending_patient"
NOT_RESERVED = "reserved_bed"
none_when_made("patient", NO_PENDING)


def look_ahead(tx: Tx, patient_ids: frozenset[str], bed_ids: frozenset[str]) -> None:
    """Which of a batch's patients have no pending move, and which of its beds no pending
    move holds: one statement, so that their moves need not ask again."""
    s = tx.session
    if not (patient_ids or bed_ids):
        return
    query = select(PendingMove.patient_id, PendingMove.to_bed_id, PendingMove.reserved).where(
        PendingMove.status == "pending",
        or_(
            one_of(s, PendingMove.patient_id, patient_ids),
            one_of(s, PendingMove.to_bed_id, bed_ids),
        ),
    )
    with_moves, held = set(), set()
    for patient_id, bed_id, reserved in s.execute(query):
        with_moves.add(patient_id)
        if reserved and bed_id:
            held.add(bed_id)
    note_absent(s, NO_PENDING, patient_ids - with_moves)
    note_absent(s, NOT_RESERVED, bed_ids - held)


class PendingMoves(BedWriter):
    """A reservation belongs to the pending move that made it (``PendingMove.reserved``):
    only that move may release it, and a move that takes a bed reserved for someone else
    marks their reservation as lost."""

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
        at: datetime | None = None,
    ) -> PendingMove:
        """Record an expected move; reserve the bed it names if that bed is available."""
        s = tx.session
        self.close_pending(tx, patient.id, kind, "cancelled", actor, at=at)  # newer plan wins
        now = self.clock.now()
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
            created_at=now,
            source=source,
        )
        when = now if at is None else min(now, at)
        if to_bed_id is not None:
            bed = lock_bed(s, to_bed_id)
            if bed.state == S.AVAILABLE.value:
                when = self.set_state(
                    tx,
                    bed,
                    S.RESERVED,
                    actor,
                    "bed.reserved",
                    reason=f"expected {kind}",
                    data={"pending": move.id},
                    at=at,
                )
                move.reserved = True
                now_present(s, NOT_RESERVED, to_bed_id)
        s.add(move)
        now_present(s, NO_PENDING, patient.id)
        tx.audit(
            at=when,
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
                at=when,
                stay_id=stay.id if stay else None,
                data=data,
            )
        else:
            tx.record(f"pending.{kind}", at=when, actor=actor, ward_id=to_ward_id, data=data)
        return move

    def cancel_expected(
        self, tx: Tx, kind: str, patient: Patient, actor: Actor, *, at: datetime | None = None
    ) -> None:
        if not self.close_pending(tx, patient.id, kind, "cancelled", actor, at=at):
            raise Conflict(f"there is no pending {kind} for this patient to cancel")

    def close_pending(
        self,
        tx: Tx,
        patient_id: str,
        kind: str,
        status: str,
        actor: Actor,
        *,
        at: datetime | None = None,
    ) -> int:
        """Close a patient's pending moves of ``kind``; release the beds they still hold."""
        return self.close_pendings(tx, patient_id, {kind: status}, actor, at=at)

    def close_pendings(
        self,
        tx: Tx,
        patient_id: str,
        statuses: dict[str, str],
        actor: Actor,
        *,
        at: datetime | None = None,
    ) -> int:
        """Close a patient's pending moves of several kinds at once (``{kind: new status}``),
        in one query."""
        if patient_id in absent(tx.session, NO_PENDING):
            return 0
        moves = tx.session.scalars(
            select(PendingMove).where(
                PendingMove.patient_id == patient_id,
                PendingMove.kind.in_(list(statuses)),
                PendingMove.status == "pending",
            )
        ).all()
        for move in moves:
            move.status = statuses[move.kind]
            move.closed_at = self.clock.now()
            if move.reserved and move.to_bed_id:
                move.reserved = False
                bed = lock_bed(tx.session, move.to_bed_id)
                if bed.state == S.RESERVED.value:
                    self.set_state(
                        tx,
                        bed,
                        S.AVAILABLE,
                        actor,
                        "bed.reservation_released",
                        data={"pending": move.id},
                        at=at,
                    )
        return len(moves)

    def take_reservation(self, tx: Tx, bed_id: str, patient_id: str) -> None:
        """A patient is moving into ``bed_id``: any other patient's reservation of it is lost
        (their pending move stays open, no longer holding a bed)."""
        if bed_id in absent(tx.session, NOT_RESERVED):
            return
        others = tx.session.scalars(
            select(PendingMove).where(
                PendingMove.to_bed_id == bed_id,
                PendingMove.status == "pending",
                PendingMove.reserved.is_(True),
                PendingMove.patient_id != patient_id,
            )
        ).all()
        for move in others:
            move.reserved = False

    def holds_reservation(self, tx: Tx, bed_id: str, patient_id: str) -> bool:
        """Whether ``bed_id`` is reserved by a pending move of this patient."""
        if bed_id in absent(tx.session, NOT_RESERVED):
            return False
        return (
            tx.session.scalar(
                select(PendingMove.id)
                .where(
                    PendingMove.to_bed_id == bed_id,
                    PendingMove.status == "pending",
                    PendingMove.reserved.is_(True),
                    PendingMove.patient_id == patient_id,
                )
                .limit(1)
            )
            is not None
        )

    def reopen_pending(self, tx: Tx, patient_id: str, kind: str, bed_id: str) -> bool:
        """Undo the completion of this patient's latest ``kind`` move into ``bed_id``
        (a cancelled admission or transfer): it is pending, and holding the bed, again."""
        move = tx.session.scalars(
            select(PendingMove)
            .where(
                PendingMove.patient_id == patient_id,
                PendingMove.kind == kind,
                PendingMove.status == "done",
                PendingMove.to_bed_id == bed_id,
            )
            .order_by(PendingMove.closed_at.desc())
            .limit(1)
        ).first()
        if move is None:
            return False
        move.status, move.closed_at, move.reserved = "pending", None, True
        now_present(tx.session, NO_PENDING, patient_id)
        now_present(tx.session, NOT_RESERVED, bed_id)
        return True
