"""NEWS2, exactly as the Royal College of Physicians 2017 chart: pure functions, no I/O.

Rounding. The chart's bands are written at a fixed precision (whole numbers for respiration,
SpO2, systolic BP and pulse; one decimal place for temperature), so a reading that falls
between two printed bands (36.05 °C, 90.5/min) would otherwise belong to neither. Every value
is first rounded to the chart's precision with ROUND_HALF_UP, done in ``decimal`` on the
value's shortest decimal form (``str``), so a float such as 36.05 is treated as the 36.05 a
clinician typed and not as the binary 36.04999...: 36.05 °C -> 36.1 (0 points), 35.95 °C ->
36.0 (1 point), SpO2 95.5 % -> 96 (0 points), pulse 90.5 -> 91 (1 point). The bands are then
looked up with inclusive upper edges.

Partial sets. A parameter that is absent is never scored as 0. The result is marked
``partial``, ``total`` is None and ``missing`` names what is absent (with ``reasons``). A
partial set is never reported as low risk: its risk is "unknown" unless the parameters that
are present already prove more (a single 3 -> at least "low-medium", a partial sum of 5-6 ->
"medium", 7 or more -> "high"), because adding the missing parameters can only raise a score.

SpO2 scale 2 (hypercapnic respiratory failure with a prescribed 88-92 % target) is a
per-patient clinical decision: the caller passes ``scale=2``. On scale 2 an SpO2 of 93 % or
more cannot be scored without knowing whether the patient is on air or oxygen, so SpO2 is
then treated as missing too, with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal
from types import MappingProxyType
from typing import Final, Literal, get_args

Consciousness = Literal["A", "C", "V", "P", "U"]
Scale = Literal[1, 2]
Risk = Literal["low", "low-medium", "medium", "high", "unknown"]

# The seven chart parameters, in chart order: the keys of ``News2.parameters``.
PARAMETERS: Final[tuple[str, ...]] = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

# A band is (highest value in the band, inclusive, at chart precision; points).
# ``None`` as the top means "and above". Tables run from the lowest values upwards.
Band = tuple[Decimal | None, int]


def _bands(*rows: tuple[str | None, int]) -> tuple[Band, ...]:
    return tuple((None if top is None else Decimal(top), points) for top, points in rows)


RESPIRATION_BANDS: Final = _bands(("8", 3), ("11", 1), ("20", 0), ("24", 2), (None, 3))
SPO2_SCALE_1_BANDS: Final = _bands(("91", 3), ("93", 2), ("95", 1), (None, 0))
SPO2_SCALE_2_AIR_BANDS: Final = _bands(("83", 3), ("85", 2), ("87", 1), (None, 0))
SPO2_SCALE_2_OXYGEN_BANDS: Final = _bands(
    ("83", 3), ("85", 2), ("87", 1), ("92", 0), ("94", 1), ("96", 2), (None, 3)
)
SYSTOLIC_BANDS: Final = _bands(("90", 3), ("100", 2), ("110", 1), ("219", 0), (None, 3))
PULSE_BANDS: Final = _bands(("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2), (None, 3))
TEMPERATURE_BANDS: Final = _bands(("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1), (None, 2))
# On scale 2, from this SpO2 upwards the score depends on air or oxygen.
SCALE_2_NEEDS_OXYGEN_FROM: Final = Decimal(93)

CONSCIOUSNESS_POINTS: Final[Mapping[str, int]] = MappingProxyType(
    {"A": 0, "C": 3, "V": 3, "P": 3, "U": 3}
)
OXYGEN_POINTS: Final = 2
AIR_POINTS: Final = 0

_PRECISION: Final[Mapping[str, Decimal]] = MappingProxyType(
    {
        "respiration_rate": Decimal(1),
        "spo2": Decimal(1),
        "systolic_bp": Decimal(1),
        "pulse": Decimal(1),
        "temperature": Decimal("0.1"),
    }
)
_NUMERIC_BANDS: Final[Mapping[str, tuple[Band, ...]]] = MappingProxyType(
    {
        "respiration_rate": RESPIRATION_BANDS,
        "systolic_bp": SYSTOLIC_BANDS,
        "pulse": PULSE_BANDS,
        "temperature": TEMPERATURE_BANDS,
    }
)
# Wide enough that quantize never fails on a large but finite float.
_DECIMAL: Final = Context(prec=400, rounding=ROUND_HALF_UP)

RESPONSES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "zero": "Low risk (NEWS2 0): minimum 12-hourly observations; continue routine monitoring.",
        "low": (
            "Low risk (NEWS2 1-4): minimum 4-6-hourly observations; a registered nurse assesses "
            "the patient and decides whether to observe more often or escalate care."
        ),
        "single-3": (
            "Low-medium risk (a single parameter scoring 3): minimum hourly observations; "
            "urgent ward-based response: the registered nurse informs the medical team caring "
            "for the patient, who review and decide whether to escalate care."
        ),
        "medium": (
            "Medium risk (NEWS2 5-6): minimum hourly observations; urgent response: the "
            "registered nurse immediately informs the medical team and asks for urgent "
            "assessment by a clinician with competencies in acute illness; care in a setting "
            "with monitoring facilities."
        ),
        "high": (
            "High risk (NEWS2 7 or more): continuous monitoring of vital signs; emergency "
            "response: the registered nurse immediately informs the medical team (at least "
            "specialist registrar level); emergency assessment by a team with critical-care "
            "competencies including advanced airway skills; consider transfer to level 2 or 3 "
            "care."
        ),
        "unknown": (
            "Risk unknown: the observation set is incomplete, so NEWS2 cannot be calculated and "
            "must not be treated as low risk. Record the missing parameters now; escalate on "
            "clinical concern."
        ),
    }
)


@dataclass(frozen=True)
class ObservationSet:
    """One set of observations. ``None`` means not recorded (never "normal")."""

    respiration_rate: float | None = None
    spo2: float | None = None
    on_oxygen: bool | None = None
    systolic_bp: float | None = None
    pulse: float | None = None
    consciousness: Consciousness | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.consciousness is not None and self.consciousness not in CONSCIOUSNESS_POINTS:
            raise ValueError(
                f"consciousness {self.consciousness!r} is not one of A, C, V, P, U (ACVPU)"
            )
        for name in _PRECISION:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} {value!r} is not a number")


@dataclass(frozen=True)
class News2:
    """The score of one observation set."""

    total: int | None  # None when partial: never a guess
    partial_total: int  # sum of the parameters present
    parameters: dict[str, int]  # points of each parameter present, in chart order
    missing: tuple[str, ...]  # parameters that could not be scored, in chart order
    partial: bool
    scale: Scale
    any_single_3: bool
    risk: Risk
    response: str
    reasons: dict[str, str] = field(default_factory=dict)  # why each missing one is missing


def round_to_chart(parameter: str, value: float) -> Decimal:
    """``value`` rounded half-up to the precision the chart prints for ``parameter``."""
    if not math.isfinite(value):
        raise ValueError(f"{parameter} {value!r} is not a number")
    return Decimal(str(value)).quantize(_PRECISION[parameter], context=_DECIMAL)


def points_in(value: Decimal, bands: tuple[Band, ...]) -> int:
    """The points of the first band whose top is at or above ``value``."""
    for top, points in bands:
        if top is None or value <= top:
            return points
    raise ValueError("a band table must end with an open band (top None)")


def _spo2_points(spo2: Decimal, on_oxygen: bool | None, scale: Scale) -> int | None:
    """Points for SpO2, or None when scale 2 needs air/oxygen and it is not known."""
    if scale == 1:
        return points_in(spo2, SPO2_SCALE_1_BANDS)
    if spo2 < SCALE_2_NEEDS_OXYGEN_FROM or on_oxygen is False:
        return points_in(spo2, SPO2_SCALE_2_AIR_BANDS)
    if on_oxygen is None:
        return None
    return points_in(spo2, SPO2_SCALE_2_OXYGEN_BANDS)


def _score_present(obs: ObservationSet, scale: Scale) -> tuple[dict[str, int], dict[str, str]]:
    """Points of every parameter that can be scored, and reasons for those that cannot."""
    points: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for name, bands in _NUMERIC_BANDS.items():
        value = getattr(obs, name)
        if value is not None:
            points[name] = points_in(round_to_chart(name, value), bands)
    if obs.spo2 is not None:
        spo2 = round_to_chart("spo2", obs.spo2)
        spo2_points = _spo2_points(spo2, obs.on_oxygen, scale)
        if spo2_points is None:
            reasons["spo2"] = (
                f"SpO2 {spo2}% on scale 2 cannot be scored without knowing whether the "
                "patient is on air or oxygen"
            )
        else:
            points["spo2"] = spo2_points
    if obs.on_oxygen is not None:
        points["air_or_oxygen"] = OXYGEN_POINTS if obs.on_oxygen else AIR_POINTS
    if obs.consciousness is not None:
        points["consciousness"] = CONSCIOUSNESS_POINTS[obs.consciousness]
    return points, reasons


def _risk(total: int, any_single_3: bool, partial: bool) -> tuple[Risk, str]:
    """The risk the points prove, and the response key. Partial sets are never "low"."""
    if total >= 7:
        return "high", "high"
    if total >= 5:
        return "medium", "medium"
    if any_single_3:
        return "low-medium", "single-3"
    if partial:
        return "unknown", "unknown"
    return "low", "zero" if total == 0 else "low"


def score(obs: ObservationSet, *, scale: Scale = 1) -> News2:
    """Score ``obs`` on the NEWS2 chart, SpO2 on ``scale`` 1 or 2 (a clinician's decision)."""
    if scale not in get_args(Scale):
        raise ValueError(f"SpO2 scale must be 1 or 2, not {scale!r}")
    present, reasons = _score_present(obs, scale)
    parameters = {name: present[name] for name in PARAMETERS if name in present}
    missing = tuple(name for name in PARAMETERS if name not in present)
    for name in missing:
        reasons.setdefault(name, "not recorded")
    partial_total = sum(parameters.values())
    any_single_3 = 3 in parameters.values()
    risk, response = _risk(partial_total, any_single_3, bool(missing))
    return News2(
        total=None if missing else partial_total,
        partial_total=partial_total,
        parameters=parameters,
        missing=missing,
        partial=bool(missing),
        scale=scale,
        any_single_3=any_single_3,
        risk=risk,
        response=RESPONSES[response],
        reasons={name: reasons[name] for name in missing},
    )
