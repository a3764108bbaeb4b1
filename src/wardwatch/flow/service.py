"""Bed requests: the queue of patients who need a bed, allocation and arrival.

Allocating reserves the bed and asks the site's porters to take the patient there (a
transfer task); when the porter marks it done, or the ward records the arrival, the patient
is admitted (or moved) into the bed. While patients wait, the cleaning tasks of beds that
could take them are marked *clean next*, so housekeeping cleans those first. The read side
(the queue, one request, the beds that could take its patient) is :mod:`.views`.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from wardwatch.capacity.lookups import (
    find_or_create_patient,
    lock_stay,
    open_stay_of,
    site_by_code,
    stay_here,
)
from wardwatch.capacity.models import Bed, Patient, Site, Stay, Ward
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.service import CapacityService
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.filters import one_of
from wardwatch.db.session import (
    Database,
    Tx,
    absent,
    none_when_made,
    note_absent,
    now_present,
)
from wardwatch.flow import matching
from wardwatch.flow.models import BedRequest
from wardwatch.flow.schemas import (
    PRIORITY_RANK,
    BedRequestCreate,
    BedRequestRead,
    Candidate,
)
from wardwatch.flow.views import OPEN_REQUEST, OPEN_TASK, BedRequestViews, need_of, place_of
from wardwatch.tasks.models import Task
from wardwatch.tasks.service import QUIET_SITE, TaskService

S = BedState
#: Look-ahead kind (``db.session.absent``): patients with no open bed request.
NO_REQUEST = "open_request_patient"
none_when_made("patient", NO_REQUEST)
#: The oldest decision a new request may carry (older is a typing or clock error).
MAX_WAIT = timedelta(days=30)
#: Task events that add or remove a dirty bed a waiting patient might be matched with.
CLEANING_CHANGES = frozenset({"task.created", "task.done", "task.cancelled"})
#: Events that put a patient into a bed.
PATIENT_MOVES = frozenset({"stay.admitted", "stay.transferred_in"})
#: Task progress, best first, when choosing which dirty bed to clean next.
PROGRESS = {"in_progress": 0, "accepted": 1, "requested": 2}


class FlowService:
    def __init__(
        self, db: Database, clock: Clock, capacity: CapacityService, tasks: TaskService
    ) -> None:
        self.db = db
        self.clock = clock
        self.moves = capacity.moves
        self.tasks = tasks
        self.views = BedRequestViews(db, clock)

    # --- requests -------------------------------------------------------------------------

    def create(self, req: BedRequestCreate, actor: Actor) -> BedRequestRead:
        with self.db.transaction() as tx:
            row = self.add(tx, req, actor)
        return self.get(row.id)

    def add(self, tx: Tx, req: BedRequestCreate, actor: Actor) -> BedRequest:
        """Queue a bed request inside the caller's transaction (e.g. an ED decision to admit)."""
        now = self.clock.now()
        decided = req.decided_at or now
        if decided > now + timedelta(minutes=1):
            raise ValidationFailed("decided_at is in the future")
        if decided < now - MAX_WAIT:
            raise ValidationFailed(
                f"decided_at is more than {MAX_WAIT.days} days ago: check the date"
            )
        s = tx.session
        site = site_by_code(s, req.site)
        patient, stay = self._who(s, req)
        busy = s.scalar(
            select(BedRequest.id).where(
                BedRequest.patient_id == patient.id, BedRequest.status.in_(OPEN_REQUEST)
            )
        )
        if busy:
            raise Conflict(f"this patient already has an open bed request ({busy})")
        now_present(s, NO_REQUEST, patient.id)  # a look-ahead's "none" no longer holds
        now_present(s, QUIET_SITE, site.id)  # someone is waiting here now
        row = BedRequest(
            id=new_id("breq"),
            patient_id=patient.id,
            stay_id=stay.id if stay else None,
            source="transfer" if stay and req.source == "ed" else req.source,
            site_id=site.id,
            specialty=req.specialty,
            sex=patient.sex,
            age_group=req.age_group,
            isolation=req.isolation,
            priority=req.priority,
            from_location=req.from_location,
            decided_at=decided,
            created_at=now,
            created_by=actor.label,
            status="waiting",
        )
        s.add(row)
        self._log(tx, row, "bed_request.created", actor, site=site)
        self.reprioritise(tx, site.id, actor)
        tx.audit(at=now, actor=actor, action="create", resource="bed_request", ids=[row.id])
        return row

    def _who(self, s: Session, req: BedRequestCreate) -> tuple[Patient, Stay | None]:
        if req.stay_id is not None:
            stay = lock_stay(s, req.stay_id)
            if stay is None or stay.discharged_at is not None or stay.cancelled_at is not None:
                raise Conflict(f"no open stay with id {req.stay_id!r}")
            return s.get_one(Patient, stay.patient_id), stay
        assert req.patient is not None  # noqa: S101 -- the schema requires one of the two
        patient = find_or_create_patient(s, req.patient)
        return patient, open_stay_of(s, patient)

    def allocate(self, request_id: str, bed_id: str, actor: Actor) -> BedRequestRead:
        with self.db.transaction() as tx:
            row = self._lock(tx.session, request_id)
            if row.status != "waiting":
                raise Conflict(f"bed request {row.id} is {row.status}, not waiting for a bed")
            bed = tx.session.get(Bed, bed_id)
            if bed is None:
                raise NotFound(f"no bed with id {bed_id!r}")
            ward = tx.session.get_one(Ward, bed.ward_id)
            if ward.site_id != row.site_id:
                raise Conflict(f"bed {bed.code} is not at the site this request is for")
            problem = matching.refusal(need_of(row), place_of(bed, ward))
            if problem:
                raise Conflict(f"bed {bed.code} cannot take this patient: {problem}")
            if bed.state != S.AVAILABLE.value:
                raise Conflict(f"bed {bed.code} is {bed.state}, not available")
            self.moves.change_state(tx, bed.id, S.RESERVED, None, actor)
            task = self.tasks.create(
                tx,
                kind="transfer",
                type_="porter",
                site_id=ward.site_id,
                ward_id=ward.id,
                bed_id=bed.id,
                request_id=row.id,
                actor=actor,
                cause="bed_request.allocated",
                description=f"Take patient from {row.from_location or row.source} to bed "
                f"{bed.code}",
                priority="urgent" if row.priority == "emergency" else "routine",
            )
            row.status, row.bed_id, row.task_id = "allocated", bed.id, task.id
            row.allocated_at, row.allocated_by = self.clock.now(), actor.label
            self._log(tx, row, "bed_request.allocated", actor, bed=bed)
            self.reprioritise(tx, row.site_id, actor)
        return self.get(request_id)

    def arrive(self, request_id: str, actor: Actor) -> BedRequestRead:
        with self.db.transaction() as tx:
            row = self._lock(tx.session, request_id)
            if row.status != "allocated":
                raise Conflict(
                    f"bed request {row.id} is {row.status}: only an allocated request can arrive"
                )
            self._arrive(tx, row, actor)
        return self.get(request_id)

    def _arrival_problem(self, tx: Tx, row: BedRequest) -> str | None:
        """Why the patient cannot be put in the allocated bed now, or None."""
        s = tx.session
        if row.stay_id is not None:
            stay = lock_stay(s, row.stay_id)
            if stay is None or stay.discharged_at is not None or stay.cancelled_at is not None:
                return "the patient's stay has ended"
            return None
        if open_stay_of(s, s.get_one(Patient, row.patient_id)) is not None:
            return "the patient is already in a bed"
        return None

    def _arrive(self, tx: Tx, row: BedRequest, actor: Actor) -> None:
        """Put the patient in the allocated bed (admit, or move their stay)."""
        s = tx.session
        if row.bed_id is None:
            raise Conflict(f"bed request {row.id} has no bed")
        problem = self._arrival_problem(tx, row)
        if problem:
            raise Conflict(f"bed request {row.id}: {problem}; cancel the request instead")
        if row.stay_id is not None:
            stay = lock_stay(s, row.stay_id)
            assert stay is not None  # noqa: S101 -- checked just above
            self.moves.transfer(tx, stay, row.bed_id, actor, reason=f"bed request {row.id}")
            self._arrived(tx, row, actor, stay.id)
        else:
            p = s.get_one(Patient, row.patient_id)
            patient = PatientIn(nhs_number=p.nhs_number, local_id=p.local_id, sex=p.sex)
            stay = self.moves.admit(tx, row.bed_id, patient, actor, source=row.source)
            self._arrived(tx, row, actor, stay.id)

    def _arrived(self, tx: Tx, row: BedRequest, actor: Actor, stay_id: str | None) -> None:
        row.status, row.arrived_at, row.stay_id = "arrived", self.clock.now(), stay_id
        task = tx.session.get(Task, row.task_id) if row.task_id else None
        if task is not None and task.status in OPEN_TASK:
            self.tasks.complete_in(tx, task, actor)
        self._log(tx, row, "bed_request.arrived", actor)

    def cancel(self, request_id: str, reason: str, actor: Actor) -> BedRequestRead:
        with self.db.transaction() as tx:
            row = self._lock(tx.session, request_id)
            if row.status not in OPEN_REQUEST:
                raise Conflict(f"bed request {row.id} is already {row.status}")
            self.cancel_in(tx, row, reason, actor)
        return self.get(request_id)

    def cancel_in(self, tx: Tx, row: BedRequest, reason: str, actor: Actor) -> None:
        """Cancel an open request inside the caller's transaction."""
        self._release(tx, row, actor, f"request cancelled: {reason}")
        row.status, row.cancelled_at, row.cancel_reason = "cancelled", self.clock.now(), reason
        self._log(tx, row, "bed_request.cancelled", actor, extra={"reason": reason})
        self.reprioritise(tx, row.site_id, actor)

    def lock(self, s: Session, request_id: str) -> BedRequest:
        return self._lock(s, request_id)

    def _release(self, tx: Tx, row: BedRequest, actor: Actor, why: str) -> None:
        """Give back the reserved bed and stop the porters (a request leaving 'allocated')."""
        task = tx.session.get(Task, row.task_id) if row.task_id else None
        if task is not None:
            self.tasks.cancel_in(tx, task, actor, why)
        if row.bed_id is not None and row.status == "allocated":
            bed = tx.session.get_one(Bed, row.bed_id)
            if bed.state == S.RESERVED.value:
                self.moves.change_state(tx, bed.id, S.AVAILABLE, None, actor)
        row.bed_id = row.task_id = None
        row.allocated_at = row.allocated_by = None

    # --- the reactor ----------------------------------------------------------------------

    def on_record(self, tx: Tx, rec: EventRecord) -> None:
        data = rec.data or {}
        kind = data.get("kind")
        if rec.type in CLEANING_CHANGES and kind == "cleaning" and rec.site_id:
            # A new dirty bed may suit a waiting patient; one that was 'clean next' leaving
            # frees its patient for another bed. Other closed tasks change no match.
            if rec.type == "task.created" or data.get("priority") == "clean_next":
                self.reprioritise(tx, rec.site_id, None)
        elif rec.type in ("task.done", "task.cancelled") and kind == "transfer":
            self._porter_task_closed(tx, rec, str(data.get("request") or ""))
        elif rec.bed_id and rec.from_state == S.RESERVED.value:
            self._reserved_bed_taken(tx, rec)
        elif rec.type in PATIENT_MOVES and rec.stay_id and rec.to_state == S.OCCUPIED.value:
            self._moved_elsewhere(tx, rec)
        elif rec.type == "stay.discharged" and rec.stay_id:
            self._discharged(tx, rec)

    def _porter_task_closed(self, tx: Tx, rec: EventRecord, request_id: str) -> None:
        """The porter finished: the patient arrives. A porter task cancelled from outside
        (not by this service) puts the patient back in the queue."""
        row = self._lock(tx.session, request_id) if request_id else None
        if row is None or row.status != "allocated" or row.task_id != (rec.data or {}).get("task"):
            return
        actor = _actor(rec)
        if rec.type == "task.cancelled":
            self._requeue(tx, row, actor, "the porter task was cancelled", {})
            return
        problem = self._arrival_problem(tx, row)
        if problem:
            self._close(tx, row, actor, problem)
        else:
            self._arrive(tx, row, actor)

    def _reserved_bed_taken(self, tx: Tx, rec: EventRecord) -> None:
        """An allocated bed left 'reserved' another way: if its own patient moved in (the
        ward admitted them on the board, or the PAS did), they have arrived; otherwise the
        bed went to someone else or was released, and the patient goes back to the queue."""
        row = tx.session.scalars(
            select(BedRequest)
            .where(BedRequest.bed_id == rec.bed_id, BedRequest.status == "allocated")
            .with_for_update()
        ).first()
        if row is None:
            return
        actor = _actor(rec)
        if rec.to_state == S.OCCUPIED.value and self._patient_of(tx, rec.stay_id) == row.patient_id:
            self._arrived(tx, row, actor, rec.stay_id)
            return
        bed_code = (rec.data or {}).get("bed", rec.bed_id)
        self._requeue(
            tx,
            row,
            actor,
            f"bed {bed_code} became {rec.to_state}",
            {"bed": bed_code, "to": rec.to_state},
        )

    def _moved_elsewhere(self, tx: Tx, rec: EventRecord) -> None:
        """The patient was admitted or moved into some bed directly: their open request has
        nothing left to do (arrivals into the allocated bed are handled above)."""
        for row in self._open_requests(tx, rec.stay_id):
            if row.bed_id != rec.bed_id:
                bed = (rec.data or {}).get("bed") or (rec.data or {}).get("to_bed") or rec.bed_id
                self._close(tx, row, _actor(rec), f"the patient went to bed {bed} directly")

    def _discharged(self, tx: Tx, rec: EventRecord) -> None:
        for row in self._open_requests(tx, rec.stay_id):
            self._close(tx, row, _actor(rec), "the patient was discharged")

    def look_ahead(self, tx: Tx, patient_ids: frozenset[str], bed_ids: frozenset[str]) -> None:
        """Which of a batch's patients have no open bed request, in one statement
        (``Database.look_ahead``): their moves need not ask again."""
        if not patient_ids:
            return
        s = tx.session
        busy = select(BedRequest.patient_id).where(
            one_of(s, BedRequest.patient_id, patient_ids), BedRequest.status.in_(OPEN_REQUEST)
        )
        note_absent(s, NO_REQUEST, patient_ids - set(s.scalars(busy)))
        self._quiet_sites(tx, bed_ids)

    def _quiet_sites(self, tx: Tx, bed_ids: frozenset[str]) -> None:
        """Which sites of these beds have nobody waiting and nothing marked 'clean next'
        (one statement): a new cleaning task there changes no match (see reprioritise)."""
        if not bed_ids:
            return
        s = tx.session
        sites = select(Ward.site_id).join(Bed, Bed.ward_id == Ward.id)
        quiet = select(Site.id).where(
            Site.id.in_(sites.where(one_of(s, Bed.id, bed_ids))),
            ~exists().where(BedRequest.site_id == Site.id, BedRequest.status == "waiting"),
            ~exists().where(
                Task.site_id == Site.id,
                Task.kind == "cleaning",
                Task.priority == "clean_next",
                Task.status.in_(OPEN_TASK),
            ),
        )
        note_absent(s, QUIET_SITE, set(s.scalars(quiet)))

    def _open_requests(self, tx: Tx, stay_id: str | None) -> list[BedRequest]:
        """The open requests of the patient whose stay this is (one query; the stay was just
        moved, so it is read from the session)."""
        stay = stay_here(tx.session, stay_id) if stay_id else None
        if stay is None or stay.patient_id in absent(tx.session, NO_REQUEST):
            return []
        return list(
            tx.session.scalars(
                select(BedRequest)
                .where(
                    BedRequest.patient_id == stay.patient_id,
                    BedRequest.status.in_(OPEN_REQUEST),
                )
                .with_for_update()
            )
        )

    @staticmethod
    def _patient_of(tx: Tx, stay_id: str | None) -> str | None:
        if stay_id is None:
            return None
        return tx.session.scalar(select(Stay.patient_id).where(Stay.id == stay_id))

    def _requeue(
        self, tx: Tx, row: BedRequest, actor: Actor, why: str, extra: dict[str, object]
    ) -> None:
        self._release(tx, row, actor, why)
        row.status = "waiting"
        now_present(tx.session, QUIET_SITE, row.site_id)
        self._log(tx, row, "bed_request.bed_lost", actor, extra={**extra, "reason": why})
        self.reprioritise(tx, row.site_id, actor)

    def _close(self, tx: Tx, row: BedRequest, actor: Actor, why: str) -> None:
        """Cancel an open request for a reason found by the system (not a person's cancel)."""
        self._release(tx, row, actor, why)
        row.status, row.cancelled_at, row.cancel_reason = "cancelled", self.clock.now(), why
        self._log(tx, row, "bed_request.cancelled", actor, extra={"reason": why})
        self.reprioritise(tx, row.site_id, actor)

    # --- clean next -----------------------------------------------------------------------

    def reprioritise(self, tx: Tx, site_id: str, actor: Actor | None) -> None:
        """Match waiting patients (most urgent, longest wait first) to the dirty beds that
        could take them (cleaning furthest along first): those tasks are 'clean next', and
        tasks that no longer match go back to their own priority (as made, or set by hand)."""
        s = tx.session
        if site_id in absent(s, QUIET_SITE):
            return  # read ahead: nobody waiting, nothing marked, and nothing since
        waiting_here = BedRequest.site_id == site_id, BedRequest.status == "waiting"
        marked = (
            Task.site_id == site_id,
            Task.kind == "cleaning",
            Task.priority == "clean_next",
            Task.status.in_(OPEN_TASK),
        )
        # The usual case, nobody waiting and nothing marked, costs one round trip.
        anyone, anything = s.execute(
            select(exists().where(*waiting_here), exists().where(*marked))
        ).one()
        if not anyone and not anything:
            return
        waiting = s.scalars(select(BedRequest).where(*waiting_here)).all() if anyone else []
        query = (
            select(Task, Bed, Ward)
            .join(Bed, Task.bed_id == Bed.id)
            .join(Ward, Bed.ward_id == Ward.id)
            .where(
                Task.site_id == site_id,
                Task.kind == "cleaning",
                Task.status.in_(OPEN_TASK),
            )
        )
        if not waiting:  # nobody waiting: only 'clean next' marks to take back
            query = query.where(Task.priority == "clean_next")
        rows = s.execute(query).all()
        if not rows:
            return
        rows = sorted(rows, key=lambda r: (PROGRESS.get(r[0].status, 9), r[0].created_at))
        chosen: set[str] = set()
        for row in sorted(waiting, key=lambda r: (PRIORITY_RANK[r.priority], r.decided_at)):
            need = need_of(row)
            for task, bed, ward in rows:
                if task.id not in chosen and matching.refusal(need, place_of(bed, ward)) is None:
                    chosen.add(task.id)
                    break
        who = actor or Actor(name="clean-next", role="system")
        for task, _bed, _ward in rows:
            if task.id in chosen:
                self.tasks.set_priority(tx, task, "clean_next", who, "a patient is waiting")
            elif task.priority == "clean_next" and task.base_priority != "clean_next":
                why = "no patient waiting for it"
                self.tasks.set_priority(tx, task, task.base_priority, who, why)

    # --- reads (flow/views.py) ------------------------------------------------------------

    def suggestions(self, request_id: str, *, limit: int = 10) -> list[Candidate]:
        """Beds that can take the patient, best first: available now, then soon clean."""
        return self.views.suggestions(request_id, limit=limit)

    def get(self, request_id: str) -> BedRequestRead:
        return self.views.get(request_id)

    def list_requests(
        self, *, site: str | None = None, open_only: bool = True, limit: int = 500
    ) -> list[BedRequestRead]:
        return self.views.list_requests(site=site, open_only=open_only, limit=limit)

    def _lock(self, s: Session, request_id: str) -> BedRequest:
        row = s.scalars(
            select(BedRequest).where(BedRequest.id == request_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"no bed request with id {request_id!r}")
        return row

    def _log(
        self,
        tx: Tx,
        row: BedRequest,
        event: str,
        actor: Actor,
        *,
        site: Site | None = None,
        bed: Bed | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        s = tx.session
        site = site or s.get_one(Site, row.site_id)
        bed = bed or (s.get(Bed, row.bed_id) if row.bed_id else None)
        ward = s.get(Ward, bed.ward_id) if bed else None
        data: dict[str, object] = {
            "request": row.id,
            "source": row.source,
            "specialty": row.specialty,
            "priority": row.priority,
            "status": row.status,
            "decided_at": row.decided_at.isoformat(),
        }
        if bed is not None:
            data["bed"] = bed.code
        data.update(extra or {})
        tx.record(
            event,
            at=self.clock.now(),
            actor=actor,
            site_id=row.site_id,
            site_code=site.code,
            ward_id=ward.id if ward else None,
            ward_code=ward.code if ward else None,
            bed_id=bed.id if bed else None,
            stay_id=row.stay_id,
            data=data,
        )


def _actor(rec: EventRecord) -> Actor:
    return Actor.from_label(rec.actor)
