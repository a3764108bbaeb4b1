"""The demo's simulated virtual ward, run for hours of demo time on the injected clock: on
SQLite and PostgreSQL, through the real services (enrolment, devices, compact JSON readings,
NEWS2, alerts, escalation, step up), with the demo's bed manager and porters answering."""

from __future__ import annotations

import json
import random
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.conftest import EXAMPLE_SYSTEM, START
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db.session import make_engine
from wardwatch.demo.coordination import BedManager, Crew
from wardwatch.demo.run import live_loop, ward_plans
from wardwatch.demo.vw_physiology import profile_for
from wardwatch.demo.wearables import Config, SimulatedVirtualWard
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Reading, Rejected
from wardwatch.virtualward.news2 import PARAMETERS
from wardwatch.virtualward.rules import PLAN_PARAMETERS
from wardwatch.virtualward.schemas import EnrolmentRead

#: A busy day for a dozen or so patients on the example system's three virtual wards (120
#: places): those found at the start deteriorate within the first two hours, the team is
#: often late and the kit often faulty, so everything happens in ten hours of demo time.
SMALL = Config(occupancy=0.12, start_onset_hours=(0.25, 2.0), late_ack_share=0.4, spike_share=0.03)
STEP = timedelta(minutes=5)


def _example(rt: Runtime) -> None:
    rt.system.load(load_system_file(EXAMPLE_SYSTEM), SYSTEM)


def _run(
    rt: Runtime, clock: ManualClock, ward: SimulatedVirtualWard, hours: float, *, flow: bool
) -> None:
    """The demo loop's virtual-ward part: the simulated ward, the bed manager and porters
    (when ``flow``), and the app's escalation timer. (The hospital flow is left out: it would
    only slow the test, and the live loop keeps it off virtual places anyway.)"""
    rng = random.Random(3)
    crew, manager = Crew(rt.tasks, clock, rng), BedManager(rt.flow, rt.tasks, clock, rng)
    for _ in range(round(hours * 3600 / STEP.total_seconds())):
        clock.advance(STEP)
        ward.tick(clock.now())
        if flow:
            crew.step()
            manager.step()
        rt.virtualward.check_due()  # what the app's lifespan does every few seconds
        rt.tasks.escalate_due()


def test_ten_hours_of_the_simulated_virtual_ward(rt: Runtime, clock: ManualClock) -> None:
    """One run per backend (the checks below share it: a run is the expensive part)."""
    _example(rt)
    ward = SimulatedVirtualWard(rt, clock, ward_plans(rt), seed=11, config=SMALL)
    assert ward.fill() == round(120 * SMALL.occupancy)
    _run(rt, clock, ward, hours=10, flow=True)
    _enrolments_have_devices_plans_and_scored_readings(rt, ward)
    _a_deterioration_is_alerted_acknowledged_actioned_and_stepped_up(rt, ward)
    _unanswered_alerts_escalate(rt, ward)
    _impossible_readings_are_refused_and_kept_while_the_rest_are_stored(rt, ward)
    _virtual_ward_occupancy_is_the_open_enrolments(rt)


