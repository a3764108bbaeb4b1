"""Beds and stays for the API and CLI: reads, and each move in a transaction of its own.

The moves themselves live in :mod:`wardwatch.capacity.moves`. Every write appends to the
event log in the same transaction; events reach live subscribers only after the commit. Bed
rows are locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers with ``BEGIN
IMMEDIATE``) and version-checked, so two clients allocating one bed cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from wardwatch.capacity.lookups import open_stay
from wardwatch.capacity.models import Bed, Patient, PendingMove, Site, Stay, Ward
from wardwatch.capacity.moves import BedMoves
from wardwatch.capacity.schemas import (
    AdmitRequest,
    BedRead,
    DischargeRequest,
    PendingRead,
    StayRead,
    StayUpdate,
    TransferRequest,
)
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import NotFound, ValidationFailed
from wardwatch.db.session import Database


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
        self.moves = BedMoves(clock)

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
            bed = self.moves.change_state(
                tx, bed_id, target, reason, actor, cleaning_only=cleaning_only
            )
        # The bed, its ward and site were loaded (and locked) by the change itself.
        return _bed_read(bed, bed.ward, bed.ward.site, self.clock.now())

    # --- patients ------------------------------------------------------------------------

    def admit(self, req: AdmitRequest, actor: Actor) -> StayRead:
        with self.db.transaction() as tx:
            stay = self.moves.admit(
                tx,
                req.bed_id,
                req.patient,
                actor,
                source=req.source,
                expected_discharge_date=req.expected_discharge_date,
            )
            read = self._read_in(tx.session, stay)
        return read

    def transfer(self, stay_id: str, req: TransferRequest, actor: Actor) -> StayRead:
        with self.db.transaction() as tx:
            stay = open_stay(tx.session, stay_id)
            self.moves.transfer(tx, stay, req.bed_id, actor, reason=req.reason)
            read = self._read_in(tx.session, stay)
        return read

    def _read_in(self, s: Session, stay: Stay) -> StayRead:
        """The stay as a move left it, read inside the move's transaction (one query; a new
        read transaction would cost three round trips more)."""
        row = s.execute(_stay_query().where(Stay.id == stay.id)).one()
        return _stay_read(*row, self.clock.now())

    def discharge(self, stay_id: str, req: DischargeRequest, actor: Actor) -> StayRead:
        with self.db.transaction() as tx:
            stay = open_stay(tx.session, stay_id)
            self.moves.discharge(
                tx,
                stay,
                actor,
                destination=req.destination,
                pathway=req.pathway,
                cleaning=req.cleaning,
            )
            read = self._read_in(tx.session, stay)
        return read

    def update_stay(self, stay_id: str, req: StayUpdate, actor: Actor) -> StayRead:
        changes = req.model_dump(exclude_unset=True)
        if not changes:
            raise ValidationFailed(
                "nothing to change: give expected_discharge_date or discharge_ready_date"
            )
        with self.db.transaction() as tx:
            stay = open_stay(tx.session, stay_id)
            bed = tx.session.get_one(Bed, stay.bed_id)
            for key, value in changes.items():
                setattr(stay, key, value)
            now = self.clock.now()
            self.moves.log(
                tx,
                bed,
                "stay.updated",
                actor,
                at=now,
                stay_id=stay.id,
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

    # --- pending moves -------------------------------------------------------------------

    def pending(self, *, site: str | None = None) -> list[PendingRead]:
        """Expected arrivals, transfers and departures still open."""
        with self.db.read() as s:
            return pending_moves(s, site=site)


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
        cancelled_at=stay.cancelled_at,
        on_leave_since=stay.on_leave_since,
        visit_number=stay.visit_number,
        length_of_stay_days=round((end - stay.admitted_at).total_seconds() / 86400, 2),
    )


def pending_moves(s: Session, *, site: str | None = None) -> list[PendingRead]:
    to_bed, from_bed = aliased(Bed), aliased(Bed)
    to_ward = aliased(Ward)
    query = (
        select(PendingMove, Patient, to_bed, from_bed, to_ward)
        .join(Patient, PendingMove.patient_id == Patient.id)
        .outerjoin(to_bed, PendingMove.to_bed_id == to_bed.id)
        .outerjoin(from_bed, PendingMove.from_bed_id == from_bed.id)
        .outerjoin(to_ward, PendingMove.to_ward_id == to_ward.id)
        .where(PendingMove.status == "pending")
        .order_by(PendingMove.expected_at, PendingMove.created_at)
    )
    wards: set[str] | None = None
    if site is not None:
        wards = set(s.scalars(select(Ward.id).join(Site).where(Site.code == site)))
    rows = []
    for move, patient, target, origin, ward in s.execute(query):
        touched = {x.ward_id for x in (target, origin) if x} | ({ward.id} if ward else set())
        if wards is not None and not touched & wards:
            continue
        rows.append(
            PendingRead(
                id=move.id,
                kind=move.kind,
                nhs_number=patient.nhs_number,
                local_id=patient.local_id,
                stay_id=move.stay_id,
                from_bed=origin.code if origin else None,
                to_bed=target.code if target else None,
                to_ward=ward.code if ward else (target.ward.code if target else None),
                reserved=move.reserved,
                expected_at=move.expected_at,
                created_at=move.created_at,
                source=move.source,
            )
        )
    return rows
