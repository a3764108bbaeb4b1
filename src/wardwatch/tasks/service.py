"""Tasks for teams: the only writer of tasks. Cleaning follows the beds by itself.

Any bed that becomes *awaiting clean* (a discharge by API or HL7 A03, a transfer out, a bed
unblocked) gets a cleaning task for its site's housekeeping team in the same transaction,
through a reactor on the event log: the discharge and its task commit together or not at
all. Starting a cleaning task puts the bed into *cleaning*; finishing it makes the bed
*available*; a bed marked available another way (on the board, or HL7 A20) finishes its
task too. If the bed leaves the cleaning loop otherwise (blocked, closed, the discharge
undone), its open task is cancelled with that reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from wardwatch.capacity.models import Bed, Site, Ward
from wardwatch.capacity.service import CapacityService
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.filters import one_of
from wardwatch.db.session import Database, Tx, now_present
from wardwatch.tasks import escalation, teams
from wardwatch.tasks.models import Escalation, Task, Team
from wardwatch.tasks.rules import (
    CLEANING_TYPES,
    OPEN,
    TEAM_FOR_KIND,
    Action,
    Status,
    limits_for,
    refusal,
    sort_key,
)
from wardwatch.tasks.schemas import (
    EscalationRead,
    TaskCreate,
    TaskRead,
    TaskUpdate,
    TeamRead,
    TeamsFile,
)

S = BedState
CLEANING_STATES = {S.AWAITING_CLEAN.value, S.CLEANING.value}
OPEN_VALUES = [s.value for s in OPEN]
#: ``Session.info`` key: the open cleaning tasks of the beds a batch read ahead (locked), by
#: bed id, oldest first (see :meth:`TaskService.look_ahead`).
OPEN_CLEANING = "wardwatch.open_cleaning"
#: Look-ahead kind (``db.session.absent``): sites with no patient waiting for a bed and no
#: cleaning task marked 'clean next' (flow/service.py).
QUIET_SITE = "quiet_site"


class TaskService:
    def __init__(self, db: Database, clock: Clock, capacity: CapacityService) -> None:
        self.db = db
        self.clock = clock
        self.moves = capacity.moves
        self.escalations = escalation.Escalator(db, clock)

    # --- inside a caller's transaction -----------------------------------------------------

    def create(
        self,
        tx: Tx,
        *,
        kind: str,
        type_: str,
        site_id: str | None,
        actor: Actor,
        cause: str,
        description: str,
        team: Team | None = None,
        ward_id: str | None = None,
        bed_id: str | None = None,
        stay_id: str | None = None,
        request_id: str | None = None,
        priority: str = "routine",
        codes: tuple[str | None, str | None, str | None] | None = None,
    ) -> Task:
        """A new task, requested now, with its deadlines from the team's limits.
        ``codes`` (site, ward, bed) save a lookup when the caller already has them."""
        if team is None:
            if site_id is None:
                raise ValidationFailed("a task needs a team or a site")
            team = teams.team_for_site(tx.session, site_id, TEAM_FOR_KIND[kind])
        site_id = site_id or team.site_id
        site_code, ward_code, bed_code = codes or _codes(tx.session, site_id, bed_id)
        now = self.clock.now()
        limits = limits_for(kind, type_, team.limits)
        task = Task(
            id=new_id("task"),
            kind=kind,
            type=type_,
            team_id=team.id,
            site_id=site_id,
            ward_id=ward_id,
            bed_id=bed_id,
            team_code=team.code,
            site_code=site_code,
            ward_code=ward_code,
            bed_code=bed_code,
            stay_id=stay_id,
            request_id=request_id,
            status=Status.REQUESTED.value,
            priority=priority,
            base_priority=priority,
            description=description,
            cause=cause,
            created_at=now,
            created_by=actor.label,
            expected_minutes=limits["expected"],
            accept_by=now + timedelta(minutes=limits["accept"]),
            finish_by=now + timedelta(minutes=limits["finish"]),
            escalate_at=now + timedelta(minutes=limits["accept"]),
        )
        tx.session.add(task)
        known: dict[str, tuple[Task, ...]] | None = tx.session.info.get(OPEN_CLEANING)
        if kind == "cleaning" and known is not None and bed_id in known:
            # A new tuple, not an append: a step rolled back puts the old one back.
            known[bed_id] = (*known[bed_id], task)
        self._log(tx, task, "task.created", actor)
        return task

    def set_priority(
        self, tx: Tx, task: Task, priority: str, actor: Actor, why: str, *, by_hand: bool = False
    ) -> None:
        """Change an open task's priority. Set ``by_hand``, it is also the task's own priority,
        which 'clean next' matching comes back to (and never overrides downwards)."""
        if task.status not in OPEN_VALUES:
            return
        if by_hand:
            task.base_priority = priority
        if priority == "clean_next":
            now_present(tx.session, QUIET_SITE, task.site_id)
        if task.priority == priority:
            return
        previous, task.priority = task.priority, priority
        self._log(tx, task, "task.priority_changed", actor, extra={"from": previous, "why": why})

    def cancel_in(self, tx: Tx, task: Task, actor: Actor, reason: str) -> None:
        if task.status not in OPEN_VALUES:
            return
        now = self.clock.now()
        task.status = Status.CANCELLED.value
        task.cancelled_at, task.cancelled_by, task.cancel_reason = now, actor.label, reason
        task.escalate_at = None
        if now >= min(task.accept_by, task.finish_by):
            self.escalations.resolve(tx.session, task, now)
        self._log(tx, task, "task.cancelled", actor, extra={"reason": reason})

    def complete_in(self, tx: Tx, task: Task, actor: Actor) -> None:
        """Mark an open task done (stamping any skipped steps), without touching its bed."""
        if task.status in OPEN_VALUES:
            self._advance(tx, task, Action.DONE, actor)

    def open_task_for_bed(self, s: Session, bed_id: str, kind: str) -> Task | None:
        known: dict[str, tuple[Task, ...]] | None = s.info.get(OPEN_CLEANING)
        if kind == "cleaning" and known is not None and bed_id in known:  # read ahead
            return next((t for t in known[bed_id] if t.status in OPEN_VALUES), None)
        return s.scalars(
            select(Task)
            .where(Task.bed_id == bed_id, Task.kind == kind, Task.status.in_(OPEN_VALUES))
            .order_by(Task.created_at)
            .with_for_update()
        ).first()

    def look_ahead(self, tx: Tx, patient_ids: frozenset[str], bed_ids: frozenset[str]) -> None:
        """The open cleaning tasks of a batch's beds, locked, in one statement
        (``Database.look_ahead``). The beds are locked: nobody else can ask for their clean
        meanwhile, and a task made here is added (:meth:`create`)."""
        if not bed_ids:
            return
        s = tx.session
        known: dict[str, tuple[Task, ...]] = s.info.setdefault(OPEN_CLEANING, {})
        wanted = bed_ids - known.keys()
        if not wanted:
            return
        tasks = s.scalars(
            select(Task)
            .where(
                one_of(s, Task.bed_id, wanted),
                Task.kind == "cleaning",
                Task.status.in_(OPEN_VALUES),
            )
            .order_by(Task.created_at)
            .with_for_update()
        )
        found: dict[str, list[Task]] = {bed_id: [] for bed_id in wanted}
        for task in tasks:
            if task.bed_id is not None:
                found[task.bed_id].append(task)
        known.update((bed_id, tuple(open_)) for bed_id, open_ in found.items())

    # --- the reactor: cleaning follows the beds -------------------------------------------

    def on_record(self, tx: Tx, rec: EventRecord) -> None:
        if rec.bed_id is None or rec.to_state is None or rec.from_state == rec.to_state:
            return
        if rec.to_state == S.AWAITING_CLEAN.value:
            self._need_cleaning(tx, rec)
        elif rec.to_state == S.CLEANING.value:
            task = self.open_task_for_bed(tx.session, rec.bed_id, "cleaning")
            if task is not None and task.status != Status.IN_PROGRESS.value:
                self._advance(tx, task, Action.START, _actor_of(rec))
        elif rec.from_state in CLEANING_STATES:
            task = self.open_task_for_bed(tx.session, rec.bed_id, "cleaning")
            if task is None:
                pass
            elif rec.to_state == S.AVAILABLE.value:
                # Marked clean on the bed board or by the PAS (A20 'U'): the clean was done.
                self._advance(tx, task, Action.DONE, _actor_of(rec))
            else:
                why = f"the bed became {rec.to_state} ({rec.actor})"
                self.cancel_in(tx, task, _actor_of(rec), why)

    def _need_cleaning(self, tx: Tx, rec: EventRecord) -> None:
        if rec.bed_id is None or self.open_task_for_bed(tx.session, rec.bed_id, "cleaning"):
            return
        data = rec.data or {}
        asked = data.get("cleaning")
        type_ = asked if isinstance(asked, str) and asked in CLEANING_TYPES else "standard"
        bed_code = str(data.get("bed") or rec.bed_id)
        site_code, ward_code = tx.codes_for(rec)
        codes = (site_code, ward_code, bed_code) if site_code and ward_code else None
        self.create(
            tx,
            kind="cleaning",
            type_=str(type_),
            site_id=rec.site_id,
            ward_id=rec.ward_id,
            bed_id=rec.bed_id,
            stay_id=rec.stay_id,
            actor=_actor_of(rec),
            cause=rec.type,
            description=f"{type_.capitalize()} clean of bed {bed_code}",
            codes=codes,
        )

    # --- transactions of their own (the API) ----------------------------------------------

    def act(
        self,
        task_id: str,
        action: Action,
        actor: Actor,
        *,
        version: int | None = None,
        reason: str | None = None,
    ) -> TaskRead:
        with self.db.transaction() as tx:
            # Bed before task, the order every bed move takes (its reactor locks the task):
            # two orders would deadlock a tap against a discharge of the same bed.
            bed = tx.session.scalars(
                select(Bed)
                .options(joinedload(Bed.ward).joinedload(Ward.site))
                .join(Task, Task.bed_id == Bed.id)
                .where(Task.id == task_id)
                .with_for_update(of=Bed)
            ).first()
            task = self._lock(tx.session, task_id)
            if version is not None and version != task.version:
                raise Conflict(
                    f"task changed since you saw it (version {version}, now {task.version}): "
                    f"it is {task.status.replace('_', ' ')}{_closed_note(task)}"
                )
            problem = refusal(Status(task.status), action)
            if problem:
                raise Conflict(f"task {task.id}: {problem}{_closed_note(task)}")
            if action == Action.CANCEL:
                if not (reason and reason.strip()):
                    raise ValidationFailed("a reason is required to cancel a task")
                self.cancel_in(tx, task, actor, reason.strip())
            else:
                self._advance(tx, task, action, actor)
                if bed is not None:
                    self._move_bed(tx, task, bed, action, actor)
            now = self.clock.now()
            late = now >= min(task.accept_by, task.finish_by)  # else none can exist
            level = escalation.levels(tx.session, [task.id]).get(task.id, 0) if late else 0
        return _task_read(task, level, now)

    def create_other(self, req: TaskCreate, actor: Actor) -> TaskRead:
        with self.db.transaction() as tx:
            team = teams.team_by_code(tx.session, req.team)
            ward_id = None
            if req.bed_id is not None:
                bed = tx.session.get(Bed, req.bed_id)
                if bed is None:
                    raise NotFound(f"no bed with id {req.bed_id!r}")
                ward_id = bed.ward_id
            task = self.create(
                tx,
                kind="other",
                type_="general",
                site_id=team.site_id,
                team=team,
                actor=actor,
                cause="manual",
                description=req.description,
                bed_id=req.bed_id,
                ward_id=ward_id,
                priority=req.priority,
            )
        return self.get(task.id)

    def update(self, task_id: str, req: TaskUpdate, actor: Actor) -> TaskRead:
        if req.priority is None and req.type is None:
            raise ValidationFailed("nothing to change: give priority or type")
        with self.db.transaction() as tx:
            task = self._lock(tx.session, task_id)
            if task.status not in OPEN_VALUES:
                raise Conflict(f"task {task.id} is {task.status}: it can no longer change")
            if req.priority is not None:
                self.set_priority(tx, task, req.priority, actor, "set by hand", by_hand=True)
            if req.type is not None and req.type != task.type:
                if task.kind != "cleaning":
                    raise ValidationFailed("only a cleaning task has a cleaning type")
                self._retype(tx, task, req.type, actor)
        return self.get(task_id)

    def _retype(self, tx: Tx, task: Task, type_: str, actor: Actor) -> None:
        team = tx.session.get_one(Team, task.team_id)
        limits = limits_for(task.kind, type_, team.limits)
        previous, task.type = task.type, type_
        task.expected_minutes = limits["expected"]
        task.finish_by = task.created_at + timedelta(minutes=limits["finish"])
        now = task.escalate_at = self.clock.now()
        if task.finish_by > now:  # back within its time: a new lateness starts at level 1
            self.escalations.resolve(tx.session, task, now, breach="finish")
        task.description = task.description.replace(previous.capitalize(), type_.capitalize())
        self._log(tx, task, "task.retyped", actor, extra={"from": previous})

    # --- steps ----------------------------------------------------------------------------

    def _advance(self, tx: Tx, task: Task, action: Action, actor: Actor) -> None:
        now = self.clock.now()
        steps = {Action.ACCEPT: 1, Action.START: 2, Action.DONE: 3}[action]
        late = now >= min(task.accept_by, task.finish_by)  # only then can one be open
        if steps >= 1 and task.accepted_at is None:
            task.accepted_at, task.accepted_by = now, actor.label
            if late:
                self.escalations.resolve(tx.session, task, now, breach="accept")
            if action != Action.ACCEPT:
                self._log(tx, task, "task.accepted", actor, status=Status.ACCEPTED)
        if steps >= 2 and task.started_at is None:
            task.started_at, task.started_by = now, actor.label
            if action != Action.START:
                self._log(tx, task, "task.started", actor, status=Status.IN_PROGRESS)
        status = {1: Status.ACCEPTED, 2: Status.IN_PROGRESS, 3: Status.DONE}[steps]
        task.status = status.value
        if status == Status.DONE:
            task.done_at, task.done_by = now, actor.label
            task.escalate_at = None
            if late:
                self.escalations.resolve(tx.session, task, now)
        else:
            task.escalate_at = now  # the escalation check re-plans from the new state
        event = {1: "task.accepted", 2: "task.started", 3: "task.done"}[steps]
        self._log(tx, task, event, actor)

    def _move_bed(self, tx: Tx, task: Task, bed: Bed, action: Action, actor: Actor) -> None:
        """Cleaning drives its (already locked) bed: started → cleaning, done → available."""
        if task.kind != "cleaning":
            return
        if action == Action.START and bed.state == S.AWAITING_CLEAN.value:
            self.moves.change_state(tx, bed.id, S.CLEANING, None, actor, locked=bed)
        elif action == Action.DONE and bed.state in CLEANING_STATES:
            self.moves.change_state(
                tx, bed.id, S.AVAILABLE, None, actor, cleaning_only=True, locked=bed
            )

    def _lock(self, s: Session, task_id: str) -> Task:
        task = s.scalars(select(Task).where(Task.id == task_id).with_for_update()).first()
        if task is None:
            raise NotFound(f"no task with id {task_id!r}")
        return task

    def _log(
        self,
        tx: Tx,
        task: Task,
        event: str,
        actor: Actor,
        *,
        status: Status | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        data: dict[str, object] = {
            "task": task.id,
            "kind": task.kind,
            "type": task.type,
            "team": task.team_code,
            "status": (status or Status(task.status)).value,
            "priority": task.priority,
            "summary": task.description,
        }
        if task.bed_code:
            data["bed"] = task.bed_code
        if task.kind == "cleaning":
            data["cleaning"] = task.type
        if task.request_id:
            data["request"] = task.request_id
        data.update(extra or {})
        tx.record(
            event,
            at=self.clock.now(),
            actor=actor,
            site_id=task.site_id,
            site_code=task.site_code,
            ward_id=task.ward_id,
            ward_code=task.ward_code,
            bed_id=task.bed_id,
            stay_id=task.stay_id,
            data=data,
        )

    # --- reads ----------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskRead:
        with self.db.read() as s:
            rows = self._reads(s, _task_query().where(Task.id == task_id))
        if not rows:
            raise NotFound(f"no task with id {task_id!r}")
        return rows[0]

    def list_tasks(
        self,
        *,
        team: str | None = None,
        site: str | None = None,
        kind: str | None = None,
        bed_id: str | None = None,
        open_only: bool = True,
        limit: int = 500,
    ) -> list[TaskRead]:
        query = _task_query()
        if bed_id:
            query = query.where(Task.bed_id == bed_id)
        if team:
            query = query.where(Task.team_code == team)
        if site:
            query = query.where(Task.site_code == site)
        if kind:
            query = query.where(Task.kind == kind)
        if open_only:
            query = query.where(Task.status.in_(OPEN_VALUES))
        else:
            query = query.order_by(Task.created_at.desc())
        with self.db.read() as s:
            rows = self._reads(s, query.limit(limit))
        if open_only:
            rows.sort(key=lambda r: sort_key(r.priority, r.created_at))
        return rows

    def _reads(self, s: Session, query: Select[Task]) -> list[TaskRead]:
        now = self.clock.now()
        found = list(s.scalars(query))
        levels = escalation.levels(s, [t.id for t in found])
        return [_task_read(task, levels.get(task.id, 0), now) for task in found]

    # --- teams and escalations ------------------------------------------------------------

    def teams(self) -> list[TeamRead]:
        with self.db.read() as s:
            rows = s.execute(
                select(Team, Site.code).outerjoin(Site, Team.site_id == Site.id).order_by(Team.code)
            ).all()
            return [teams.read(team, code) for team, code in rows]

    def load_teams(self, spec: TeamsFile, actor: Actor) -> list[TeamRead]:
        codes = [t.code for t in spec.teams]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValidationFailed(f"team code(s) given twice: {', '.join(dupes)}")
        with self.db.transaction() as tx:
            for team_spec in spec.teams:
                teams.upsert(tx.session, team_spec)
            tx.record("teams.loaded", at=self.clock.now(), actor=actor, data={"teams": codes})
        return self.teams()

    def escalate_due(self, actor: Actor | None = None) -> list[EscalationRead]:
        """Raise every escalation that is due at the clock's now (run by a timer)."""
        return self.escalations.run_due(self._log, actor)

    def acknowledge(self, escalation_id: str, actor: Actor, note: str | None) -> EscalationRead:
        return self.escalations.acknowledge(escalation_id, actor, note, self._log)

    def list_escalations(self, *, open_only: bool = True) -> list[EscalationRead]:
        return self.escalations.listing(open_only=open_only)


