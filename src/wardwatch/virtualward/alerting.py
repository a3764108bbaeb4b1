"""Raising, upgrading, escalating and closing virtual-ward alerts, with their events.

Every change to an alert writes a note (the alert's own history: who, what, when) and an
event in the log (``alert.*``), which the notification rules turn into feeds, webhooks and
email: a new alert reaches the patient's team; one not acknowledged within its response
target goes to the senior clinician (the team's supervisor), then to the control centre.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from wardwatch.capacity.models import Bed, Site, Ward
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import Clock
from wardwatch.core.ids import new_id
from wardwatch.db.filters import one_of
from wardwatch.db.session import Tx
from wardwatch.tasks.models import Team
from wardwatch.virtualward.models import Alert, AlertNote, Device, DeviceLink, Enrolment
from wardwatch.virtualward.rules import SEVERITY_RANK, Targets, Trigger, grace, interval

if TYPE_CHECKING:
    from wardwatch.virtualward.ingest import Battery, IngestResult

#: Alerts that close themselves when the condition ends (nobody need triage a recharge).
SELF_CLEARING = frozenset({"missed", "battery"})


class AlertWriter:
    def __init__(self, clock: Clock, settings: Settings) -> None:
        self.clock = clock
        self.settings = settings
        self.targets = Targets(
            emergency=settings.vw_respond_emergency_minutes,
            urgent=settings.vw_respond_urgent_minutes,
            routine=settings.vw_respond_routine_minutes,
        )

    @staticmethod
    def stale_trigger(why: str) -> Trigger:
        return Trigger("stale_data", "stale", "routine", f"stale data: {why}")

    # --- raising -------------------------------------------------------------------------

    def raise_all(
        self,
        tx: Tx,
        enrolment: Enrolment,
        triggers: Sequence[Trigger],
        score_id: int | None,
        actor: Actor,
        result: IngestResult | None = None,
    ) -> list[Alert]:
        if not triggers:
            return []
        s = tx.session
        now = self.clock.now()
        groups = {t.group for t in triggers}
        open_ = {
            a.grp: a
            for a in s.scalars(
                select(Alert).where(
                    Alert.enrolment_id == enrolment.id,
                    Alert.status != "resolved",
                    Alert.grp.in_(groups),
                )
            )
        }
        changed: list[Alert] = []
        for t in triggers:
            alert = open_.get(t.group)
            if alert is None:
                alert = self._new(tx, enrolment, t, score_id, now, actor)
                open_[t.group] = alert
                changed.append(alert)
            elif SEVERITY_RANK[t.severity] > SEVERITY_RANK[alert.severity]:
                self._upgrade(tx, enrolment, alert, t, score_id, now, actor)
                changed.append(alert)
            else:
                alert.repeats += 1
                alert.last_triggered_at = now
        if result is not None:
            result.alerts.extend(a.id for a in changed)
        return changed

    def _new(
        self,
        tx: Tx,
        enrolment: Enrolment,
        t: Trigger,
        score_id: int | None,
        now: datetime,
        actor: Actor,
    ) -> Alert:
        alert = Alert(
            id=new_id("alr"),
            enrolment_id=enrolment.id,
            team_id=enrolment.team_id,
            kind=t.kind,
            grp=t.group,
            severity=t.severity,
            status="new",
            summary=t.summary[:300],
            score_id=score_id,
            opened_at=now,
            due_at=now + timedelta(minutes=self.targets.minutes(t.severity)),
            repeats=0,
            last_triggered_at=now,
            level=0,
        )
        tx.session.add(alert)
        tx.session.flush()
        self.log(tx, alert, enrolment, "raised", actor, t.summary)
        return alert

    def _upgrade(
        self,
        tx: Tx,
        enrolment: Enrolment,
        alert: Alert,
        t: Trigger,
        score_id: int | None,
        now: datetime,
        actor: Actor,
    ) -> None:
        was = alert.severity
        alert.kind, alert.severity, alert.summary = t.kind, t.severity, t.summary[:300]
        alert.score_id = score_id
        target = now + timedelta(minutes=self.targets.minutes(t.severity))
        # Still unanswered: the sooner of the two targets. Already answered: a new clock for
        # the new severity (the old target, met or long past, says nothing about this one).
        alert.due_at = min(alert.due_at, target) if alert.status == "new" else target
        alert.last_triggered_at = now
        # Worse than what was acknowledged: somebody must acknowledge this one afresh.
        alert.status, alert.level, alert.next_escalation_at = "new", 0, None
        alert.acknowledged_at = alert.acknowledged_by = None
        alert.action = alert.action_reason = alert.actioned_at = alert.actioned_by = None
        self.log(tx, alert, enrolment, "upgraded", actor, f"{was} -> {t.severity}: {t.summary}")

    # --- conditions that end by themselves -----------------------------------------------

    def readings_arrived(self, tx: Tx, enrolments: Iterable[Enrolment], actor: Actor) -> None:
        """A reading came: an open missed-reading alert for that patient is over."""
        by_id = {e.id: e for e in enrolments}
        if not by_id:
            return
        for alert in tx.session.scalars(
            select(Alert).where(
                one_of(tx.session, Alert.enrolment_id, by_id),
                Alert.grp == "missed",
                Alert.status != "resolved",
            )
        ):
            self.close(tx, alert, by_id[alert.enrolment_id], actor, "a reading has arrived")

    def battery(
        self,
        tx: Tx,
        enrolment_of: Mapping[str, Enrolment],
        batteries: Sequence[Battery],
        actor: Actor,
        result: IngestResult | None = None,
    ) -> None:
        low = self.settings.vw_battery_low_pct
        newest: dict[str, Battery] = {}
        for b in batteries:
            if b.device not in newest or b.at >= newest[b.device].at:
                newest[b.device] = b
        for serial, b in sorted(newest.items()):
            enrolment = enrolment_of.get(serial)
            if enrolment is None:
                continue
            if b.pct <= low:
                trigger = Trigger(
                    "battery_low", "battery", "routine", f"device {serial} battery {b.pct}%"
                )
                self.raise_all(tx, enrolment, [trigger], None, actor, result)
            elif b.pct > low + 5:
                for alert in tx.session.scalars(
                    select(Alert).where(
                        Alert.enrolment_id == enrolment.id,
                        Alert.grp == "battery",
                        Alert.status != "resolved",
                    )
                ):
                    self.close(tx, alert, enrolment, actor, f"battery back to {b.pct}%")

    def close(self, tx: Tx, alert: Alert, enrolment: Enrolment, actor: Actor, why: str) -> None:
        now = self.clock.now()
        alert.status = "resolved"
        alert.resolved_at, alert.resolved_by = now, actor.label
        alert.next_escalation_at = None
        self.log(tx, alert, enrolment, "resolved", actor, why)

    # --- the record ----------------------------------------------------------------------

    def log(
        self,
        tx: Tx,
        alert: Alert,
        enrolment: Enrolment,
        what: str,
        actor: Actor,
        text: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        now = self.clock.now()
        tx.session.add(AlertNote(alert_id=alert.id, at=now, by=actor.label, what=what, text=text))
        where = place_of(tx, enrolment)
        data: dict[str, Any] = {
            "alert": alert.id,
            "kind": alert.kind,
            "severity": alert.severity,
            "status": alert.status,
            "level": alert.level,
            "team": where["team"],
            "supervisor_email": where["supervisor_email"],
            "enrolment": enrolment.id,
            "summary": alert.summary,
            "due_at": alert.due_at.isoformat(),
        }
        data.update(extra or {})
        tx.record(
            f"alert.{what}",
            at=now,
            actor=actor,
            site_id=enrolment.site_id,
            site_code=where["site"],
            ward_id=where["ward_id"],
            ward_code=where["ward"],
            bed_id=where["bed_id"],
            stay_id=enrolment.stay_id,
            reason=text,
            data=data,
        )


def place_of(tx: Tx, enrolment: Enrolment) -> dict[str, Any]:
    """Codes for an enrolment's events (team, site, ward, place), read once per transaction."""
    cache: dict[str, dict[str, Any]] = tx.scratch.setdefault("vw_places", {})
    found = cache.get(enrolment.id)
    if found is None:
        row = tx.session.execute(
            select(Team.code, Team.supervisor_email, Site.code, Ward.id, Ward.code, Bed.id)
            .select_from(Bed)
            .join(Ward, Ward.id == Bed.ward_id)
            .join(Site, Site.id == Ward.site_id)
            .join(Team, Team.id == enrolment.team_id)
            .where(Bed.id == enrolment.bed_id)
        ).one()
        found = {
            "team": row[0],
            "supervisor_email": row[1],
            "site": row[2],
            "ward_id": row[3],
            "ward": row[4],
            "bed_id": row[5],
        }
        cache[enrolment.id] = found
    return found


