"""Alert triage: acknowledge, record what was done, resolve, add a note.

Each step runs in its own transaction under the alert's row lock and leaves a note and an
``alert.*`` event (:meth:`AlertWriter.log`). Given the version the person saw, a step on an
alert that has moved on since is refused, naming who moved it, so two clinicians working
the same alert never act on a state neither of them saw. :class:`VirtualWardService` calls
these and returns the alert as it now stands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound
from wardwatch.db.session import Database
from wardwatch.virtualward.alerting import AlertWriter
from wardwatch.virtualward.models import Alert, AlertNote, Enrolment
from wardwatch.virtualward.schemas import AlertActionIn

#: A triage step: checks the alert's state, changes it, and names what was done.
Step = Callable[[Alert, datetime], str]


class Triage:
    def __init__(self, db: Database, clock: Clock, writer: AlertWriter) -> None:
        self.db = db
        self.clock = clock
        self.writer = writer

    def acknowledge(self, alert_id: str, actor: Actor, version: int | None = None) -> None:
        def step(alert: Alert, now: datetime) -> str:
            if alert.status != "new":
                raise Conflict(f"alert is already {alert.status}")
            alert.status = "acknowledged"
            alert.acknowledged_at, alert.acknowledged_by = now, actor.label
            alert.next_escalation_at = None
            return "acknowledged"

        self._step(alert_id, actor, step, version=version)

    def act(
        self, alert_id: str, req: AlertActionIn, actor: Actor, version: int | None = None
    ) -> None:
        def step(alert: Alert, now: datetime) -> str:
            if alert.status == "new":
                raise Conflict("acknowledge the alert before recording what was done")
            if alert.status == "resolved":
                raise Conflict("alert is already resolved")
            alert.status = "actioned"
            alert.action, alert.action_reason = req.action, req.reason
            alert.actioned_at, alert.actioned_by = now, actor.label
            return "actioned"

        text = req.action.replace("_", " ") + (f": {req.reason}" if req.reason else "")
        self._step(alert_id, actor, step, text, version=version)

    def resolve(
        self, alert_id: str, note: str | None, actor: Actor, version: int | None = None
    ) -> None:
        def step(alert: Alert, now: datetime) -> str:
            if alert.status == "resolved":
                raise Conflict("alert is already resolved")
            if alert.status != "actioned" and alert.grp not in ("missed", "battery", "stale"):
                raise Conflict(
                    "record what was done (called patient, home visit, escalated, or no action "
                    "with a reason) before resolving"
                )
            alert.status = "resolved"
            alert.resolved_at, alert.resolved_by = now, actor.label
            alert.next_escalation_at = None
            return "resolved"

        self._step(alert_id, actor, step, note, version=version)

    def note(self, alert_id: str, text: str, actor: Actor) -> None:
        self._step(alert_id, actor, lambda alert, now: "note", text)

    def _step(
        self,
        alert_id: str,
        actor: Actor,
        step: Step,
        text: str | None = None,
        *,
        version: int | None = None,
    ) -> None:
        """One triage step, under the alert's row lock. With ``version`` (what the person saw)
        a step on an alert that has moved on since is refused, naming who moved it."""
        with self.db.transaction() as tx:
            alert = tx.session.scalar(select(Alert).where(Alert.id == alert_id).with_for_update())
            if alert is None:
                raise NotFound(f"no alert {alert_id}")
            if version is not None and alert.version != version:
                last = tx.session.scalar(
                    select(AlertNote)
                    .where(AlertNote.alert_id == alert_id)
                    .order_by(AlertNote.id.desc())
                    .limit(1)
                )
                who = f" ({last.what} by {last.by})" if last else ""
                raise Conflict(f"the alert changed since you saw it{who}: reload and check")
            enrolment = tx.session.get(Enrolment, alert.enrolment_id)
            if enrolment is None:
                raise NotFound(f"no enrolment {alert.enrolment_id}")
            what = step(alert, self.clock.now())
            self.writer.log(tx, alert, enrolment, what, actor, text)
