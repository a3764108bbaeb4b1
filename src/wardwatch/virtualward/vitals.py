"""Vital-sign readings as devices and FHIR R4 send them: LOINC codes, UCUM units, plausibility.

Pure functions, no I/O. Parameter names are those of :mod:`wardwatch.virtualward.news2`
(``respiration_rate``, ``spo2``, ``systolic_bp``, ``pulse``, ``temperature``) plus the readings
NEWS2 does not score directly (``diastolic_bp``, ``oxygen_flow``, ``oxygen_concentration``) and
the two panels (``blood_pressure``, ``vital_signs``), which carry no value of their own.

Units are UCUM codes, matched exactly (UCUM is case-sensitive). Conversions run in ``decimal``
on the value's shortest decimal form, so 98.6 [degF] is exactly 37.0 °C and a converted value
lands on the same side of a NEWS2 band edge as the arithmetic says it should.

Plausible ranges (outside them a reading is a device or keying error, not a patient):

=====================  ==================
pulse                  20-300 /min
respiration_rate       1-80 /min
spo2                   0-100 %
temperature            25-45 °C
systolic_bp            30-300 mmHg
diastolic_bp           10-200 mmHg
oxygen_flow            0-80 L/min
oxygen_concentration   21-100 %
=====================  ==================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from wardwatch.core.errors import ValidationFailed


class VitalsError(ValidationFailed, ValueError):
    """A reading that cannot be used. The message names the value and says why."""


# LOINC code -> our parameter name (FHIR R4 vital-signs profiles).
LOINC: Final[Mapping[str, str]] = MappingProxyType(
    {
        "85353-1": "vital_signs",  # vital signs panel
        "8867-4": "pulse",  # heart rate
        "9279-1": "respiration_rate",
        "2708-6": "spo2",  # oxygen saturation in arterial blood
        "59408-5": "spo2",  # ... by pulse oximetry
        "8310-5": "temperature",  # body temperature
        "85354-9": "blood_pressure",  # panel: systolic and diastolic components
        "8480-6": "systolic_bp",
        "8462-4": "diastolic_bp",
        "3151-8": "oxygen_flow",  # inhaled oxygen flow rate
        "3150-0": "oxygen_concentration",  # inhaled oxygen concentration
    }
)
PANELS: Final = frozenset({"vital_signs", "blood_pressure"})

# A conversion to our unit: (value + offset) * multiply / divide.
_Conversion = tuple[Decimal, Decimal, Decimal]
_SAME: Final[_Conversion] = (Decimal(0), Decimal(1), Decimal(1))
_FAHRENHEIT: Final[_Conversion] = (Decimal(-32), Decimal(5), Decimal(9))
MMHG_PER_KPA: Final = Decimal("7.50062")
_KPA: Final[_Conversion] = (Decimal(0), MMHG_PER_KPA, Decimal(1))
_PRESSURE: Final[Mapping[str, _Conversion]] = MappingProxyType({"mm[Hg]": _SAME, "kPa": _KPA})

# Parameter -> accepted UCUM unit -> conversion to our unit (the first unit listed).
UNITS: Final[Mapping[str, Mapping[str, _Conversion]]] = MappingProxyType(
    {
        "pulse": MappingProxyType({"/min": _SAME, "{beats}/min": _SAME, "{beat}/min": _SAME}),
        "respiration_rate": MappingProxyType(
            {"/min": _SAME, "{breaths}/min": _SAME, "{breath}/min": _SAME}
        ),
        "spo2": MappingProxyType({"%": _SAME}),
        "temperature": MappingProxyType({"Cel": _SAME, "[degF]": _FAHRENHEIT}),
        "systolic_bp": _PRESSURE,
        "diastolic_bp": _PRESSURE,
        "oxygen_flow": MappingProxyType({"L/min": _SAME}),
        "oxygen_concentration": MappingProxyType({"%": _SAME}),
    }
)

# Parameter -> (lowest, highest) plausible value in our unit, inclusive; see the module doc.
PLAUSIBLE: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        "pulse": (20, 300),
        "respiration_rate": (1, 80),
        "spo2": (0, 100),
        "temperature": (25, 45),
        "systolic_bp": (30, 300),
        "diastolic_bp": (10, 200),
        "oxygen_flow": (0, 80),
        "oxygen_concentration": (21, 100),
    }
)
# How a value in our unit is written in a message: "900/min", "50 °C".
_SHOWN: Final[Mapping[str, str]] = MappingProxyType(
    {
        "pulse": "/min",
        "respiration_rate": "/min",
        "spo2": "%",
        "temperature": " °C",
        "systolic_bp": " mmHg",
        "diastolic_bp": " mmHg",
        "oxygen_flow": " L/min",
        "oxygen_concentration": "%",
    }
)


def parameter_for(loinc: str) -> str:
    """Our parameter name for a LOINC code; VitalsError for a code we do not read."""
    try:
        return LOINC[loinc.strip()]
    except KeyError:
        raise VitalsError(f"LOINC code {loinc!r} is not a vital sign WardWatch reads") from None


def _units_for(parameter: str) -> Mapping[str, _Conversion]:
    if parameter in PANELS:
        raise VitalsError(f"{parameter} is a panel with no value of its own: read its components")
    try:
        return UNITS[parameter]
    except KeyError:
        known = ", ".join(UNITS)
        raise VitalsError(f"unknown vital sign {parameter!r} (known: {known})") from None


def normalise(parameter: str, value: float, unit: str) -> float:
    """``value`` in UCUM ``unit`` converted to our unit for ``parameter``.

    Ours: /min for rates, % for SpO2 and inspired oxygen, °C (Cel), mmHg (mm[Hg]), L/min.
    """
    units = _units_for(parameter)
    conversion = units.get(unit.strip())
    if conversion is None:
        expected = " or ".join(units)
        raise VitalsError(f"{parameter} unit {unit!r} is not accepted (expected {expected})")
    if isinstance(value, bool) or not math.isfinite(value):
        raise VitalsError(f"{parameter} value {value!r} is not a number")
    if conversion is _SAME:  # most readings: already in our unit, nothing to compute
        return float(value)
    offset, multiply, divide = conversion
    return float((Decimal(str(value)) + offset) * multiply / divide)


def check_plausible(parameter: str, value: float) -> None:
    """Raise VitalsError if ``value`` (in our unit) cannot be a real reading of ``parameter``."""
    _units_for(parameter)
    low, high = PLAUSIBLE[parameter]
    shown = _SHOWN[parameter]
    if isinstance(value, bool) or not math.isfinite(value):
        raise VitalsError(f"{parameter} value {value!r} is not a number")
    if not low <= value <= high:
        raise VitalsError(
            f"{parameter} {value:g}{shown} is not possible (accepted {low:g}\N{EN DASH}{high:g})"
        )