class AlertChecker:
    """The clock-driven part: escalations, missed readings, silent devices."""

    def __init__(self, writer: AlertWriter) -> None:
        self.writer = writer
        self.clock = writer.clock

    def run(self, tx: Tx, actor: Actor = SYSTEM) -> list[Alert]:
        """Everything due now, in one transaction; the alerts raised or escalated."""
        changed = self._escalate(tx, actor)
        changed += self._missed(tx, actor)
        return changed

    def _escalate(self, tx: Tx, actor: Actor) -> list[Alert]:
        s = tx.session
        now = self.clock.now()
        due = s.execute(
            select(Alert, Enrolment, Team)
            .join(Enrolment, Enrolment.id == Alert.enrolment_id)
            .join(Team, Team.id == Alert.team_id)
            .where(
                Alert.status == "new",
                Alert.level < 2,
                ((Alert.level == 0) & (Alert.due_at <= now))
                | ((Alert.level == 1) & (Alert.next_escalation_at <= now)),
            )
            .order_by(Alert.due_at)
            .with_for_update(skip_locked=True, of=Alert)
        ).all()
        out = []
        for alert, enrolment, team in due:
            alert.level += 1
            target = "senior clinician" if alert.level == 1 else "control centre"
            alert.next_escalation_at = (
                now + timedelta(minutes=team.supervisor_minutes) if alert.level == 1 else None
            )
            late = int((now - alert.due_at).total_seconds() // 60)
            self.writer.log(
                tx,
                alert,
                enrolment,
                "escalated",
                actor,
                f"not acknowledged {late} min after its response target: to the {target}",
                {"escalate_to": target},
            )
            out.append(alert)
        return out

    def _missed(self, tx: Tx, actor: Actor) -> list[Alert]:
        s = tx.session
        now = self.clock.now()
        open_missed = set(
            s.scalars(
                select(Alert.enrolment_id).where(Alert.grp == "missed", Alert.status != "resolved")
            )
        )
        out: list[Alert] = []
        for enrolment in s.scalars(select(Enrolment).where(Enrolment.ended_at.is_(None))):
            if enrolment.id in open_missed:
                continue
            last = enrolment.last_reading_at or enrolment.enrolled_at
            limit = interval(enrolment.plan) + grace(enrolment.plan)
            if now - last < limit:
                continue
            minutes = int((now - last).total_seconds() // 60)
            kit = _devices_seen(tx, enrolment, now)
            trigger = Trigger(
                "missed_reading",
                "missed",
                "routine",
                f"no reading for {minutes} min (the plan expects one every "
                f"{_minutes(interval(enrolment.plan))})" + (f"; {kit}" if kit else ""),
            )
            out += self.writer.raise_all(tx, enrolment, [trigger], None, actor)
        return out


def _devices_seen(tx: Tx, enrolment: Enrolment, now: datetime) -> str:
    """When each linked device was last heard from (a flat or out-of-range device shows as
    long ago; one that is still sending battery reports but no readings, as recent)."""
    rows = tx.session.execute(
        select(Device.serial, Device.last_seen_at)
        .join(DeviceLink, DeviceLink.device_id == Device.id)
        .where(DeviceLink.enrolment_id == enrolment.id, DeviceLink.unlinked_at.is_(None))
        .order_by(Device.serial)
    ).all()
    return ", ".join(
        f"{serial} last heard {_minutes(now - seen)} ago" if seen else f"{serial} never heard"
        for serial, seen in rows
    )


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"