def _actor_of(rec: EventRecord) -> Actor:
    return Actor.from_label(rec.actor)


def _closed_note(task: Task) -> str:
    """Who or what moved the task on, to put in a refusal."""
    if task.status == Status.CANCELLED.value and task.cancel_reason:
        return f" ({task.cancel_reason})"
    by = {
        Status.DONE.value: task.done_by,
        Status.IN_PROGRESS.value: task.started_by,
        Status.ACCEPTED.value: task.accepted_by,
    }.get(task.status)
    return f" (by {by})" if by else ""


def _codes(
    s: Session, site_id: str | None, bed_id: str | None
) -> tuple[str | None, str | None, str | None]:
    """(site, ward, bed) codes for a task's place."""
    if bed_id is not None:
        row = s.execute(
            select(Site.code, Ward.code, Bed.code)
            .join(Ward, Ward.site_id == Site.id)
            .join(Bed, Bed.ward_id == Ward.id)
            .where(Bed.id == bed_id)
        ).first()
        if row is not None:
            return row[0], row[1], row[2]
    site_code = s.scalar(select(Site.code).where(Site.id == site_id)) if site_id else None
    return site_code, None, None


def _task_query() -> Select[Task]:
    return select(Task)


def _task_read(task: Task, level: int, now: datetime) -> TaskRead:
    end = task.done_at or task.cancelled_at or now
    deadline = task.accept_by if task.status == Status.REQUESTED.value else task.finish_by
    return TaskRead(
        id=task.id,
        kind=task.kind,
        type=task.type,
        team=task.team_code,
        site=task.site_code,
        ward=task.ward_code,
        bed_id=task.bed_id,
        bed=task.bed_code,
        request_id=task.request_id,
        status=task.status,
        priority=task.priority,
        description=task.description,
        created_at=task.created_at,
        created_by=task.created_by,
        expected_minutes=task.expected_minutes,
        accept_by=task.accept_by,
        finish_by=task.finish_by,
        accepted_at=task.accepted_at,
        accepted_by=task.accepted_by,
        started_at=task.started_at,
        started_by=task.started_by,
        done_at=task.done_at,
        done_by=task.done_by,
        cancelled_at=task.cancelled_at,
        cancel_reason=task.cancel_reason,
        escalation_level=level,
        waiting_minutes=round(max(0.0, (end - task.created_at).total_seconds()) / 60, 1),
        overdue=task.status in OPEN_VALUES and now >= deadline,
        version=task.version,
    )


__all__ = ["Escalation", "TaskService"]
