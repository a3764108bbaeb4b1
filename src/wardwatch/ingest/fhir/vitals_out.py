"""FHIR vital signs out: NEWS2 scores and stored readings as Observations, read by id.

Each NEWS2 score is ``Observation/news2-<score id>``: SNOMED CT 1104051000000101, the total as
``valueInteger``, a component per chart parameter (the RCP NEWS2 SNOMED CT codes), the SpO2
scale, and the risk as ``interpretation``. A partial set has no value: a
``dataAbsentReason``, a note saying it is partial, and the partial total as a component, so
that it can never be read as a low score. A stored reading is ``Observation/vs-<id>``; a
panel sent as one Observation is ``Observation/vp-<id of its first reading>``, read back
whole. Values are given as stored, in our units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.observation import Observation
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Patient
from wardwatch.ingest.fhir import resources as fr
from wardwatch.ingest.fhir.vitals_codes import (
    ABSENT_SYSTEM,
    BP_PANEL,
    CATEGORY_SYSTEM,
    DEVICE_SYSTEM,
    EXT_OLDEST,
    EXT_VALUE_USED,
    LOINC_OF,
    LOINC_SYSTEM,
    NEWS2_CODE,
    NEWS2_DISPLAY,
    NEWS2_SYSTEM,
    OUR_ID,
    PARAMETER_CODES,
    RISK_DISPLAY,
    RISK_SYSTEM,
    SNOMED_OF_ACVPU,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
    UNIT_OF,
    VITALS_PANEL,
)
from wardwatch.virtualward.models import Enrolment, Reading, Score
from wardwatch.virtualward.news2 import PARAMETERS as NEWS2_PARAMETERS


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(CATEGORY_SYSTEM, code, display)]}]


def _quantity(parameter: str, value: float) -> dict[str, Any]:
    code, unit = UNIT_OF[parameter]
    return {"value": value, "unit": unit, "system": UCUM_SYSTEM, "code": code}


def _news2_components(score: Score, d: dict[str, Any]) -> list[dict[str, Any]]:
    """A component per chart parameter (its points and the value used, or why it is absent),
    then the SpO2 scale."""
    points: dict[str, int] = d.get("parameters", {})
    values: dict[str, Any] = d.get("values", {})
    reasons: dict[str, str] = d.get("reasons", {})
    components: list[dict[str, Any]] = []
    for name in NEWS2_PARAMETERS:
        code, display = PARAMETER_CODES[f"spo2:{score.scale}" if name == "spo2" else name]
        comp: dict[str, Any] = {"code": {"coding": [_coding(SNOMED_SYSTEM, code, display)]}}
        if name in points:
            comp["valueInteger"] = points[name]
            used = values.get(name)
            if isinstance(used, str):
                comp["extension"] = [{"url": EXT_VALUE_USED, "valueString": used}]
            elif used is not None and name in UNIT_OF:
                comp["extension"] = [
                    {"url": EXT_VALUE_USED, "valueQuantity": _quantity(name, used)}
                ]
        else:
            comp["dataAbsentReason"] = {
                "coding": [_coding(ABSENT_SYSTEM, "unknown", "Unknown")],
                "text": reasons.get(name, "not recorded"),
            }
        components.append(comp)
    scale = _coding(NEWS2_SYSTEM, "spo2-scale", "SpO2 scale used")
    components.append({"code": {"coding": [scale]}, "valueInteger": score.scale})
    return components


def news2_observation(score: Score, patient: Patient) -> Observation:
    """One NEWS2 score as an Observation. A partial set has no value and is never low."""
    d = score.detail or {}
    components = _news2_components(score, d)
    data: dict[str, Any] = {
        "id": f"news2-{score.id}",
        "meta": {"lastUpdated": score.computed_at},
        "extension": [{"url": EXT_OLDEST, "valueDateTime": score.oldest_at}],
        "status": "final",
        "category": _category("survey", "Survey"),
        "code": {
            "coding": [_coding(SNOMED_SYSTEM, NEWS2_CODE, NEWS2_DISPLAY)],
            "text": "NEWS2 total score",
        },
        "subject": {"identifier": fr.patient_identifier(patient)},
        "effectiveDateTime": score.at,
        "issued": score.computed_at,
        "interpretation": [
            {
                "coding": [_coding(RISK_SYSTEM, score.risk, RISK_DISPLAY.get(score.risk))],
                "text": d.get("response") or RISK_DISPLAY.get(score.risk, score.risk),
            }
        ],
        "component": components,
    }
    if score.partial or score.total is None:
        missing = ", ".join(d.get("missing", [])) or "some parameters"
        data["dataAbsentReason"] = {
            "coding": [_coding(ABSENT_SYSTEM, "unknown", "Unknown")],
            "text": "partial observation set: NEWS2 cannot be calculated",
        }
        note = (
            f"PARTIAL observation set: {missing} missing. NEWS2 cannot be calculated and must "
            f"not be treated as low risk. The parameters present score {score.partial_total}."
        )
        data["note"] = [{"text": note}]
        partial = _coding(NEWS2_SYSTEM, "partial-total", "Sum of the parameters present")
        components.append({"code": {"coding": [partial]}, "valueInteger": score.partial_total})
    else:
        data["valueInteger"] = score.total
    return Observation.model_validate(data)


def _vital_value(r: Reading, out: dict[str, Any]) -> None:
    if r.text_value is not None:
        out["valueCodeableConcept"] = {"text": r.text_value}
        if r.text_value in SNOMED_OF_ACVPU:
            code = SNOMED_OF_ACVPU[r.text_value]
            out["valueCodeableConcept"]["coding"] = [_coding(SNOMED_SYSTEM, code)]
    elif r.value is not None and r.parameter in UNIT_OF:
        out["valueQuantity"] = _quantity(r.parameter, r.value)
    else:
        out["dataAbsentReason"] = {
            "coding": [_coding(ABSENT_SYSTEM, "unknown", "Unknown")],
            "text": "the sender reported no value (WardWatch keeps that, not why)",
        }


def _loinc(parameter: str) -> dict[str, Any]:
    code, display = LOINC_OF[parameter]
    return {"coding": [_coding(LOINC_SYSTEM, code, display)], "text": display}


def vital_observation(fid: str, rows: Sequence[Reading], patient: Patient) -> Observation:
    """Stored readings as one Observation: one reading, or a panel's components (``vp-``)."""
    first = rows[0]
    data: dict[str, Any] = {
        "id": fid,
        "meta": {"lastUpdated": first.received_at},
        "status": "final",
        "category": _category("vital-signs", "Vital Signs"),
        "subject": {"identifier": fr.patient_identifier(patient)},
        "effectiveDateTime": first.at,
    }
    if fid.startswith("vp-"):
        bp = {r.parameter for r in rows} <= {"systolic_bp", "diastolic_bp"}
        panel, display = (BP_PANEL, "Blood pressure panel") if bp else (VITALS_PANEL, "Vital signs")
        data["code"] = {"coding": [_coding(LOINC_SYSTEM, panel, display)], "text": display}
        data["component"] = []
        for r in rows:
            comp: dict[str, Any] = {"code": _loinc(r.parameter)}
            _vital_value(r, comp)
            data["component"].append(comp)
    else:
        data["code"] = _loinc(first.parameter)
        _vital_value(first, data)
    if first.device:
        data["device"] = {"identifier": {"system": DEVICE_SYSTEM, "value": first.device}}
    return Observation.model_validate(data)


