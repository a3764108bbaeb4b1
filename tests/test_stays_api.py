"""Patients and stays: admit, transfer, discharge, dates; bad input; the audit log."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import auth
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime

NHS = "9434765919"


def bed_id(client: TestClient, headers: dict[str, str], code: str) -> str:
    return str(client.get("/api/beds", params={"code": code}, headers=headers).json()[0]["id"])


def admit(client: TestClient, headers: dict[str, str], code: str, **patient: Any) -> Any:
    return client.post(
        "/api/stays",
        headers=headers,
        json={
            "bed_id": bed_id(client, headers, code),
            "source": "ed",
            "patient": patient or {"nhs_number": NHS, "sex": "female"},
        },
    )


def state(client: TestClient, headers: dict[str, str], code: str) -> str:
    return str(client.get("/api/beds", params={"code": code}, headers=headers).json()[0]["state"])


def test_admit_transfer_discharge(
    small: Runtime, client: TestClient, admin: dict[str, str], clock: ManualClock
) -> None:
    r = admit(client, admin, "ACU1-AMU-01")
    assert r.status_code == 201, r.text
    stay = r.json()
    assert stay["bed_code"] == "ACU1-AMU-01" and stay["nhs_number"] == NHS
    assert state(client, admin, "ACU1-AMU-01") == "occupied"
    clock.advance(timedelta(hours=30))
    r = client.post(
        f"/api/stays/{stay['id']}/transfer",
        headers=admin,
        json={"bed_id": bed_id(client, admin, "ACU1-F1-02")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["bed_code"] == "ACU1-F1-02" and r.json()["length_of_stay_days"] == 1.25
    assert state(client, admin, "ACU1-AMU-01") == "awaiting_clean"
    assert state(client, admin, "ACU1-F1-02") == "occupied"
    r = client.patch(
        f"/api/stays/{stay['id']}",
        headers=admin,
        json={"expected_discharge_date": "2026-01-09", "discharge_ready_date": "2026-01-08"},
    )
    assert r.json()["discharge_ready_date"] == "2026-01-08"
    clock.advance(timedelta(days=2))
    r = client.post(
        f"/api/stays/{stay['id']}/discharge",
        headers=admin,
        json={"destination": "usual residence", "pathway": 1},
    )
    assert r.status_code == 200
    done = r.json()
    assert done["discharged_at"] is not None and done["discharge_pathway"] == 1
    assert state(client, admin, "ACU1-F1-02") == "awaiting_clean"
    types = [
        e["type"]
        for e in client.get("/api/events", params={"type": None}, headers=admin).json()
        if e.get("data", {}).get("stay_id") == stay["id"] and e["type"].startswith("stay.")
    ]
    assert types == [
        "stay.admitted",
        "stay.transferred_out",
        "stay.transferred_in",
        "stay.updated",
        "stay.discharged",
    ]
    # The same patient can come back after discharge: a new stay.
    assert admit(client, admin, "ACU1-AMU-02").status_code == 201


def test_admitting_into_an_occupied_bed_is_refused(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    assert admit(client, admin, "ACU1-AMU-01").status_code == 201
    r = admit(client, admin, "ACU1-AMU-01", local_id="H123")
    assert r.status_code == 409
    assert r.json()["message"].startswith("bed ACU1-AMU-01 is occupied (it has a patient in it)")
    assert len(client.get("/api/stays", headers=admin).json()) == 1


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("ACU1-ESC-03", "bed ACU1-ESC-03 is closed"),
    ],
)
def test_admitting_into_a_closed_bed(
    small: Runtime, client: TestClient, admin: dict[str, str], code: str, why: str
) -> None:
    r = admit(client, admin, code)
    assert r.status_code == 409 and r.json()["message"].startswith(why)


def test_the_same_patient_cannot_be_in_two_beds(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    assert admit(client, admin, "ACU1-AMU-01").status_code == 201
    r = admit(client, admin, "ACU1-AMU-02", nhs_number="943 476 5919")
    assert r.status_code == 409 and "already admitted (bed ACU1-AMU-01)" in r.json()["message"]
    assert state(client, admin, "ACU1-AMU-02") == "available"


def test_invalid_nhs_number_is_422_and_nothing_written(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = admit(client, admin, "ACU1-AMU-01", nhs_number="9434765918")
    assert r.status_code == 422
    assert r.json()["message"] == (
        "patient.nhs_number: not a valid NHS number (check digit does not match)"
    )
    assert state(client, admin, "ACU1-AMU-01") == "available"
    r = client.post(
        "/api/stays",
        headers=admin,
        json={"bed_id": bed_id(client, admin, "ACU1-AMU-01"), "patient": {}},
    )
    assert r.status_code == 422 and "nhs_number or a local_id" in r.json()["message"]


def test_single_sex_wards(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    r = admit(client, admin, "ACU1-M1-01", local_id="H1", sex="female")
    assert r.status_code == 409 and "male-only" in r.json()["message"]
    assert admit(client, admin, "ACU1-M1-01", local_id="H1", sex="male").status_code == 201


def test_unknown_and_finished_stays(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.post(
        "/api/stays/stay_nope/discharge", headers=admin, json={"destination": "home", "pathway": 0}
    )
    assert r.status_code == 404
    stay = admit(client, admin, "ACU1-AMU-01").json()
    r = client.post(
        f"/api/stays/{stay['id']}/discharge",
        headers=admin,
        json={"destination": "home", "pathway": 7},
    )
    assert r.status_code == 422 and "pathway" in r.json()["message"]
    ok = client.post(
        f"/api/stays/{stay['id']}/discharge",
        headers=admin,
        json={"destination": "home", "pathway": 0},
    )
    assert ok.status_code == 200
    again = client.post(
        f"/api/stays/{stay['id']}/discharge",
        headers=admin,
        json={"destination": "home", "pathway": 0},
    )
    assert again.status_code == 409 and "already discharged" in again.json()["message"]
    r = client.post(
        f"/api/stays/{stay['id']}/transfer",
        headers=admin,
        json={"bed_id": bed_id(client, admin, "ACU1-AMU-03")},
    )
    assert r.status_code == 409


def test_transfer_into_a_dirty_bed_is_refused(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    first = admit(client, admin, "ACU1-AMU-01").json()
    second = admit(client, admin, "ACU1-AMU-02", local_id="H2").json()
    client.post(
        f"/api/stays/{second['id']}/discharge",
        headers=admin,
        json={"destination": "home", "pathway": 0},
    )
    r = client.post(
        f"/api/stays/{first['id']}/transfer",
        headers=admin,
        json={"bed_id": bed_id(client, admin, "ACU1-AMU-02")},
    )
    assert r.status_code == 409 and "awaiting_clean" in r.json()["message"]
    assert state(client, admin, "ACU1-AMU-01") == "occupied"


def test_reserved_bed_can_be_admitted_into(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    bid = bed_id(client, admin, "ACU1-AMU-04")
    client.post(
        f"/api/beds/{bid}/state", json={"state": "reserved", "reason": "from ED"}, headers=admin
    )
    assert admit(client, admin, "ACU1-AMU-04").status_code == 201


def test_patient_data_access_is_audited(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    ward = auth(small, "ward", "clerk")
    clinician = auth(small, "clinician", "dr")
    stay = admit(client, ward, "ACU1-AMU-01").json()
    assert client.get(f"/api/stays/{stay['id']}", headers=clinician).status_code == 200
    assert client.get("/api/stays", headers=clinician).status_code == 200
    client.patch(
        f"/api/stays/{stay['id']}",
        headers=ward,
        json={"expected_discharge_date": str(date(2026, 1, 10))},
    )
    log = small.auth.audit_log()
    got = [(e["actor"], e["action"], e["ids"]) for e in reversed(log)]
    assert got == [
        ("ward:clerk-ward", "create", [stay["id"]]),
        ("clinician:dr-clinician", "read", [stay["id"]]),
        ("clinician:dr-clinician", "read", [stay["id"]]),
        ("ward:clerk-ward", "update", [stay["id"]]),
    ]
    via_api = client.get("/api/audit", headers=admin).json()
    assert [e["action"] for e in via_api] == ["update", "read", "read", "create"]
    assert client.get("/api/audit", headers=clinician).status_code == 403
    # No NHS number in the audit log or the event log: ids only.
    assert NHS not in str(log)
    assert NHS not in str(client.get("/api/events", headers=admin).json())


def test_identifiers_that_disagree_are_refused(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    """A known NHS number arriving with another hospital number is not filed silently."""
    assert admit(client, admin, "ACU1-AMU-01", nhs_number=NHS, local_id="H1").status_code == 201
    other = admit(client, admin, "ACU1-AMU-02", local_id="H2", nhs_number="4010232137")
    assert other.status_code == 201  # a different patient altogether
    mixed = admit(client, admin, "ACU1-AMU-03", nhs_number=NHS, local_id="H9")
    assert mixed.status_code == 409 and "identity mismatch" in mixed.json()["message"]
    crossed = admit(client, admin, "ACU1-AMU-03", nhs_number=NHS, local_id="H2")
    assert crossed.status_code == 409
    assert "two different patients" in crossed.json()["message"]
    assert state(client, admin, "ACU1-AMU-03") == "available"


def test_sex_policy_cannot_be_set_over_patients_of_the_other_sex(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    assert admit(client, admin, "ACU1-AMU-01", local_id="H1", sex="male").status_code == 201
    r = client.patch("/api/wards/ACU1-AMU", json={"sex_policy": "female"}, headers=admin)
    assert r.status_code == 409 and "not female" in r.json()["message"]
    r = client.patch("/api/wards/ACU1-AMU", json={"sex_policy": "male"}, headers=admin)
    assert r.status_code == 200


def test_transfer_respects_single_sex_wards(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    stay = admit(client, admin, "ACU1-AMU-01", local_id="H1", sex="female").json()
    r = client.post(
        f"/api/stays/{stay['id']}/transfer",
        headers=admin,
        json={"bed_id": bed_id(client, admin, "ACU1-M1-01")},
    )
    assert r.status_code == 409 and "male-only" in r.json()["message"]
    assert state(client, admin, "ACU1-AMU-01") == "occupied"
