"""OPEL configuration (parameters, weights, thresholds, cut-offs, divert) and its pure scoring.

The built-in :data:`DEFAULT` is *modelled on* NHS England's Integrated OPEL framework
2024-26 for acute trusts, which scores weighted parameters per provider and aggregates them
to a system level. We do not have the framework's own table of thresholds and weights, so
the numbers here are ours, chosen from public standards (92% G&A occupancy, the 15/30/45
minute handover rules, 12-hour waits) and explained in docs/opel.md. A trust must set its
own weights and thresholds in the system file (``opel:`` under ``system:`` or a site).

How a config turns values into a level is in opel_scoring.py (pure code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ParameterName = Literal[
    "ga_occupancy_pct",
    "mean_handover_minutes",
    "longest_handover_minutes",
    "dta_over_4h",
    "ed_over_12h",
    "nctr_pct",
    "escalation_beds_open",
    "four_hour_pct",
]


@dataclass(frozen=True)
class ParameterInfo:
    """What a parameter measures. Its direction is a fact about the measure (more patients
    waiting is never better), so a trust sets thresholds, not the direction."""

    label: str
    unit: str
    higher_is_worse: bool
    means: str

    @property
    def direction(self) -> str:
        return "higher_is_worse" if self.higher_is_worse else "lower_is_worse"


PARAMETERS: dict[str, ParameterInfo] = {
    "ga_occupancy_pct": ParameterInfo(
        "G&A occupancy", "%", True, "occupied ÷ open general & acute beds at the site"
    ),
    "mean_handover_minutes": ParameterInfo(
        "Mean handover",
        "min",
        True,
        "mean arrival→handover time of crews that arrived in the window (default 4 h); "
        "crews still waiting count with their wait so far",
    ),
    "longest_handover_minutes": ParameterInfo(
        "Longest handover", "min", True, "the longest such handover or wait in the window"
    ),
    "dta_over_4h": ParameterInfo(
        "DTA waits > 4 h", "patients", True, "patients in the ED > 4 h since decision to admit"
    ),
    "ed_over_12h": ParameterInfo(
        "In ED > 12 h", "patients", True, "patients in the ED > 12 h since arrival"
    ),
    "nctr_pct": ParameterInfo(
        "No criteria to reside",
        "%",
        True,
        "open G&A stays whose discharge-ready date has come, as % of occupied G&A beds",
    ),
    "escalation_beds_open": ParameterInfo(
        "Escalation beds open", "beds", True, "beds on escalation wards that are not closed"
    ),
    "four_hour_pct": ParameterInfo(
        "ED 4-hour (24 h)",
        "%",
        False,
        "share of ED departures in the last 24 h that left within 4 h of arrival",
    ),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OpelParameter(_Frozen):
    name: ParameterName
    weight: float = Field(gt=0, le=1000, description="relative weight (> 0)")
    thresholds: list[float] = Field(
        min_length=3,
        max_length=3,
        description="values at which band 2, 3 and 4 begin: increasing for a parameter "
        "where higher is worse, decreasing where lower is worse (four_hour_pct)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> OpelParameter:
        info = PARAMETERS[self.name]
        t = self.thresholds
        ok = t[0] < t[1] < t[2] if info.higher_is_worse else t[0] > t[1] > t[2]
        if not ok:
            order = "increase" if info.higher_is_worse else "decrease"
            worse = "higher" if info.higher_is_worse else "lower"
            raise ValueError(
                f"thresholds of {self.name} must strictly {order} (a {worse} value is "
                f"worse): got {list(t)}"
            )
        return self

    @property
    def info(self) -> ParameterInfo:
        return PARAMETERS[self.name]


class DivertConfig(_Frozen):
    """When a site counts as under pressure, and which other sites may help."""

    at_level: int = Field(default=4, ge=2, le=4, description="OPEL level that triggers it")
    handover_mean_minutes: float = Field(
        default=30, gt=0, description="mean handover time that triggers it, whatever the level"
    )
    max_distance_km: float = Field(default=40, gt=0, le=1000)
    min_available_beds: int = Field(default=1, ge=1)


def _default_parameters() -> list[OpelParameter]:
    return [
        OpelParameter(name="ga_occupancy_pct", weight=25, thresholds=[92, 95, 98]),
        OpelParameter(name="mean_handover_minutes", weight=20, thresholds=[15, 30, 45]),
        OpelParameter(name="dta_over_4h", weight=15, thresholds=[2, 5, 10]),
        OpelParameter(name="ed_over_12h", weight=15, thresholds=[1, 3, 6]),
        OpelParameter(name="nctr_pct", weight=15, thresholds=[10, 15, 20]),
        OpelParameter(name="escalation_beds_open", weight=10, thresholds=[1, 5, 10]),
    ]


class OpelConfig(_Frozen):
    """One site's (or the system's) OPEL settings; every field has the built-in default."""

    parameters: list[OpelParameter] = Field(default_factory=_default_parameters, min_length=1)
    levels: list[float] = Field(
        default_factory=lambda: [20.0, 45.0, 70.0],
        min_length=3,
        max_length=3,
        description="scores (0-100) at which OPEL 2, 3 and 4 begin",
    )
    hysteresis: float = Field(
        default=5,
        ge=0,
        le=20,
        description="points below a cut-off the score must fall before the level drops",
    )
    handover_window_hours: float = Field(default=4, gt=0, le=24)
    divert: DivertConfig = Field(default_factory=DivertConfig)

    @model_validator(mode="after")
    def _consistent(self) -> OpelConfig:
        names = [p.name for p in self.parameters]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"parameter(s) listed twice: {', '.join(twice)}")
        c = self.levels
        if not (0 < c[0] < c[1] < c[2] <= 100):
            raise ValueError(
                f"levels must be three increasing scores in (0, 100] (where OPEL 2, 3 and 4 "
                f"begin): got {list(c)}"
            )
        return self

    def uses(self, name: str) -> bool:
        return any(p.name == name for p in self.parameters)


DEFAULT = OpelConfig()


def config_from(stored: object) -> OpelConfig | None:
    """A config stored as JSON (HealthSystem.opel / Site.opel), or None if there is none."""
    return None if stored is None else OpelConfig.model_validate(stored)
