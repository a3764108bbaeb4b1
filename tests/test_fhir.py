"""The read-only FHIR R4 API: every body is parsed back through the fhir.resources R4B models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError
from sqlalchemy import event

from tests.conftest import auth
from wardwatch.app import create_app
from wardwatch.auth.roles import ROLE_PERMISSIONS, Role
from wardwatch.capacity.models import Bed
from wardwatch.capacity.states import HL7_0116, BedState
from wardwatch.ingest.fhir import resources as fr
from wardwatch.ingest.fhir.routes import router as fhir_router
from wardwatch.runtime import Runtime

NHS = "9434765919"
NHS_TOKEN = f"https://fhir.nhs.uk/Id/nhs-number|{NHS}"
ISSUE_TYPES = {"invalid", "login", "forbidden", "not-found", "not-supported", "conflict"}


# --- helpers -------------------------------------------------------------------------------


def valid(model: type[FHIRAbstractModel], body: Any) -> Any:
    """Parse ``body`` back through the R4B model (raises if invalid) and check the codes
    of required bindings, which the models do not check."""
    parsed = model.model_validate(body)
    kind = body["resourceType"]
    if kind == "Location":
        assert body["status"] in fr.LOCATION_STATUSES
        assert body["mode"] == "instance"
    elif kind == "Encounter":
        assert body["status"] in fr.ENCOUNTER_STATUSES
        for loc in body["location"]:
            assert loc["status"] in {"planned", "active", "reserved", "completed"}
    elif kind == "Bundle":
        assert body["type"] == "searchset"
        for entry in body.get("entry", []):
            assert entry["search"]["mode"] == "match"
            res = entry["resource"]
            valid(Location if res["resourceType"] == "Location" else Encounter, res)
            assert entry["fullUrl"].endswith(f"/fhir/{res['resourceType']}/{res['id']}")
    elif kind == "OperationOutcome":
        for issue in body["issue"]:
            assert issue["severity"] == "error" and issue["code"] in ISSUE_TYPES
    return parsed


def fhir(
    client: TestClient,
    path: str,
    headers: dict[str, str] | None,
    expect: int = 200,
    **params: Any,
) -> Any:
    r = client.get(f"/fhir/{path}", headers=headers, params=params)
    assert r.status_code == expect, r.text[:500]
    assert r.headers["content-type"] == "application/fhir+json"
    return r.json()


def outcome(body: Any, code: str) -> str:
    valid(OperationOutcome, body)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return str(body["issue"][0]["diagnostics"])


def search(client: TestClient, headers: dict[str, str], kind: str, **params: Any) -> Any:
    body = fhir(client, kind, headers, **params)
    valid(Bundle, body)
    return body


def resources(bundle: Any) -> list[Any]:
    return [e["resource"] for e in bundle.get("entry", [])]


def names(bundle: Any) -> list[str]:
    return [r["name"] for r in resources(bundle)]


def bed(client: TestClient, headers: dict[str, str], code: str) -> Any:
    return client.get("/api/beds", params={"code": code}, headers=headers).json()[0]


def fid(our_id: str) -> str:
    return our_id.replace("_", "-")


def ext(resource: Any, name: str) -> Any:
    url = f"{fr.SD}/{name}"
    found = [e for e in resource.get("extension", []) if e["url"] == url]
    return found[0] if found else None


def admit(client: TestClient, headers: dict[str, str], code: str, **patient: Any) -> Any:
    r = client.post(
        "/api/stays",
        headers=headers,
        json={
            "bed_id": bed(client, headers, code)["id"],
            "source": "ed",
            "patient": patient or {"nhs_number": NHS, "sex": "female"},
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def set_state(client: TestClient, headers: dict[str, str], code: str, state: str) -> None:
    r = client.post(
        f"/api/beds/{bed(client, headers, code)['id']}/state",
        headers=headers,
        json={"state": state, "reason": "test"},
    )
    assert r.status_code == 200, r.text


@contextmanager
def beds_loaded() -> Iterator[list[int]]:
    """Count Bed rows turned into objects while the block runs."""
    counter = [0]

    def on_load(*_: Any) -> None:
        counter[0] += 1

    event.listen(Bed, "load", on_load)
    try:
        yield counter
    finally:
        event.remove(Bed, "load", on_load)


# --- the validation itself can fail --------------------------------------------------------


def test_the_models_reject_what_a_broken_mapping_would_produce() -> None:
    valid(OperationOutcome, fr.operation_outcome("not-found", ["x"]).model_dump(mode="json"))
    with pytest.raises(ValidationError):  # our own ids have '_', which FHIR ids may not
        Location.model_validate({"resourceType": "Location", "id": "bed_01abc"})
    with pytest.raises(ValidationError):  # an element FHIR does not have
        Location.model_validate({"resourceType": "Location", "id": "a", "state": "occupied"})
    with pytest.raises(ValidationError):  # Encounter.class is required
        Encounter.model_validate({"resourceType": "Encounter", "status": "in-progress"})
    with pytest.raises(ValidationError):  # entries are validated as their own resource type
        Bundle.model_validate(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": {"resourceType": "Location", "id": "a_b"}}],
            }
        )
    with pytest.raises(AssertionError):  # codes of required bindings are checked by valid()
        valid(Location, {"resourceType": "Location", "status": "open", "mode": "instance"})


def test_id_mapping_round_trips() -> None:
    our = "bed_01kdz0h6q5y3m9x2f8a7b6c5d4"
    assert fr.to_fhir_id(our) == "bed-01kdz0h6q5y3m9x2f8a7b6c5d4"
    assert fr.from_fhir_id(fr.to_fhir_id(our)) == our


# --- metadata ------------------------------------------------------------------------------


def test_capability_statement(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    body = fhir(client, "metadata", auth(small, "read-only"))
    valid(CapabilityStatement, body)
    assert body["status"] == "active" and body["kind"] == "instance"
    assert body["fhirVersion"] == "4.0.1" and body["format"] == ["json"]
    rest = body["rest"][0]
    assert rest["mode"] == "server"
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(by_type) == {"Location", "Encounter", "Observation"}  # Observation: its own tests
    for r in (by_type["Location"], by_type["Encounter"]):
        assert {i["code"] for i in r["interaction"]} == {"read", "search-type"}
    location_params = {p["name"] for p in by_type["Location"]["searchParam"]}
    assert {"status", "partof", "type", "name", "bed-state", "_count"} <= location_params
    encounter_params = {p["name"] for p in by_type["Encounter"]["searchParam"]}
    assert {"patient", "location", "status"} <= encounter_params
    assert body["implementation"]["url"].endswith("/fhir")


# --- Location ------------------------------------------------------------------------------


def test_bed_ward_and_site_locations(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    admit(client, admin, "ACU1-AMU-01")
    set_state(client, admin, "ACU1-AMU-02", "awaiting_clean")
    expected = {
        "ACU1-AMU-01": BedState.OCCUPIED,
        "ACU1-AMU-02": BedState.AWAITING_CLEAN,
        "ACU1-AMU-03": BedState.AVAILABLE,
        "ACU1-ESC-03": BedState.CLOSED,  # unstaffed at load
    }
    for code, state in expected.items():
        row = bed(client, admin, code)
        body = fhir(client, f"Location/{fid(row['id'])}", admin)
        valid(Location, body)
        assert body["id"] == fid(row["id"]) and "_" not in body["id"]
        assert body["name"] == code and body["status"] == "active"
        assert body["identifier"][0] == {
            "use": "usual",
            "system": fr.LOCATION_CODE_SYSTEM,
            "value": code,
        }
        assert body["physicalType"]["coding"][0]["code"] == "bd"
        assert body["physicalType"]["coding"][0]["system"] == fr.PHYSICAL_TYPE_SYSTEM
        op = body["operationalStatus"]
        assert op["system"] == fr.V2_0116_SYSTEM
        assert (
            op["code"]
            == HL7_0116[state]
            == {"occupied": "O", "awaiting_clean": "H"}.get(
                state.value, {"available": "U", "closed": "C"}.get(state.value)
            )
        )
        assert op["display"]
        assert ext(body, "bed-state")["valueCode"] == state.value
        assert ext(body, "bed-state-since")["valueDateTime"].startswith("2026-01-05T09:30")
        assert body["partOf"]["reference"].startswith("Location/ward-")
    amu01 = fhir(client, f"Location/{fid(bed(client, admin, 'ACU1-AMU-01')['id'])}", admin)
    assert ext(amu01, "side-room")["valueBoolean"] is True
    assert ext(amu01, "virtual-ward-place") is None and "type" not in amu01

    ward = fhir(client, amu01["partOf"]["reference"], admin)
    valid(Location, ward)
    assert ward["name"] == "Acute Medical Unit" and amu01["partOf"]["display"] == ward["name"]
    assert ward["physicalType"]["coding"][0]["code"] == "wa"
    assert ward["type"] == [{"text": "acute medicine"}]
    assert ward["identifier"][0]["value"] == "ACU1-AMU"
    assert "operationalStatus" not in ward and "extension" not in ward

    site = fhir(client, ward["partOf"]["reference"], admin)
    valid(Location, site)
    assert site["name"] == "Acute One" and site["physicalType"]["coding"][0]["code"] == "si"
    assert site["position"] == {"longitude": 0.52, "latitude": 51.27}
    assert "partOf" not in site and ext(site, "site-kind")["valueCode"] == "acute"
    assert [i["system"] for i in site["identifier"]] == [fr.LOCATION_CODE_SYSTEM]

    virtual = fhir(client, f"Location/{fid(bed(client, admin, 'VW1-FRA-01')['id'])}", admin)
    valid(Location, virtual)
    assert virtual["physicalType"]["coding"][0]["code"] == "bd"
    assert ext(virtual, "virtual-ward-place")["valueBoolean"] is True
    assert virtual["type"][0]["coding"][0]["code"] == "PTRES"
    vw_site = fhir(
        client, fhir(client, virtual["partOf"]["reference"], admin)["partOf"]["reference"], admin
    )
    assert "position" not in vw_site and ext(vw_site, "site-kind")["valueCode"] == "virtual_ward"


def test_ods_shaped_site_codes_get_an_ods_identifier(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.post(
        "/api/sites", headers=admin, json={"code": "RXX01", "name": "Ods Hospital", "kind": "acute"}
    )
    assert r.status_code == 201, r.text
    body = fhir(client, f"Location/{fid(r.json()['id'])}", admin)
    valid(Location, body)
    assert {"use": "official", "system": fr.ODS_SITE_SYSTEM, "value": "RXX01"} in body["identifier"]
    found = search(client, admin, "Location", identifier=f"{fr.ODS_SITE_SYSTEM}|RXX01")
    assert names(found) == ["Ods Hospital"]
    # A code that does not look like an ODS site code is never offered as one.
    assert search(client, admin, "Location", identifier=f"{fr.ODS_SITE_SYSTEM}|ACU1")["total"] == 0


def test_location_searches(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    admit(client, admin, "ACU1-AMU-01")
    admit(client, admin, "ACU1-F1-02", local_id="H123", sex="female")
    set_state(client, admin, "ACU1-AMU-02", "awaiting_clean")
    set_state(client, admin, "ACU1-AMU-03", "blocked")
    occupied = {b["code"] for b in client.get("/api/beds?state=occupied", headers=admin).json()}
    assert occupied == {"ACU1-AMU-01", "ACU1-F1-02"}

    body = search(client, admin, "Location", status="O")
    assert set(names(body)) == occupied and body["total"] == 2
    body = search(client, admin, "Location", **{"operational-status": f"{fr.V2_0116_SYSTEM}|O"})
    assert set(names(body)) == occupied
    closed = search(client, admin, "Location", status="C")  # closed and blocked
    assert set(names(closed)) == {"ACU1-AMU-03", "ACU1-ESC-03", "ACU1-ESC-04"}
    assert search(client, admin, "Location", status="H,O")["total"] == 3
    assert search(client, admin, "Location", **{"bed-state": "blocked"})["total"] == 1
    assert search(client, admin, "Location", status="active")["total"] == 2 + 7 + 28
    assert search(client, admin, "Location", status="inactive")["total"] == 0

    amu = fhir(client, f"Location/{fid(bed(client, admin, 'ACU1-AMU-01')['id'])}", admin)
    ward_ref = amu["partOf"]["reference"]
    in_ward = search(client, admin, "Location", partof=ward_ref)
    assert names(in_ward) == [f"ACU1-AMU-0{n}" for n in range(1, 7)]
    assert search(client, admin, "Location", partof=ward_ref.split("/")[1])["total"] == 6
    full_url = f"http://testserver/fhir/{ward_ref}"
    assert search(client, admin, "Location", partof=full_url)["total"] == 6
    site_ref = fhir(client, ward_ref, admin)["partOf"]["reference"]
    assert len(names(search(client, admin, "Location", partof=site_ref))) == 6  # its wards

    assert search(client, admin, "Location", type="wa")["total"] == 7
    assert names(search(client, admin, "Location", type=f"{fr.PHYSICAL_TYPE_SYSTEM}|si")) == [
        "Acute One",
        "Virtual Ward Service",
    ]
    assert search(client, admin, "Location", type="bd")["total"] == 28
    assert search(client, admin, "Location", type="wa,si")["total"] == 9

    assert names(search(client, admin, "Location", name="acute")) == [
        "Acute One",
        "Acute Medical Unit",
    ]
    assert names(search(client, admin, "Location", name="ACU1-amu-0")) == [
        f"ACU1-AMU-0{n}" for n in range(1, 7)
    ]
    assert search(client, admin, "Location", name="Medical")["total"] == 0  # prefix only
    assert search(client, admin, "Location", name="acu1_")["total"] == 0  # '_' is literal
    assert search(client, admin, "Location", name="%")["total"] == 0

    # combinations
    both = search(client, admin, "Location", partof=ward_ref, status="O")
    assert names(both) == ["ACU1-AMU-01"]
    assert search(client, admin, "Location", partof=ward_ref, type="wa")["total"] == 0
    assert search(client, admin, "Location", type="wa", status="O")["total"] == 0
    by_code = search(client, admin, "Location", identifier="ACU1-ESC")
    assert names(by_code) == ["Escalation"]
    assert names(search(client, admin, "Location", _id=amu["id"])) == ["ACU1-AMU-01"]


def test_location_paging(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    first = search(client, admin, "Location", type="bd", _count=10)
    assert first["total"] == 28 and len(first["entry"]) == 10
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links and "_count=10" in links["self"]
    seen = names(first)
    url = links.get("next")
    while url:
        parts = urlsplit(url)
        assert parts.path == "/fhir/Location"
        r = client.get(f"{parts.path}?{parts.query}", headers=admin)
        page = r.json()
        valid(Bundle, page)
        seen += names(page)
        url = next((li["url"] for li in page["link"] if li["relation"] == "next"), None)
    assert len(seen) == 28 and seen == sorted(seen) and len(set(seen)) == 28

    # Across the three tables: sites, then wards, then beds; pages never overlap.
    everything: list[str] = []
    for offset in range(0, 40, 4):
        page = search(client, admin, "Location", _count=4, _offset=offset)
        assert page["total"] == 37
        everything += [r["id"] for r in resources(page)]
    assert len(everything) == 37 and len(set(everything)) == 37
    kinds = [i.split("-")[0] for i in everything]
    assert kinds == ["site"] * 2 + ["ward"] * 7 + ["bed"] * 28

    only_total = search(client, admin, "Location", _count=0)
    assert only_total["total"] == 37 and "entry" not in only_total
    assert search(client, admin, "Location", _count=5000)["total"] == 37  # capped, not refused
    assert len(search(client, admin, "Location", _offset=35)["entry"]) == 2


def test_location_search_filters_in_sql(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    ward_ref = fhir(client, f"Location/{fid(bed(client, admin, 'ACU1-AMU-01')['id'])}", admin)[
        "partOf"
    ]["reference"]
    with beds_loaded() as loaded:
        body = search(client, admin, "Location", partof=ward_ref, _count=2)
    assert body["total"] == 6 and len(body["entry"]) == 2
    assert loaded[0] == 2  # only the page was loaded, not the ward, let alone all 28 beds
    with beds_loaded() as loaded:
        search(client, admin, "Location", status="C", _count=100)
    assert loaded[0] == 2


def test_location_search_errors(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    body = fhir(client, "Location", admin, 400, colour="blue")
    assert "colour" in outcome(body, "invalid")
    body = fhir(client, "Location", admin, 400, **{"bed-state": "dirty"})
    assert "dirty" in outcome(body, "invalid")
    outcome(fhir(client, "Location", admin, 400, _count="lots"), "invalid")
    outcome(fhir(client, "Location", admin, 400, _offset=-1), "invalid")
    outcome(fhir(client, "Location", admin, 400, partof="Patient/123"), "invalid")
    outcome(fhir(client, "Location", admin, 406, _format="xml"), "not-supported")
    assert search(client, admin, "Location", _format="application/fhir+json")["total"] == 37
    r = client.get("/fhir/Location?type=wa&type=si", headers=admin)
    assert r.status_code == 400
    outcome(r.json(), "invalid")
    assert search(client, admin, "Location", name="")["total"] == 37  # empty: ignored
    outcome(fhir(client, "Location", admin, 400, name="a\x00b"), "invalid")
    assert search(client, admin, "Location", _offset=10**30)["total"] == 37


def test_unknown_ids_types_and_methods(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    paths = ("Location/bed-nope", "Location/nothing", "Encounter/stay-nope", "Patient/1")
    for path in (*paths, "Location/site-%00", "Encounter/a%20b"):
        r = client.get(f"/fhir/{path}", headers=admin)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/fhir+json"
        outcome(r.json(), "not-found")
    r = client.post("/fhir/Location", headers=admin, json={"resourceType": "Location"})
    assert r.status_code == 405
    assert "read-only" in outcome(r.json(), "not-supported")
    r = client.delete(
        f"/fhir/Location/{fid(bed(client, admin, 'ACU1-AMU-01')['id'])}", headers=admin
    )
    assert r.status_code == 405
    r = client.get("/fhir/Location/x/_history", headers=admin)
    assert r.status_code == 400
    outcome(r.json(), "not-supported")


# --- Encounter -----------------------------------------------------------------------------


def test_encounter_lifecycle(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    stay = admit(client, admin, "ACU1-AMU-01")
    bed_fid = fid(stay["bed_id"])
    body = search(client, admin, "Encounter", patient=NHS_TOKEN)
    assert body["total"] == 1
    (enc,) = resources(body)
    valid(Encounter, enc)
    assert enc["id"] == fid(stay["id"]) and enc["status"] == "in-progress"
    assert enc["class"] == {
        "system": fr.ACT_CODE_SYSTEM,
        "code": "IMP",
        "display": "inpatient encounter",
    }
    assert enc["subject"] == {"identifier": {"system": fr.NHS_NUMBER_SYSTEM, "value": NHS}}
    assert enc["location"][0]["location"] == {
        "reference": f"Location/{bed_fid}",
        "display": "ACU1-AMU-01",
    }
    assert enc["location"][0]["status"] == "active"
    assert enc["period"] == {"start": "2026-01-05T09:30:00Z"}
    assert enc["hospitalization"] == {"admitSource": {"text": "ed"}}
    # The bed reference resolves.
    assert fhir(client, enc["location"][0]["location"]["reference"], admin)["name"] == "ACU1-AMU-01"

    assert search(client, admin, "Encounter", patient=NHS)["total"] == 1  # bare number
    assert search(client, admin, "Encounter", **{"subject:identifier": NHS_TOKEN})["total"] == 1
    assert (
        search(client, admin, "Encounter", patient=f"{fr.NHS_NUMBER_SYSTEM}|9999999999")["total"]
        == 0
    )
    assert search(client, admin, "Encounter", location=f"Location/{bed_fid}")["total"] == 1
    assert search(client, admin, "Encounter", status="in-progress")["total"] == 1
    assert search(client, admin, "Encounter", status="finished")["total"] == 0

    read = fhir(client, f"Encounter/{enc['id']}", admin)
    valid(Encounter, read)
    assert read == enc

    r = client.post(
        f"/api/stays/{stay['id']}/discharge",
        headers=admin,
        json={"destination": "usual residence", "pathway": 1},
    )
    assert r.status_code == 200, r.text
    done = fhir(client, f"Encounter/{enc['id']}", admin)
    valid(Encounter, done)
    assert done["status"] == "finished"
    assert done["period"]["end"] == r.json()["discharged_at"].replace("+00:00", "Z")
    assert done["location"][0]["status"] == "completed"
    assert done["hospitalization"]["dischargeDisposition"] == {"text": "usual residence"}
    assert ext(done, "discharge-pathway")["valueInteger"] == 1
    assert search(client, admin, "Encounter", status="finished")["total"] == 1
    assert search(client, admin, "Encounter", status="in-progress")["total"] == 0
    assert search(client, admin, "Encounter", location=bed_fid)["total"] == 1  # last bed

    # Reads were audited, by stay id, without the NHS number.
    log = [e for e in small.auth.audit_log() if e["resource"] == "encounter"]
    assert log and all(e["action"] == "read" for e in log)
    assert any(e["ids"] == [stay["id"]] and e["detail"] == "fhir read" for e in log)
    assert any(e["detail"] == "fhir search by patient" for e in log)
    assert NHS not in repr(small.auth.audit_log())
    # A search by patient is audited even when it finds nobody.
    assert any(e["ids"] == [] and e["detail"] == "fhir search by patient" for e in log)


def test_encounter_for_local_ids_leave_and_virtual_wards(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    admit(client, admin, "VW1-FRA-01", local_id="H42", sex="male")
    body = search(
        client, admin, "Encounter", **{"patient:identifier": f"{fr.LOCAL_PATIENT_SYSTEM}|H42"}
    )
    (enc,) = resources(body)
    assert enc["class"]["code"] == "HH"
    assert enc["subject"]["identifier"] == {"system": fr.LOCAL_PATIENT_SYSTEM, "value": "H42"}
    assert search(client, admin, "Encounter", patient="H42")["total"] == 1
    assert search(client, admin, "Encounter", patient=f"{fr.NHS_NUMBER_SYSTEM}|H42")["total"] == 0
    r = client.get("/fhir/Encounter", headers=admin, params={"patient": "Patient/123"})
    assert r.status_code == 400
    assert "123" not in outcome(r.json(), "invalid")

    stay_id = enc["id"].replace("-", "_")
    with small.db.transaction() as tx:  # leave of absence has no API yet (HL7 A21)
        from wardwatch.capacity.lookups import open_stay
        from wardwatch.core.actor import SYSTEM

        small.capacity.moves.leave(tx, open_stay(tx.session, stay_id), SYSTEM, out=True)
    away = fhir(client, f"Encounter/{enc['id']}", admin)
    valid(Encounter, away)
    assert away["status"] == "onleave" and away["location"][0]["status"] == "reserved"
    assert search(client, admin, "Encounter", status="onleave")["total"] == 1
    assert search(client, admin, "Encounter", status="in-progress")["total"] == 0


def test_encounter_search_by_post_keeps_identifiers_out_of_the_url(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    admit(client, admin, "ACU1-AMU-01")
    r = client.post(
        "/fhir/Encounter/_search",
        headers=admin,
        data={"patient": NHS_TOKEN, "status": "in-progress"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/fhir+json"
    body = r.json()
    valid(Bundle, body)
    assert body["total"] == 1
    r = client.post("/fhir/Encounter/_search", headers=admin, json={"patient": NHS})
    assert r.status_code == 415
    outcome(r.json(), "not-supported")
    r = client.post("/fhir/Location/_search", headers=admin, data={"type": "wa"})
    assert r.status_code == 200 and r.json()["total"] == 7


def test_encounter_paging(small: Runtime, client: TestClient, admin: dict[str, str]) -> None:
    for n, code in enumerate(("ACU1-AMU-01", "ACU1-AMU-02", "ACU1-AMU-03")):
        admit(client, admin, code, local_id=f"L{n}")
    first = search(client, admin, "Encounter", _count=2)
    assert first["total"] == 3 and len(first["entry"]) == 2
    nxt = next(li["url"] for li in first["link"] if li["relation"] == "next")
    parts = urlsplit(nxt)
    second = client.get(f"{parts.path}?{parts.query}", headers=admin).json()
    valid(Bundle, second)
    ids = [r["id"] for r in resources(first) + resources(second)]
    assert len(set(ids)) == 3


# --- security and errors -------------------------------------------------------------------


def test_no_token_and_wrong_role_get_operation_outcomes(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    stay = admit(client, admin, "ACU1-AMU-01")
    for path in ("metadata", "Location", "Encounter", f"Encounter/{fid(stay['id'])}"):
        r = client.get(f"/fhir/{path}")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.headers["content-type"] == "application/fhir+json"
        outcome(r.json(), "login")
        r = client.get(f"/fhir/{path}", headers={"Authorization": "Bearer ww_not-a-token"})
        assert r.status_code == 401
        assert outcome(r.json(), "login") == "unknown or revoked token"
    read_only = auth(small, "read-only")
    for path in ("Encounter", f"Encounter/{fid(stay['id'])}"):
        r = client.get(f"/fhir/{path}", headers=read_only, params={})
        assert r.status_code == 403, path
        assert r.headers["content-type"] == "application/fhir+json"
        assert "patients:read" in outcome(r.json(), "forbidden")
    assert search(client, read_only, "Location", type="si")["total"] == 2
    assert not [e for e in small.auth.audit_log() if e["resource"] == "encounter"]


def _fhir_routes() -> list[APIRoute]:
    return [r for r in fhir_router.routes if isinstance(r, APIRoute)]


def test_every_fhir_route_names_a_permission_and_answers_in_fhir(
    small: Runtime, client: TestClient
) -> None:
    """As tests/test_auth.py, and also: every refusal is an OperationOutcome in FHIR JSON."""
    routes = _fhir_routes()
    assert len(routes) >= 7
    for route in routes:
        perms = [getattr(d.call, "required_permission", None) for d in route.dependant.dependencies]
        perm = next(p for p in perms if p is not None)
        path = route.path.replace("{", "").replace("}", "")
        for method in route.methods:
            r = client.request(method, path)
            assert r.status_code == 401, (method, path)
            outcome(r.json(), "login")
            for role in Role:
                r = client.request(method, path, headers=auth(small, role.value))
                if perm in ROLE_PERMISSIONS[role]:
                    assert r.status_code != 403, (role, method, path)
                else:
                    assert r.status_code == 403, (role, method, path)
                    assert perm.value in outcome(r.json(), "forbidden")
                assert r.headers["content-type"] == "application/fhir+json", (role, path)


def test_the_rest_of_the_api_keeps_its_error_bodies(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.get("/api/beds/nope", headers=admin)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.content == b'{"error":"not_found","message":"no bed with id \'nope\'"}'
    r = client.get("/api/beds")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized"
    r = client.get("/api/beds", params={"limit": 0}, headers=admin)
    assert r.status_code == 422 and r.json()["error"] == "invalid"


def test_request_validation_errors_under_fhir_are_outcomes(rt: Runtime) -> None:
    app: FastAPI = create_app(rt)

    def probe(n: int) -> int:  # no /fhir route of ours can fail FastAPI's validation today
        return n

    app.add_api_route("/fhir/_probe/{n}", probe)
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the /fhir catch-all

    with TestClient(app) as c:
        r = c.get("/fhir/_probe/abc")
    assert r.status_code == 400 and r.headers["content-type"] == "application/fhir+json"
    assert "n" in outcome(r.json(), "invalid")
