"""Virtual wards through the HTTP API, on SQLite and PostgreSQL: enrolment, devices, readings
in the compact JSON payload, NEWS2 scores, alerts with triage and escalation on the clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import auth
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Reading, Rejected

Headers = dict[str, str]
pytestmark = pytest.mark.usefixtures("small")

#: One set scoring 0 on the chart.
CALM = {
    "respiration_rate": (16, "/min"),
    "spo2": (97, "%"),
    "systolic_bp": (125, "mm[Hg]"),
    "pulse": (72, "/min"),
    "consciousness": ("A", None),
    "temperature": (36.8, "Cel"),
}
#: RR 25 (3), SpO2 91 (3), SBP 100 (2), pulse 115 (2), temp 38.5 (1): 11, emergency.
SICK = {
    "respiration_rate": (25, "/min"),
    "spo2": (91, "%"),
    "systolic_bp": (100, "mm[Hg]"),
    "pulse": (115, "/min"),
    "consciousness": ("A", None),
    "temperature": (38.5, "Cel"),
}
#: RR 22 (2), pulse 95 (1), temp 38.2 (1), SpO2 95 (1): 5, urgent.
UNWELL = {
    **CALM,
    "respiration_rate": (22, "/min"),
    "pulse": (95, "/min"),
    "temperature": (38.2, "Cel"),
    "spo2": (95, "%"),
}


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def message(device: str, values: dict[str, Any], at: datetime, prefix: str, **extra: Any) -> dict:
    return {
        "device": device,
        "at": iso(at),
        **extra,
        "readings": [
            {"id": f"{prefix}-{name}", "code": name, "value": v, **({"unit": u} if u else {})}
            for name, (v, u) in values.items()
        ],
    }


@pytest.fixture
def h(rt: Runtime) -> Headers:
    return auth(rt, "clinician", "nurse")


@pytest.fixture
def dev(rt: Runtime) -> Headers:
    return auth(rt, "device", "gateway")


def enrol(client: TestClient, h: Headers, local_id: str, devices: list[str], **plan: Any) -> dict:
    for serial in devices:
        if client.get("/api/virtual-ward/devices", headers=h).status_code == 200:
            client.post("/api/virtual-ward/devices", headers=h, json={"serial": serial})
    r = client.post(
        "/api/virtual-ward/enrolments",
        headers=h,
        json={
            "patient": {"local_id": local_id, "sex": "female"},
            "ward": "VW1-FRA",
            "plan": plan or {"mode": "spot", "times_per_day": 4},
            "devices": devices,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def send(client: TestClient, dev: Headers, body: dict) -> dict:
    r = client.post("/api/readings", headers=dev, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_enrol_score_and_the_caseload(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    e = enrol(client, h, "VW-1", ["OX-1"])
    assert e["bed"].startswith("VW1-FRA") and e["devices"][0]["serial"] == "OX-1"
    # The place counts in capacity: occupied on the virtual ward, in the system's figures.
    occ = client.get("/api/occupancy", headers=h).json()
    assert occ["system"]["by_site_kind"]["virtual_ward"]["occupied"] == 1
    (vw1,) = [site for site in occ["sites"] if site["code"] == "VW1"]
    assert (vw1["occupied"], vw1["total"]) == (1, 5)
    out = send(client, dev, message("OX-1", CALM, clock.now(), "a", battery=80))
    assert out["stored"] == 6 and out["scores"] == 1 and not out["refused"], out
    got = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()
    assert got["latest"]["total"] == 0 and got["latest"]["risk"] == "low"
    assert got["latest"]["partial"] is False
    assert got["devices"][0]["battery_pct"] == 80
    clock.advance(timedelta(minutes=10))
    got = client.get("/api/virtual-ward/caseload", headers=h).json()
    assert got[0]["latest"]["age_minutes"] == pytest.approx(10.0)


def test_a_partial_set_is_never_low(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    e = enrol(client, h, "VW-2", ["OX-2"])
    partial = {k: v for k, v in CALM.items() if k != "systolic_bp"}
    send(client, dev, message("OX-2", partial, clock.now(), "p"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["partial"] is True and latest["total"] is None
    assert latest["risk"] == "unknown" and "systolic_bp" in latest["missing"]


def test_readings_sent_apart_make_one_set_within_the_window(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    e = enrol(client, h, "VW-3", ["OX-3"])
    t0 = clock.now()
    first = {k: CALM[k] for k in ("spo2", "pulse", "respiration_rate")}
    second = {k: CALM[k] for k in ("systolic_bp", "consciousness", "temperature")}
    send(client, dev, message("OX-3", first, t0, "s1"))
    clock.advance(timedelta(minutes=8))
    send(client, dev, message("OX-3", second, t0 + timedelta(minutes=8), "s2"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["partial"] is False and latest["total"] == 0
    # Twenty minutes later the first half has left the 15-minute window.
    clock.advance(timedelta(minutes=20))
    send(client, dev, message("OX-3", second, clock.now(), "s3"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["partial"] is True and set(latest["missing"]) >= {"spo2", "pulse"}


def test_alert_triage_and_no_flood(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    e = enrol(client, h, "VW-4", ["OX-4"])
    out = send(client, dev, message("OX-4", UNWELL, clock.now(), "u1"))
    assert len(out["alerts"]) == 1
    alerts = client.get("/api/virtual-ward/alerts", headers=h).json()
    assert [(a["severity"], a["kind"]) for a in alerts] == [("urgent", "news2_medium")]
    assert alerts[0]["minutes_left"] == pytest.approx(60)
    # The same level again: the open alert counts a repeat, no new alert.
    for n in range(3):
        clock.advance(timedelta(minutes=1))
        send(client, dev, message("OX-4", UNWELL, clock.now(), f"u2-{n}"))
    alerts = client.get("/api/virtual-ward/alerts", headers=h).json()
    assert len(alerts) == 1 and alerts[0]["repeats"] == 3
    alert_id = alerts[0]["id"]
    # Acknowledge, then a worse set upgrades it: emergency, 30 minutes, to acknowledge afresh.
    r = client.post(f"/api/virtual-ward/alerts/{alert_id}/acknowledge", headers=h)
    assert r.json()["status"] == "acknowledged"
    send(client, dev, message("OX-4", SICK, clock.now(), "k1"))
    a = client.get(f"/api/virtual-ward/alerts/{alert_id}", headers=h).json()
    assert (a["severity"], a["status"], a["minutes_left"]) == ("emergency", "new", 30.0)
    # Triage: cannot resolve before recording what was done; no action needs a reason.
    assert (
        client.post(f"/api/virtual-ward/alerts/{alert_id}/resolve", headers=h, json={}).status_code
        == 409
    )
    client.post(f"/api/virtual-ward/alerts/{alert_id}/acknowledge", headers=h)
    r = client.post(
        f"/api/virtual-ward/alerts/{alert_id}/action", headers=h, json={"action": "no_action"}
    )
    assert r.status_code == 422 and "reason" in r.text
    r = client.post(
        f"/api/virtual-ward/alerts/{alert_id}/action", headers=h, json={"action": "home_visit"}
    )
    assert r.json()["status"] == "actioned"
    client.post(
        f"/api/virtual-ward/alerts/{alert_id}/notes",
        headers=h,
        json={"text": "seen at home, settled"},
    )
    r = client.post(
        f"/api/virtual-ward/alerts/{alert_id}/resolve", headers=h, json={"note": "improving"}
    )
    a = client.get(f"/api/virtual-ward/alerts/{alert_id}", headers=h).json()
    assert a["status"] == "resolved"
    whats = [n["what"] for n in a["notes"]]
    assert whats == [
        "raised",
        "acknowledged",
        "upgraded",
        "acknowledged",
        "actioned",
        "note",
        "resolved",
    ]
    assert a["notes"][1]["by"] == "clinician:nurse-clinician"
    # The team's feed carried the alert.
    feed = rt.notify.feed([f"team:{e['team']}"])
    assert any(alert_id in str(n) for n in feed), feed


def test_unanswered_alert_escalates_to_senior_then_control_centre(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    e = enrol(client, h, "VW-5", ["OX-5"])
    send(client, dev, message("OX-5", SICK, clock.now(), "x"))
    clock.advance(timedelta(minutes=29))
    assert rt.virtualward.check_due() == []
    clock.advance(timedelta(minutes=2))
    (alert_id,) = rt.virtualward.check_due()
    a = client.get(f"/api/virtual-ward/alerts/{alert_id}", headers=h).json()
    assert a["level"] == 1 and a["notes"][-1]["what"] == "escalated"
    assert rt.notify.feed([f"supervisor:{e['team']}"])
    clock.advance(timedelta(minutes=16))  # the default team allows its supervisor 15 min
    assert rt.virtualward.check_due() == [alert_id]
    assert client.get(f"/api/virtual-ward/alerts/{alert_id}", headers=h).json()["level"] == 2
    assert rt.notify.feed(["role:control-centre"])
    clock.advance(timedelta(hours=2))
    assert rt.virtualward.check_due() == [] or alert_id not in rt.virtualward.check_due()


def test_missed_reading_raises_and_clears(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    e = enrol(client, h, "VW-6", ["OX-6"], mode="continuous", interval_minutes=5, grace_minutes=5)
    send(client, dev, message("OX-6", CALM, clock.now(), "m1"))
    clock.advance(timedelta(minutes=9))
    client.app.state.runtime.virtualward.check_due()  # type: ignore[attr-defined]
    assert client.get("/api/virtual-ward/alerts", headers=h).json() == []
    clock.advance(timedelta(minutes=2))
    client.app.state.runtime.virtualward.check_due()  # type: ignore[attr-defined]
    (a,) = client.get("/api/virtual-ward/alerts", headers=h).json()
    assert a["kind"] == "missed_reading" and a["group"] == "missed"
    assert "OX-6 last heard 11 min ago" in a["summary"]
    send(client, dev, message("OX-6", CALM, clock.now(), "m2"))
    assert client.get("/api/virtual-ward/alerts", headers=h).json() == []
    assert e["id"]


def test_battery_low_alert_and_recharge(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    enrol(client, h, "VW-7", ["OX-7"])
    send(client, dev, message("OX-7", CALM, clock.now(), "b1", battery=15))
    (a,) = client.get("/api/virtual-ward/alerts", headers=h).json()
    assert a["kind"] == "battery_low" and a["severity"] == "routine"
    clock.advance(timedelta(minutes=30))
    send(client, dev, message("OX-7", CALM, clock.now(), "b2", battery=90))
    assert client.get("/api/virtual-ward/alerts", headers=h).json() == []


def test_resends_are_stored_once(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, "VW-8", ["OX-8"])
    body = message("OX-8", CALM, clock.now(), "d")
    assert send(client, dev, body)["stored"] == 6
    again = send(client, dev, body)
    assert (again["stored"], again["duplicates"], again["scores"]) == (0, 6, 0)
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 6


def test_bad_readings_are_refused_and_kept_the_rest_stored(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, "VW-9", ["OX-9"])
    body = message("OX-9", CALM, clock.now(), "g")
    body["readings"] += [
        {"id": "bad-1", "code": "pulse", "value": 900, "unit": "/min"},
        {"id": "bad-2", "code": "spo2", "value": 140, "unit": "%"},
        {"id": "bad-3", "code": "temperature", "value": 37, "unit": "K"},
        {"id": "bad-4", "code": "8867-4", "value": "fast", "unit": "/min"},
        {"id": "bad-5", "code": "glucose", "value": 5, "unit": "mmol/L"},
        {"id": "bad-6", "code": "pulse", "value": 70, "unit": "/min", "device": "NOPE-1"},
        {
            "id": "bad-7",
            "code": "pulse",
            "value": 70,
            "unit": "/min",
            "at": iso(clock.now() + timedelta(hours=1)),
        },
    ]
    out = send(client, dev, body)
    assert out["stored"] == 6 and out["scores"] == 1
    reasons = [r["reason"] for r in out["refused"]]
    assert len(reasons) == 7
    assert "not possible" in reasons[0] and "not possible" in reasons[1]
    assert "not accepted" in reasons[2] and "not a number" in reasons[3]
    assert "not a vital sign" in reasons[4] and "unknown device" in reasons[5]
    assert "in the future" in reasons[6]  # a wrong device clock cannot make old data "new"
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Rejected)) == 7
    r = client.post("/api/readings", headers=dev, content=b"{not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    with rt.db.read() as s:
        kept = s.scalars(select(Rejected.payload).order_by(Rejected.id.desc())).first()
    assert kept == "{not json"
    # The integration engineer can see each refusal, its reason and exactly what was sent.
    assert client.get("/api/virtual-ward/rejected", headers=h).status_code == 403
    listed = client.get("/api/virtual-ward/rejected", headers=auth(rt, "integration")).json()
    assert len(listed) == 8 and listed[0]["payload"] == "{not json"
    assert any('"bad-1"' in r["payload"] and "not possible" in r["reason"] for r in listed)


def test_device_readings_belong_to_the_patient_linked_at_their_time(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    """HAZ-V02: a device passed from one patient to another never files old data on the new one."""
    first = enrol(client, h, "VW-10", ["OX-10"])
    t_worn = clock.now()
    clock.advance(timedelta(hours=1))
    r = client.delete(f"/api/virtual-ward/enrolments/{first['id']}/devices/OX-10", headers=h)
    assert r.status_code == 200
    clock.advance(timedelta(minutes=5))
    second = enrol(client, h, "VW-11", ["OX-10"])
    # A reading stored on the device while the first patient wore it, uploaded late.
    out = send(client, dev, message("OX-10", CALM, t_worn + timedelta(minutes=30), "late"))
    assert out["stored"] == 6
    first_now = client.get(f"/api/virtual-ward/enrolments/{first['id']}", headers=h).json()
    second_now = client.get(f"/api/virtual-ward/enrolments/{second['id']}", headers=h).json()
    assert first_now["latest"] is not None and second_now["latest"] is None
    # Taken between the two links: nobody wore it as far as we know, so nobody gets it.
    out = send(client, dev, message("OX-10", CALM, t_worn + timedelta(minutes=62), "gap"))
    assert out["stored"] == 0 and "not linked" in out["refused"][0]["reason"]
    # A reading naming a patient the device is not linked to is refused, not filed.
    body = message("OX-10", CALM, clock.now(), "mix")
    body["patient"] = "local:VW-10"
    out = send(client, dev, body)
    assert out["stored"] == 0 and "another patient" in out["refused"][0]["reason"]


def test_scale_two_only_by_a_clinician_with_who_and_when(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    e = enrol(client, h, "VW-12", ["OX-12"])
    copd = {**CALM, "spo2": (89, "%")}
    send(client, dev, message("OX-12", copd, clock.now(), "c1"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["parameters"]["spo2"] == 3 and latest["scale"] == 1
    reader = auth(rt, "read-only", "viewer")
    r = client.put(
        f"/api/virtual-ward/enrolments/{e['id']}/scale",
        headers=reader,
        json={"scale": 2, "reason": "COPD, target 88-92%"},
    )
    assert r.status_code == 403
    r = client.put(
        f"/api/virtual-ward/enrolments/{e['id']}/scale",
        headers=h,
        json={"scale": 2, "reason": "COPD, target 88-92%"},
    )
    got = r.json()
    assert (
        got["scale"] == 2
        and got["scale_set_by"] == "clinician:nurse-clinician"
        and got["scale_set_at"]
    )
    clock.advance(timedelta(minutes=20))
    send(client, dev, message("OX-12", copd, clock.now(), "c2"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["parameters"]["spo2"] == 0 and latest["scale"] == 2


def test_patient_thresholds_and_trend(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    e = enrol(client, h, "VW-13", ["OX-13"])
    r = client.put(
        f"/api/virtual-ward/enrolments/{e['id']}/thresholds",
        headers=h,
        json={"thresholds": {"pulse": {"max": 85}}},
    )
    assert r.status_code == 200, r.text
    send(client, dev, message("OX-13", {**CALM, "pulse": (88, "/min")}, clock.now(), "t1"))
    kinds = {a["kind"] for a in client.get("/api/virtual-ward/alerts", headers=h).json()}
    assert kinds == {"threshold"}
    for n, temp in enumerate((38.2, 38.6, 39.2)):
        clock.advance(timedelta(minutes=20))
        send(
            client,
            dev,
            message("OX-13", {**CALM, "temperature": (temp, "Cel")}, clock.now(), f"t{n}x"),
        )
    kinds = {a["kind"] for a in client.get("/api/virtual-ward/alerts", headers=h).json()}
    assert "trend" in kinds


def test_discharge_frees_the_place_and_step_up_asks_for_a_bed(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    e = enrol(client, h, "VW-14", ["OX-14"])
    r = client.post(
        f"/api/virtual-ward/enrolments/{e['id']}/end", headers=h, json={"reason": "recovered"}
    )
    assert r.status_code == 200 and r.json()["ended_at"] and r.json()["devices"] == []
    bed = client.get(f"/api/beds/{e['bed_id']}", headers=h).json()
    assert bed["state"] == "available"  # a place at home needs no cleaning
    assert client.get("/api/tasks", headers=auth(rt, "admin")).json() == []
    out = send(client, dev, message("OX-14", CALM, clock.now(), "after"))
    assert out["stored"] == 0  # the device is free: its readings belong to nobody
    f = enrol(client, h, "VW-15", ["OX-15"])
    r = client.post(
        f"/api/virtual-ward/enrolments/{f['id']}/step-up",
        headers=h,
        json={"site": "ACU1", "specialty": "general medicine", "reason": "NEWS2 9"},
    )
    assert r.status_code == 201, r.text
    request = r.json()
    assert request["stay_id"] == f["stay_id"]


def test_moving_into_a_hospital_bed_ends_the_enrolment(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    """Step up: when the patient takes the hospital bed, monitoring at home stops, the
    devices are freed and open alerts are closed with the reason (the ward has them now)."""
    e = enrol(client, h, "VW-16", ["OX-16"])
    send(client, dev, message("OX-16", SICK, clock.now(), "s"))
    r = client.post(
        f"/api/virtual-ward/enrolments/{e['id']}/step-up",
        headers=h,
        json={"site": "ACU1", "specialty": "acute medicine", "reason": "NEWS2 11"},
    )
    request = r.json()
    admin = auth(rt, "admin")
    beds = client.get("/api/beds", params={"ward": "ACU1-AMU", "state": "available"}, headers=admin)
    bed = beds.json()[0]["id"]
    r = client.post(
        f"/api/bed-requests/{request['id']}/allocate", headers=admin, json={"bed_id": bed}
    )
    assert r.status_code == 200, r.text
    r = client.post(f"/api/bed-requests/{request['id']}/arrive", headers=admin)
    assert r.status_code == 200, r.text
    got = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()
    assert got["ended_at"] and got["end_reason"] == "stepped_up" and got["devices"] == []
    assert client.get("/api/virtual-ward/alerts", headers=h).json() == []
    (alert,) = client.get(
        "/api/virtual-ward/alerts", params={"status": "resolved"}, headers=h
    ).json()
    assert (
        "left the virtual ward"
        in client.get(f"/api/virtual-ward/alerts/{alert['id']}", headers=h).json()["notes"][-1][
            "text"
        ]
    )
    place = client.get(f"/api/beds/{e['bed_id']}", headers=h).json()
    assert place["state"] == "available"


def test_a_triage_step_on_what_someone_saw_minutes_ago_is_refused(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    e = enrol(client, h, "VW-17", ["OX-17"])
    send(client, dev, message("OX-17", UNWELL, clock.now(), "v"))
    (seen,) = client.get(
        "/api/virtual-ward/alerts", params={"enrolment": e["id"]}, headers=h
    ).json()
    other = auth(rt, "clinician", "doctor")
    client.post(f"/api/virtual-ward/alerts/{seen['id']}/acknowledge", headers=other)
    r = client.post(
        f"/api/virtual-ward/alerts/{seen['id']}/acknowledge",
        params={"version": seen["version"]},
        headers=h,
    )
    assert r.status_code == 409 and "acknowledged by clinician:doctor-clinician" in r.text
    fresh = client.get(f"/api/virtual-ward/alerts/{seen['id']}", headers=h).json()
    r = client.post(
        f"/api/virtual-ward/alerts/{seen['id']}/action",
        params={"version": seen["version"]},
        headers=h,
        json={"action": "called_patient"},
    )
    assert r.status_code == 409  # still the old version: two different actions never race
    r = client.post(
        f"/api/virtual-ward/alerts/{seen['id']}/action",
        params={"version": fresh["version"]},
        headers=h,
        json={"action": "called_patient", "reason": "feels better, will recheck in 1 h"},
    )
    assert r.status_code == 200 and r.json()["action"] == "called_patient"
    # An answered alert upgraded hours later gets the new target from now, not one long gone.
    clock.advance(timedelta(hours=3))
    send(client, dev, message("OX-17", SICK, clock.now(), "v2"))
    upgraded = client.get(f"/api/virtual-ward/alerts/{seen['id']}", headers=h).json()
    assert (upgraded["severity"], upgraded["minutes_left"]) == ("emergency", 30.0)
    # One patient's alerts, past ones included.
    history = client.get(
        "/api/virtual-ward/alerts", params={"enrolment": e["id"], "status": "all"}, headers=h
    ).json()
    assert [a["id"] for a in history] == [seen["id"]]


def test_a_gateway_reports_several_batteries(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    enrol(client, h, "VW-18", ["OX-18"])
    enrol(client, h, "VW-19", ["OX-19"])
    body = {
        "at": iso(clock.now()),
        "readings": [],
        "batteries": [
            {"device": "OX-18", "battery": 12},
            {"device": "OX-19", "battery": 80},
            {"device": "OX-19", "battery": "full"},
        ],
    }
    out = send(client, dev, body)
    assert [r["reason"] for r in out["refused_in_message"]] == [
        "batteries[2]: battery must be a number 0-100"
    ]
    (a,) = client.get("/api/virtual-ward/alerts", headers=h).json()
    assert a["kind"] == "battery_low" and "OX-18" in a["summary"]
    kit = {
        d["serial"]: d["battery_pct"]
        for d in client.get("/api/virtual-ward/devices", headers=h).json()
    }
    assert kit == {"OX-18": 12, "OX-19": 80}


def test_a_plan_may_widen_the_set_window(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    """A wearable's continuous readings plus a twice-daily BP: with the default 15-minute
    window the sets are partial; a clinician may widen the window in the plan."""
    e = enrol(client, h, "VW-20", ["OX-20"], mode="continuous", interval_minutes=5)
    bp = {k: CALM[k] for k in ("systolic_bp", "consciousness")}
    wearable = {k: v for k, v in CALM.items() if k not in bp}
    send(client, dev, message("OX-20", bp, clock.now(), "bp"))
    clock.advance(timedelta(hours=2))
    send(client, dev, message("OX-20", wearable, clock.now(), "w1"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["partial"] is True
    plan = {"mode": "continuous", "interval_minutes": 5, "set_window_minutes": 720}
    r = client.put(f"/api/virtual-ward/enrolments/{e['id']}/plan", headers=h, json={"plan": plan})
    assert r.status_code == 200, r.text
    clock.advance(timedelta(minutes=5))
    send(client, dev, message("OX-20", wearable, clock.now(), "w2"))
    latest = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()["latest"]
    assert latest["partial"] is False and latest["total"] == 0
    assert latest["oldest_at"] < latest["at"]  # the set says how old its oldest value is


def test_a_move_between_virtual_places_keeps_the_monitoring(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    e = enrol(client, h, "VW-21", ["OX-21"])
    admin = auth(rt, "admin")
    free = client.get("/api/beds", params={"ward": "VW1-FRA", "state": "available"}, headers=admin)
    target = free.json()[0]
    r = client.post(
        f"/api/stays/{e['stay_id']}/transfer", headers=admin, json={"bed_id": target["id"]}
    )
    assert r.status_code == 200, r.text
    got = client.get(f"/api/virtual-ward/enrolments/{e['id']}", headers=h).json()
    assert got["ended_at"] is None and got["bed"] == target["code"]
    assert [d["serial"] for d in got["devices"]] == ["OX-21"]
    assert send(client, dev, message("OX-21", CALM, clock.now(), "moved"))["stored"] == 6
