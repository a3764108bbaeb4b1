"""Which alerts a NEWS2 score raises, and the monitoring plan's timing (pure code).

Alerts fall into *groups*: a patient has at most one open alert per group, so repeated
readings at the same level update that alert (its repeat count) instead of flooding the
team, and a worse reading upgrades it (severity, and a sooner response target).

=====================  ==============  ============  ============================
rule                   group           severity      default response target
=====================  ==============  ============  ============================
NEWS2 7 or more        news2           emergency     30 min
NEWS2 5-6              news2           urgent        60 min
a single parameter 3   news2           urgent        60 min
patient threshold      threshold:<p>   urgent        60 min
worsening trend        trend           urgent        60 min
missed reading         missed          routine       240 min
stale data             stale           routine       240 min
battery low            battery         routine       240 min
=====================  ==============  ============  ============================

A partial set still raises: its partial total is a lower bound (the missing parameters can
only add), so a partial 7 is certainly 7 or more.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from wardwatch.virtualward.news2 import News2

Severity = Literal["emergency", "urgent", "routine"]
SEVERITY_RANK: Final[Mapping[str, int]] = {"routine": 1, "urgent": 2, "emergency": 3}
#: How many complete totals in a row make a trend, and how much they must rise.
TREND_SETS: Final = 4
TREND_RISE: Final = 2
KEEP_TOTALS: Final = TREND_SETS

PLAN_PARAMETERS: Final = (
    "respiration_rate",
    "spo2",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
    "oxygen_flow",
)


#: Parameter names as a clinician reads them (alert summaries).
SHOWN: Final[Mapping[str, str]] = {
    "respiration_rate": "respiration rate",
    "spo2": "SpO2",
    "air_or_oxygen": "oxygen",
    "systolic_bp": "systolic BP",
    "diastolic_bp": "diastolic BP",
    "pulse": "pulse",
    "consciousness": "consciousness",
    "temperature": "temperature",
    "oxygen_flow": "oxygen flow",
}


def shown(name: str) -> str:
    return SHOWN.get(name, name.replace("_", " "))


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str
    group: str
    severity: Severity
    summary: str


@dataclass(frozen=True, slots=True)
class Targets:
    """Minutes to respond, by severity (settings ``vw_respond_*_minutes``)."""

    emergency: int = 30
    urgent: int = 60
    routine: int = 240

    def minutes(self, severity: str) -> int:
        return int(getattr(self, severity))


def score_triggers(
    news: News2,
    values: Mapping[str, float | str | None],
    thresholds: Mapping[str, Any] | None,
    recent_totals: Sequence[int],
) -> list[Trigger]:
    """The alerts one score raises. ``recent_totals`` includes this score's total, if any."""
    out: list[Trigger] = []
    points = news.partial_total
    label = f"NEWS2 {points}" if not news.partial else f"NEWS2 at least {points} (partial)"
    if points >= 7:
        out.append(Trigger("news2_high", "news2", "emergency", f"{label}: emergency response"))
    elif points >= 5:
        out.append(Trigger("news2_medium", "news2", "urgent", f"{label}: urgent response"))
    elif news.any_single_3:
        three = ", ".join(shown(name) for name, p in news.parameters.items() if p == 3)
        out.append(
            Trigger("single_3", "news2", "urgent", f"{label} with {three} scoring 3: urgent review")
        )
    for name, limits in sorted((thresholds or {}).items()):
        value = values.get(name)
        if not isinstance(value, int | float):
            continue
        low, high = limits.get("min"), limits.get("max")
        if low is not None and value < low:
            out.append(
                Trigger(
                    "threshold",
                    f"threshold:{name}",
                    "urgent",
                    f"{shown(name)} {value:g} below {low:g}",
                )
            )
        elif high is not None and value > high:
            out.append(
                Trigger(
                    "threshold",
                    f"threshold:{name}",
                    "urgent",
                    f"{shown(name)} {value:g} above {high:g}",
                )
            )
    if worsening(recent_totals):
        run = " \N{RIGHTWARDS ARROW} ".join(str(t) for t in recent_totals[-TREND_SETS:])
        out.append(Trigger("trend", "trend", "urgent", f"NEWS2 rising: {run}"))
    return out


def worsening(totals: Sequence[int]) -> bool:
    """The last :data:`TREND_SETS` totals never fall and rise by :data:`TREND_RISE` or more."""
    run = list(totals[-TREND_SETS:])
    if len(run) < TREND_SETS:
        return False
    return all(b >= a for a, b in itertools.pairwise(run)) and run[-1] - run[0] >= TREND_RISE


def push_total(recent: Sequence[int] | None, total: int | None) -> list[int]:
    """``recent`` with ``total`` appended (complete sets only), the last few kept."""
    kept = list(recent or [])
    if total is not None:
        kept.append(total)
    return kept[-KEEP_TOTALS:]


def interval(plan: Mapping[str, Any]) -> timedelta:
    """How often the plan expects a reading."""
    if plan.get("mode") == "continuous":
        return timedelta(minutes=float(plan.get("interval_minutes") or 5))
    per_day = int(plan.get("times_per_day") or 2)
    return timedelta(hours=24 / per_day)


def grace(plan: Mapping[str, Any]) -> timedelta:
    default = 10 if plan.get("mode") == "continuous" else 60
    return timedelta(minutes=float(plan.get("grace_minutes") or default))
