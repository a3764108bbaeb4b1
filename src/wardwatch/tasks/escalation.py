"""Escalation: a task that misses its time limit goes to the team's supervisor (level 1);
if nobody acknowledges that within the team's supervisor minutes, to the control centre
(level 2). Two limits apply: *accept* (while nobody has taken the task) and *finish*.

Deadlines are absolute times in the task row (``escalate_at``), so one indexed query finds
what is due; the check runs on the injected clock, so tests cover hours in milliseconds.
Several workers may run it at once: on PostgreSQL due tasks are claimed with ``SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound
from wardwatch.core.ids import new_id
from wardwatch.db.session import Database, Tx
from wardwatch.tasks.models import Escalation, Task, Team
from wardwatch.tasks.rules import OPEN, Status
from wardwatch.tasks.schemas import EscalationRead

#: How the task service logs a task event: (tx, task, type, actor, extra=...).
LogFn = Callable[..., None]
TARGETS = {1: "supervisor", 2: "control-centre"}
BATCH = 200


class Escalator:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def run_due(self, log: LogFn, actor: Actor | None = None) -> list[EscalationRead]:
        """Raise every escalation due now; returns those raised."""
        now = self.clock.now()
        raised: list[Escalation] = []
        with self.db.transaction() as tx:
            query = (
                select(Task)
                .where(Task.escalate_at <= now, Task.status.in_([s.value for s in OPEN]))
                .order_by(Task.escalate_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
            for task in tx.session.scalars(query).all():
                found, next_at = self._check(tx, task, now, log, actor or SYSTEM)
                raised.extend(found)
                _plan(tx, task, next_at)
        with self.db.read() as s:
            return [self._read(s, e) for e in raised]

    def _check(
        self, tx: Tx, task: Task, now: datetime, log: LogFn, actor: Actor
    ) -> tuple[list[Escalation], datetime | None]:
        """Escalate what is due on one task; returns those raised and its next check."""
        team = tx.session.get_one(Team, task.team_id)
        grace = timedelta(minutes=team.supervisor_minutes)
        mine = tx.session.scalars(select(Escalation).where(Escalation.task_id == task.id)).all()
        for breach, deadline, applies in (
            ("accept", task.accept_by, task.status == Status.REQUESTED.value),
            ("finish", task.finish_by, True),
        ):
            if not applies:
                continue
            if now < deadline:
                return [], deadline
            live = [e for e in mine if e.breach == breach and e.resolved_at is None]
            first = next((e for e in live if e.level == 1), None)
            second = next((e for e in live if e.level == 2), None)
            if first is None:
                return [self._raise(tx, task, team, breach, 1, now, log, actor)], now + grace
            if first.acknowledged_at is None and second is None:
                if now < first.raised_at + grace:
                    return [], first.raised_at + grace
                return [self._raise(tx, task, team, breach, 2, now, log, actor)], None
            # this limit has been taken as far as it goes: look at the next one
        return [], None

    def _raise(
        self,
        tx: Tx,
        task: Task,
        team: Team,
        breach: str,
        level: int,
        now: datetime,
        log: LogFn,
        actor: Actor,
    ) -> Escalation:
        minutes = round(
            (
                (task.accept_by if breach == "accept" else task.finish_by) - task.created_at
            ).total_seconds()
            / 60
        )
        verb = "accepted" if breach == "accept" else "finished"
        reason = f"{task.description}: not {verb} within {minutes} min"
        if level == 2:
            reason += f"; the supervisor did not acknowledge within {team.supervisor_minutes} min"
        esc = Escalation(
            id=new_id("esc"),
            task_id=task.id,
            team_id=team.id,
            level=level,
            breach=breach,
            target=TARGETS[level],
            reason=reason,
            raised_at=now,
        )
        tx.session.add(esc)
        extra: dict[str, object] = {
            "escalation": esc.id,
            "level": level,
            "breach": breach,
            "escalate_to": TARGETS[level],
            "reason": reason,
        }
        if team.supervisor_email:
            extra["supervisor_email"] = team.supervisor_email
        log(tx, task, "task.escalated", actor, extra=extra)
        return esc

    def resolve(self, s: Session, task: Task, now: datetime, *, breach: str | None = None) -> None:
        """The task moved on: its open escalations (of one breach, or all) are resolved."""
        query = select(Escalation).where(
            Escalation.task_id == task.id, Escalation.resolved_at.is_(None)
        )
        if breach is not None:
            query = query.where(Escalation.breach == breach)
        for esc in s.scalars(query):
            esc.resolved_at = now

    def acknowledge(
        self, escalation_id: str, actor: Actor, note: str | None, log: LogFn
    ) -> EscalationRead:
        now = self.clock.now()
        with self.db.transaction() as tx:
            esc = tx.session.scalars(
                select(Escalation).where(Escalation.id == escalation_id).with_for_update()
            ).first()
            if esc is None:
                raise NotFound(f"no escalation with id {escalation_id!r}")
            if esc.acknowledged_at is not None:
                raise Conflict(
                    f"escalation {esc.id} was already acknowledged by {esc.acknowledged_by}"
                )
            esc.acknowledged_at, esc.acknowledged_by, esc.note = now, actor.label, note
            task = tx.session.get_one(Task, esc.task_id)
            if task.status in [s.value for s in OPEN]:
                _plan(tx, task, now)  # re-plan: this level is answered
            log(
                tx,
                task,
                "escalation.acknowledged",
                actor,
                extra={"escalation": esc.id, "level": esc.level, "note": note},
            )
        with self.db.read() as s:
            return self._read(s, s.get_one(Escalation, escalation_id))

    def listing(self, *, open_only: bool = True, limit: int = 500) -> list[EscalationRead]:
        query = select(Escalation).order_by(Escalation.raised_at.desc()).limit(limit)
        if open_only:
            query = query.where(
                Escalation.acknowledged_at.is_(None), Escalation.resolved_at.is_(None)
            )
        with self.db.read() as s:
            return [self._read(s, e) for e in s.scalars(query)]

    @staticmethod
    def _read(s: Session, e: Escalation) -> EscalationRead:
        team = s.get_one(Team, e.team_id)
        return EscalationRead(
            id=e.id,
            task_id=e.task_id,
            team=team.code,
            level=e.level,
            breach=e.breach,
            target=e.target,
            reason=e.reason,
            raised_at=e.raised_at,
            acknowledged_at=e.acknowledged_at,
            acknowledged_by=e.acknowledged_by,
            note=e.note,
            resolved_at=e.resolved_at,
            open=e.acknowledged_at is None and e.resolved_at is None,
        )


def levels(s: Session, task_ids: Iterable[str]) -> dict[str, int]:
    """The highest escalation level each task reached."""
    ids = list(task_ids)
    if not ids:
        return {}
    rows = s.execute(
        select(Escalation.task_id, func.max(Escalation.level))
        .where(Escalation.task_id.in_(ids))
        .group_by(Escalation.task_id)
    )
    return {task_id: int(level) for task_id, level in rows}


def _plan(tx: Tx, task: Task, when: datetime | None) -> None:
    """Set when a task is next checked, without changing its version: a cleaner's screen
    showing the task is still up to date (only what people see bumps the version)."""
    tx.session.execute(
        update(Task)
        .where(Task.id == task.id)
        .values(escalate_at=when)
        .execution_options(synchronize_session=False)
    )
