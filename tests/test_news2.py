"""NEWS2 scoring and vital-sign readings, checked against the RCP 2017 chart.

The expected scores here are written out by hand from the chart (both edges of every band),
independently of the band tables in ``wardwatch.virtualward.news2``.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from wardwatch.virtualward.news2 import ObservationSet, Scale, round_to_chart, score
from wardwatch.virtualward.vitals import (
    VitalsError,
    check_plausible,
    normalise,
    parameter_for,
)

# A complete set scoring 0 on every parameter.
NORMAL = ObservationSet(
    respiration_rate=16,
    spo2=98,
    on_oxygen=False,
    systolic_bp=120,
    pulse=70,
    consciousness="A",
    temperature=37.0,
)
ALL_PARAMETERS = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)


def obs(**changes: Any) -> ObservationSet:
    return dataclasses.replace(NORMAL, **changes)


def points(field: str, value: Any, key: str | None = None, scale: Scale = 1, **more: Any) -> int:
    result = score(obs(**{field: value}, **more), scale=scale)
    assert not result.partial
    return result.parameters[key or field]


# --- every band edge, scale 1 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)],
)
def test_respiration_bands(value: float, expected: int) -> None:
    assert points("respiration_rate", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)],
)
@pytest.mark.parametrize("on_oxygen", [False, True])
def test_spo2_scale_1_bands_ignore_air_or_oxygen(
    value: float, expected: int, on_oxygen: bool
) -> None:
    assert points("spo2", value, on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(("on_oxygen", "expected"), [(False, 0), (True, 2)])
@pytest.mark.parametrize("scale", [1, 2])
def test_air_or_oxygen(on_oxygen: bool, expected: int, scale: Scale) -> None:
    assert points("on_oxygen", on_oxygen, key="air_or_oxygen", scale=scale, spo2=90) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (50, 3),
        (90, 3),
        (91, 2),
        (100, 2),
        (101, 1),
        (110, 1),
        (111, 0),
        (219, 0),
        (220, 3),
        (260, 3),
    ],
)
def test_systolic_bands(value: float, expected: int) -> None:
    assert points("systolic_bp", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
        (200, 3),
    ],
)
def test_pulse_bands(value: float, expected: int) -> None:
    assert points("pulse", value) == expected


@pytest.mark.parametrize(("value", "expected"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness_acvpu(value: str, expected: int) -> None:
    assert points("consciousness", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (33.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (41.0, 2),
    ],
)
def test_temperature_bands(value: float, expected: int) -> None:
    assert points("temperature", value) == expected


# --- SpO2 scale 2 -----------------------------------------------------------------------------

SCALE_2_LOW = [(75, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)]


@pytest.mark.parametrize(("value", "expected"), [*SCALE_2_LOW, (93, 0), (97, 0), (100, 0)])
def test_spo2_scale_2_on_air(value: float, expected: int) -> None:
    assert points("spo2", value, scale=2, on_oxygen=False) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [*SCALE_2_LOW, (93, 1), (94, 1), (95, 2), (96, 2), (97, 3), (100, 3)],
)
def test_spo2_scale_2_on_oxygen(value: float, expected: int) -> None:
    assert points("spo2", value, scale=2, on_oxygen=True) == expected


@pytest.mark.parametrize(("value", "expected"), SCALE_2_LOW)
def test_scale_2_below_93_needs_no_air_or_oxygen(value: float, expected: int) -> None:
    result = score(obs(spo2=value, on_oxygen=None), scale=2)
    assert result.parameters["spo2"] == expected
    assert result.missing == ("air_or_oxygen",)


@pytest.mark.parametrize("value", [93, 96, 100, 92.5])
def test_scale_2_from_93_without_air_or_oxygen_is_unscorable(value: float) -> None:
    result = score(obs(spo2=value, on_oxygen=None), scale=2)
    assert "spo2" not in result.parameters
    assert result.missing == ("spo2", "air_or_oxygen")
    assert result.partial and result.total is None and result.risk == "unknown"
    assert "air or oxygen" in result.reasons["spo2"]
    assert result.reasons["air_or_oxygen"] == "not recorded"


def test_scale_1_without_air_or_oxygen_still_scores_spo2() -> None:
    result = score(obs(spo2=93, on_oxygen=None))
    assert result.parameters["spo2"] == 2
    assert result.missing == ("air_or_oxygen",)


def test_scale_is_recorded_and_checked() -> None:
    assert score(NORMAL, scale=2).scale == 2
    assert score(NORMAL).scale == 1
    with pytest.raises(ValueError, match="scale"):
        score(NORMAL, scale=3)  # type: ignore[arg-type]


# --- totals, risk and response -----------------------------------------------------------------

LOW_12_HOURLY = "12-hourly"


def test_all_normal_is_zero_low_12_hourly() -> None:
    result = score(NORMAL)
    assert (result.total, result.partial_total, result.risk) == (0, 0, "low")
    assert result.parameters == dict.fromkeys(ALL_PARAMETERS, 0)
    assert list(result.parameters) == list(ALL_PARAMETERS)
    assert not result.partial and result.missing == () and result.reasons == {}
    assert not result.any_single_3
    assert LOW_12_HOURLY in result.response


@pytest.mark.parametrize(
    ("changes", "total"),
    [
        ({"pulse": 95}, 1),
        ({"respiration_rate": 22, "pulse": 115}, 4),
        ({"on_oxygen": True, "temperature": 38.5, "systolic_bp": 105}, 4),
    ],
)
def test_one_to_four_is_low_4_to_6_hourly(changes: dict[str, Any], total: int) -> None:
    result = score(obs(**changes))
    assert (result.total, result.risk, result.any_single_3) == (total, "low", False)
    assert "4-6-hourly" in result.response
    assert LOW_12_HOURLY not in result.response


@pytest.mark.parametrize(
    ("changes", "total"),
    [({"consciousness": "C"}, 3), ({"temperature": 35.0, "pulse": 100}, 4)],
)
def test_single_3_with_total_up_to_4_is_low_medium(changes: dict[str, Any], total: int) -> None:
    result = score(obs(**changes))
    assert (result.total, result.risk, result.any_single_3) == (total, "low-medium", True)
    assert "minimum hourly" in result.response
    assert "urgent ward-based response" in result.response


@pytest.mark.parametrize(
    ("changes", "total"),
    [
        ({"respiration_rate": 22, "pulse": 120, "temperature": 38.5}, 5),
        ({"consciousness": "V", "respiration_rate": 22}, 5),
        ({"on_oxygen": True, "pulse": 115, "systolic_bp": 100}, 6),
    ],
)
def test_five_or_six_is_medium(changes: dict[str, Any], total: int) -> None:
    result = score(obs(**changes))
    assert (result.total, result.risk) == (total, "medium")
    assert "minimum hourly" in result.response
    assert "urgent response" in result.response
    assert "ward-based" not in result.response


@pytest.mark.parametrize(
    ("changes", "total"),
    [
        ({"respiration_rate": 22, "pulse": 120, "temperature": 39.5, "systolic_bp": 105}, 7),
        ({"respiration_rate": 25, "systolic_bp": 95, "on_oxygen": True}, 7),
        ({"respiration_rate": 25, "systolic_bp": 95, "on_oxygen": True, "pulse": 135}, 10),
    ],
)
def test_seven_or_more_is_high(changes: dict[str, Any], total: int) -> None:
    result = score(obs(**changes))
    assert (result.total, result.risk) == (total, "high")
    assert "continuous monitoring" in result.response
    assert "emergency response" in result.response


@pytest.mark.parametrize(("scale", "spo2"), [(1, 91), (2, 97)])
def test_maximum_is_20(scale: Scale, spo2: float) -> None:
    worst = ObservationSet(
        respiration_rate=8,
        spo2=spo2,
        on_oxygen=True,
        systolic_bp=90,
        pulse=40,
        consciousness="U",
        temperature=35.0,
    )
    result = score(worst, scale=scale)
    assert result.total == 20
    assert result.parameters == {**dict.fromkeys(ALL_PARAMETERS, 3), "air_or_oxygen": 2}
    assert result.risk == "high"


def test_result_is_frozen() -> None:
    result = score(NORMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.total = 5  # type: ignore[misc]


# --- partial sets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "parameter"),
    [
        ("respiration_rate", "respiration_rate"),
        ("spo2", "spo2"),
        ("on_oxygen", "air_or_oxygen"),
        ("systolic_bp", "systolic_bp"),
        ("pulse", "pulse"),
        ("consciousness", "consciousness"),
        ("temperature", "temperature"),
    ],
)
def test_one_missing_parameter_is_partial_never_low(field: str, parameter: str) -> None:
    result = score(obs(**{field: None}))
    assert result.partial
    assert result.total is None
    assert result.partial_total == 0
    assert result.missing == (parameter,)
    assert parameter not in result.parameters
    assert result.reasons == {parameter: "not recorded"}
    assert result.risk == "unknown"
    assert "incomplete" in result.response
    assert LOW_12_HOURLY not in result.response


def test_empty_set_is_unknown() -> None:
    result = score(ObservationSet())
    assert result.missing == ALL_PARAMETERS
    assert (result.total, result.partial_total, result.risk) == (None, 0, "unknown")


def test_partial_up_to_4_without_a_3_stays_unknown() -> None:
    result = score(obs(temperature=None, respiration_rate=22, pulse=115))
    assert (result.partial_total, result.risk) == (4, "unknown")


def test_partial_with_a_3_is_at_least_low_medium() -> None:
    result = score(obs(temperature=None, consciousness="V"))
    assert result.partial and result.total is None
    assert (result.partial_total, result.risk, result.any_single_3) == (3, "low-medium", True)
    assert "urgent ward-based response" in result.response


def test_partial_sum_5_is_medium() -> None:
    result = score(obs(pulse=None, respiration_rate=22, systolic_bp=95, temperature=38.5))
    assert (result.partial, result.partial_total, result.risk) == (True, 5, "medium")


def test_partial_sum_7_is_high() -> None:
    result = score(ObservationSet(respiration_rate=25, systolic_bp=85, on_oxygen=True))
    assert result.partial and result.total is None
    assert result.missing == ("spo2", "pulse", "consciousness", "temperature")
    assert (result.partial_total, result.risk) == (8, "high")
    assert "emergency response" in result.response


# --- rounding to the chart's precision first -----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", 36.05, 0),  # -> 36.1
        ("temperature", 36.04, 1),  # -> 36.0
        ("temperature", 35.95, 1),  # -> 36.0
        ("temperature", 35.05, 1),  # -> 35.1
        ("temperature", 35.04, 3),  # -> 35.0
        ("temperature", 38.04, 0),  # -> 38.0
        ("temperature", 38.05, 1),  # -> 38.1
        ("temperature", 39.04, 1),  # -> 39.0
        ("temperature", 39.05, 2),  # -> 39.1
        ("spo2", 95.5, 0),  # -> 96
        ("spo2", 95.4, 1),  # -> 95
        ("pulse", 90.5, 1),  # -> 91
        ("pulse", 90.4, 0),  # -> 90
        ("respiration_rate", 20.5, 2),  # -> 21
        ("respiration_rate", 20.49, 0),  # -> 20
        ("respiration_rate", 8.5, 1),  # -> 9
        ("systolic_bp", 110.5, 0),  # -> 111
        ("systolic_bp", 219.5, 3),  # -> 220
    ],
)
def test_rounds_half_up_to_chart_precision(field: str, value: float, expected: int) -> None:
    assert points(field, value) == expected


def test_round_to_chart_uses_the_decimal_written() -> None:
    assert round_to_chart("temperature", 36.05) == Decimal("36.1")
    assert round_to_chart("temperature", 37) == Decimal("37.0")
    assert round_to_chart("pulse", 90.5) == Decimal(91)


@pytest.mark.parametrize(
    "changes",
    [{"consciousness": "X"}, {"consciousness": "alert"}, {"pulse": float("nan")}],
)
def test_invalid_observations_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        obs(**changes)


# --- vitals: LOINC, units, plausibility -----------------------------------------------------

DASH = "\N{EN DASH}"  # the range dash of the messages users read


@pytest.mark.parametrize(
    ("code", "parameter"),
    [
        ("8867-4", "pulse"),
        ("9279-1", "respiration_rate"),
        ("2708-6", "spo2"),
        ("59408-5", "spo2"),
        ("8310-5", "temperature"),
        ("85354-9", "blood_pressure"),
        ("8480-6", "systolic_bp"),
        ("8462-4", "diastolic_bp"),
        ("3151-8", "oxygen_flow"),
        ("3150-0", "oxygen_concentration"),
        ("85353-1", "vital_signs"),
    ],
)
def test_loinc_codes(code: str, parameter: str) -> None:
    assert parameter_for(code) == parameter


def test_unknown_loinc_code() -> None:
    with pytest.raises(VitalsError, match="1234-5"):
        parameter_for("1234-5")


@pytest.mark.parametrize(
    ("parameter", "value", "unit", "ours"),
    [
        ("temperature", 98.6, "[degF]", 37.0),
        ("temperature", 96.71, "[degF]", 35.95),  # exact, not 35.949999...
        ("temperature", 37.2, "Cel", 37.2),
        ("systolic_bp", 120, "mm[Hg]", 120),
        ("diastolic_bp", 10, "kPa", 75.0062),
        ("pulse", 72, "/min", 72),
        ("pulse", 72, "{beats}/min", 72),
        ("respiration_rate", 14, "/min", 14),
        ("respiration_rate", 14, "{breaths}/min", 14),
        ("spo2", 97, "%", 97),
    ],
)
def test_normalise(parameter: str, value: float, unit: str, ours: float) -> None:
    assert normalise(parameter, value, unit) == ours  # exact: converted in decimal


def test_kpa_to_mmhg() -> None:
    assert normalise("systolic_bp", 16, "kPa") == pytest.approx(120.01, abs=0.01)


def test_converted_temperature_scores_on_the_right_side_of_the_edge() -> None:
    assert points("temperature", normalise("temperature", 96.89, "[degF]")) == 0  # 36.05 °C
    assert points("temperature", normalise("temperature", 96.8, "[degF]")) == 1  # 36.0 °C


@pytest.mark.parametrize(
    ("parameter", "unit", "expected"),
    [
        ("temperature", "K", "Cel or [degF]"),
        ("temperature", "cel", "Cel or [degF]"),
        ("temperature", "degF", "Cel or [degF]"),
        ("systolic_bp", "mmHg", "mm[Hg] or kPa"),
        ("pulse", "%", "/min"),
        ("pulse", "{breaths}/min", "/min"),
        ("respiration_rate", "{beats}/min", "/min"),
        ("spo2", "/min", "%"),
    ],
)
def test_wrong_unit_is_rejected_naming_the_expected_unit(
    parameter: str, unit: str, expected: str
) -> None:
    with pytest.raises(VitalsError) as raised:
        normalise(parameter, 50, unit)
    assert expected in str(raised.value)
    assert repr(unit) in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("parameter", ["weight", "vital_signs", "blood_pressure"])
def test_unknown_parameter_or_panel_has_no_unit(parameter: str) -> None:
    with pytest.raises(VitalsError, match=parameter):
        normalise(parameter, 1, "/min")


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        ("pulse", 900, f"pulse 900/min is not possible (accepted 20{DASH}300)"),
        ("pulse", 19, f"pulse 19/min is not possible (accepted 20{DASH}300)"),
        ("spo2", 140, f"spo2 140% is not possible (accepted 0{DASH}100)"),
        ("spo2", -1, f"spo2 -1% is not possible (accepted 0{DASH}100)"),
        ("temperature", 50, f"temperature 50 °C is not possible (accepted 25{DASH}45)"),
        ("temperature", 24.9, f"temperature 24.9 °C is not possible (accepted 25{DASH}45)"),
        ("respiration_rate", 81, f"respiration_rate 81/min is not possible (accepted 1{DASH}80)"),
        ("systolic_bp", 301, f"systolic_bp 301 mmHg is not possible (accepted 30{DASH}300)"),
        ("systolic_bp", 29, f"systolic_bp 29 mmHg is not possible (accepted 30{DASH}300)"),
    ],
)
def test_implausible_values_are_rejected_with_the_reason(
    parameter: str, value: float, message: str
) -> None:
    with pytest.raises(VitalsError) as raised:
        check_plausible(parameter, value)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("pulse", 20),
        ("pulse", 300),
        ("spo2", 0),
        ("spo2", 100),
        ("temperature", 25),
        ("temperature", 45),
        ("respiration_rate", 80),
        ("systolic_bp", 30),
        ("systolic_bp", 300),
    ],
)
def test_plausible_edges_are_accepted(parameter: str, value: float) -> None:
    check_plausible(parameter, value)


def test_not_a_number_is_rejected() -> None:
    with pytest.raises(VitalsError, match="not a number"):
        check_plausible("pulse", float("nan"))
    with pytest.raises(VitalsError, match="not a number"):
        normalise("pulse", float("inf"), "/min")