def _panel_rows(s: Session, reading: Reading) -> list[Reading]:
    """The readings of the panel ``reading`` came in (same sender identifier, time, patient)."""
    if "|fhir:" not in reading.key or "#" not in reading.key:
        return []
    prefix = reading.key.rsplit("#", 1)[0] + "#"
    rows = s.scalars(
        select(Reading).where(
            Reading.enrolment_id == reading.enrolment_id,
            Reading.at == reading.at,
            Reading.key.startswith(prefix, autoescape=True),
        )
    ).all()
    return sorted(rows, key=lambda r: int(r.key.rsplit("#", 1)[1] or 0))


def read_by_id(s: Session, fid: str) -> Observation | None:
    match = OUR_ID.match(fid)
    if match is None:
        return None
    kind, n = match.group(1), int(match.group(2))
    if kind == "news2":
        row = s.execute(
            select(Score, Patient)
            .join(Patient, Patient.id == Score.patient_id)
            .where(Score.id == n)
        ).first()
        return news2_observation(row[0], row[1]) if row else None
    found = s.execute(readings_query().where(Reading.id == n)).first()
    if found is None:
        return None
    reading, patient = found
    if kind == "vs":
        return vital_observation(fid, [reading], patient)
    rows = _panel_rows(s, reading)
    if not rows or rows[0].id != reading.id:
        return None  # vp- names a panel by its first reading only
    return vital_observation(fid, rows, patient)


def readings_query() -> Select[Reading, Patient]:
    return (
        select(Reading, Patient)
        .join(Enrolment, Enrolment.id == Reading.enrolment_id)
        .join(Patient, Patient.id == Enrolment.patient_id)
    )
