"""Bed requests as the bed manager reads them: the queue, one request, and the beds that could
take its patient (best first). The write side is :mod:`wardwatch.flow.service`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, Patient, Site, Ward
from wardwatch.capacity.states import BedState
from wardwatch.core.clock import Clock
from wardwatch.core.errors import NotFound
from wardwatch.db.session import Database
from wardwatch.flow import matching
from wardwatch.flow.models import BedRequest
from wardwatch.flow.schemas import PRIORITY_RANK, BedRequestRead, Candidate
from wardwatch.tasks.models import Task
from wardwatch.tasks.rules import OPEN

S = BedState
OPEN_REQUEST = ("waiting", "allocated")
OPEN_TASK = [s.value for s in OPEN]


class BedRequestViews:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def suggestions(self, request_id: str, *, limit: int = 10) -> list[Candidate]:
        """Beds that can take the patient, best first: available now, then soon clean."""
        with self.db.read() as s:
            row = s.get(BedRequest, request_id)
            if row is None:
                raise NotFound(f"no bed request with id {request_id!r}")
            need = need_of(row)
            states = [S.AVAILABLE.value, S.AWAITING_CLEAN.value, S.CLEANING.value]
            beds = s.execute(
                select(Bed, Ward, Site)
                .join(Ward, Bed.ward_id == Ward.id)
                .join(Site, Ward.site_id == Site.id)
                .where(Ward.site_id == row.site_id, Bed.state.in_(states))
            ).all()
            tasks = {
                t.bed_id: t
                for t in s.scalars(
                    select(Task).where(
                        Task.site_id == row.site_id,
                        Task.kind == "cleaning",
                        Task.status.in_(OPEN_TASK),
                    )
                )
            }
        now = self.clock.now()
        out: list[tuple[tuple[int, int, int, str], Candidate]] = []
        for bed, ward, site in beds:
            place = place_of(bed, ward)
            if matching.refusal(need, place) is not None:
                continue
            rank, why = matching.reasons(need, place)
            ready = 0 if bed.state == S.AVAILABLE.value else ready_in(tasks.get(bed.id), now)
            why.insert(
                0, "available now" if ready == 0 else f"being cleaned: ready in ~{ready} min"
            )
            out.append(
                (
                    (1 if ready else 0, rank, ready, bed.code),
                    Candidate(
                        bed_id=bed.id,
                        bed=bed.code,
                        ward=ward.code,
                        site=site.code,
                        state=bed.state,
                        ready_in_minutes=ready,
                        specialty_match=rank < 10,
                        reasons=why,
                    ),
                )
            )
        return [c for _key, c in sorted(out, key=lambda kv: kv[0])[:limit]]

    def get(self, request_id: str) -> BedRequestRead:
        with self.db.read() as s:
            rows = self._reads(s, _query().where(BedRequest.id == request_id))
        if not rows:
            raise NotFound(f"no bed request with id {request_id!r}")
        return rows[0]

    def list_requests(
        self, *, site: str | None = None, open_only: bool = True, limit: int = 500
    ) -> list[BedRequestRead]:
        query = _query()
        if site:
            query = query.where(Site.code == site)
        if open_only:
            query = query.where(BedRequest.status.in_(OPEN_REQUEST))
        query = query.order_by(BedRequest.decided_at).limit(limit)
        with self.db.read() as s:
            rows = self._reads(s, query)
        if open_only:
            rows.sort(key=lambda r: (PRIORITY_RANK.get(r.priority, 9), r.decided_at))
        return rows

    def _reads(
        self, s: Session, query: Select[BedRequest, Patient, Site, Bed, Ward]
    ) -> list[BedRequestRead]:
        now = self.clock.now()
        return [_read(r, p, site, bed, ward, now) for r, p, site, bed, ward in s.execute(query)]


def need_of(row: BedRequest) -> matching.Need:
    return matching.Need(
        specialty=row.specialty, sex=row.sex, age_group=row.age_group, isolation=row.isolation
    )


def place_of(bed: Bed, ward: Ward) -> matching.Place:
    return matching.Place(
        ward_code=ward.code,
        specialty=ward.specialty,
        ward_kind=ward.kind,
        age_group=ward.age_group,
        sex_policy=ward.sex_policy,
        side_room=bed.side_room,
        virtual=bed.virtual,
    )


def ready_in(task: Task | None, now: datetime) -> int:
    """Minutes until a dirty bed is likely clean, from its task's progress."""
    if task is None:
        return 24 * 60  # nobody has been asked: treat as far off
    begun = task.started_at or now
    left = task.expected_minutes - (now - begun).total_seconds() / 60
    return max(1, round(left))


def _query() -> Select[BedRequest, Patient, Site, Bed, Ward]:
    return (
        select(BedRequest, Patient, Site, Bed, Ward)
        .join(Patient, BedRequest.patient_id == Patient.id)
        .join(Site, BedRequest.site_id == Site.id)
        .outerjoin(Bed, BedRequest.bed_id == Bed.id)
        .outerjoin(Ward, Bed.ward_id == Ward.id)
    )


def _read(
    r: BedRequest, p: Patient, site: Site, bed: Bed | None, ward: Ward | None, now: datetime
) -> BedRequestRead:
    end = r.arrived_at or r.cancelled_at or now
    return BedRequestRead(
        id=r.id,
        patient_id=p.id,
        nhs_number=p.nhs_number,
        local_id=p.local_id,
        stay_id=r.stay_id,
        source=r.source,
        site=site.code,
        specialty=r.specialty,
        sex=r.sex,
        age_group=r.age_group,
        isolation=r.isolation,
        priority=r.priority,
        from_location=r.from_location,
        decided_at=r.decided_at,
        created_at=r.created_at,
        created_by=r.created_by,
        status=r.status,
        bed_id=r.bed_id,
        bed=bed.code if bed else None,
        ward=ward.code if ward else None,
        task_id=r.task_id,
        allocated_at=r.allocated_at,
        arrived_at=r.arrived_at,
        cancelled_at=r.cancelled_at,
        cancel_reason=r.cancel_reason,
        waiting_minutes=round(max(0.0, (end - r.decided_at).total_seconds()) / 60, 1),
        version=r.version,
    )
