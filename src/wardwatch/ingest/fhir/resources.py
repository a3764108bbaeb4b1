"""Rows to FHIR R4 resources, built through the ``fhir.resources`` R4B models (pure, no I/O).

Every function returns a model instance: building it validates cardinality, types and the
primitive formats (ids, dateTimes, uris). Required code bindings are not checked by the models,
so the codes used here come only from the constants below. docs/integrations/fhir.md has the
mapping tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from wardwatch.capacity.models import Bed, Patient, Site, Stay, Ward
from wardwatch.capacity.states import HL7_0116, BedState

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"

# --- systems and extension URLs ------------------------------------------------------------

BASE = "https://wardwatch.example"
SD = f"{BASE}/fhir/StructureDefinition"
LOCATION_CODE_SYSTEM = f"{BASE}/location-code"
LOCAL_PATIENT_SYSTEM = f"{BASE}/Id/local-patient-id"
VISIT_NUMBER_SYSTEM = f"{BASE}/Id/pas-visit-number"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SITE_SYSTEM = "https://fhir.nhs.uk/Id/ods-site-code"

EXT_BED_STATE = f"{SD}/bed-state"
EXT_BED_STATE_SINCE = f"{SD}/bed-state-since"
EXT_VIRTUAL = f"{SD}/virtual-ward-place"
EXT_SIDE_ROOM = f"{SD}/side-room"
EXT_SITE_KIND = f"{SD}/site-kind"
EXT_EXPECTED_DISCHARGE = f"{SD}/expected-discharge-date"
EXT_DISCHARGE_READY = f"{SD}/discharge-ready-date"
EXT_DISCHARGE_PATHWAY = f"{SD}/discharge-pathway"

PHYSICAL_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/location-physical-type"
LOCATION_STATUS_SYSTEM = "http://hl7.org/fhir/location-status"
V2_0116_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0116"
ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ENCOUNTER_STATUS_SYSTEM = "http://hl7.org/fhir/encounter-status"

SITE, WARD, BED = "si", "wa", "bd"
PHYSICAL_TYPES = {SITE: "Site", WARD: "Ward", BED: "Bed"}
#: Our id prefix for each physical type (ids look like ``bed_01…``).
ID_PREFIX = {SITE: "site", WARD: "ward", BED: "bed"}

#: Display text of HL7 v2 table 0116 (bed status), for the codes we use.
V2_0116_DISPLAY = {
    "C": "Closed",
    "H": "Housekeeping",
    "I": "Isolated",
    "K": "Contaminated",
    "O": "Occupied",
    "U": "Unoccupied",
}
LOCATION_STATUSES = frozenset({"active", "suspended", "inactive"})
ENCOUNTER_STATUSES = frozenset(
    {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)

#: ODS site codes: three-character organisation code and a two-digit site number (RVV01).
_ODS_SITE = re.compile(r"^[A-Z][A-Z0-9]{2}[0-9]{2}$")


def states_for_0116(codes: set[str]) -> set[BedState]:
    """Our bed states that map to any of the given v2-0116 codes."""
    return {state for state, code in HL7_0116.items() if code in codes}


def looks_like_ods_site_code(code: str) -> bool:
    return bool(_ODS_SITE.match(code))


# --- ids -----------------------------------------------------------------------------------


def to_fhir_id(our_id: str) -> str:
    """Our ids (``bed_01…``) contain ``_``, which FHIR ids may not: it becomes ``-``."""
    return our_id.replace("_", "-")


def from_fhir_id(fhir_id: str) -> str:
    """The inverse of :func:`to_fhir_id` (our ids never contain ``-``)."""
    return fhir_id.replace("-", "_")


def location_ref(our_id: str) -> str:
    return f"Location/{to_fhir_id(our_id)}"


# --- Location ------------------------------------------------------------------------------


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _physical_type(kind: str) -> dict[str, Any]:
    return {"coding": [_coding(PHYSICAL_TYPE_SYSTEM, kind, PHYSICAL_TYPES[kind])]}


def _code_identifier(code: str) -> dict[str, str]:
    return {"use": "usual", "system": LOCATION_CODE_SYSTEM, "value": code}


def site_location(site: Site) -> Location:
    identifiers = [_code_identifier(site.code)]
    if looks_like_ods_site_code(site.code):
        identifiers.append({"use": "official", "system": ODS_SITE_SYSTEM, "value": site.code})
    data: dict[str, Any] = {
        "id": to_fhir_id(site.id),
        "extension": [{"url": EXT_SITE_KIND, "valueCode": site.kind}],
        "identifier": identifiers,
        "status": "active",
        "name": site.name,
        "mode": "instance",
        "physicalType": _physical_type(SITE),
    }
    if site.lat is not None and site.lon is not None:
        data["position"] = {"longitude": site.lon, "latitude": site.lat}
    return Location.model_validate(data)


def ward_location(ward: Ward, site_name: str | None = None) -> Location:
    part_of: dict[str, str] = {"reference": location_ref(ward.site_id)}
    if site_name:
        part_of["display"] = site_name
    return Location.model_validate(
        {
            "id": to_fhir_id(ward.id),
            "identifier": [_code_identifier(ward.code)],
            "status": "active",
            "name": ward.name,
            "mode": "instance",
            "type": [{"text": ward.specialty}],
            "physicalType": _physical_type(WARD),
            "partOf": part_of,
        }
    )


def bed_location(bed: Bed, ward_name: str | None = None) -> Location:
    state = BedState(bed.state)
    op = HL7_0116[state]
    extensions: list[dict[str, Any]] = [
        {"url": EXT_BED_STATE, "valueCode": state.value},
        {"url": EXT_BED_STATE_SINCE, "valueDateTime": bed.state_since},
    ]
    if bed.side_room:
        extensions.append({"url": EXT_SIDE_ROOM, "valueBoolean": True})
    data: dict[str, Any] = {
        "id": to_fhir_id(bed.id),
        "extension": extensions,
        "identifier": [_code_identifier(bed.code)],
        "status": "active",
        "operationalStatus": _coding(V2_0116_SYSTEM, op, V2_0116_DISPLAY[op]),
        "name": bed.code,
        "mode": "instance",
        "physicalType": _physical_type(BED),
        "partOf": {"reference": location_ref(bed.ward_id)},
    }
    if ward_name:
        data["partOf"]["display"] = ward_name
    if bed.virtual:
        extensions.append({"url": EXT_VIRTUAL, "valueBoolean": True})
        data["type"] = [
            {"coding": [_coding(ROLE_CODE_SYSTEM, "PTRES", "patient's residence")]},
        ]
    return Location.model_validate(data)


# --- Encounter -----------------------------------------------------------------------------


def encounter_status(stay: Stay) -> str:
    """The R4 Encounter.status of a stay. The SQL in routes.py must agree with this."""
    if stay.cancelled_at is not None:
        return "cancelled"
    if stay.discharged_at is not None:
        return "finished"
    if stay.on_leave_since is not None:
        return "onleave"
    return "in-progress"


def _bed_location_status(status: str) -> Literal["active", "reserved", "completed"]:
    if status == "in-progress":
        return "active"
    if status == "onleave":
        return "reserved"  # the bed is held empty for the patient while they are away
    return "completed"


def patient_identifier(patient: Patient) -> dict[str, str]:
    if patient.nhs_number:
        return {"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}
    return {"system": LOCAL_PATIENT_SYSTEM, "value": patient.local_id or ""}


def stay_encounter(stay: Stay, patient: Patient, bed: Bed) -> Encounter:
    status = encounter_status(stay)
    extensions: list[dict[str, Any]] = []
    for url, day in (
        (EXT_EXPECTED_DISCHARGE, stay.expected_discharge_date),
        (EXT_DISCHARGE_READY, stay.discharge_ready_date),
    ):
        if day is not None:
            extensions.append({"url": url, "valueDate": _date(day)})
    if stay.discharge_pathway is not None:
        extensions.append({"url": EXT_DISCHARGE_PATHWAY, "valueInteger": stay.discharge_pathway})
    period: dict[str, datetime] = {"start": stay.admitted_at}
    if stay.discharged_at is not None:
        period["end"] = stay.discharged_at
    hospitalization: dict[str, Any] = {}
    if stay.source:
        hospitalization["admitSource"] = {"text": stay.source}
    if stay.discharge_destination and status == "finished":
        hospitalization["dischargeDisposition"] = {"text": stay.discharge_destination}
    encounter_class = (
        _coding(ACT_CODE_SYSTEM, "HH", "home health")
        if bed.virtual
        else _coding(ACT_CODE_SYSTEM, "IMP", "inpatient encounter")
    )
    data: dict[str, Any] = {
        "id": to_fhir_id(stay.id),
        "status": status,
        "class": encounter_class,
        "subject": {"identifier": patient_identifier(patient)},
        "period": period,
        "location": [
            {
                "location": {"reference": location_ref(bed.id), "display": bed.code},
                "status": _bed_location_status(status),
                "physicalType": _physical_type(BED),
            }
        ],
    }
    if extensions:
        data["extension"] = extensions
    if stay.visit_number:
        data["identifier"] = [{"system": VISIT_NUMBER_SYSTEM, "value": stay.visit_number}]
    if hospitalization:
        data["hospitalization"] = hospitalization
    return Encounter.model_validate(data)


def _date(day: date) -> str:
    return day.isoformat()


# --- Bundle, OperationOutcome, CapabilityStatement -----------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a search: the resources, the total, and the links to put in the Bundle."""

    resources: Sequence[Location | Encounter | Observation]
    total: int
    self_url: str
    next_url: str | None = None
    previous_url: str | None = None