def _enrolments_have_devices_plans_and_scored_readings(
    rt: Runtime, ward: SimulatedVirtualWard
) -> None:
    everyone = rt.virtualward.caseload(ended=True)
    current = rt.virtualward.caseload()
    assert len(everyone) >= 14 and current
    settled = rt.clock.now() - timedelta(hours=2)  # enrolled long enough for a first check
    silent = 0
    for e in current:
        kinds = sorted(d.kind for d in e.devices)
        assert kinds in (["app"], ["app", "bp_cuff"], ["app", "wearable"]), kinds
        assert e.plan["mode"] == ("continuous" if "wearable" in kinds else "spot")
        if e.plan["mode"] == "spot":
            assert 2 <= e.plan["times_per_day"] <= 24
        else:
            assert 1 <= e.plan["interval_minutes"] <= 5
        if e.enrolled_at < settled and e.last_reading_at is None:
            silent += 1  # a patient who forgot their first check(s)
        elif e.enrolled_at < settled:
            assert e.latest is not None
            assert {"pulse", "spo2"} <= set(rt.virtualward.readings(e.id))
    assert silent <= ward.counts["missed_checks"]
    assert {e.plan["mode"] for e in everyone} == {"spot", "continuous"}
    sent = set().union(*(rt.virtualward.readings(e.id) for e in everyone))
    assert set(PLAN_PARAMETERS) - {"oxygen_flow"} <= sent <= set(PLAN_PARAMETERS) | {"diastolic_bp"}
    # COPD patients (and only they) are on SpO2 scale 2, by a consultant's recorded decision.
    copd = [e for e in current if profile_for(e.nhs_number or "", _specialty(e), ward.seed).copd]
    assert copd and all(e.scale == 2 for e in copd)
    assert all(e.scale == 1 for e in current if e not in copd)
    assert all(e.scale_set_by == "clinician:vw-consultant" for e in everyone if e.scale == 2)
    # Every score adds up, and a set is partial exactly when something is missing.
    for e in current:
        for sc in rt.virtualward.scores(e.id):
            assert sc.partial == bool(sc.missing)
            assert sc.partial_total == sum(sc.parameters.values())
            if not sc.partial:
                assert sc.total == sc.partial_total and set(sc.parameters) == set(PARAMETERS)


def _specialty(e: EnrolmentRead) -> str:
    """The specialty of the virtual ward an open enrolment is on."""
    return {"XVW01-FRL": "frailty", "XVW01-RSP": "respiratory medicine"}.get(
        e.ward, "heart failure"
    )


def _a_deterioration_is_alerted_acknowledged_actioned_and_stepped_up(
    rt: Runtime, ward: SimulatedVirtualWard
) -> None:
    alerts = [rt.virtualward.alert(a.id) for a in rt.virtualward.alerts(status=None)]
    serious = [a for a in alerts if a.kind.startswith("news2") and a.severity != "routine"]
    assert serious, [(a.kind, a.severity) for a in alerts]
    worked = [a for a in serious if {"acknowledged", "actioned"} <= {n.what for n in a.notes}]
    assert worked
    for a in worked:
        by = {n.by for n in a.notes if n.what in ("acknowledged", "actioned")}
        assert all(b.startswith("clinician:vw-") for b in by), by
    # NEWS2 climbed to the emergency band for someone, who was escalated to hospital: a bed
    # request for their stay, which the bed manager allocated and the porters completed.
    emergencies = [a for a in serious if a.severity == "emergency"]
    stepped = [a for a in emergencies if a.action in ("escalated_hospital", "escalated_999")]
    assert stepped and ward.team.counts["stepped_up"] >= 1
    enrolment = rt.virtualward.get(stepped[0].enrolment_id)
    requests = [r for r in rt.flow.list_requests(open_only=False) if r.stay_id == enrolment.stay_id]
    assert requests and requests[0].source == "other_site"
    assert enrolment.ended_at is not None and enrolment.end_reason == "stepped_up"
    assert rt.capacity.get_stay(enrolment.stay_id).site != "XVW01"
    # Whatever was done is recorded with why.
    done = [a for a in alerts if a.action]
    assert done and all(a.action_reason for a in done)
    assert sum(ward.team.actions.values()) >= len(done)


def _unanswered_alerts_escalate(rt: Runtime, ward: SimulatedVirtualWard) -> None:
    alerts = [rt.virtualward.alert(a.id) for a in rt.virtualward.alerts(status=None)]
    escalated = [a for a in alerts if any(n.what == "escalated" for n in a.notes)]
    assert escalated and ward.team.counts["late"] >= 1
    texts = [n.text or "" for a in escalated for n in a.notes if n.what == "escalated"]
    assert any(t.endswith("to the senior clinician") for t in texts), texts
    assert all(t.endswith(("to the senior clinician", "to the control centre")) for t in texts)
    # ... and the senior clinician heard about it.
    assert rt.notify.feed([f"supervisor:{escalated[0].team}"])


