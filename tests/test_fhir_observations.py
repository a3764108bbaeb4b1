"""Vital signs in as FHIR R4 Observations (one, or a batch/transaction Bundle) and NEWS2 scores
out as Observations, through HTTP on SQLite and PostgreSQL. Every body WardWatch returns is
parsed back through the fhir.resources R4B models."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import func, select

from tests.conftest import auth
from wardwatch.auth.roles import ROLE_PERMISSIONS, Role
from wardwatch.core.clock import ManualClock
from wardwatch.ingest.fhir import observations as fo
from wardwatch.ingest.fhir import vitals_codes as vc
from wardwatch.ingest.fhir import vitals_translate as fvt
from wardwatch.ingest.fhir.resources import LOCAL_PATIENT_SYSTEM, NHS_NUMBER_SYSTEM
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Reading, Rejected

Headers = dict[str, str]
pytestmark = pytest.mark.usefixtures("small")

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
NEWS2 = f"{SNOMED}|1104051000000101"
NHS = "9434765919"
ISSUE_TYPES = {
    "invalid",
    "processing",
    "not-supported",
    "informational",
    "login",
    "forbidden",
    "not-found",
    "transient",
}

#: One set scoring 0 on the chart: code -> (value, UCUM unit).
CALM: dict[str, tuple[Any, str | None]] = {
    "9279-1": (16, "/min"),
    "59408-5": (97, "%"),
    "8480-6": (125, "mm[Hg]"),
    "8867-4": (72, "/min"),
    "67775-7": ("A", None),
    "8310-5": (36.8, "Cel"),
}


# --- helpers -------------------------------------------------------------------------------


def valid(body: Any) -> Any:
    """Parse ``body`` back through its R4B model (raises if invalid) and check required codes
    the models do not check."""
    kind = body["resourceType"]
    if kind == "Observation":
        Observation.model_validate(body)
        assert body["status"] == "final"
    elif kind == "OperationOutcome":
        OperationOutcome.model_validate(body)
        for issue in body["issue"]:
            assert issue["severity"] in {"error", "warning", "information"}
            assert issue["code"] in ISSUE_TYPES
    elif kind == "Bundle":
        Bundle.model_validate(body)
        assert body["type"] in {"searchset", "batch-response", "transaction-response"}
        for entry in body.get("entry", []):
            if "resource" in entry:
                valid(entry["resource"])
            if "outcome" in entry.get("response", {}):
                valid(entry["response"]["outcome"])
    elif kind == "CapabilityStatement":
        CapabilityStatement.model_validate(body)
    else:
        raise AssertionError(f"unexpected resource {kind}")
    return body


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def quantity(value: Any, unit: str | None) -> dict[str, Any]:
    if unit is None:  # ACVPU
        return {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "248234008"}]}}
    return {"valueQuantity": {"value": value, "system": UCUM, "code": unit}}


def obs(
    code: str, value: Any, unit: str | None, at: datetime, ident: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A vital-signs Observation; ``extra`` overrides (device=None drops the device)."""
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": iso(at),
        **quantity(value, unit),
    }
    if ident:
        body["identifier"] = [{"system": "urn:gateway", "value": ident}]
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def dev_ref(serial: str) -> dict[str, Any]:
    return {"identifier": {"value": serial}}


def full_set(
    serial: str, at: datetime, prefix: str, values: dict[str, tuple[Any, str | None]] | None = None
) -> list[dict[str, Any]]:
    return [
        obs(code, v, u, at, f"{prefix}-{code}", device=dev_ref(serial))
        for code, (v, u) in (values or CALM).items()
    ]


def bundle(resources: list[Any], kind: str = "transaction") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": "Observation"}} for r in resources
        ],
    }