def searchset(page: Page, base: str) -> Bundle:
    links = [{"relation": "self", "url": page.self_url}]
    if page.next_url:
        links.append({"relation": "next", "url": page.next_url})
    if page.previous_url:
        links.append({"relation": "previous", "url": page.previous_url})
    entries = [
        {
            "fullUrl": f"{base}/{r.get_resource_type()}/{r.id}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in page.resources
    ]
    data: dict[str, Any] = {"type": "searchset", "total": page.total, "link": links}
    if entries:
        data["entry"] = entries
    return Bundle.model_validate(data)


def operation_outcome(code: str, messages: Sequence[str]) -> OperationOutcome:
    """An error outcome: one issue per message, each with ``code`` (a FHIR issue type)."""
    issues = [{"severity": "error", "code": code, "diagnostics": m} for m in (messages or [code])]
    return OperationOutcome.model_validate({"issue": issues})


_LOCATION_PARAMS: list[tuple[str, str, str, str | None]] = [
    ("_id", "token", "The FHIR id (bed-…, ward-…, site-…).", None),
    (
        "identifier",
        "token",
        f"Our code ({LOCATION_CODE_SYSTEM}|ACU1-AMU-01), or an ODS site code.",
        "http://hl7.org/fhir/SearchParameter/Location-identifier",
    ),
    (
        "name",
        "string",
        "Case-insensitive prefix of the name (bed: its code).",
        "http://hl7.org/fhir/SearchParameter/Location-name",
    ),
    (
        "type",
        "token",
        "WardWatch: the physical type si | wa | bd (not Location.type).",
        None,
    ),
    (
        "partof",
        "reference",
        "Direct parent: Location/<ward> gives its beds, Location/<site> its wards.",
        "http://hl7.org/fhir/SearchParameter/Location-partof",
    ),
    (
        "operational-status",
        "token",
        "Bed status from v2-0116 (U, O, H, C); beds only.",
        "http://hl7.org/fhir/SearchParameter/Location-operational-status",
    ),
    (
        "status",
        "token",
        "Location.status (active) or, as a WardWatch convenience, a v2-0116 bed status.",
        None,
    ),
    ("bed-state", "token", "WardWatch's finer bed state (occupied, available, …).", None),
    ("_count", "number", "Page size: default 100, at most 1000; 0 gives the total only.", None),
    ("_offset", "number", "How many matches to skip (paging).", None),
]

_ENCOUNTER_PARAMS: list[tuple[str, str, str, str | None]] = [
    ("_id", "token", "The FHIR id (stay-…).", None),
    (
        "patient",
        "reference",
        f"By identifier only: {NHS_NUMBER_SYSTEM}|<number>, {LOCAL_PATIENT_SYSTEM}|<id>, "
        "or a bare NHS number or local id. Also as patient:identifier, subject, "
        "subject:identifier.",
        None,
    ),
    (
        "location",
        "reference",
        "A bed Location: encounters whose current (or, once finished, last) bed it is.",
        None,
    ),
    (
        "status",
        "token",
        "in-progress | onleave | finished | cancelled.",
        "http://hl7.org/fhir/SearchParameter/Encounter-status",
    ),
    ("_count", "number", "Page size: default 100, at most 1000; 0 gives the total only.", None),
    ("_offset", "number", "How many matches to skip (paging).", None),
]


_OBSERVATION_PARAMS: list[tuple[str, str, str, str | None]] = [
    ("_id", "token", "news2-<n> (a NEWS2 score) or vs-<n> (a vital-sign reading).", None),
    (
        "patient",
        "reference",
        f"By identifier only, as for Encounter ({NHS_NUMBER_SYSTEM}|<number>, "
        f"{LOCAL_PATIENT_SYSTEM}|<id>, or a bare value). Also subject, patient:identifier, "
        "subject:identifier.",
        "http://hl7.org/fhir/SearchParameter/clinical-patient",
    ),
    (
        "code",
        "token",
        "http://snomed.info/sct|1104051000000101 (NEWS2 total score) or a vital-sign LOINC code "
        "(8867-4, 9279-1, 2708-6, 59408-5, 8310-5, 8480-6, 8462-4, 3151-8, 3150-0, 67775-7).",
        "http://hl7.org/fhir/SearchParameter/clinical-code",
    ),
    (
        "category",
        "token",
        "survey (NEWS2 scores) or vital-signs (readings).",
        "http://hl7.org/fhir/SearchParameter/Observation-category",
    ),
    (
        "date",
        "date",
        "The effective time, with eq, ge, gt, le or lt; give it twice for a range.",
        "http://hl7.org/fhir/SearchParameter/clinical-date",
    ),
    ("_count", "number", "Page size: default 100, at most 1000; 0 gives the total only.", None),
    ("_offset", "number", "How many matches to skip (paging).", None),
]


def _search_params(params: list[tuple[str, str, str, str | None]]) -> list[dict[str, str]]:
    out = []
    for name, kind, doc, definition in params:
        entry = {"name": name, "type": kind, "documentation": doc}
        if definition:
            entry["definition"] = definition
        out.append(entry)
    return out


def capability_statement(base: str, version: str, when: datetime) -> CapabilityStatement:
    read_search = [{"code": "read"}, {"code": "search-type"}]
    return CapabilityStatement.model_validate(
        {
            "status": "active",
            "date": when,
            "publisher": "WardWatch",
            "kind": "instance",
            "software": {"name": "WardWatch", "version": version},
            "implementation": {
                "description": "WardWatch FHIR API: beds, wards and sites as Location; "
                "hospital stays as Encounter (read-only); vital signs in and NEWS2 scores out "
                "as Observation",
                "url": base,
            },
            "fhirVersion": FHIR_VERSION,
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Read-only but for Observation create, batch and "
                    "transaction (vital signs, vitals:send). Every request needs Authorization: "
                    "Bearer <token>; Location needs capacity:read, Encounter and reading "
                    "Observations patients:read.",
                    "security": {
                        "cors": False,
                        "description": "Bearer tokens from `wardwatch token create`.",
                    },
                    "resource": [
                        {
                            "type": "Location",
                            "interaction": read_search,
                            "searchParam": _search_params(_LOCATION_PARAMS),
                        },
                        {
                            "type": "Encounter",
                            "interaction": read_search,
                            "searchParam": _search_params(_ENCOUNTER_PARAMS),
                        },
                        {
                            "type": "Observation",
                            "documentation": "Create: one vital-signs Observation (a reading; "
                            "the BP and vital-signs panels by component). Read and search: NEWS2 "
                            "scores (news2-<n>) and stored readings (vs-<n>, vp-<n> a panel).",
                            "interaction": [{"code": "create"}, *read_search],
                            "versioning": "no-version",
                            "searchParam": _search_params(_OBSERVATION_PARAMS),
                        },
                    ],
                    "interaction": [
                        {
                            "code": "batch",
                            "documentation": "Entries must be POST Observation; each is "
                            "answered on its own.",
                        },
                        {
                            "code": "transaction",
                            "documentation": "Processed entry by entry like a batch, NOT all "
                            "or nothing: a valid vital sign is never lost because another entry "
                            "was refused. Each entry's response says what happened to it.",
                        },
                    ],
                }
            ],
        }
    )
