"""Bed requests: the queue, suggestions with reasons, allocation → porter task → arrival,
'clean next', a reserved bed lost to someone else, and bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import auth
from tests.test_tasks import admit, bed_id, bed_state, discharge, iso, tasks
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime

Headers = dict[str, str]


def request(client: TestClient, h: Headers, **body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "patient": {"local_id": "ED1", "sex": "male"},
        "site": "ACU1",
        "specialty": "general medicine",
        "from_location": "ED majors 4",
    }
    payload.update(body)
    r = client.post("/api/bed-requests", headers=h, json=payload)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_request_suggest_allocate_porter_arrive(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    dta = clock.now() - timedelta(minutes=30)
    req = request(client, admin, decided_at=iso(dta))
    assert req["status"] == "waiting" and req["waiting_minutes"] == 30.0
    assert [r["id"] for r in client.get("/api/bed-requests", headers=admin).json()] == [req["id"]]

    got = client.get(f"/api/bed-requests/{req['id']}/suggestions", headers=admin).json()
    wards = [c["ward"] for c in got]
    assert wards[0] == "ACU1-M1" and got[0]["specialty_match"] is True
    assert got[0]["reasons"][0] == "available now"
    assert "ACU1-F1" not in wards and "ACU1-PAED" not in wards  # female-only; children
    assert all(w.startswith("ACU1-") for w in wards)
    first = got[0]["bed_id"]

    clock.advance(timedelta(minutes=10))
    r = client.post(
        f"/api/bed-requests/{req['id']}/allocate", headers=admin, json={"bed_id": first}
    )
    assert r.status_code == 200, r.text
    allocated = r.json()
    assert allocated["status"] == "allocated" and allocated["bed"] == got[0]["bed"]
    assert bed_state(client, admin, got[0]["bed"]) == "reserved"
    [porter_task] = tasks(client, admin, kind="transfer")
    assert porter_task["team"] == "ACU1-porters" and porter_task["request_id"] == req["id"]
    assert porter_task["description"] == f"Take patient from ED majors 4 to bed {got[0]['bed']}"

    porter = auth(small, "porter", "pat")
    clock.advance(timedelta(minutes=5))
    assert client.post(f"/api/tasks/{porter_task['id']}/accept", headers=porter).status_code == 200
    clock.advance(timedelta(minutes=12))
    r = client.post(f"/api/tasks/{porter_task['id']}/done", headers=porter)
    assert r.status_code == 200, r.text
    arrived = client.get(f"/api/bed-requests/{req['id']}", headers=admin).json()
    assert arrived["status"] == "arrived" and arrived["waiting_minutes"] == 57.0
    assert bed_state(client, admin, got[0]["bed"]) == "occupied"
    stay = client.get(f"/api/stays/{arrived['stay_id']}", headers=admin).json()
    assert stay["bed_id"] == first and stay["local_id"] == "ED1"
    assert client.get("/api/bed-requests", headers=admin).json() == []


def test_allocation_refusals_and_cancel(small: Runtime, client: TestClient, admin: Headers) -> None:
    req = request(client, admin)
    url = f"/api/bed-requests/{req['id']}"
    r = client.post(
        f"{url}/allocate", headers=admin, json={"bed_id": bed_id(client, admin, "ACU1-F1-01")}
    )
    assert r.status_code == 409 and "mixed-sex" in r.json()["message"]
    admit(client, admin, "ACU1-M1-01", "OTHER", sex="male")
    r = client.post(
        f"{url}/allocate", headers=admin, json={"bed_id": bed_id(client, admin, "ACU1-M1-01")}
    )
    assert r.status_code == 409 and "occupied" in r.json()["message"]
    m2 = bed_id(client, admin, "ACU1-M1-02")
    assert client.post(f"{url}/allocate", headers=admin, json={"bed_id": m2}).status_code == 200
    r = client.post(f"{url}/allocate", headers=admin, json={"bed_id": m2})
    assert r.status_code == 409 and "allocated" in r.json()["message"]
    r = client.post(f"{url}/cancel", headers=admin, json={"reason": "admitted elsewhere"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert bed_state(client, admin, "ACU1-M1-02") == "available"
    all_tasks = tasks(client, admin, status="all", kind="transfer")
    assert [t["status"] for t in all_tasks] == ["cancelled"]
    assert client.post(f"{url}/arrive", headers=admin).status_code == 409


def test_clean_next_goes_to_the_dirty_bed_a_waiting_patient_could_take(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    women = admit(client, admin, "ACU1-F1-01", "W1")
    men = [admit(client, admin, f"ACU1-M1-0{i}", f"M{i}", sex="male") for i in (1, 2, 3)]
    req = request(client, admin)  # a man needing general medicine
    discharge(client, admin, women)  # female-only ward: no use to him
    discharge(client, admin, men[0])
    discharge(client, admin, men[1])
    queue = tasks(client, admin, team="ACU1-housekeeping")
    assert [(t["bed"], t["priority"]) for t in queue] == [
        ("ACU1-M1-01", "clean_next"),
        ("ACU1-F1-01", "routine"),
        ("ACU1-M1-02", "routine"),
    ]
    # He is given a bed elsewhere: nobody is waiting, so back to routine.
    esc = client.get(f"/api/bed-requests/{req['id']}/suggestions", headers=admin).json()
    r = client.post(
        f"/api/bed-requests/{req['id']}/allocate",
        headers=admin,
        json={"bed_id": next(c["bed_id"] for c in esc if c["state"] == "available")},
    )
    assert r.status_code == 200
    queue = tasks(client, admin, team="ACU1-housekeeping")
    assert {t["priority"] for t in queue} == {"routine"}
    events = client.get(
        "/api/events", params={"type": "task.priority_changed"}, headers=admin
    ).json()
    assert [e["data"]["priority"] for e in events] == ["clean_next", "routine"]


def test_a_reserved_bed_taken_by_someone_else_puts_the_patient_back_in_the_queue(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    req = request(client, admin)
    m1 = bed_id(client, admin, "ACU1-M1-01")
    client.post(f"/api/bed-requests/{req['id']}/allocate", headers=admin, json={"bed_id": m1})
    admit(client, admin, "ACU1-M1-01", "JUMPED", sex="male")
    got = client.get(f"/api/bed-requests/{req['id']}", headers=admin).json()
    assert got["status"] == "waiting" and got["bed_id"] is None
    [task] = tasks(client, admin, status="all", kind="transfer")
    assert task["status"] == "cancelled" and "occupied" in task["cancel_reason"]
    lost = client.get("/api/events", params={"type": "bed_request.bed_lost"}, headers=admin)
    assert len(lost.json()) == 1


def test_a_move_between_beds(small: Runtime, client: TestClient, admin: Headers) -> None:
    stay = admit(client, admin, "ACU1-AMU-01", "MOVER", sex="male")
    r = client.post(
        "/api/bed-requests",
        headers=admin,
        json={"stay_id": stay, "site": "ACU1", "specialty": "general medicine"},
    )
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["source"] == "transfer" and req["stay_id"] == stay
    m1 = bed_id(client, admin, "ACU1-M1-01")
    client.post(f"/api/bed-requests/{req['id']}/allocate", headers=admin, json={"bed_id": m1})
    r = client.post(f"/api/bed-requests/{req['id']}/arrive", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "arrived"
    assert client.get(f"/api/stays/{stay}", headers=admin).json()["bed_id"] == m1
    assert bed_state(client, admin, "ACU1-AMU-01") == "awaiting_clean"
    kinds = {(t["kind"], t["status"]) for t in tasks(client, admin, status="all")}
    assert kinds == {("transfer", "done"), ("cleaning", "requested")}


def test_bad_requests(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    base = {"site": "ACU1", "specialty": "general medicine"}
    patient = {"local_id": "B1"}
    cases = [
        ({**base}, "either patient"),
        ({**base, "patient": patient, "stay_id": "stay_x"}, "either patient"),
        ({**base, "patient": patient, "decided_at": "2026-01-05T09:00:00"}, "time zone"),
        ({**base, "patient": patient, "priority": "whenever"}, "priority"),
        ({**base, "patient": patient, "site": "ACU1\u0000"}, "control"),
    ]
    for body, words in cases:
        r = client.post("/api/bed-requests", headers=admin, json=body)
        assert r.status_code == 422 and words in r.text, (body, r.text)
    future = iso(clock.now() + timedelta(hours=1))
    r = client.post(
        "/api/bed-requests", headers=admin, json={**base, "patient": patient, "decided_at": future}
    )
    assert r.status_code == 422 and "future" in r.json()["message"]
    r = client.post(
        "/api/bed-requests", headers=admin, json={**base, "patient": patient, "site": "X"}
    )
    assert r.status_code == 404
    request(client, admin, patient=patient)
    r = client.post("/api/bed-requests", headers=admin, json={**base, "patient": patient})
    assert r.status_code == 409 and "already has an open bed request" in r.json()["message"]
    assert client.get("/api/bed-requests", headers=auth(small, "porter")).status_code == 403
    # Nothing half-written: one request in all.
    assert len(client.get("/api/bed-requests", headers=admin).json()) == 1
