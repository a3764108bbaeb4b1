"""Expected moves (HL7 A05/A14 admissions, A15 transfers, A16 discharges) and their
cancellations (A25-A27): shown as expected arrivals and departures, holding a reservation on
the bed they name while it is available."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from wardwatch.capacity.lookups import lock_bed
from wardwatch.capacity.models import Patient, PendingMove, Stay
from wardwatch.capacity.states import BedState
from wardwatch.capacity.writer import BedWriter
from wardwatch.core.actor import Actor
from wardwatch.core.errors import Conflict
from wardwatch.core.ids import new_id
from wardwatch.db.session import Tx

S = BedState


class PendingMoves(BedWriter):
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
