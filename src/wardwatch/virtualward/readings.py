"""A reading as every door (MQTT, FHIR, HL7 ORU, the API) hands it over, and its checks.

Pure code, no I/O. A door turns its own format into :class:`RawReading`; :func:`prepare`
turns one into a :class:`Prepared` value in our units or raises :class:`VitalsError` saying
why it cannot be used. Who the reading belongs to is decided later, against the database.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from wardwatch.core import fastjson
from wardwatch.virtualward.vitals import (
    LOINC,
    PANELS,
    UNITS,
    VitalsError,
    check_plausible,
    normalise,
)

#: LOINC "Level of responsiveness" (ACVPU): the consciousness reading.
CONSCIOUSNESS_LOINC: Final = "67775-7"
ACVPU: Final = frozenset({"A", "C", "V", "P", "U"})
#: Parameter names a sender may use instead of a LOINC code.
NAMES: Final = frozenset(UNITS) | {"consciousness"}
#: Readings stamped further than this ahead of our clock are refused (a wrong device clock
#: would otherwise make a stale value look like the newest).
FUTURE_TOLERANCE: Final = timedelta(minutes=5)
SOURCES: Final = ("mqtt", "fhir", "hl7", "api")


class Fragment:
    """What a sender sent, written as JSON only if it is needed (the reading is refused and
    kept): a Bundle's hundreds of accepted entries are never written back out."""

    __slots__ = ("_doc", "_limit", "_text")

    def __init__(self, doc: object, limit: int) -> None:
        self._doc: object = doc
        self._limit = limit
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = fastjson.dumps(self._doc)[: self._limit]
            self._doc = None
        return self._text


@dataclass(frozen=True, slots=True)
class RawReading:
    """One reading as received. ``code`` is a LOINC code or one of :data:`NAMES`."""

    code: str
    value: float | str | None
    unit: str | None
    at: datetime | None
    #: The sender's own identifier for this reading; without one, a digest of the content.
    id: str | None = None
    #: The device serial, when a device sent it: the reading is its linked patient's.
    device: str | None = None
    #: The patient, when a patient app or a clinical system sent it: ``nhs:<number>`` or
    #: ``local:<id>``.
    patient: str | None = None
    #: FHIR dataAbsentReason (or HL7 OBX-11 "X"): no value, and why.
    absent: str | None = None
    #: The fragment as received, kept if the reading is refused.
    payload: str | Fragment = ""

    @property
    def sender(self) -> str:
        if self.device:
            return f"device:{self.device}"
        return f"patient:{self.patient}" if self.patient else "unknown sender"

    def key(self) -> str:
        """What makes two copies of this reading the same reading."""
        if self.id:
            return f"{self.sender}|{self.id}"[:200]
        content = f"{self.sender}|{self.code}|{self.value}|{self.unit}|{self.at}|{self.absent}"
        return f"{self.sender}|sha256:{hashlib.sha256(content.encode()).hexdigest()[:40]}"[:200]


@dataclass(frozen=True, slots=True)
class Prepared:
    raw: RawReading
    parameter: str
    value: float | None  # in our unit; None for ACVPU and for absent data
    text_value: str | None  # ACVPU letter
    at: datetime


def parameter_of(code: str) -> str:
    code = code.strip()
    if code in NAMES:
        return code
    if code == CONSCIOUSNESS_LOINC:
        return "consciousness"
    parameter = LOINC.get(code)
    if parameter is None:
        raise VitalsError(
            f"{code!r} is not a vital sign WardWatch reads (a LOINC code such as 8867-4, or "
            f"one of {', '.join(sorted(NAMES))})"
        )
    if parameter in PANELS:
        raise VitalsError(f"{code} is the {parameter} panel: send its components as readings")
    return parameter


def prepare(raw: RawReading, now: datetime) -> Prepared:
    """``raw`` checked and converted to our units; VitalsError with the reason otherwise."""
    parameter = parameter_of(raw.code)
    at = raw.at
    if at is None:
        raise VitalsError(f"{parameter} reading has no time (effectiveDateTime / 'at')")
    if at.tzinfo is None or at.utcoffset() is None:
        raise VitalsError(f"{parameter} reading time {at.isoformat()} has no time zone")
    if at > now + FUTURE_TOLERANCE:
        raise VitalsError(
            f"{parameter} reading time {at.isoformat()} is in the future (is the device clock "
            "right?)"
        )
    if not raw.device and not raw.patient:
        raise VitalsError("reading names neither a device nor a patient")
    if raw.absent is not None:
        if raw.value is not None:
            raise VitalsError(f"{parameter} reading has both a value and a dataAbsentReason")
        return Prepared(raw, parameter, None, None, at)
    if parameter == "consciousness":
        letter = str(raw.value).strip().upper() if raw.value is not None else ""
        if letter not in ACVPU:
            raise VitalsError(
                f"consciousness {raw.value!r} is not one of A, C, V, P, U (ACVPU; C is new "
                "confusion)"
            )
        return Prepared(raw, parameter, None, letter, at)
    value = raw.value
    if value is None:
        raise VitalsError(f"{parameter} reading has no value and no dataAbsentReason")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise VitalsError(f"{parameter} value {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise VitalsError(f"{parameter} value {value!r} is not a number")
    if not raw.unit:
        expected = " or ".join(UNITS[parameter])
        raise VitalsError(f"{parameter} reading has no unit (expected {expected})")
    converted = normalise(parameter, float(value), raw.unit)
    check_plausible(parameter, converted)
    return Prepared(raw, parameter, converted, None, at)
