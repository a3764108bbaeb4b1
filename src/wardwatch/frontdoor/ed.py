"""ED attendances: arrival → decision to admit (a bed request) → departure.

The decision to admit queues a bed request in the same transaction, so the ED's "waiting
for a bed" and the bed managers' queue are one list. When that request's patient arrives on
the ward the attendance ends by itself (disposition ``admitted``); an attendance that ends
another way cancels its open request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from wardwatch.capacity.lookups import find_or_create_patient, site_by_code
from wardwatch.capacity.models import Patient, Site
from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Database, Tx
from wardwatch.flow.models import BedRequest
from wardwatch.flow.schemas import BedRequestCreate
from wardwatch.flow.service import FlowService
from wardwatch.flow.views import OPEN_REQUEST
from wardwatch.frontdoor.checks import check_time
from wardwatch.frontdoor.measures import AttendanceTimes, EdFigures, EdNow, ed_figures, ed_now
from wardwatch.frontdoor.models import Attendance, Handover
from wardwatch.frontdoor.schemas import AttendanceIn, AttendanceRead, DecisionIn, DepartureIn


class EdService:
    def __init__(self, db: Database, clock: Clock, flow: FlowService) -> None:
        self.db = db
        self.clock = clock
        self.flow = flow

    def arrive(self, req: AttendanceIn, actor: Actor) -> AttendanceRead:
        now = self.clock.now()
        check_time(req.arrived_at, "arrived_at", now)
        with self.db.transaction() as tx:
            s = tx.session
            site = site_by_code(s, req.site)
            if s.scalar(
                select(Attendance.id).where(
                    Attendance.site_id == site.id, Attendance.reference == req.reference
                )
            ):
                raise Conflict(f"attendance {req.reference} is already recorded at {site.code}")
            if req.handover_id is not None:
                _check_handover(s, req.handover_id, site, req.arrived_at)
            row = Attendance(
                id=new_id("att"),
                site_id=site.id,
                reference=req.reference,
                patient_id=find_or_create_patient(s, req.patient).id if req.patient else None,
                handover_id=req.handover_id,
                arrived_at=req.arrived_at,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            self._record(tx, row, site, "ed.arrived", actor, req.arrived_at)
            if row.patient_id:
                tx.audit(
                    at=now, actor=actor, action="create", resource="ed_attendance", ids=[row.id]
                )
        return self.get(row.id)

    def decide_to_admit(self, attendance_id: str, req: DecisionIn, actor: Actor) -> AttendanceRead:
        now = self.clock.now()
        check_time(req.at, "at", now)
        with self.db.transaction() as tx:
            s = tx.session
            row = _lock(s, attendance_id)
            site = s.get_one(Site, row.site_id)
            if row.departed_at is not None:
                raise Conflict(f"attendance {row.reference} has already left the department")
            if row.dta_at is not None:
                raise Conflict(
                    f"attendance {row.reference} already has a decision to admit at "
                    f"{row.dta_at.isoformat()}"
                )
            if req.at < row.arrived_at:
                raise ValidationFailed("the decision to admit is before the arrival")
            if row.patient_id is None:
                raise ValidationFailed(
                    "a decision to admit needs the patient: record the attendance with an NHS "
                    "number or hospital number"
                )
            patient = s.get_one(Patient, row.patient_id)
            request = self.flow.add(
                tx,
                BedRequestCreate(
                    patient=PatientIn(
                        nhs_number=patient.nhs_number, local_id=patient.local_id, sex=None
                    ),
                    site=site.code,
                    specialty=req.specialty,
                    source="ed",
                    priority=req.priority,
                    age_group=req.age_group,
                    isolation=req.isolation,
                    from_location=f"ED {row.reference}",
                    decided_at=req.at,
                ),
                actor,
            )
            row.dta_at, row.bed_request_id, row.updated_at = req.at, request.id, now
            self._record(tx, row, site, "ed.decided_to_admit", actor, req.at)
        return self.get(attendance_id)

    def depart(self, attendance_id: str, req: DepartureIn, actor: Actor) -> AttendanceRead:
        now = self.clock.now()
        check_time(req.at, "at", now)
        with self.db.transaction() as tx:
            s = tx.session
            row = _lock(s, attendance_id)
            if row.departed_at is not None:
                raise Conflict(
                    f"attendance {row.reference} already left at {row.departed_at.isoformat()}"
                )
            if req.at < row.arrived_at:
                raise ValidationFailed("the departure is before the arrival")
            if row.dta_at is not None and req.at < row.dta_at:
                raise ValidationFailed("the departure is before the decision to admit")
            self._leave(tx, row, req.at, req.disposition, actor)
        return self.get(attendance_id)

    def _leave(self, tx: Tx, row: Attendance, at: datetime, disposition: str, actor: Actor) -> None:
        s = tx.session
        row.departed_at, row.disposition, row.updated_at = at, disposition, self.clock.now()
        request = s.get(BedRequest, row.bed_request_id) if row.bed_request_id else None
        if request is not None and request.status in OPEN_REQUEST and disposition != "admitted":
            self.flow.cancel_in(
                tx, self.flow.lock(s, request.id), f"left the ED ({disposition})", actor
            )
        self._record(tx, row, s.get_one(Site, row.site_id), "ed.departed", actor, at)

    # --- the reactor: arrival on the ward ends the attendance -----------------------------

    def on_record(self, tx: Tx, rec: EventRecord) -> None:
        if rec.type != "bed_request.arrived":
            return
        request_id = (rec.data or {}).get("request")
        row = tx.session.scalars(
            select(Attendance).where(
                Attendance.bed_request_id == request_id, Attendance.departed_at.is_(None)
            )
        ).first()
        if row is not None:
            self._leave(tx, row, max(rec.at, row.dta_at or rec.at), "admitted", _actor(rec))

    # --- reading --------------------------------------------------------------------------

    def get(self, attendance_id: str) -> AttendanceRead:
        now = self.clock.now()
        with self.db.read() as s:
            row = s.get(Attendance, attendance_id)
            if row is None:
                raise NotFound(f"no ED attendance with id {attendance_id!r}")
            request = s.get(BedRequest, row.bed_request_id) if row.bed_request_id else None
            return _read(row, s.get_one(Site, row.site_id).code, request, now)

    def list(
        self, *, site: str | None = None, open_only: bool = True, limit: int = 2000
    ) -> list[AttendanceRead]:
        """Attendances in the department now (or all), longest there first."""
        now = self.clock.now()
        with self.db.read() as s:
            q = (
                select(Attendance, Site.code, BedRequest)
                .join(Site, Site.id == Attendance.site_id)
                .outerjoin(BedRequest, BedRequest.id == Attendance.bed_request_id)
                .order_by(Attendance.arrived_at)
            )
            if site is not None:
                q = q.where(Attendance.site_id == site_by_code(s, site).id)
            if open_only:
                q = q.where(Attendance.departed_at.is_(None))
            return [_read(a, code, r, now) for a, code, r in s.execute(q.limit(limit))]

    def figures(self, *, since: datetime, until: datetime, site: str | None = None) -> EdFigures:
        """Figures over the attendances that left the department in [since, until)."""
        with self.db.read() as s:
            q = select(
                Attendance.arrived_at,
                Attendance.dta_at,
                Attendance.departed_at,
                Attendance.disposition,
            ).where(Attendance.departed_at >= since, Attendance.departed_at < until)
            if site is not None:
                q = q.where(Attendance.site_id == site_by_code(s, site).id)
            return ed_figures(AttendanceTimes(*r) for r in s.execute(q))

    def now(self, *, at: datetime | None = None, site: str | None = None) -> EdNow:
        """Who is in the department at ``at`` (default now), and their waits."""
        at = at or self.clock.now()
        with self.db.read() as s:
            q = select(
                Attendance.arrived_at,
                Attendance.dta_at,
                Attendance.departed_at,
                Attendance.disposition,
            ).where(
                Attendance.arrived_at <= at,
                or_(Attendance.departed_at.is_(None), Attendance.departed_at > at),
            )
            if site is not None:
                q = q.where(Attendance.site_id == site_by_code(s, site).id)
            rows: Sequence[Any] = s.execute(q).all()
            return ed_now([AttendanceTimes(*r) for r in rows], at)

    def _record(
        self, tx: Tx, row: Attendance, site: Site, event: str, actor: Actor, at: datetime
    ) -> None:
        data: dict[str, Any] = {
            "attendance": row.id,
            "reference": row.reference,
            "site": site.code,
            "arrived_at": row.arrived_at.isoformat(),
        }
        if row.dta_at is not None:
            data["dta_at"] = row.dta_at.isoformat()
            data["request"] = row.bed_request_id
        if row.departed_at is not None:
            data["departed_at"] = row.departed_at.isoformat()
            data["disposition"] = row.disposition
            data["hours"] = round((row.departed_at - row.arrived_at).total_seconds() / 3600, 3)
        tx.record(event, at=at, actor=actor, site_id=site.id, site_code=site.code, data=data)


def _check_handover(s: Session, handover_id: str, site: Site, arrived_at: datetime) -> None:
    handover = s.get(Handover, handover_id)
    if handover is None:
        raise NotFound(f"no handover with id {handover_id!r}")
    if handover.site_id != site.id:
        raise ValidationFailed(f"handover {handover_id} arrived at another site")
    if handover.arrived_at is None:
        raise ValidationFailed(f"handover {handover_id} has not arrived")


def _lock(s: Session, attendance_id: str) -> Attendance:
    row = s.scalars(
        select(Attendance).where(Attendance.id == attendance_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no ED attendance with id {attendance_id!r}")
    return row


def _actor(rec: EventRecord) -> Actor:
    return Actor.from_label(rec.actor)


def _read(row: Attendance, site: str, request: BedRequest | None, now: datetime) -> AttendanceRead:
    end = row.departed_at or now
    return AttendanceRead(
        id=row.id,
        site=site,
        reference=row.reference,
        patient_id=row.patient_id,
        handover_id=row.handover_id,
        arrived_at=row.arrived_at,
        dta_at=row.dta_at,
        departed_at=row.departed_at,
        disposition=row.disposition,
        bed_request_id=row.bed_request_id,
        bed_request_status=request.status if request is not None else None,
        hours_in_department=round((end - row.arrived_at).total_seconds() / 3600, 2),
        hours_since_dta=(
            None if row.dta_at is None else round((end - row.dta_at).total_seconds() / 3600, 2)
        ),
    )
