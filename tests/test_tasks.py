"""Cleaning and team tasks through the HTTP API: discharge → cleaning task → bed available;
the lifecycle, who did what and when; bad input; escalation on the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import auth
from tests.hl7util import adt, pid, pv1
from wardwatch.capacity.lookups import lock_stay
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime

Headers = dict[str, str]


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def bed_id(client: TestClient, h: Headers, code: str) -> str:
    return str(client.get("/api/beds", params={"code": code}, headers=h).json()[0]["id"])


def bed_state(client: TestClient, h: Headers, code: str) -> str:
    return str(client.get("/api/beds", params={"code": code}, headers=h).json()[0]["state"])


def admit(client: TestClient, h: Headers, code: str, local_id: str, sex: str = "female") -> str:
    r = client.post(
        "/api/stays",
        headers=h,
        json={"bed_id": bed_id(client, h, code), "patient": {"local_id": local_id, "sex": sex}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def discharge(client: TestClient, h: Headers, stay: str, cleaning: str = "standard") -> None:
    r = client.post(
        f"/api/stays/{stay}/discharge",
        headers=h,
        json={"destination": "usual residence", "pathway": 0, "cleaning": cleaning},
    )
    assert r.status_code == 200, r.text


def tasks(client: TestClient, h: Headers, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/tasks", params=params, headers=h)
    assert r.status_code == 200, r.text
    return list(r.json())


def test_discharge_asks_housekeeping_and_done_makes_the_bed_available(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    stay = admit(client, admin, "ACU1-AMU-03", "P1")
    clock.advance(timedelta(hours=5))
    discharge(client, admin, stay)
    assert bed_state(client, admin, "ACU1-AMU-03") == "awaiting_clean"
    [task] = tasks(client, admin)
    assert task["kind"] == "cleaning" and task["type"] == "standard"
    assert task["team"] == "ACU1-housekeeping" and task["bed"] == "ACU1-AMU-03"
    assert task["status"] == "requested" and task["created_at"] == iso(clock.now())
    assert task["expected_minutes"] == 30
    # Who can see it: the site's housekeeping queue.
    assert [t["id"] for t in tasks(client, admin, team="ACU1-housekeeping")] == [task["id"]]
    assert tasks(client, admin, team="ACU1-porters") == []

    cleaner = auth(small, "housekeeping", "ann")
    clock.advance(timedelta(minutes=4))
    r = client.post(f"/api/tasks/{task['id']}/accept", headers=cleaner)
    assert r.status_code == 200, r.text
    assert r.json()["accepted_by"] == "housekeeping:ann-housekeeping"
    clock.advance(timedelta(minutes=6))
    r = client.post(f"/api/tasks/{task['id']}/start", headers=cleaner)
    assert r.json()["status"] == "in_progress"
    assert bed_state(client, admin, "ACU1-AMU-03") == "cleaning"
    clock.advance(timedelta(minutes=25))
    r = client.post(f"/api/tasks/{task['id']}/done", headers=cleaner)
    done = r.json()
    assert done["status"] == "done" and done["waiting_minutes"] == 35.0
    assert bed_state(client, admin, "ACU1-AMU-03") == "available"
    assert tasks(client, admin) == []
    # The bed's log tells the story, in order.
    events = client.get(
        "/api/events", params={"bed_id": bed_id(client, admin, "ACU1-AMU-03")}, headers=admin
    ).json()
    types = [e["type"] for e in events]
    for t in ("stay.discharged", "task.created", "task.accepted", "task.started", "task.done"):
        assert types.count(t) == 1, types


def test_one_tap_done_stamps_the_skipped_steps_and_infection_clean_takes_longer(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    stay = admit(client, admin, "ACU1-AMU-01", "P2")
    discharge(client, admin, stay, cleaning="infection")
    [task] = tasks(client, admin)
    assert task["type"] == "infection" and task["expected_minutes"] == 90
    assert task["description"] == "Infection clean of bed ACU1-AMU-01"
    clock.advance(timedelta(minutes=50))
    done = client.post(f"/api/tasks/{task['id']}/done", headers=admin).json()
    assert done["accepted_at"] == done["started_at"] == done["done_at"]
    assert bed_state(client, admin, "ACU1-AMU-01") == "available"


def test_transfer_out_and_manual_dirty_bed_each_make_one_task(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    stay = admit(client, admin, "ACU1-AMU-02", "P3")
    r = client.post(
        f"/api/stays/{stay}/transfer",
        headers=admin,
        json={"bed_id": bed_id(client, admin, "ACU1-F1-01")},
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"/api/beds/{bed_id(client, admin, 'ACU1-AMU-05')}/state",
        headers=admin,
        json={"state": "awaiting_clean"},
    )
    assert r.status_code == 200
    assert sorted(t["bed"] for t in tasks(client, admin)) == ["ACU1-AMU-02", "ACU1-AMU-05"]


def test_bad_input_and_tasks_no_longer_needed(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    stay = admit(client, admin, "ACU1-AMU-04", "P4")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    url = f"/api/tasks/{task['id']}"
    cleaner = auth(small, "housekeeping")
    porter = auth(small, "porter")
    # A porter may not clean; a cleaner may not cancel.
    r = client.post(f"{url}/accept", headers=porter)
    assert r.status_code == 403 and "housekeeping" not in r.json()["message"]
    assert "cleaning task" in r.json()["message"]
    assert client.post(f"{url}/cancel", headers=cleaner, json={"reason": "x"}).status_code == 403
    # Stale version, then the real thing, then twice.
    r = client.post(f"{url}/accept", headers=cleaner, json={"version": 99})
    assert r.status_code == 409 and "changed since you saw it" in r.json()["message"]
    assert client.post(f"{url}/accept", headers=cleaner).status_code == 200
    r = client.post(f"{url}/accept", headers=cleaner)
    assert r.status_code == 409 and "already accepted" in r.json()["message"]
    # The bed is blocked while dirty: the task is cancelled with that reason, and finishing
    # it is refused, naming why; the bed is untouched.
    r = client.post(
        f"/api/beds/{task['bed_id']}/state",
        headers=admin,
        json={"state": "blocked", "reason": "broken bed rail"},
    )
    assert r.status_code == 200
    got = client.get(url, headers=admin).json()
    assert got["status"] == "cancelled" and "blocked" in got["cancel_reason"]
    r = client.post(f"{url}/done", headers=cleaner)
    assert r.status_code == 409
    assert "cancelled" in r.json()["message"] and "blocked" in r.json()["message"]
    assert bed_state(client, admin, "ACU1-AMU-04") == "blocked"
    # Unblocking to dirty asks for a new clean; cancelling needs a reason.
    client.post(
        f"/api/beds/{task['bed_id']}/state", headers=admin, json={"state": "awaiting_clean"}
    )
    [again] = tasks(client, admin)
    assert again["id"] != task["id"]
    r = client.post(f"/api/tasks/{again['id']}/cancel", headers=admin, json={})
    assert r.status_code == 422 and "reason" in r.json()["message"]
    assert client.post("/api/tasks/task_nope/done", headers=admin).status_code == 404
    r = client.post(f"/api/tasks/{again['id']}/done", headers=cleaner, json={"bogus": 1})
    assert r.status_code == 422


def test_discharge_undone_cancels_its_cleaning(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    stay = admit(client, admin, "ACU1-AMU-06", "P5")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    with small.db.transaction() as tx:  # as HL7 A13 does
        locked = lock_stay(tx.session, stay)
        assert locked is not None
        small.capacity.moves.cancel_discharge(tx, locked, SYSTEM)
    got = client.get(f"/api/tasks/{task['id']}", headers=admin).json()
    assert got["status"] == "cancelled" and "occupied" in got["cancel_reason"]
    assert bed_state(client, admin, "ACU1-AMU-06") == "occupied"


def test_other_tasks_and_team_limits(small: Runtime, client: TestClient, admin: Headers) -> None:
    r = client.put(
        "/api/teams",
        headers=admin,
        json={
            "teams": [
                {
                    "code": "ACU1-HK",
                    "name": "Acute One housekeeping",
                    "kind": "housekeeping",
                    "site": "ACU1",
                    "supervisor_email": "hk.lead@example.nhs.uk",
                    "limits": {"cleaning/standard": {"accept": 5, "finish": 40}},
                },
                {"code": "ACU1-EQUIP", "name": "Equipment", "kind": "other", "site": "ACU1"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    hk = next(t for t in r.json() if t["code"] == "ACU1-HK")
    assert hk["limits"]["cleaning/standard"] == {"expected": 30, "accept": 5, "finish": 40}
    stay = admit(client, admin, "ACU1-AMU-01", "P6")
    discharge(client, admin, stay)
    [task] = tasks(client, admin, kind="cleaning")
    assert task["team"] == "ACU1-HK"
    assert task["accept_by"] == iso(small.clock.now() + timedelta(minutes=5))
    r = client.post(
        "/api/tasks",
        headers=admin,
        json={"team": "ACU1-EQUIP", "description": "Spare pump to AMU", "priority": "urgent"},
    )
    assert r.status_code == 201 and r.json()["kind"] == "other"
    # Urgent first.
    assert [t["kind"] for t in tasks(client, admin, site="ACU1")] == ["other", "cleaning"]
    # Bad team files name the problem.
    bad = {"teams": [{"code": "X", "name": "X", "kind": "cleaners"}]}
    r = client.put("/api/teams", headers=admin, json=bad)
    assert r.status_code == 422 and "kind" in r.text
    bad = {"teams": [{"code": "X", "name": "X", "kind": "other", "limits": {"cleaning/x": {}}}]}
    r = client.put("/api/teams", headers=admin, json=bad)
    assert r.status_code == 422 and "unknown task type" in r.text
    bad = {"teams": [{"code": "X", "name": "X", "kind": "other", "site": "NOPE"}]}
    r = client.put("/api/teams", headers=admin, json=bad)
    assert r.status_code == 422 and "NOPE" in r.text
    r = client.post("/api/tasks", headers=admin, json={"team": "NOPE", "description": "x"})
    assert r.status_code == 404


def test_escalation_to_supervisor_then_control_centre(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    stay = admit(client, admin, "ACU1-AMU-02", "P7")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    clock.advance(timedelta(minutes=14, seconds=59))
    assert small.tasks.escalate_due() == []
    clock.advance(timedelta(seconds=1))
    [first] = small.tasks.escalate_due()
    assert (first.level, first.target, first.breach) == (1, "supervisor", "accept")
    assert "not accepted within 15 min" in first.reason
    assert small.tasks.escalate_due() == []  # nothing twice
    clock.advance(timedelta(minutes=15))
    [second] = small.tasks.escalate_due()
    assert (second.level, second.target) == (2, "control-centre")
    got = client.get(f"/api/tasks/{task['id']}", headers=admin).json()
    assert got["escalation_level"] == 2 and got["overdue"] is True
    open_ = client.get("/api/escalations", headers=admin).json()
    assert {e["level"] for e in open_} == {1, 2}
    # The control centre acknowledges; accepting the task resolves the rest.
    r = client.post(
        f"/api/escalations/{second.id}/acknowledge", headers=admin, json={"note": "rang HK"}
    )
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "admin:tester-admin"
    r = client.post(f"/api/escalations/{second.id}/acknowledge", headers=admin)
    assert r.status_code == 409
    client.post(f"/api/tasks/{task['id']}/accept", headers=admin)
    assert client.get("/api/escalations", headers=admin).json() == []
    # Accepted, but still not finished 60 min after the request: escalated again.
    clock.advance(timedelta(minutes=29, seconds=59))
    assert small.tasks.escalate_due() == []
    clock.advance(timedelta(seconds=1))
    [late] = small.tasks.escalate_due()
    assert (late.level, late.breach) == (1, "finish")
    assert "not finished within 60 min" in late.reason
    # The supervisor acknowledges in time: nothing goes to the control centre.
    client.post(f"/api/escalations/{late.id}/acknowledge", headers=admin)
    clock.advance(timedelta(hours=3))
    assert small.tasks.escalate_due() == []
    events = client.get("/api/events", params={"type": "task.escalated"}, headers=admin).json()
    assert [e["data"]["escalate_to"] for e in events] == [
        "supervisor",
        "control-centre",
        "supervisor",
    ]


def test_a_task_done_in_time_never_escalates(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    stay = admit(client, admin, "ACU1-AMU-03", "P8")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    clock.advance(timedelta(minutes=10))
    client.post(f"/api/tasks/{task['id']}/start", headers=admin)
    clock.advance(timedelta(minutes=10))
    assert small.tasks.escalate_due() == []
    client.post(f"/api/tasks/{task['id']}/done", headers=admin)
    clock.advance(timedelta(hours=10))
    assert small.tasks.escalate_due() == []
    assert client.get("/api/escalations", params={"status": "all"}, headers=admin).json() == []


def test_hl7_discharge_asks_for_a_clean_and_a20_clean_finishes_it(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    send = small.hl7.handle
    assert send(adt("A01", "20260105100000", pid("H1"), pv1("ACU1-AMU^^2^ACU1"))).ack_code == "AA"
    assert send(adt("A03", "20260105113000", pid("H1"), pv1("ACU1-AMU^^2^ACU1"))).ack_code == "AA"
    [task] = tasks(client, admin)
    assert task["bed"] == "ACU1-AMU-02" and task["created_by"].startswith("integration:")
    # The PAS reports the bed clean (A20, status U): the clean is done, by the feed.
    clock.advance(timedelta(minutes=20))
    a20 = adt("A20", "20260105120000", "NPU|ACU1-AMU^^2^ACU1|U")
    assert send(a20).ack_code == "AA"
    got = client.get(f"/api/tasks/{task['id']}", headers=admin).json()
    assert got["status"] == "done" and got["done_by"] == task["created_by"]


def test_marked_available_on_the_board_finishes_the_task(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    stay = admit(client, admin, "ACU1-AMU-05", "P9")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    cleaner = auth(small, "housekeeping", "bo")
    url = f"/api/beds/{task['bed_id']}/state"
    assert client.post(url, json={"state": "cleaning"}, headers=cleaner).status_code == 200
    assert client.get(f"/api/tasks/{task['id']}", headers=admin).json()["status"] == "in_progress"
    assert client.post(url, json={"state": "available"}, headers=cleaner).status_code == 200
    got = client.get(f"/api/tasks/{task['id']}", headers=admin).json()
    assert got["status"] == "done" and got["done_by"] == "housekeeping:bo-housekeeping"
