"""One FHIR vital-signs Observation (checked JSON) into :class:`RawReading` objects.

Pure: no database, no HTTP. A simple Observation becomes one reading; a panel (85354-9 or
85353-1) one per component, a refused component said why while the others are kept. What
cannot be used at all raises :class:`Refused` with the reason the sender is told (and
``vw_rejected`` keeps).

Ids. The reading id is the sender's ``identifier[0]`` (system and value), so a resend is
stored once; a panel's components share it (``<id>#<n>``) so the panel can be read back
whole. A panel without an identifier is keyed by its content, so a resend is still one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wardwatch.ingest.fhir import resources as fr
from wardwatch.ingest.fhir.vitals_codes import (
    ACVPU_SNOMED,
    ACVPU_SNOMED_CODE,
    ACVPU_WORDS,
    BP_PANEL,
    LOINC_SYSTEM,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
    VITALS_PANEL,
)
from wardwatch.virtualward.readings import ACVPU, CONSCIOUSNESS_LOINC, RawReading
from wardwatch.virtualward.vitals import LOINC, PANELS

ACCEPTED_STATUSES = frozenset({"final", "preliminary"})


class Refused(Exception):
    """An Observation (or a component of one) the door cannot turn into a reading."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def sender_of(doc: Any) -> str:
    """Who sent it, for vw_rejected, written as the ingestor writes it (best effort: the
    resource may be malformed)."""
    if not isinstance(doc, dict):
        return "unknown sender"
    try:
        device = _device(doc)
        patient = None if device else _subject(doc)
    except Refused:
        return "unknown sender"
    if device:
        return f"device:{device}"[:120]
    return f"patient:{patient}"[:120] if patient else "unknown sender"


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for reading unchecked JSON)."""
    return value if isinstance(value, dict) else {}


def translate(doc: dict[str, Any], payload: str) -> tuple[list[RawReading], list[str], bool]:
    """The readings of one valid Observation, the door's refusals of its components, and
    whether it was a panel. Raises :class:`Refused` when nothing of it can be used."""
    status = doc.get("status")
    if status in ("amended", "corrected"):
        raise Refused(
            f"status {status}: WardWatch stores a reading once and never changes it; send a "
            "corrected value as a new Observation (new identifier) and tell the virtual-ward "
            "team",
            "not-supported",
        )
    if status not in ACCEPTED_STATUSES:
        raise Refused(f"status {status!r}: only final or preliminary vital signs are read")
    device = _device(doc)
    patient = _subject(doc)
    if device is None and patient is None:
        raise Refused(
            "the Observation names neither a device (device.identifier, the serial) nor a "
            f"patient (subject.identifier, e.g. {fr.NHS_NUMBER_SYSTEM})"
        )
    at = _effective(doc)
    code = _code(doc.get("code") or {}, "code")
    base = _base_id(doc, f"device:{device}" if device else f"patient:{patient}")

    def reading(
        code: str, value: float | str | None, unit: str | None, absent: str | None, rid: str | None
    ) -> RawReading:
        return RawReading(code, value, unit, at, rid, device, patient, absent, payload)

    if LOINC.get(code) in PANELS:
        readings, refused = _panel(doc, code, base, reading)
        return readings, refused, True
    if doc.get("component"):
        raise Refused(
            f"{code}: components are read only on the panels {BP_PANEL} and {VITALS_PANEL}"
        )
    value, unit, absent = _value(doc, code, "")
    return [reading(code, value, unit, absent, base)], [], False


def _panel(
    doc: dict[str, Any], code: str, base: str | None, reading: Callable[..., RawReading]
) -> tuple[list[RawReading], list[str]]:
    """One reading per component of a panel, and the components the door refused. Their ids
    share the panel's (``<id>#<n>``) so the panel can be read back whole."""
    components = doc.get("component") or []
    if any(k.startswith("value") for k in doc):
        raise Refused(f"{code} is a panel with no value of its own: send its components")
    if not components and code == BP_PANEL and doc.get("dataAbsentReason"):
        absent = doc["dataAbsentReason"]
        components = [
            {"code": {"coding": [{"system": LOINC_SYSTEM, "code": c}]}, "dataAbsentReason": absent}
            for c in ("8480-6", "8462-4")
        ]
    if not components:
        raise Refused(f"panel {code} has no components: send each vital sign as a component")
    if base is None:  # no identifier: the content itself, so a resend is still a resend
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:40]
        base = f"fhir:content-sha256:{digest}"
    readings: list[RawReading] = []
    refused: list[str] = []
    for n, comp in enumerate(components):
        where = f"component[{n}]"
        try:
            if not isinstance(comp, dict):
                raise Refused(f"{where} is not an object")
            ccode = _code(comp.get("code") or {}, f"{where}.code")
            if LOINC.get(ccode) in PANELS:
                raise Refused(f"{where}: a panel inside a panel is not read")
            value, unit, absent = _value(comp, ccode, where)
        except Refused as exc:
            refused.append(exc.message)
            continue
        readings.append(reading(ccode, value, unit, absent, f"{base}#{n + 1}"))
    if not readings:
        raise Refused("; ".join(refused))
    return readings, refused


def _device(doc: dict[str, Any]) -> str | None:
    ref = doc.get("device")
    if not isinstance(ref, dict):
        return None
    serial = as_object(ref.get("identifier")).get("value")
    if serial:
        return str(serial).strip()
    if ref.get("reference"):
        raise Refused(
            "device: give the serial as device.identifier.value; a reference to a Device "
            "resource cannot be resolved (WardWatch serves no Device resources)",
            "not-supported",
        )
    raise Refused("device has no identifier.value (the device serial)")


