"""The demo's virtual-ward team: nurses and a consultant working the alerts.

They work the alerts like the people of :mod:`wardwatch.demo.coordination`: with human delays,
slower at night, sometimes late enough for the escalation to the senior clinician and the
control centre to fire. A call or a home visit starts treatment (the patient's course then
turns), checks are stepped up to hourly until NEWS2 settles; the sickest are stepped up to
hospital (a bed request the demo's bed manager allocates). The team draws from its own random
stream, so its choices do not shift the ward's.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from wardwatch.core.actor import Actor
from wardwatch.core.errors import WardWatchError
from wardwatch.demo.vw_home import Patient, between
from wardwatch.demo.vw_physiology import LONDON
from wardwatch.virtualward.schemas import (
    Action,
    AlertActionIn,
    AlertRead,
    EndRequest,
    EnrolmentRead,
    PlanIn,
    ScaleUpdate,
    StepUpRequest,
)

if TYPE_CHECKING:
    from wardwatch.demo.wearables import SimulatedVirtualWard

log = logging.getLogger(__name__)
CONSULTANT = Actor(name="vw-consultant", role="clinician")
NURSES = [Actor(name=f"vw-nurse-{n}", role="clinician") for n in range(1, 6)]
NIGHT_NURSE = Actor(name="vw-night-nurse", role="clinician")

#: Where a patient stepped up from each virtual ward is looked after in hospital.
HOSPITAL_SPECIALTY = {
    "frailty": "elderly care",
    "respiratory medicine": "respiratory medicine",
    "heart failure": "cardiology",
}
SCALE_2_REASON = "COPD with documented hypercapnic respiratory failure: target SpO2 88-92%"
#: Alert kinds about the patient's condition, and those about the kit (rules.py groups them;
#: the alert's read model carries the kind only).
URGENT_KINDS = frozenset({"news2_high", "news2_medium", "single_3", "threshold", "trend"})
ROUTINE_KINDS = frozenset({"missed_reading", "stale_data", "battery_low"})
_ROUTINE_REASON = {
    "missed_reading": "patient called: reminded to do the check",
    "stale_data": "patient called: device and hub checked",
    "battery_low": "patient asked to charge the device",
}


@dataclass(slots=True)
class _Triage:
    severity: str
    ack_at: datetime
    who: Actor
    action: Action | None = None
    reason: str | None = None
    act_at: datetime | None = None
    acted_at: datetime | None = None
    followed_up: bool = False


ACK_MEAN_MIN = {"emergency": 4.0, "urgent": 10.0, "routine": 30.0}
NIGHT_SLOWER = 2.5  # one nurse covers the whole caseload overnight
ACTION_MIN = {
    "called_patient": (5, 15),
    "home_visit": (60, 150),
    "escalated_hospital": (5, 15),
    "escalated_999": (3, 8),
    "no_action": (2, 5),
}


class VirtualWardTeam:
    """The virtual-ward nurses and consultant: acknowledge, act, resolve, step up."""

    def __init__(self, ward: SimulatedVirtualWard, rng: random.Random) -> None:
        self.ward = ward
        self.rt = ward.rt
        self.rng = rng
        self._plans: dict[str, _Triage] = {}
        self.counts: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()  # by what was done

    def step(self, now: datetime, caseload: list[EnrolmentRead]) -> None:
        seen: set[str] = set()
        for e in caseload:
            p = self.ward.patient(e.id)
            for a in sorted(e.open_alerts, key=lambda a: (a.opened_at, a.kind, a.summary)):
                seen.add(a.id)
                self._try(partial(self._work, now, e, p, a))
        for gone in [k for k in self._plans if k not in seen]:
            del self._plans[gone]

    def _work(self, now: datetime, e: EnrolmentRead, p: Patient | None, a: AlertRead) -> None:
        t = self._plans.get(a.id)
        if t is None or (a.status == "new" and t.severity != a.severity):
            t = self._plans[a.id] = self._plan(now, a)
        if a.status == "new" and now >= t.ack_at:
            self.rt.virtualward.acknowledge(a.id, t.who, version=a.version)
            self.counts["acknowledged"] += 1
            self.counts["late"] += now > a.due_at
            self._choose(now, e, p, a, t)
        elif a.status == "acknowledged":
            if t.act_at is None:
                self._choose(now, e, p, a, t)
            if t.act_at is not None and now >= t.act_at:
                self._act(now, e, p, a, t)
        elif a.status == "actioned":
            self._review(now, e, p, a, t)

    def _plan(self, now: datetime, a: AlertRead) -> _Triage:
        night = not 7 <= now.astimezone(LONDON).hour < 22
        if self.rng.random() < self.ward.config.late_ack_share:
            ack = max(now, a.due_at) + timedelta(minutes=self.rng.uniform(5, 30))
        else:
            mean = ACK_MEAN_MIN.get(a.severity, 20.0) * (NIGHT_SLOWER if night else 1.0)
            ack = now + timedelta(minutes=1 + self.rng.expovariate(1 / mean))
        who = NIGHT_NURSE if night else self.rng.choice(NURSES)
        return _Triage(severity=a.severity, ack_at=ack, who=who)

    def _choose(
        self, now: datetime, e: EnrolmentRead, p: Patient | None, a: AlertRead, t: _Triage
    ) -> None:
        """What the nurse decides to do, and how long it takes."""
        latest = e.latest
        points = latest.partial_total if latest else 0
        confused = bool(latest and latest.values.get("consciousness") not in (None, "A"))
        if a.kind in ROUTINE_KINDS:
            t.action, t.reason = "called_patient", _ROUTINE_REASON.get(a.kind, "patient called")
        elif a.severity == "emergency" or points >= 7:
            if confused or points >= 10:
                t.action, t.reason = "escalated_999", f"999 ambulance called: NEWS2 {points}"
            else:
                t.action, t.reason = "escalated_hospital", f"NEWS2 {points}: hospital assessment"
        else:
            roll = self.rng.random()
            if roll < 0.1:
                t.action = "no_action"
                t.reason = "reviewed with the patient: known baseline, repeat observations due"
            elif roll < 0.55:
                t.action, t.reason = "called_patient", "advice given, rescue medication started"
            else:
                t.action, t.reason = "home_visit", "seen at home: examined, treatment started"
        lo, hi = ACTION_MIN[t.action]
        t.act_at = now + timedelta(minutes=self.rng.uniform(lo, hi))

    def _act(
        self, now: datetime, e: EnrolmentRead, p: Patient | None, a: AlertRead, t: _Triage
    ) -> None:
        action: Action = t.action or "called_patient"
        reason = t.reason
        if action in ("escalated_hospital", "escalated_999"):
            reason = self._step_up(e, p, a, action, reason or "")
        req = AlertActionIn(action=action, reason=reason)
        self.rt.virtualward.act(a.id, req, t.who, version=a.version)
        t.acted_at = now
        self.counts["actioned"] += 1
        self.actions[action] += 1
        if p is not None:
            self._effect(now, e, p, a, action)

    def _step_up(
        self, e: EnrolmentRead, p: Patient | None, a: AlertRead, action: str, reason: str
    ) -> str:
        if p is None or p.stepped_up or p.home_site is None:
            return f"{reason}; already waiting for a hospital bed" if p and p.stepped_up else reason
        specialty = HOSPITAL_SPECIALTY.get(p.profile.specialty, "general medicine")
        priority: Literal["emergency", "urgent"] = (
            "emergency" if action == "escalated_999" or a.severity == "emergency" else "urgent"
        )
        req = self.rt.virtualward.step_up(
            e.id,
            StepUpRequest(site=p.home_site, specialty=specialty, priority=priority, reason=reason),
            CONSULTANT,
        )
        p.stepped_up = True
        self.counts["stepped_up"] += 1
        return f"{reason}; bed requested at {p.home_site} ({req.priority})"

    def _effect(
        self, now: datetime, e: EnrolmentRead, p: Patient, a: AlertRead, action: str
    ) -> None:
        """What the call or visit changes at home."""
        if a.kind in ("missed_reading", "stale_data"):
            p.next_check = min(p.next_check, now + between(self.rng, 5, 20))
            p.offline_until = None
            if any(pct <= 0 for pct in p.battery.values()):
                p.charge_at = now + between(self.rng, 10, 40)
        elif a.kind == "battery_low":
            p.charge_at = now + between(self.rng, 20, 60)
        elif action in ("called_patient", "home_visit") and a.kind in URGENT_KINDS:
            if p.course is not None and p.course.treated_at is None:
                p.course.treated_at = now
            if not p.profile.continuous and p.plan.get("times_per_day", 0) < 24:
                self._set_plan(e, p, {**p.base_plan, "times_per_day": 24, "grace_minutes": 30})
                p.next_check = min(p.next_check, now + timedelta(hours=1))

    def _review(
        self, now: datetime, e: EnrolmentRead, p: Patient | None, a: AlertRead, t: _Triage
    ) -> None:
        """An actioned alert: closed when the patient is better, followed up when not."""
        acted = t.acted_at or now
        t.acted_at = acted
        if a.kind == "stale_data" and "arrived" in a.summary:  # late data, not a silent device
            note = "hub reconnected; data flowing again"
            self.rt.virtualward.resolve(a.id, note, t.who, version=a.version)
            self.counts["resolved"] += 1
            return
        if a.kind not in URGENT_KINDS or a.action in ("escalated_hospital", "escalated_999"):
            return
        points = e.latest.partial_total if e.latest else 0
        if now >= acted + timedelta(hours=1) and points <= 4:
            note = f"NEWS2 back to {points}: usual monitoring"
            self.rt.virtualward.resolve(a.id, note, t.who, version=a.version)
            self.counts["resolved"] += 1
            if p is not None and p.plan != p.base_plan:
                self._set_plan(e, p, p.base_plan)
        elif now >= acted + timedelta(hours=3) and not t.followed_up:
            t.followed_up = True  # still unwell after the call: go and see them
            req = AlertActionIn(action="home_visit", reason="no better after advice: visited")
            self.rt.virtualward.act(a.id, req, t.who, version=a.version)
            self.actions["home_visit"] += 1
            if p is not None and p.course is not None and p.course.treated_at is None:
                p.course.treated_at = now

    def set_scale(self, enrolment_id: str) -> None:
        update = ScaleUpdate(scale=2, reason=SCALE_2_REASON)
        self._try(partial(self.rt.virtualward.set_scale, enrolment_id, update, CONSULTANT))

    def _set_plan(self, e: EnrolmentRead, p: Patient, plan: dict[str, Any]) -> None:
        got = self.rt.virtualward.set_plan(e.id, PlanIn.model_validate(plan), CONSULTANT)
        p.plan = dict(got.plan)
        self.counts["plan_changed"] += 1

    def discharge(self, p: Patient) -> None:
        req = EndRequest(reason="recovered", destination="usual residence")
        if self._try(lambda: self.rt.virtualward.end(p.enrolment_id, req, self.rng.choice(NURSES))):
            self.ward.release(p)
            self.ward.counts["ended"] += 1

    @staticmethod
    def _try(action: Callable[[], object]) -> bool:
        try:
            action()
        except WardWatchError as exc:  # someone else got there first: as a person would
            log.debug("virtual-ward team: skipped: %s", exc.message)
            return False
        return True