def _impossible_readings_are_refused_and_kept_while_the_rest_are_stored(
    rt: Runtime, ward: SimulatedVirtualWard
) -> None:
    assert ward.counts["refused"] >= 1 and ward.counts["stored"] > 1000
    with rt.db.read() as s:
        refused = list(s.scalars(select(Rejected).order_by(Rejected.id)))
        stored = s.scalar(select(func.count()).select_from(Reading))
        assert refused and all("not possible" in r.reason for r in refused)
        assert stored == ward.counts["stored"]
        # The batch that carried an impossible value was stored all the same.
        same_batch = s.scalar(
            select(func.count())
            .select_from(Reading)
            .where(Reading.received_at == refused[0].received_at)
        )
    assert same_batch and same_batch > 0
    kept = [json.loads(r.payload) for r in refused]  # each refused reading as it was sent
    assert any(k.get("value") == 900 or k.get("unit") == "Cel" for k in kept)


def _virtual_ward_occupancy_is_the_open_enrolments(rt: Runtime) -> None:
    vw = rt.occupancy.live()["system"]["by_site_kind"]["virtual_ward"]
    assert vw["occupied"] == len(rt.virtualward.caseload()) > 0
    assert vw["total"] == 120 and vw["vacant_not_ready"] == 0


def _fingerprint(rt: Runtime) -> dict[str, Any]:
    everyone = sorted(rt.virtualward.caseload(ended=True), key=lambda e: e.patient)
    return {
        "patients": [(e.patient, e.ward, e.plan["mode"], e.scale) for e in everyone],
        "scores": [
            [(sc.at, sc.partial_total, sc.total) for sc in rt.virtualward.scores(e.id)]
            for e in everyone
        ],
        "alerts": sorted(
            (a.patient, a.opened_at, a.kind, a.severity, a.status, a.level, a.action or "")
            for a in rt.virtualward.alerts(status=None)
        ),
        "devices": [(d.serial, d.kind, d.battery_pct) for d in rt.virtualward.devices()],
    }


def _replay(template: Path, where: Path, seed: int, hours: float) -> dict[str, Any]:
    where.mkdir()
    shutil.copy(template, where / "wardwatch.db")
    engine = make_engine(f"sqlite:///{where / 'wardwatch.db'}")
    clock = ManualClock(START)
    rt = Runtime(settings=Settings(data_dir=where), clock=clock, engine=engine)
    try:
        _example(rt)
        ward = SimulatedVirtualWard(rt, clock, ward_plans(rt), seed=seed, config=SMALL)
        ward.fill()
        _run(rt, clock, ward, hours=hours, flow=False)
        return _fingerprint(rt)
    finally:
        rt.close()
        engine.dispose()


def test_the_same_seed_gives_the_same_ward(sqlite_template: Path, tmp_path: Path) -> None:
    first = _replay(sqlite_template, tmp_path / "a", seed=5, hours=6)
    assert first["scores"] and first["alerts"] and first["patients"]
    assert _replay(sqlite_template, tmp_path / "b", seed=5, hours=6) == first
    other = _replay(sqlite_template, tmp_path / "c", seed=6, hours=0)
    assert other["patients"] != first["patients"]


def test_the_live_loop_leaves_virtual_places_to_the_simulated_ward(
    rt: Runtime, clock: ManualClock
) -> None:
    _example(rt)
    gen = live_loop(rt, clock, seed=7)
    assert gen.plans and all(p.site_kind != "virtual_ward" for p in gen.plans.values())
    (ward,) = gen.tickers
    assert isinstance(ward, SimulatedVirtualWard)
    assert sorted(ward.wards) == ["XVW01-FRL", "XVW01-HF", "XVW01-RSP"]
