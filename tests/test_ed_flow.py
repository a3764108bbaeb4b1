"""ED attendances: decision to admit → bed request → ward, waits, and bad input."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import auth
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.flow.models import BedRequest
from wardwatch.frontdoor.models import Attendance
from wardwatch.runtime import Runtime

Headers = dict[str, str]


def iso(at: datetime) -> str:
    return at.isoformat()


def arrive(api: TestClient, h: Headers, ref: str, at: datetime, **extra: Any) -> dict[str, Any]:
    body = {"site": "BUSY", "reference": ref, "arrived_at": iso(at), **extra}
    r = api.post("/api/ed/attendances", headers=h, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def decide(api: TestClient, h: Headers, att: str, at: datetime, **extra: Any) -> Any:
    body = {"at": iso(at), "specialty": "general medicine", **extra}
    return api.post(f"/api/ed/attendances/{att}/decision-to-admit", headers=h, json=body)


def depart(api: TestClient, h: Headers, att: str, at: datetime, how: str) -> Any:
    body = {"at": iso(at), "disposition": how}
    return api.post(f"/api/ed/attendances/{att}/depart", headers=h, json=body)


def counts(rt: Runtime) -> tuple[int, int, int]:
    with rt.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Attendance)) or 0,
            s.scalar(select(func.count()).select_from(BedRequest)) or 0,
            s.scalar(select(func.count()).select_from(EventRecord)) or 0,
        )


def test_decision_to_admit_queues_a_bed_and_arrival_on_the_ward_ends_the_attendance(
    fd: Runtime,
    api: TestClient,
    clock: ManualClock,
) -> None:
    ed = auth(fd, "ward")
    t = clock.now() - timedelta(hours=3)
    att = arrive(api, ed, "ED001", t, patient={"local_id": "H100", "sex": "female"})
    got = decide(api, ed, att["id"], t + timedelta(hours=1), priority="emergency").json()
    assert got["bed_request_status"] == "waiting" and got["hours_since_dta"] == 2.0
    request = api.get(f"/api/bed-requests/{got['bed_request_id']}", headers=ed).json()
    assert (request["source"], request["priority"], request["from_location"]) == (
        "ed",
        "emergency",
        "ED ED001",
    )
    assert request["decided_at"].startswith(iso(t + timedelta(hours=1))[:19])
    summary = api.get("/api/ed/summary", headers=ed).json()
    busy = next(x for x in summary["sites"] if x["site"] == "BUSY")
    assert busy["now"]["waiting_for_bed"] == 1 and busy["now"]["in_department"] == 1
    bed = fd.flow.suggestions(got["bed_request_id"])[0].bed_id
    fd.flow.allocate(got["bed_request_id"], bed, SYSTEM)
    clock.advance(timedelta(minutes=20))
    fd.flow.arrive(got["bed_request_id"], SYSTEM)
    done = api.get(f"/api/ed/attendances/{att['id']}", headers=ed).json()
    assert (done["disposition"], done["bed_request_status"]) == ("admitted", "arrived")
    assert done["departed_at"].startswith(iso(clock.now())[:19])
    assert api.get("/api/ed/attendances?site=BUSY", headers=ed).json() == []


def test_leaving_the_ed_another_way_cancels_the_bed_request(
    fd: Runtime,
    api: TestClient,
    clock: ManualClock,
) -> None:
    ed = auth(fd, "ward")
    t = clock.now() - timedelta(hours=2)
    att = arrive(api, ed, "ED002", t, patient={"local_id": "H200"})
    request_id = decide(api, ed, att["id"], t + timedelta(minutes=30)).json()["bed_request_id"]
    r = depart(api, ed, att["id"], clock.now(), "transferred")
    assert r.status_code == 200 and r.json()["bed_request_status"] == "cancelled"
    req = fd.flow.get(request_id)
    assert req.status == "cancelled" and "left the ED (transferred)" in (req.cancel_reason or "")


def test_bad_input_is_refused_and_changes_nothing(
    fd: Runtime,
    api: TestClient,
    clock: ManualClock,
) -> None:
    ed = auth(fd, "ward")
    t = clock.now() - timedelta(hours=4)
    att = arrive(api, ed, "ED003", t, patient={"local_id": "H300"})
    anon = arrive(api, ed, "ED004", t)
    before = counts(fd)
    cases = [
        (decide(api, ed, att["id"], t - timedelta(minutes=1)), 422, "before the arrival"),
        (decide(api, ed, att["id"], clock.now() + timedelta(hours=1)), 422, "in the future"),
        (decide(api, ed, anon["id"], t + timedelta(hours=1)), 422, "needs the patient"),
        (
            depart(api, ed, att["id"], t - timedelta(minutes=5), "discharged"),
            422,
            "before the arrival",
        ),
        (
            api.post(
                "/api/ed/attendances",
                headers=ed,
                json={"site": "BUSY", "reference": "ED003", "arrived_at": iso(t)},
            ),
            409,
            "already recorded",
        ),
        (
            api.post(
                "/api/ed/attendances",
                headers=ed,
                json={"site": "BUSY", "reference": "ED009", "arrived_at": "2026-01-05T08:00:00"},
            ),
            422,
            "time zone",
        ),
        (
            api.post(
                "/api/ed/attendances",
                headers=ed,
                json={"site": "MOON", "reference": "ED010", "arrived_at": iso(t)},
            ),
            404,
            "no site",
        ),
        (depart(api, ed, "att_nope", clock.now(), "discharged"), 404, "no ED attendance"),
        (depart(api, ed, att["id"], clock.now(), "vanished"), 422, "disposition"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (words, response.text)
        assert words in response.text
    assert counts(fd) == before
    # and the second of two decisions / departures
    assert decide(api, ed, att["id"], t + timedelta(hours=1)).status_code == 200
    r = decide(api, ed, att["id"], t + timedelta(hours=2))
    assert r.status_code == 409 and "already has a decision" in r.text
    assert depart(api, ed, att["id"], t + timedelta(minutes=30), "admitted").status_code == 422
    assert depart(api, ed, att["id"], clock.now(), "admitted").status_code == 200
    r = depart(api, ed, att["id"], clock.now(), "admitted")
    assert r.status_code == 409 and "already left" in r.text


def test_an_attendance_can_name_the_ambulance_that_brought_it(
    fd: Runtime,
    api: TestClient,
    clock: ManualClock,
) -> None:
    ed = auth(fd, "ward")
    crew = auth(fd, "ambulance")
    body = {
        "type": "arrival",
        "service": "SECAMB",
        "incident": "A1",
        "site": "BUSY",
        "at": iso(clock.now()),
    }
    hov = api.post("/api/handovers", headers=crew, json=body).json()["id"]
    att = arrive(api, ed, "ED020", clock.now(), handover_id=hov)
    assert att["handover_id"] == hov
    r = api.post(
        "/api/ed/attendances",
        headers=ed,
        json={
            "site": "NEAR",
            "reference": "ED021",
            "arrived_at": iso(clock.now()),
            "handover_id": hov,
        },
    )
    assert r.status_code == 422 and "another site" in r.text
