"""Beds through the API: listing, filtering, legal and illegal state changes, the event log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import auth
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime


def _bed(client: TestClient, headers: dict[str, str], code: str) -> dict[str, Any]:
    beds = client.get("/api/beds", params={"code": code}, headers=headers).json()
    assert len(beds) == 1, beds
    return dict(beds[0])


def _events(client: TestClient, headers: dict[str, str], bed_id: str) -> list[dict[str, Any]]:
    """The bed's state changes (its log also holds its cleaning tasks' events)."""
    got = client.get("/api/events", params={"bed_id": bed_id}, headers=headers).json()
    return [e for e in got if "to_state" in e["data"]]


def test_list_and_filter(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    all_beds = client.get("/api/beds", headers=admin).json()
    assert len(all_beds) == 28
    amu = client.get("/api/beds", params={"ward": "ACU1-AMU"}, headers=admin).json()
    assert [b["code"] for b in amu] == [f"ACU1-AMU-0{i}" for i in range(1, 7)]
    assert [b["side_room"] for b in amu] == [True, True, False, False, False, False]
    closed = client.get("/api/beds", params={"state": "closed"}, headers=admin).json()
    assert {b["code"] for b in closed} == {"ACU1-ESC-03", "ACU1-ESC-04"}
    assert len(client.get("/api/beds", params={"site": "VW1"}, headers=admin).json()) == 5
    page = client.get("/api/beds", params={"limit": 5, "offset": 25}, headers=admin).json()
    assert len(page) == 3
    assert (
        client.get("/api/wards", params={"site": "VW1"}, headers=admin).json()[0]["code"]
        == "VW1-FRA"
    )
    assert (
        client.get("/api/wards", params={"kind": "escalation"}, headers=admin).json()[0][
            "bed_count"
        ]
        == 4
    )


def test_cleaning_cycle_and_time_in_state(
    small: Runtime, client: TestClient, admin: dict[str, str], clock: ManualClock
) -> None:
    bed = _bed(client, admin, "ACU1-AMU-01")
    url = f"/api/beds/{bed['id']}/state"
    r = client.post(url, json={"state": "awaiting_clean"}, headers=admin)
    assert r.status_code == 200, r.text
    clock.advance(timedelta(minutes=25))
    got = client.get(f"/api/beds/{bed['id']}", headers=admin).json()
    assert got["state"] == "awaiting_clean" and got["seconds_in_state"] == 25 * 60
    assert client.post(url, json={"state": "cleaning"}, headers=admin).status_code == 200
    clock.advance(timedelta(minutes=40))
    done = client.post(url, json={"state": "available"}, headers=admin).json()
    assert done["state"] == "available" and done["seconds_in_state"] == 0
    events = _events(client, admin, bed["id"])
    assert [(e["data"].get("from_state"), e["data"]["to_state"]) for e in events] == [
        (None, "available"),
        ("available", "awaiting_clean"),
        ("awaiting_clean", "cleaning"),
        ("cleaning", "available"),
    ]
    assert events[-1]["data"]["seconds_in_previous"] == 40 * 60
    assert all(e["ward"] == "ACU1-AMU" and e["site"] == "ACU1" for e in events)


def test_illegal_transition_is_409_and_changes_nothing(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    bed = _bed(client, admin, "ACU1-AMU-02")
    before = _events(client, admin, bed["id"])
    r = client.post(f"/api/beds/{bed['id']}/state", json={"state": "cleaning"}, headers=admin)
    assert r.status_code == 409
    assert r.json() == {
        "error": "conflict",
        "message": (
            "bed ACU1-AMU-02: cannot go from available to cleaning (allowed: awaiting_clean, "
            "blocked, closed, reserved)"
        ),
    }
    r = client.post(f"/api/beds/{bed['id']}/state", json={"state": "occupied"}, headers=admin)
    assert r.status_code == 409 and "admitting" in r.json()["message"]
    r = client.post(f"/api/beds/{bed['id']}/state", json={"state": "blocked"}, headers=admin)
    assert r.status_code == 409 and "reason is required" in r.json()["message"]
    assert _bed(client, admin, "ACU1-AMU-02")["state"] == "available"
    assert _events(client, admin, bed["id"]) == before


def test_block_with_reason_then_reopen(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    bed = _bed(client, admin, "ACU1-AMU-03")
    url = f"/api/beds/{bed['id']}/state"
    r = client.post(url, json={"state": "blocked", "reason": "infection: norovirus"}, headers=admin)
    assert r.json()["state_reason"] == "infection: norovirus"
    r = client.post(url, json={"state": "awaiting_clean"}, headers=admin)
    assert r.json()["state"] == "awaiting_clean" and r.json()["state_reason"] is None


def test_unknown_bed_and_bad_state(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.post(
        "/api/beds/bed_nope/state", json={"state": "closed", "reason": "x"}, headers=admin
    )
    assert r.status_code == 404 and r.json()["message"] == "no bed with id 'bed_nope'"
    bed = _bed(client, admin, "ACU1-AMU-04")
    r = client.post(f"/api/beds/{bed['id']}/state", json={"state": "dirty"}, headers=admin)
    assert r.status_code == 422 and "state" in r.json()["message"]
    assert client.get("/api/wards/NOPE", headers=admin).status_code == 404
    assert client.get("/api/sites/NOPE", headers=admin).json()["message"] == (
        "no site with code 'NOPE'"
    )


def test_housekeeping_may_only_clean(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    cleaner = auth(small, "housekeeping")
    bed = _bed(client, admin, "ACU1-AMU-05")
    url = f"/api/beds/{bed['id']}/state"
    r = client.post(url, json={"state": "closed", "reason": "x"}, headers=cleaner)
    assert r.status_code == 403 and "cleaning" in r.json()["message"]
    client.post(url, json={"state": "awaiting_clean"}, headers=admin)
    assert client.post(url, json={"state": "cleaning"}, headers=cleaner).status_code == 200
    assert client.post(url, json={"state": "available"}, headers=cleaner).status_code == 200
    events = _events(client, admin, bed["id"])
    assert events[-1]["data"]["to_state"] == "available"
