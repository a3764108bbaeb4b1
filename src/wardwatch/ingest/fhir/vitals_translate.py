"""One FHIR vital-signs Observation (checked JSON) into :class:`RawReading` objects.

Pure: no database, no HTTP. A simple Observation becomes one reading; a panel (85354-9 or
85353-1) one per component, a refused component said why while the others are kept. What
cannot be used at all raises :class:`Refused` with the reason the sender is told (and
``vw_rejected`` keeps).

Ids. The reading id is the sender's ``identifier[0]`` (system and value), so a resend is
stored once; a panel's components share it (``<id>#<n>``) so the panel can be read back
whole. A panel without an identifier is keyed by its content, so a resend is still one.

:func:`well_formed` is the fast structural check :mod:`.vitals_in` runs before the R4B model
(and instead of it, when the check can vouch for the Observation): see its section below.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
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
from wardwatch.virtualward.readings import ACVPU, CONSCIOUSNESS_LOINC, Fragment, RawReading
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


def translate(
    doc: dict[str, Any], payload: str | Fragment
) -> tuple[list[RawReading], list[str], bool]:
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
    try:
        number = float(value)
    except OverflowError:  # a valid FHIR decimal, e.g. 1 followed by 400 zeros
        raise Refused(prefix + f"{code} value is too large to be a measurement") from None
    return number, str(q["code"]), None


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


# --- the fast structural check ----------------------------------------------------------------
# A sufficient condition for the R4B model to accept an Observation, never a necessary one:
# True only when every element present is one listed here, of the shape (and primitive
# pattern) the model requires, each check as strict as the model's or stricter. Anything else
# (an element we do not list, an extension, a null, a number as a string, an odd time) gives
# False, and the caller runs the model, which names precisely what is wrong, if anything.

_URI = re.compile(r"\S+")  # the model takes any string; no white space here
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")  # FHIR code: no leading, trailing or double space
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_INSTANT = re.compile(  # a FHIR instant (so also a dateTime), at most microseconds, not year 0
    r"(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+\-](0[0-9]|1[0-3]):[0-5][0-9])"
)
_SAFE_INT = 2**53  # a larger integer cannot be read as a float exactly (or at all)


def _text(v: Any) -> bool:
    """FHIR string: not empty, not only white space."""
    return type(v) is str and v != "" and not v.isspace()


def _uri(v: Any) -> bool:
    return type(v) is str and (
        _uri_text(v) if len(v) <= _REMEMBERED else _URI.fullmatch(v) is not None
    )


def _code_ok(v: Any) -> bool:
    return type(v) is str and (
        _code_text(v) if len(v) <= _REMEMBERED else _CODE.fullmatch(v) is not None
    )


# The same few systems and codes arrive in every entry: remembered, a match is a lookup.
# Only short strings are remembered, so a sender cannot fill memory with long ones.
_REMEMBERED = 200


@functools.lru_cache(maxsize=4096)
def _uri_text(v: str) -> bool:
    return _URI.fullmatch(v) is not None


@functools.lru_cache(maxsize=4096)
def _code_text(v: str) -> bool:
    return _CODE.fullmatch(v) is not None


def _decimal(v: Any) -> bool:
    return (type(v) is int and -_SAFE_INT < v < _SAFE_INT) or (
        type(v) is float and math.isfinite(v)
    )


def _instant(v: Any) -> bool:
    """A full date and time with a zone that is a real instant (no 30 February)."""
    return type(v) is str and len(v) <= _REMEMBERED and _instant_text(v)


@functools.lru_cache(maxsize=4096)  # a set's readings share their time
def _instant_text(v: str) -> bool:
    if _INSTANT.fullmatch(v) is None:
        return False
    try:
        datetime.fromisoformat(v)  # Python 3.11 reads "Z"
    except ValueError:
        return False
    return True


def _shape(spec: dict[str, Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """A check for a non-empty object made only of ``spec``'s elements, each passing its check."""

    def check(v: Any) -> bool:
        if type(v) is not dict or not v:
            return False
        for k, x in v.items():  # a loop, not all(): this runs for every element of every entry
            c = spec.get(k)
            if c is None or not c(x):
                return False
        return True

    return check


def _list_of(item: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: type(v) is list and bool(v) and all(map(item, v))


_coding = _shape({"system": _uri, "code": _code_ok, "display": _text, "version": _text})
_concept = _shape({"coding": _list_of(_coding), "text": _text})
_quantity = _shape({"value": _decimal, "unit": _text, "system": _uri, "code": _code_ok})
_identifier = _shape({"system": _uri, "value": _text})
_by_identifier = _shape({"identifier": _identifier, "display": _text})
_VALUES = {"valueQuantity": _quantity, "valueString": _text, "valueCodeableConcept": _concept}
_VALUE_KEYS = frozenset(_VALUES)
_component = _shape({"code": _concept, "dataAbsentReason": _concept, **_VALUES})
_ELEMENTS: dict[str, Callable[[Any], bool]] = {
    "resourceType": lambda v: v == "Observation",
    "id": lambda v: type(v) is str and _ID.fullmatch(v) is not None,
    "meta": _shape({"profile": _list_of(_uri)}),
    "identifier": _list_of(_identifier),
    "status": lambda v: type(v) is str and v in ACCEPTED_STATUSES,
    "category": _list_of(_concept),
    "code": _concept,
    "subject": _by_identifier,
    "device": _by_identifier,
    "effectiveDateTime": _instant,
    "effectiveInstant": _instant,
    "issued": _instant,
    "dataAbsentReason": _concept,
    "component": _list_of(
        lambda c: _component(c) and "code" in c and len(c.keys() & _VALUE_KEYS) <= 1
    ),
    **_VALUES,
}
_observation = _shape(_ELEMENTS)


def well_formed(doc: Any) -> bool:
    """True when ``doc`` is certainly a valid R4B Observation (see above); False means "not
    sure", never "invalid". Over ten times cheaper than ``Observation.model_validate``."""
    return (
        _observation(doc)
        and "status" in doc
        and "code" in doc
        and len(doc.keys() & _VALUE_KEYS) <= 1
        and not ("effectiveDateTime" in doc and "effectiveInstant" in doc)
    )