def _subject(doc: dict[str, Any]) -> str | None:
    """``nhs:<number>`` or ``local:<value>``. Never echoes the identifier in an error."""
    ref = doc.get("subject")
    if not isinstance(ref, dict):
        return None
    if ref.get("type") not in (None, "Patient"):
        raise Refused("subject must be a Patient")
    ident = as_object(ref.get("identifier"))
    value = ident.get("value")
    if value:
        value = str(value).strip()
        if ident.get("system") == fr.NHS_NUMBER_SYSTEM:
            return "nhs:" + value.replace(" ", "")
        return f"local:{value}"
    if ref.get("reference"):
        raise Refused(
            "there are no Patient resources here: identify the patient by subject.identifier "
            f"({fr.NHS_NUMBER_SYSTEM}|<NHS number>, or the hospital number)",
            "not-supported",
        )
    raise Refused("subject has no identifier.value")


def _effective(doc: dict[str, Any]) -> datetime:
    raw = doc.get("effectiveDateTime") or doc.get("effectiveInstant")
    if raw is None:
        raw = (doc.get("effectivePeriod") or {}).get("start")
    if raw is None:
        raise Refused(
            "no time: give effectiveDateTime (with a time and zone), effectiveInstant or "
            "effectivePeriod.start"
        )
    if "T" not in raw:
        raise Refused(f"effective time {raw!r} has no time of day: when was it measured?")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"effective time {raw!r} is not a time") from None


def _code(cc: dict[str, Any], where: str) -> str:
    """The LOINC code of a vital sign we read (ACVPU also by SNOMED CT), or Refused."""
    codings = [c for c in cc.get("coding") or [] if isinstance(c, dict)]
    loinc = [str(c.get("code", "")).strip() for c in codings if c.get("system") == LOINC_SYSTEM]
    for code in loinc:
        if code in LOINC or code == CONSCIOUSNESS_LOINC:
            return code
    if any(
        c.get("system") == SNOMED_SYSTEM and c.get("code") == ACVPU_SNOMED_CODE for c in codings
    ):
        return CONSCIOUSNESS_LOINC
    if loinc:
        known = ", ".join([*LOINC, CONSCIOUSNESS_LOINC])
        raise Refused(
            f"{where}: LOINC {', '.join(loinc)} is not a vital sign WardWatch reads "
            f"(it reads {known})"
        )
    raise Refused(
        f"{where} has no LOINC coding (system {LOINC_SYSTEM}): vital signs are read by LOINC code"
    )


def _value(
    holder: dict[str, Any], code: str, where: str
) -> tuple[float | str | None, str | None, str | None]:
    """(value, UCUM unit, dataAbsentReason code) of an Observation or a component."""
    prefix = f"{where}: " if where else ""
    keys = [k for k in holder if k.startswith("value")]
    absent = holder.get("dataAbsentReason")
    if absent is not None:
        if keys:
            raise Refused(prefix + "has both a value and a dataAbsentReason")
        codings = absent.get("coding") or [{}]
        return None, None, str(codings[0].get("code") or absent.get("text") or "unknown")
    if not keys:
        raise Refused(prefix + f"{code} has no value and no dataAbsentReason")
    key = keys[0]
    if code == CONSCIOUSNESS_LOINC:
        return _acvpu(holder, key, prefix), None, None
    if key != "valueQuantity":
        raise Refused(prefix + f"{code} needs valueQuantity with a UCUM unit, not {key}")
    q = holder[key]
    if q.get("comparator"):
        raise Refused(prefix + f"{code} value with comparator {q['comparator']!r} cannot be used")
    if q.get("system") != UCUM_SYSTEM or not q.get("code"):
        raise Refused(
            prefix + f"{code} unit must be UCUM: valueQuantity.system {UCUM_SYSTEM} and the "
            "unit in valueQuantity.code (e.g. /min, %, Cel, [degF], mm[Hg], kPa)"
        )
    value = q.get("value")
    if value is None:
        raise Refused(prefix + f"{code} valueQuantity has no value (use dataAbsentReason)")
    return float(value), str(q["code"]), None


def _acvpu(holder: dict[str, Any], key: str, prefix: str) -> str:
    """The ACVPU letter; an unknown word is passed on, and the core refuses it by name."""
    if key == "valueString":
        return _acvpu_word(str(holder[key]))
    if key == "valueCodeableConcept":
        cc = holder[key]
        for c in cc.get("coding") or []:
            code = str(c.get("code", "")).strip()
            if c.get("system") == SNOMED_SYSTEM and code in ACVPU_SNOMED:
                return ACVPU_SNOMED[code]
            if code.upper() in ACVPU:
                return code.upper()
        if cc.get("text"):
            return _acvpu_word(str(cc["text"]))
        raise Refused(
            prefix + "consciousness coding is not ACVPU (A, C, V, P, U, or SNOMED CT "
            f"{', '.join(ACVPU_SNOMED)})"
        )
    raise Refused(
        prefix + f"consciousness ({CONSCIOUSNESS_LOINC}) needs valueCodeableConcept or "
        "valueString: A, C, V, P or U"
    )


def _acvpu_word(text: str) -> str:
    return ACVPU_WORDS.get(text.strip().lower(), text.strip())


def _base_id(doc: dict[str, Any], sender: str) -> str | None:
    """The reading id from ``identifier[0]`` (hashed if the key would pass 200 characters)."""
    idents = doc.get("identifier") or []
    ident = idents[0] if idents and isinstance(idents[0], dict) else {}
    if not ident.get("value"):
        return None
    rid = f"fhir:{ident.get('system', '')}|{ident['value']}"
    if len(sender) + len(rid) + 6 > 200:  # room for "|" and a component suffix "#nn"
        rid = "fhir:sha256:" + hashlib.sha256(rid.encode()).hexdigest()[:40]
    return rid