def post_bundle(client: TestClient, headers: Headers, body: dict[str, Any]) -> Any:
    r = client.post("/fhir", headers=headers, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/fhir+json"
    return valid(r.json())


def statuses(response: Any) -> list[str]:
    return [e["response"]["status"] for e in response["entry"]]


def get(client: TestClient, headers: Headers, path: str, expect: int = 200, **params: Any) -> Any:
    r = client.get(f"/fhir/{path}", headers=headers, params=params or None)
    assert r.status_code == expect, r.text[:500]
    assert r.headers["content-type"] == "application/fhir+json"
    return valid(r.json())


def scores(client: TestClient, h: Headers, **params: Any) -> list[Any]:
    found = get(client, h, "Observation", code=NEWS2, **params)
    return [e["resource"] for e in found.get("entry", [])]


def component(news2: Any, code: str) -> Any:
    """The component of a NEWS2 Observation with this code (SNOMED CT or ours)."""
    (found,) = [c for c in news2["component"] if c["code"]["coding"][0]["code"] == code]
    return found


def points(news2: Any) -> dict[str, int | None]:
    """Parameter -> its score (None when absent), keyed as in vc.PARAMETER_CODES."""
    codes = {code: name for name, (code, _) in vc.PARAMETER_CODES.items()}
    out: dict[str, int | None] = {}
    for c in news2["component"]:
        code = c["code"]["coding"][0]["code"]
        if code in codes:
            out[codes[code]] = c.get("valueInteger")
    return out


def outcome_text(body: Any) -> str:
    return " | ".join(i["diagnostics"] for i in valid(body)["issue"])


@pytest.fixture
def h(rt: Runtime) -> Headers:
    return auth(rt, "clinician", "nurse")


@pytest.fixture
def dev(rt: Runtime) -> Headers:
    return auth(rt, "device", "gateway")


def enrol(client: TestClient, h: Headers, devices: list[str], **patient: Any) -> dict[str, Any]:
    for serial in devices:
        client.post("/api/virtual-ward/devices", headers=h, json={"serial": serial})
    r = client.post(
        "/api/virtual-ward/enrolments",
        headers=h,
        json={
            "patient": {"sex": "female", **patient},
            "ward": "VW1-FRA",
            "plan": {"mode": "spot", "times_per_day": 4},
            "devices": devices,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- NEWS2 from a transaction ---------------------------------------------------------------


def test_a_full_set_as_a_transaction_reads_back_as_news2(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    enrol(client, h, ["OX-1"], nhs_number=NHS)
    at = clock.now()
    values = {k: v for k, v in CALM.items() if k != "8480-6"}
    resources = full_set("OX-1", at, "a", values)
    bp = obs("85354-9", None, None, at, "a-bp", device=dev_ref("OX-1"), valueCodeableConcept=None)
    bp["component"] = [
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, **quantity(125, "mm[Hg]")},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, **quantity(80, "mm[Hg]")},
    ]
    out = post_bundle(client, dev, bundle([*resources, bp]))
    assert out["type"] == "transaction-response"
    assert statuses(out) == ["201 Created"] * 6
    locations = [e["response"]["location"] for e in out["entry"]]
    assert all(loc.startswith("Observation/vs-") for loc in locations[:5])
    assert locations[5].startswith("Observation/vp-")

    (news2,) = scores(client, h, patient=f"{NHS_NUMBER_SYSTEM}|{NHS}")
    assert news2["id"].startswith("news2-") and news2["valueInteger"] == 0
    assert news2["code"]["coding"][0] == {
        "system": SNOMED,
        "code": "1104051000000101",
        "display": vc.NEWS2_DISPLAY,
    }
    assert news2["subject"] == {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}}
    assert news2["effectiveDateTime"] == iso(at)
    assert news2["interpretation"][0]["coding"][0]["code"] == "low"
    assert "dataAbsentReason" not in news2 and "note" not in news2
    assert points(news2) == {
        "respiration_rate": 0,
        "spo2:1": 0,
        "air_or_oxygen": 0,
        "systolic_bp": 0,
        "pulse": 0,
        "consciousness": 0,
        "temperature": 0,
    }
    assert component(news2, "spo2-scale")["valueInteger"] == 1
    pulse = component(news2, vc.PARAMETER_CODES["pulse"][0])
    assert pulse["extension"][0]["valueQuantity"]["value"] == 72
    assert get(client, h, f"Observation/{news2['id']}") == news2

    # The readings themselves: one reading, and the BP panel whole.
    hr = get(client, h, locations[2])
    assert hr["code"]["coding"][0]["code"] == "8867-4" and hr["valueQuantity"]["value"] == 72
    assert hr["device"]["identifier"]["value"] == "OX-1"
    assert hr["category"][0]["coding"][0]["code"] == "vital-signs"
    panel = get(client, h, locations[5])
    assert panel["code"]["coding"][0]["code"] == "85354-9"
    assert [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in panel["component"]
    ] == [("8480-6", 125), ("8462-4", 80)]
    acvpu = get(client, h, locations[3])
    assert acvpu["valueCodeableConcept"]["text"] == "A"


def test_units_are_converted_and_read_back_in_ours(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-2"], local_id="VW-2")
    at = clock.now()
    values = {**CALM, "8310-5": (98.6, "[degF]"), "8480-6": (16, "kPa")}
    out = post_bundle(client, dev, bundle(full_set("OX-2", at, "u", values), "batch"))
    assert out["type"] == "batch-response" and statuses(out) == ["201 Created"] * 6
    temp = get(client, h, out["entry"][5]["response"]["location"])
    assert temp["valueQuantity"] == {"value": 37.0, "unit": "°C", "system": UCUM, "code": "Cel"}
    sbp = get(client, h, out["entry"][2]["response"]["location"])
    assert sbp["valueQuantity"]["code"] == "mm[Hg]"
    assert sbp["valueQuantity"]["value"] == pytest.approx(120.00992)
    (news2,) = scores(client, h, patient=f"{LOCAL_PATIENT_SYSTEM}|VW-2")
    assert news2["valueInteger"] == 0
    assert news2["subject"]["identifier"] == {"system": LOCAL_PATIENT_SYSTEM, "value": "VW-2"}
    used = component(news2, vc.PARAMETER_CODES["temperature"][0])["extension"][0]
    assert used["valueQuantity"]["value"] == 37.0


def test_data_absent_reason_makes_a_partial_set_never_low(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-3"], local_id="VW-3")
    at = clock.now()
    resources = full_set("OX-3", at, "p")
    absent = {"coding": [{"system": vc.ABSENT_SYSTEM, "code": "error"}]}
    sbp = obs("8480-6", None, None, at, "p-sbp", device=dev_ref("OX-3"), dataAbsentReason=absent)
    del sbp["valueCodeableConcept"]
    resources[2] = sbp
    out = post_bundle(client, dev, bundle(resources))
    assert statuses(out) == ["201 Created"] * 6
    with rt.db.read() as s:
        stored = s.execute(
            select(Reading.value, Reading.text_value).where(Reading.parameter == "systolic_bp")
        ).all()
    assert [tuple(row) for row in stored] == [(None, None)]

    (news2,) = scores(client, h, patient="VW-3")
    assert "valueInteger" not in news2
    assert news2["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "PARTIAL" in news2["note"][0]["text"] and "systolic_bp" in news2["note"][0]["text"]
    assert news2["interpretation"][0]["coding"][0]["code"] == "unknown"
    assert "never low" in news2["interpretation"][0]["coding"][0]["display"]
    assert component(news2, "partial-total")["valueInteger"] == 0
    sbp_score = component(news2, vc.PARAMETER_CODES["systolic_bp"][0])
    assert "valueInteger" not in sbp_score and sbp_score["dataAbsentReason"]["text"]
    back = get(client, h, out["entry"][2]["response"]["location"])
    assert "valueQuantity" not in back and back["dataAbsentReason"]["coding"][0]["code"]


def test_a_bundle_with_bad_entries_keeps_every_good_one(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-4"], local_id="VW-4")
    at = clock.now()
    good = full_set("OX-4", at, "g")
    d = {"device": dev_ref("OX-4")}
    bad: list[Any] = [
        obs("8867-4", 900, "/min", at, "b1", **d),  # implausible
        obs("59408-5", 140, "%", at, "b2", **d),  # implausible
        obs("8310-5", 310, "K", at, "b3", **d),  # a unit we do not take
        obs("8867-4", 70, "/min", at, "b4", device=dev_ref("NOPE-1")),  # unknown device
        {"resourceType": "Observation", "code": {"text": "no status"}},  # malformed
        {"resourceType": "Patient", "id": "p1"},  # not an Observation
        obs("8867-4", 70, "/min", at, "b7", device=None, subject={"reference": "Patient/1"}),
        obs("2345-7", 5.5, "mmol/L", at, "b8", **d),  # not a vital sign
        obs("8867-4", 70, "beats", at, "b9", **d),  # not UCUM
    ]
    bad[8]["valueQuantity"] = {"value": 70, "unit": "beats"}
    for kind in ("transaction", "batch"):
        body = bundle([good[0], *bad[:3], good[1], *bad[3:], *good[2:]], kind)
        body["entry"].append({"resource": good[0], "request": {"method": "PUT", "url": "x"}})
        body["entry"].append("not an entry")
        out = post_bundle(client, dev, body)
        assert out["type"] == f"{kind}-response"
        first = "201 Created" if kind == "transaction" else "200 OK"  # the batch is a resend
        expected = [
            first,
            *["422 Unprocessable Entity"] * 3,
            first,
            "422 Unprocessable Entity",
            "400 Bad Request",
            "400 Bad Request",
            "422 Unprocessable Entity",
            "422 Unprocessable Entity",
            "422 Unprocessable Entity",
            *[first] * 4,
            "400 Bad Request",
            "400 Bad Request",
        ]
        assert statuses(out) == expected
    reasons = [
        outcome_text(e["response"]["outcome"]) for e in out["entry"] if "outcome" in e["response"]
    ]
    assert "not possible" in reasons[0] and "not possible" in reasons[1]
    assert "not accepted" in reasons[2] and "unknown device" in reasons[3]
    assert "status" in reasons[4] and "Patient" in reasons[5]
    assert "no Patient resources" in reasons[6] and "not a vital sign" in reasons[7]
    assert "UCUM" in reasons[8] and "only POST Observation" in reasons[9]
    assert "not a JSON object" in reasons[10]
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 6
        assert s.scalar(select(func.count()).select_from(Rejected)) == 2 * 11
    (news2,) = scores(client, h, patient="VW-4")  # the second bundle stored nothing new
    assert news2["valueInteger"] == 0


def test_entries_the_fast_check_cannot_vouch_for_get_the_full_r4_validation(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    """Most entries skip the R4B model (vitals_translate.well_formed vouches for them); the
    rest are validated by the model as before: refused with its precise message, or kept."""
    enrol(client, h, ["OX-F"], local_id="VW-F")
    at = clock.now()
    d = {"device": dev_ref("OX-F")}
    plain = obs("8867-4", 72, "/min", at, "f0", **d)
    unusual = obs("9279-1", 16, "/min", at, "f1", **d, note=[{"text": "counted by hand"}])
    unusual["meta"] = {"lastUpdated": iso(at), "profile": ["https://example.org/vitals"]}
    big = obs("8310-5", 0, "Cel", at, "f7", **d)
    big["valueQuantity"]["value"] = 10**400  # a valid FHIR decimal, but no temperature
    entries = [
        plain,
        unusual,
        obs("8867-4", 72, "/min", at, "f2", **d, note="checked"),  # wrong type, element ignored
        obs("8867-4", 72, "/min", at, "f3", **d, performer=[{"reference": 5}]),
        obs("8867-4", 72, "/min", at, "f4", device={**dev_ref("OX-F"), "colour": "red"}),
        obs("8867-4", 72, "/min", at, "f5", **d, valueString="72"),  # two values
        obs("8867-4", 72, "/min", at, "f6", **d, effectiveDateTime="2026-02-30T09:30:00Z"),
        big,
    ]
    assert fvt.well_formed(plain)
    assert not any(fvt.well_formed(e) for e in entries[1:])  # all through the model
    out = post_bundle(client, dev, bundle(entries, "batch"))
    assert statuses(out) == [
        "201 Created",
        "201 Created",
        *["400 Bad Request"] * 5,
        "422 Unprocessable Entity",
    ]
    reasons = [outcome_text(e["response"]["outcome"]) for e in out["entry"][2:]]
    assert reasons == [
        "entry[2]: note: Input should be a valid list",
        "entry[3]: performer.0.reference: Input should be a valid string",
        "entry[4]: device.colour: Extra inputs are not permitted",
        "entry[5]: Any of one field value is expected from this list ['valueBoolean', "
        "'valueCodeableConcept', 'valueDateTime', 'valueInteger', 'valuePeriod', "
        "'valueQuantity', 'valueRange', 'valueRatio', 'valueSampledData', 'valueString', "
        "'valueTime'], but got multiple!",
        "entry[6]: effectiveDateTime: Input should be a valid datetime or date, day value is "
        "outside expected range",
        "8310-5 value is too large to be a measurement",
    ]
    with rt.db.read() as s:
        stored = s.execute(select(Reading.parameter, Reading.value).order_by(Reading.id)).all()
        kept = s.scalars(select(Rejected.reason).order_by(Rejected.id)).all()
        payloads = s.scalars(select(Rejected.payload).order_by(Rejected.id)).all()
        senders = s.scalars(select(Rejected.sender).order_by(Rejected.id)).all()
    assert [tuple(row) for row in stored] == [("pulse", 72.0), ("respiration_rate", 16.0)]
    # Each refused Observation is kept as sent, whichever step refused it (the model check,
    # or the plausibility check inside the ingest).
    assert [json.loads(p) for p in payloads] == entries[2:]
    assert senders == ["device:OX-F"] * 6
    assert [k.split(":")[0] for k in kept] == [f"entry[{n}]" for n in range(2, 7)] + [
        "8310-5 value is too large to be a measurement"
    ]


#: Values put in place of every element of a valid Observation by the next test.
ODD: list[Any] = [
    *(None, "", " ", "\u00a0", "a  b", " a", "x", "72", [], {}, [None], [{}], ["x"], {"x": 1}),
    *(0, -0.0, 1.5, True, 2**53, 10**400, float("nan"), float("inf"), "Observation", "a" * 65),
    *("2026-01-05", "2026-01-05T09:30:00", "2026-01-05T09:30Z", "2026-02-30T09:30:00Z"),
    *("2026-01-05T24:00:00Z", "2026-01-05T23:59:60Z", "2026-01-05T09:30:00.1234567Z"),
    *("2026-01-05T09:30:00+15:00", "0000-01-05T09:30:00Z", "amended", "http://x y"),
]


def _altered(doc: Any, path: tuple[Any, ...] = ()) -> Any:
    """``doc`` with, in turn, each element (at any depth) removed or replaced by each of ODD,
    and an element added beside it (unknown, a second value, an extension)."""
    if isinstance(doc, dict):
        keys: list[Any] = list(doc)
        for extra, value in (("colour", 1), ("note", "n"), ("valueString", "A"), ("_status", {})):
            if extra not in doc:
                yield {**doc, extra: value}
    elif isinstance(doc, list):
        keys = list(range(len(doc)))
    else:
        return
    for key in keys:
        rest = {k: v for k, v in doc.items() if k != key} if isinstance(doc, dict) else None
        if rest is not None:
            yield rest
        for value in [*ODD, *_altered(doc[key])]:
            changed = dict(doc) if isinstance(doc, dict) else list(doc)
            changed[key] = value
            yield changed


def test_the_fast_check_never_passes_what_the_r4_model_refuses() -> None:
    """well_formed may say "not sure" (then the model decides), never "valid" wrongly."""
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    panel = obs("85354-9", None, None, at, "p", valueCodeableConcept=None, issued=iso(at))
    panel["component"] = [
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, **quantity(120.5, "mm[Hg]")},
        {"code": {"text": "dia"}, "dataAbsentReason": {"coding": [{"code": "error"}]}},
    ]
    valid_ones = [
        obs("8867-4", 72, "/min", at, "a", device=dev_ref("OX-1"), id="a-1"),
        obs("67775-7", None, None, at, subject={"identifier": {"system": "s", "value": "1"}}),
        panel,
    ]
    vouched = refused = 0
    for doc in valid_ones:
        assert fvt.well_formed(doc)
        for altered in _altered(doc):
            if fvt.well_formed(altered):
                vouched += 1
                Observation.model_validate(altered)  # raises if the check was wrong
            else:
                refused += 1
    assert vouched > 300 and refused > 2000, (vouched, refused)


def test_resends_are_stored_once(
    client: TestClient, dev: Headers, h: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-5"], local_id="VW-5")
    one = obs("8867-4", 72, "/min", clock.now(), "r1", device=dev_ref("OX-5"))
    first = client.post("/fhir/Observation", headers=dev, json=one)
    assert first.status_code == 201, first.text
    again = client.post("/fhir/Observation", headers=dev, json=one)
    assert again.status_code == 200
    assert again.headers["location"] == first.headers["location"]
    assert valid(again.json())["id"] == first.json()["id"]
    changed = client.post(
        "/fhir/Observation",
        headers=dev,
        json={**one, "identifier": [{"system": "urn:gateway", "value": "r2"}]},
    )
    assert changed.status_code == 201
    # Without an identifier the content itself is the key.
    bare = {k: v for k, v in one.items() if k != "identifier"}
    bare["valueQuantity"] = {**one["valueQuantity"], "value": 74}
    assert client.post("/fhir/Observation", headers=dev, json=bare).status_code == 201
    assert client.post("/fhir/Observation", headers=dev, json=bare).status_code == 200
    out = post_bundle(client, dev, bundle([one, bare], "batch"))
    assert statuses(out) == ["200 OK", "200 OK"]
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 3


def test_create_answers(
    client: TestClient, dev: Headers, h: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-6"], nhs_number=NHS)
    at = clock.now()
    one = obs("8867-4", 72, "/min", at, "c1", device=dev_ref("OX-6"))
    r = client.post("/fhir/Observation", headers=dev, json=one)
    assert r.status_code == 201 and r.headers["content-type"] == "application/fhir+json"
    body = valid(r.json())
    assert r.headers["location"] == f"http://testserver/fhir/Observation/{body['id']}"
    assert body["id"].startswith("vs-") and body["meta"]["lastUpdated"]
    assert body["device"] == one["device"] and "subject" not in body  # an echo: no patient
    minimal = obs("8867-4", 73, "/min", at, "c2", device=dev_ref("OX-6"))
    r = client.post("/fhir/Observation", headers={**dev, "Prefer": "return=minimal"}, json=minimal)
    assert r.status_code == 201 and r.content == b"" and r.headers["location"]
    # By patient identifier (a patient app), ACVPU as a letter.
    by_patient = obs(
        "67775-7",
        None,
        None,
        at,
        "c3",
        valueCodeableConcept=None,
        valueString="C",
        subject={"identifier": {"system": NHS_NUMBER_SYSTEM, "value": NHS}},
    )
    r = client.post("/fhir/Observation", headers=dev, json=by_patient)
    assert r.status_code == 201, r.text
    assert get(client, h, f"Observation/{r.json()['id']}")["valueCodeableConcept"] == {
        "coding": [{"system": SNOMED, "code": "130987000"}],
        "text": "C",
    }

    def refused(resource: Any, status: int, code: str, words: str) -> None:
        r = client.post("/fhir/Observation", headers=dev, json=resource)
        assert r.status_code == status, r.text
        assert r.json()["issue"][0]["code"] == code
        assert words in outcome_text(r.json()), r.text

    d = {"device": dev_ref("OX-6")}
    refused(obs("8867-4", 900, "/min", at, "x1", **d), 422, "processing", "not possible")
    refused(
        obs("8867-4", 72, "/min", at, "x2", **d, status="amended"),
        422,
        "not-supported",
        "never changes it",
    )
    refused(
        obs("8867-4", 72, "/min", at, "x3", **d, effectiveDateTime="2026-01-05"),
        422,
        "invalid",
        "no time of day",
    )
    refused(
        obs("8867-4", 72, "/min", at, "x4", device={"reference": "Device/1"}),
        422,
        "not-supported",
        "device.identifier",
    )
    refused(
        obs("8867-4", 72, "/min", at + timedelta(hours=1), "x5", **d), 422, "processing", "future"
    )
    refused(obs("8867-4", 72, "/min", at, "x6", **d, colour="blue"), 400, "invalid", "colour")
    refused(bundle([one]), 400, "not-supported", "expected an Observation")
    r = client.post("/fhir/Observation", headers=dev, content=b"{not json")
    assert r.status_code == 400 and "not JSON" in outcome_text(r.json())
    r = client.post(
        "/fhir/Observation", headers={**dev, "Content-Type": "text/plain"}, content=b"{}"
    )
    assert r.status_code == 415
    with rt.db.read() as s:
        kept = s.scalars(select(Rejected.payload).order_by(Rejected.id.desc())).first()
    assert kept == "{not json"  # refused bodies are kept for inspection
    r = client.post("/fhir", headers=dev, json=one)
    assert r.status_code == 400 and "POST an Observation to /fhir/Observation" in r.text
    r = client.post("/fhir", headers=dev, json={"resourceType": "Bundle", "type": "collection"})
    assert r.status_code == 400 and "batch" in outcome_text(r.json())


def test_panels_part_refused_absent_and_read_back_whole(
    client: TestClient, dev: Headers, h: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-9"], local_id="VW-9")
    at = clock.now()

    def comp(code: str, value: Any, unit: str | None) -> dict[str, Any]:
        return {"code": {"coding": [{"system": LOINC, "code": code}]}, **quantity(value, unit)}

    def panel(code: str, ident: str, *components: dict[str, Any]) -> dict[str, Any]:
        body = obs(code, None, None, at, ident, device=dev_ref("OX-9"), valueCodeableConcept=None)
        return {**body, "component": list(components)} if components else body

    # Diastolic 250 is refused, systolic kept: 201 with an outcome saying both.
    r = client.post(
        "/fhir/Observation",
        headers=dev,
        json=panel("85354-9", "bp1", comp("8480-6", 125, "mm[Hg]"), comp("8462-4", 250, "mm[Hg]")),
    )
    assert r.status_code == 201, r.text
    text = outcome_text(r.json())
    assert "stored as Observation/vp-" in text and "diastolic_bp 250 mmHg is not possible" in text
    assert [i["severity"] for i in r.json()["issue"]] == ["information", "warning"]
    back = get(client, h, r.headers["location"].split("/fhir/")[1])
    assert [c["code"]["coding"][0]["code"] for c in back["component"]] == ["8480-6"]
    # A vital-signs panel with ACVPU, a component without LOINC (refused) and one absent.
    absent = {"dataAbsentReason": {"coding": [{"system": vc.ABSENT_SYSTEM, "code": "error"}]}}
    r = client.post(
        "/fhir/Observation",
        headers=dev,
        json=panel(
            "85353-1",
            "vs1",
            comp("8867-4", 88, "/min"),
            comp("67775-7", None, None),
            {"code": {"text": "glucose"}, **quantity(5, "mmol/L")},
            {"code": {"coding": [{"system": LOINC, "code": "9279-1"}]}, **absent},
        ),
    )
    assert r.status_code == 201 and "component[2].code has no LOINC coding" in r.text
    back = get(client, h, r.headers["location"].split("/fhir/")[1])
    assert back["code"]["coding"][0]["code"] == "85353-1"
    got = [
        (
            c["code"]["coding"][0]["code"],
            c.get("valueQuantity", {}).get("value"),
            "dataAbsentReason" in c,
        )
        for c in back["component"]
    ]
    assert got == [("8867-4", 88, False), ("67775-7", None, False), ("9279-1", None, True)]
    # A BP panel marked absent as a whole: both pressures absent, the set partial.
    whole = panel("85354-9", "bp2")
    whole["dataAbsentReason"] = absent["dataAbsentReason"]
    r = client.post("/fhir/Observation", headers=dev, json=whole)
    assert r.status_code == 201, r.text
    with rt.db.read() as s:
        rows = s.execute(
            select(Reading.parameter, Reading.value).where(Reading.key.like("%bp2%"))
        ).all()
    assert sorted(tuple(row) for row in rows) == [("diastolic_bp", None), ("systolic_bp", None)]
    # Refused whole: nothing usable, a value on the panel itself, components elsewhere.
    r = client.post(
        "/fhir/Observation", headers=dev, json=panel("85354-9", "bp3", comp("8480-6", 20, "mm[Hg]"))
    )
    assert r.status_code == 422 and "not possible" in outcome_text(r.json())
    r = client.post(
        "/fhir/Observation",
        headers=dev,
        json={**panel("85354-9", "bp4"), **quantity(120, "mm[Hg]")},
    )
    assert r.status_code == 422 and "no value of its own" in outcome_text(r.json())
    hr = obs("8867-4", 70, "/min", at, "hr", device=dev_ref("OX-9"))
    r = client.post(
        "/fhir/Observation", headers=dev, json={**hr, "component": [comp("8867-4", 70, "/min")]}
    )
    assert r.status_code == 422 and "components are read only on the panels" in r.text


# --- band edges through the API ------------------------------------------------------------


def test_temperature_band_edges(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    at = clock.now()
    cases = {  # patient -> (values, expected points, total)
        "T1": ({"8310-5": (36.0, "Cel")}, {"temperature": 1}, 1),
        "T2": ({"8310-5": (36.1, "Cel")}, {"temperature": 0}, 0),
        "T3": ({"8310-5": (96.8, "[degF]")}, {"temperature": 1}, 1),  # exactly 36.0 C
    }
    for n, (patient, (values, expected, total)) in enumerate(cases.items()):
        enrol(client, h, [f"OX-T{n}"], local_id=patient)
        post_bundle(client, dev, bundle(full_set(f"OX-T{n}", at, patient, {**CALM, **values})))
        (news2,) = scores(client, h, patient=patient)
        assert news2["valueInteger"] == total, patient
        assert {k: points(news2)[k] for k in expected} == expected, patient


def test_band_edges_on_spo2_scale_2_on_air_and_oxygen(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock
) -> None:
    """Scale 2 is set by a clinician (PUT .../scale); 93 % scores 0 on air, 1 on oxygen."""
    at = clock.now()
    scale2 = {  # patient -> (SpO2, oxygen flow L/min or None, spo2 points, air/oxygen points)
        "S1": (92, None, 0, 0),
        "S2": (93, None, 0, 0),
        "S3": (92, 2, 0, 2),
        "S4": (93, 2, 1, 2),
    }
    for n, (patient, (spo2, flow, spo2_points, o2_points)) in enumerate(scale2.items()):
        e = enrol(client, h, [f"OX-S{n}"], local_id=patient)
        r = client.put(
            f"/api/virtual-ward/enrolments/{e['id']}/scale",
            headers=h,
            json={"scale": 2, "reason": "COPD, target 88-92%"},
        )
        assert r.status_code == 200, r.text
        values = {**CALM, "59408-5": (spo2, "%")}
        if flow is not None:
            values["3151-8"] = (flow, "L/min")
        post_bundle(client, dev, bundle(full_set(f"OX-S{n}", at, patient, values)))
        (news2,) = scores(client, h, patient=patient)
        got = points(news2)
        assert (got["spo2:2"], got["air_or_oxygen"]) == (spo2_points, o2_points), patient
        assert "spo2:1" not in got and component(news2, "spo2-scale")["valueInteger"] == 2
        assert news2["valueInteger"] == spo2_points + o2_points, patient


# --- search ----------------------------------------------------------------------------------


def test_search_by_patient_code_and_date_with_paging(
    client: TestClient, h: Headers, dev: Headers, clock: ManualClock, rt: Runtime
) -> None:
    enrol(client, h, ["OX-7"], nhs_number=NHS)
    enrol(client, h, ["OX-8"], local_id="OTHER")
    start = clock.now()
    for n in range(5):  # five sets, an hour apart
        at = start + timedelta(hours=n)
        clock.set(at)
        post_bundle(client, dev, bundle(full_set("OX-7", at, f"s{n}")))
    post_bundle(client, dev, bundle(full_set("OX-8", clock.now(), "o")))
    mine = f"{NHS_NUMBER_SYSTEM}|{NHS}"
    found = scores(client, h, patient=mine)
    assert [s["effectiveDateTime"] for s in found] == [
        iso(start + timedelta(hours=n)) for n in (4, 3, 2, 1, 0)
    ]
    assert len(scores(client, h, patient=NHS)) == 5 and len(scores(client, h)) == 6
    assert scores(client, h, patient=f"{NHS_NUMBER_SYSTEM}|9000000009") == []
    # date: a range, a day in London time, the prefixes
    ranged = get(
        client,
        h,
        "Observation",
        code=NEWS2,
        patient=mine,
        date=[f"ge{iso(start + timedelta(hours=1))}", f"lt{iso(start + timedelta(hours=3))}"],
    )
    assert ranged["total"] == 2
    assert len(scores(client, h, patient=mine, date="2026-01-05")) == 5
    assert scores(client, h, patient=mine, date="2026-01-06") == []
    assert len(scores(client, h, patient=mine, date=f"gt{iso(start)}")) == 4
    assert len(scores(client, h, patient=mine, date=f"le{iso(start)}")) == 1
    assert len(scores(client, h, patient=mine, date="eq2026-01-05T10:30")) == 1  # London = UTC
    # paging through next links
    page = get(client, h, "Observation", code=NEWS2, patient=mine, _count=2)
    assert page["total"] == 5 and len(page["entry"]) == 2
    seen = [e["resource"]["id"] for e in page["entry"]]
    while nxt := next((li["url"] for li in page["link"] if li["relation"] == "next"), None):
        parts = urlsplit(nxt)
        page = get(client, h, f"Observation?{parts.query}")
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert len(seen) == len(set(seen)) == 5
    # vital signs too, by category and LOINC code; both kinds without a code
    hr = get(client, h, "Observation", patient=mine, code=f"{LOINC}|8867-4")
    assert hr["total"] == 5 and {e["resource"]["id"][:3] for e in hr["entry"]} == {"vs-"}
    vitals = get(client, h, "Observation", patient=mine, category="vital-signs", _count=0)
    assert vitals["total"] == 30 and "entry" not in vitals
    assert get(client, h, "Observation", patient=mine, _count=0)["total"] == 35
    assert get(client, h, "Observation", patient=mine, category="survey", _count=0)["total"] == 5
    both = get(client, h, "Observation", patient=mine, _count=7)
    assert both["entry"][0]["resource"]["effectiveDateTime"] == iso(start + timedelta(hours=4))
    # POST _search keeps the NHS number out of the URL; reads are audited without it
    r = client.post("/fhir/Observation/_search", headers=h, data={"patient": mine, "code": NEWS2})
    assert r.status_code == 200 and valid(r.json())["total"] == 5
    log = [e for e in rt.auth.audit_log() if e["resource"] == "observation"]
    assert any(e["detail"] == "fhir search by patient" and e["ids"] for e in log)
    assert NHS not in repr(rt.auth.audit_log())
    # errors
    for params in (
        {"colour": "red"},
        {"patient": "Patient/1"},
        {"date": "yesterday"},
        {"date": "ne2026-01-05"},
        {"code": "a|"},
    ):
        body = get(client, h, "Observation", 400, **params)
        assert body["issue"][0]["code"] == "invalid"
    get(client, h, "Observation/news2-999999", 404)
    get(client, h, "Observation/nonsense", 404)


def test_date_ranges_follow_the_precision_and_london_time() -> None:
    july = (datetime(2026, 6, 30, 23, tzinfo=UTC), datetime(2026, 7, 31, 23, tzinfo=UTC))
    assert fo._date_range("2026-07") == ("eq", *july)  # British Summer Time
    assert fo._date_range("le2026-12")[2] == datetime(2027, 1, 1, tzinfo=UTC)
    assert fo._date_range("gt2026-03-29")[1:] == (  # the day the clocks go forward: 23 hours
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 29, 23, tzinfo=UTC),
    )
    assert fo._date_range("2026-01-05T09:30:00Z")[2] == datetime(2026, 1, 5, 9, 30, 1, tzinfo=UTC)


# --- the CapabilityStatement and permissions ------------------------------------------------


def test_capability_statement_offers_observation(client: TestClient, h: Headers) -> None:
    body = get(client, h, "metadata")
    rest = body["rest"][0]
    (observation,) = [r for r in rest["resource"] if r["type"] == "Observation"]
    assert {i["code"] for i in observation["interaction"]} == {"create", "read", "search-type"}
    assert {"patient", "code", "date", "category", "_count"} <= {
        p["name"] for p in observation["searchParam"]
    }
    system = {i["code"]: i["documentation"] for i in rest["interaction"]}
    assert set(system) == {"batch", "transaction"} and "NOT all or nothing" in system["transaction"]


def test_every_observation_route_names_a_permission_and_answers_in_fhir(
    small: Runtime, client: TestClient
) -> None:
    routes = [r for r in fo.router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 8
    for route in routes:
        perms = [getattr(d.call, "required_permission", None) for d in route.dependant.dependencies]
        perm = next(p for p in perms if p is not None)
        path = route.path.replace("{", "").replace("}", "")
        for method in route.methods or ():
            r = client.request(method, path)
            assert r.status_code == 401, (method, path)
            assert r.json()["issue"][0]["code"] == "login"
            for role in Role:
                r = client.request(method, path, headers=auth(small, role.value))
                assert r.headers["content-type"] == "application/fhir+json", (role, path)
                if perm in ROLE_PERMISSIONS[role]:
                    assert r.status_code != 403, (role, method, path)
                else:
                    assert r.status_code == 403, (role, method, path)
                    assert perm.value in outcome_text(r.json())
    r = client.put("/fhir/Observation/vs-1", headers=auth(small, "admin"), json={})
    assert r.status_code == 405 and r.json()["issue"][0]["code"] == "not-supported"
    r = client.get("/fhir/Observation/vs-1/_history", headers=auth(small, "admin"))
    assert r.status_code == 400 and r.json()["issue"][0]["code"] == "not-supported"
