"""The demo's virtual ward: patients at home with monitoring kit, and the team watching them.

Every virtual-ward place of the demo is an *enrolment* (never a plain admission), so the
caseload, NEWS2 scores, alerts and escalations are live from the first minute. Each patient
gets one or two registered devices linked at enrolment: a home-monitoring tablet (with a
Bluetooth oximeter, thermometer and, for some, a separate connected BP cuff) for spot checks
2-4 times a day, or a continuous wearable (chest patch and ring oximeter, a sample every 1-5
minutes) plus the tablet for blood pressure twice a day. The plans are realistic ones; the
demo's sped-up clock (x60 by default) is what compresses them, so a check or an upload
arrives every few real seconds across the caseload and a deterioration plays out in minutes.

This module is the ward: enrolments (from home or stepped down from a hospital bed), the kit
cupboard, admissions and discharges, and sending the readings. The rest lives beside it:
:mod:`~wardwatch.demo.vw_physiology` (baselines, noise, deterioration courses),
:mod:`~wardwatch.demo.vw_home` (the patients' kit at home, their checks, uploads and faults)
and :mod:`~wardwatch.demo.vw_team` (the clinical team working the alerts, stepping patients
up to hospital, discharging them).

Readings travel as a gateway would send them: compact JSON through
``rt.virtualward.receive_compact`` ("api" for the tablet app's checks, "mqtt" for the
wearables' batched uploads and status messages).

Everything is drawn from the demo's seed, in a fixed order (patients sorted by NHS number),
so the same seed on the same clock gives the same ward.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import WardWatchError
from wardwatch.demo.generator import WardPlan
from wardwatch.demo.vw_home import Home, Outbox, Patient, between
from wardwatch.demo.vw_physiology import (
    LONDON,
    Course,
    Profile,
    new_course,
    nhs_number,
    profile_for,
)
from wardwatch.demo.vw_team import (
    CONSULTANT,
    HOSPITAL_SPECIALTY,
    NURSES,
    URGENT_KINDS,
    VirtualWardTeam,
)
from wardwatch.runtime import Runtime
from wardwatch.virtualward.schemas import DeviceIn, EnrolmentRead, EnrolRequest

log = logging.getLogger(__name__)
GATEWAY = Actor(name="demo-wearable-gateway", role="device")
PATIENT_APP = Actor(name="demo-patient-app", role="device")

#: Below the national ~75%: a few dozen monitored patients keep the demo cheap on SQLite.
OCCUPANCY = 0.65
LOS_DAYS = {"frailty": 7.0, "respiratory medicine": 6.0, "heart failure": 12.0}


@dataclass(frozen=True, slots=True)
class Config:
    """Shares and rates of the simulated ward (the defaults are the demo's)."""

    occupancy: float = OCCUPANCY
    recover_share: float = 0.12  # patients who deteriorate to NEWS2 ~5-7, then recover
    severe_share: float = 0.08  # patients who deteriorate to 7+ and need hospital
    start_onset_hours: tuple[float, float] = (0.25, 18.0)  # for the patients found at start
    step_down_share: float = 0.35  # new enrolments that come from a hospital bed
    missed_check_share: float = 0.04
    spike_share: float = 0.01  # uploads or checks carrying an impossible value
    late_upload_share: float = 0.004  # wearable uploads after which the hub goes offline
    late_ack_share: float = 0.12  # alerts acknowledged only after their response target


def los_days(plan: WardPlan) -> float:
    """Mean length of a stay on a virtual ward, by its specialty."""
    return LOS_DAYS.get(plan.specialty, plan.los_days)


class SimulatedVirtualWard:
    """The demo's virtual wards: enrolments, devices, readings, and a team on the alerts."""

    def __init__(
        self,
        rt: Runtime,
        clock: Clock,
        plans: Sequence[WardPlan],
        *,
        seed: int = 7,
        config: Config | None = None,
    ) -> None:
        self.rt = rt
        self.clock = clock
        self.config = config or Config()
        self.rng = random.Random(f"wardwatch-demo-vw:{seed}")
        self.seed = seed
        self.wards = {p.code: p for p in plans if p.site_kind == "virtual_ward"}
        self.hospital = [p for p in plans if p.site_kind == "acute" and not p.assessment]
        self.acute_sites = sorted({p.site for p in plans if p.site_kind == "acute" and p.site})
        self.patients: dict[str, Patient] = {}
        self.team = VirtualWardTeam(self, random.Random(f"wardwatch-demo-vw-team:{seed}"))
        devices = rt.virtualward.devices()
        self._serials = len(devices)
        self._pool: dict[str, list[str]] = {}
        for d in devices:
            if d.linked_to is None:
                self._pool.setdefault(d.kind, []).append(d.serial)
        self._last_tick: datetime | None = None
        self._cohort_assigned = False
        self.counts: Counter[str] = Counter()  # what happened, for tests and curiosity
        self.home = Home(self.rng, self.config, self.counts)

    # --- enrolment -----------------------------------------------------------------------

    def enrol(self, plan: WardPlan, *, course: bool = True, from_hospital: bool = False) -> bool:
        """One patient onto ``plan``'s virtual ward now: kit registered, linked, and watched.

        ``from_hospital``: a step down of a patient in a hospital bed of the matching
        specialty (the service moves their stay), else a patient admitted from home.
        """
        now = self.clock.now()
        if sum(p.ward == plan.code for p in self.patients.values()) >= plan.beds:
            return False  # full: in real life the referral waits
        patient = self._from_hospital(plan) if from_hospital else None
        stepped_down = patient is not None
        if patient is None:
            taken = {p.key for p in self.patients.values()}
            key = nhs_number(self.rng)
            while key in taken:
                key = nhs_number(self.rng)
            patient = PatientIn(nhs_number=key, sex=profile_for(key, plan.specialty, self.seed).sex)
        profile = profile_for(
            patient.nhs_number or patient.local_id or "", plan.specialty, self.seed
        )
        kit = {"app": "TAB"}
        if profile.continuous:
            kit["wearable"] = "PATCH"
        elif profile.cuff:
            kit["bp_cuff"] = "BPC"
        serials = {kind: self._device(kind, prefix) for kind, prefix in kit.items()}
        req = EnrolRequest(
            patient=patient, ward=plan.code, plan=profile.plan(), devices=list(serials.values())
        )
        try:
            e = self.rt.virtualward.enrol(req, self.rng.choice(NURSES))
        except WardWatchError as exc:  # the ward filled up, the patient moved: as in life
            log.debug("virtual ward: enrolment skipped: %s", exc.message)
            for kind, serial in serials.items():
                self._pool.setdefault(kind, []).insert(0, serial)
            return False
        if profile.copd:  # the consultant's decision, recorded with its reason
            self.team.set_scale(e.id)
        p = self._patient(e, profile, now, first_check=now + self._minutes(5, 40))
        p.battery = dict.fromkeys(p.devices, 100.0)
        if course:
            p.course = self._course(p, now, (12.0, 24 * self._los(plan) * 0.7))
        self.counts["stepped_down" if stepped_down else "enrolled"] += 1
        return True

    def fill(self) -> int:
        """Enrol patients up to the target occupancy now (a ward that starts empty)."""
        n = 0
        for plan in self.wards.values():
            for _ in range(round(plan.beds * self.config.occupancy)):
                n += self.enrol(plan, course=False)
        return n

    def _from_hospital(self, plan: WardPlan) -> PatientIn | None:
        """A patient in a hospital bed of the matching specialty, ready for a step down."""
        wanted = HOSPITAL_SPECIALTY.get(plan.specialty, "general medicine")
        wards = [w.code for w in self.hospital if w.specialty == wanted]
        if not wards:
            return None
        ward = self.rng.choice(sorted(wards))
        beds = self.rt.capacity.list_beds(BedFilter(ward=ward, state=BedState.OCCUPIED))
        beds = [b for b in beds if b.stay_id]
        if not beds:
            return None
        stay = self.rt.capacity.get_stay(self.rng.choice(beds).stay_id or "")
        if not (stay.nhs_number or stay.local_id):
            return None
        sex = stay.sex if stay.sex in ("male", "female") else None
        return PatientIn(nhs_number=stay.nhs_number, local_id=stay.local_id, sex=sex)

    def _device(self, kind: str, prefix: str) -> str:
        """A free device of ``kind`` from the store cupboard, or a new one registered."""
        pool = self._pool.get(kind)
        if pool:
            return pool.pop(0)
        self._serials += 1
        serial = f"WW-{prefix}-{self._serials:05d}"
        models = {
            "app": "home monitoring tablet (Bluetooth oximeter and thermometer)",
            "wearable": "chest patch with ring oximeter",
            "bp_cuff": "connected blood pressure monitor",
        }
        self.rt.virtualward.register_device(
            DeviceIn(serial=serial, kind=kind, model=models[kind]), CONSULTANT
        )
        return serial

    def _patient(
        self, e: EnrolmentRead, profile: Profile, now: datetime, first_check: datetime
    ) -> Patient:
        kinds = {d.kind: d for d in e.devices}
        home = self.rng.choice(self.acute_sites) if self.acute_sites else None
        los = self._los(self.wards[e.ward]) if e.ward in self.wards else 10.0
        p = Patient(
            key=e.nhs_number or e.local_id or e.patient_id,
            enrolment_id=e.id,
            ward=e.ward,
            profile=profile,
            base_plan=profile.plan().model_dump(),
            plan=dict(e.plan),
            home_site=home,
            end_at=_daytime(now + timedelta(days=max(1.0, self.rng.expovariate(1 / los)))),
            tablet=kinds["app"].serial if "app" in kinds else None,
            cuff=kinds["bp_cuff"].serial if "bp_cuff" in kinds else None,
            wearable=kinds["wearable"].serial if "wearable" in kinds else None,
            next_check=first_check,
            last_sample=now,
            next_upload=now + timedelta(minutes=profile.upload_min),
            next_status=now + self._minutes(0, 60),
            battery={d.serial: float(d.battery_pct or 100) for d in e.devices},
            battery_at=now,
        )
        self.patients[e.id] = p
        return p

    def _los(self, plan: WardPlan) -> float:
        return los_days(plan)

    def _course(self, p: Patient, now: datetime, hours: tuple[float, float]) -> Course | None:
        roll = self.rng.random()
        c = self.config
        if roll < c.severe_share:
            return new_course(self.rng, p.profile.specialty, now, hours, severe=True)
        if roll < c.severe_share + c.recover_share:
            return new_course(self.rng, p.profile.specialty, now, hours, severe=False)
        return None

    # --- the loop ------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """One step of the live demo: census, readings due, and the team's work."""
        self._step(now, live=True)

    def warm_up(self, start: datetime, end: datetime) -> None:
        """Begin a quiet history from ``start`` to ``end`` (prepare): each patient's first
        check falls in it and wearables start sampling, so no one is overdue when the live
        demo begins. Drive it with :meth:`quiet_tick`."""
        for p in sorted(self.patients.values(), key=_by_key):
            p.next_check = start + self.rng.uniform(0, 0.9) * min(p.check_every(), end - start)
            p.last_sample = start
            p.next_upload = start + self._minutes(0, p.profile.upload_min)
            p.battery_at = start
            for serial in p.devices:
                p.battery[serial] = self.rng.uniform(35, 100)

    def quiet_tick(self, now: datetime) -> None:
        """Readings and the team, but no admissions, discharges or deteriorations."""
        self._step(now, live=False)

    def _step(self, now: datetime, *, live: bool) -> None:
        caseload = self._sync(now, live=live)
        if live:
            self._census(now, caseload)
        out = Outbox()
        for p in sorted(self.patients.values(), key=_by_key):
            self.home.batteries(p, now)
            # A quiet history (not live): no forgotten checks, no hub offline.
            self.home.checks(p, now, out, faults=live)
            self.home.uploads(p, now, out, faults=live)
        self._send(out)
        self.team.step(now, caseload)
        self._last_tick = now

    def _sync(self, now: datetime, *, live: bool) -> list[EnrolmentRead]:
        """The caseload as the service has it: patients who left are let go, patients this
        process did not enrol (a kept demo, the prepared start) are taken on."""
        caseload = self.rt.virtualward.caseload()
        open_ids = {e.id for e in caseload}
        for p in [p for eid, p in self.patients.items() if eid not in open_ids]:
            self.release(p)
            self.counts["left"] += 1
        found = [e for e in caseload if e.id not in self.patients and e.ward in self.wards]
        for e in sorted(found, key=lambda e: e.nhs_number or e.local_id or e.patient_id):
            self._adopt(e, now)
        if live and not self._cohort_assigned:
            self._cohort_assigned = True
            self._assign_courses(now)
        return sorted(caseload, key=lambda e: self._key(e))

    def _key(self, e: EnrolmentRead) -> str:
        p = self.patients.get(e.id)
        return p.key if p else (e.nhs_number or e.local_id or e.patient_id)

    def _adopt(self, e: EnrolmentRead, now: datetime) -> None:
        key = e.nhs_number or e.local_id or e.patient_id
        profile = profile_for(key, self.wards[e.ward].specialty, self.seed)
        p = self._patient(e, profile, now, first_check=now)
        tablet = next((d for d in e.devices if d.kind == "app"), None)
        if tablet and tablet.last_seen_at:  # within the plan, not all at the same time
            due = tablet.last_seen_at + self.rng.uniform(0.25, 1.0) * p.check_every()
            p.next_check = max(now, due)
        else:
            p.next_check = now + self.rng.uniform(0, 1) * p.check_every()
        wearable = next((d for d in e.devices if d.kind == "wearable"), None)
        if wearable and wearable.last_seen_at:
            # What a patch stores while no one listens is capped at one upload's worth.
            upload = timedelta(minutes=profile.upload_min)
            p.last_sample = min(now, max(wearable.last_seen_at, now - upload))
            p.next_upload = max(now, p.last_sample + upload)
        self.counts["adopted"] += 1

    def _assign_courses(self, now: datetime) -> None:
        """Of the patients found at start, a fixed share deteriorate within the first hours
        (so the demo shows alerts early, and a small ward still has its quota)."""
        cohort = sorted((p for p in self.patients.values() if p.course is None), key=_by_key)
        self.rng.shuffle(cohort)
        c = self.config
        severe = max(1, round(len(cohort) * c.severe_share)) if len(cohort) >= 4 else 0
        recover = max(1, round(len(cohort) * c.recover_share)) if len(cohort) >= 4 else 0
        for n, p in enumerate(cohort[: severe + recover]):
            p.course = new_course(
                self.rng, p.profile.specialty, now, c.start_onset_hours, severe=n < severe
            )

    def release(self, p: Patient) -> None:
        """The patient left: their kit goes back to the cupboard, charged."""
        self.patients.pop(p.enrolment_id, None)
        for kind, serial in (("app", p.tablet), ("bp_cuff", p.cuff), ("wearable", p.wearable)):
            if serial:
                self._pool.setdefault(kind, []).append(serial)

    # --- admissions and discharges -------------------------------------------------------

    def _census(self, now: datetime, caseload: list[EnrolmentRead]) -> None:
        days = (now - self._last_tick).total_seconds() / 86400 if self._last_tick else 0.0
        for plan in sorted(self.wards.values(), key=lambda w: w.code):
            rate = plan.beds * self.config.occupancy / self._los(plan)
            for _ in range(_poisson(self.rng, rate * days)):
                step_down = self.rng.random() < self.config.step_down_share
                if not self.enrol(plan, from_hospital=step_down) and step_down:
                    self.enrol(plan)
        busy = {e.id for e in caseload for a in e.open_alerts if a.kind in URGENT_KINDS}
        for p in sorted(self.patients.values(), key=_by_key):
            if now < p.end_at or p.stepped_up:
                continue
            if p.enrolment_id in busy or p.severity(now) > 0.15:
                p.end_at = _daytime(now + timedelta(hours=12))  # not today: still unwell
                continue
            self.team.discharge(p)

    def _send(self, out: Outbox) -> None:
        batches = list(out.messages)
        if out.gateway:
            batches.insert(0, ("mqtt", {"readings": out.gateway}))
        for source, body in batches:
            actor = GATEWAY if source == "mqtt" else PATIENT_APP
            result = self.rt.virtualward.receive_compact(json.dumps(body), source, actor)
            if "error" in result:
                log.warning("virtual ward: gateway message refused: %s", result["error"])
                continue
            self.counts["sent"] += int(result["received"])
            self.counts["stored"] += int(result["stored"])
            self.counts["refused"] += len(result["refused"]) + len(result["refused_in_message"])
            self.counts["alerts"] += len(result["alerts"])

    # --- helpers -------------------------------------------------------------------------

    def _minutes(self, lo: float, hi: float) -> timedelta:
        return between(self.rng, lo, hi)

    def patient(self, enrolment_id: str) -> Patient | None:
        return self.patients.get(enrolment_id)


def _by_key(p: Patient) -> str:
    return p.key


def _daytime(t: datetime) -> datetime:
    """Discharges happen in the day: move ``t`` into 10:00-17:00 local time."""
    local = t.astimezone(LONDON)
    if local.hour < 10:
        local = local.replace(hour=10, minute=local.minute)
    elif local.hour >= 17:
        local = (local + timedelta(days=1)).replace(hour=10, minute=local.minute)
    return local.astimezone(t.tzinfo)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means of one step."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
