"""OPEL scoring, pure: parameter values and a config in, levels with their reasons out.

Each parameter's value falls in band 1-4 by its three thresholds (the values at which band
2, 3 and 4 begin, inclusive). Band *b* is worth (b - 1) / 3 x 100 points, and a site's score
(0-100) is the weight-averaged points of the parameters that have a value: one without a
value (no open G&A beds, no ambulance in the window) is left out, named in the "why", and the
others share its weight, so missing data is never scored as calm. The level is where the
score falls against the config's three cut-offs. It drops only once the score is
``hysteresis`` points below the cut-off of the level it is leaving, so a score hovering on a
cut-off does not page the control centre every few minutes.

The system score is the mean of the acute sites' scores weighted by their open G&A beds (a
site with more beds carries more of the system's patients); equally if none has open beds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from wardwatch.frontdoor.opel_config import PARAMETERS, OpelConfig

SYSTEM_SCOPE = "system"


def band(value: float, thresholds: list[float], higher_is_worse: bool = True) -> int:
    """1 to 4: one more for each threshold the value has reached (inclusive)."""
    if higher_is_worse:
        return 1 + sum(value >= t for t in thresholds)
    return 1 + sum(value <= t for t in thresholds)


def points(band_: int) -> float:
    """Band 1 -> 0, 2 -> 33.3, 3 -> 66.7, 4 -> 100."""
    return (band_ - 1) * 100 / 3


def level_for(score: float, levels: list[float]) -> int:
    return 1 + sum(score >= c for c in levels)


def held_level(score: float, previous: int | None, levels: list[float], hysteresis: float) -> int:
    """The level with hysteresis: up as soon as a cut-off is reached, down only once the
    score is ``hysteresis`` below the cut-off of the level being left (never above the
    previous level)."""
    raw = level_for(score, levels)
    if previous is None or raw >= previous:
        return raw
    return min(previous, level_for(score + hysteresis, levels))


class Recorded(Protocol):
    """What scoring needs of a scope's latest recorded row (an ``OpelLevel``)."""

    @property
    def level(self) -> int: ...

    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True)
class ParameterResult:
    name: str
    value: float | None
    band: int | None  # None: no data, left out of the score
    weight: float
    contribution: float  # points this parameter adds to the 0-100 score
    thresholds: list[float]
    note: str | None = None  # why there is no value

    @property
    def label(self) -> str:
        return PARAMETERS[self.name].label

    @property
    def unit(self) -> str:
        return PARAMETERS[self.name].unit

    def text(self) -> str:
        unit, v = PARAMETERS[self.name].unit, self.value
        if v is None:
            return f"{self.label} (no data: {self.note})"
        shown = f"{v:.1f}%" if unit == "%" else f"{v:.0f} {unit}"
        return f"{self.label} {shown} (band {self.band})"

    def as_dict(self) -> dict[str, Any]:
        info = PARAMETERS[self.name]
        return {
            "name": self.name,
            "label": info.label,
            "value": None if self.value is None else round(self.value, 1),
            "unit": info.unit,
            "band": self.band,
            "weight": self.weight,
            "contribution": round(self.contribution, 2),
            "thresholds": self.thresholds,
            "direction": info.direction,
            "note": self.note,
        }


@dataclass(frozen=True)
class Measured:
    """One acute site's parameter values at a moment, before scoring."""

    site_id: str
    code: str
    name: str
    lat: float | None
    lon: float | None
    config: OpelConfig
    values: dict[str, float | None]
    notes: dict[str, str]
    ga_open: int
    available_beds: int


@dataclass(frozen=True)
class SiteLevel:
    measured: Measured
    level: int
    score: float
    parameters: list[ParameterResult]
    why: str
    since: datetime | None

    @property
    def code(self) -> str:
        return self.measured.code

    @property
    def name(self) -> str:
        return self.measured.name

    @property
    def mean_handover(self) -> float | None:
        return self.measured.values.get("mean_handover_minutes")

    def summary(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.parameters]

    def as_dict(self) -> dict[str, Any]:
        m = self.measured
        return {
            "site": m.code,
            "name": m.name,
            "level": self.level,
            "score": round(self.score, 1),
            "since": None if self.since is None else self.since.isoformat(),
            "parameters": self.summary(),
            "why": self.why,
            "ga_open_beds": m.ga_open,
            "available_beds": m.available_beds,
        }


@dataclass(frozen=True)
class SystemLevel:
    level: int
    score: float
    why: str
    since: datetime | None
    sites: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "score": round(self.score, 1),
            "why": self.why,
            "since": None if self.since is None else self.since.isoformat(),
            "sites": self.sites,
        }


@dataclass(frozen=True)
class OpelSnapshot:
    at: datetime
    sites: list[SiteLevel]
    system: SystemLevel

    def site(self, code: str) -> SiteLevel | None:
        return next((s for s in self.sites if s.code == code), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "sites": [s.as_dict() for s in self.sites],
            "system": self.system.as_dict(),
        }


def score(
    measured: Iterable[Measured],
    system_config: OpelConfig,
    latest: Mapping[str, Recorded],
    at: datetime,
) -> OpelSnapshot:
    """Levels of every site and of the system, each held against its latest row."""
    sites = [score_site(m, latest.get(m.code)) for m in measured]
    return OpelSnapshot(at, sites, score_system(sites, system_config, latest.get(SYSTEM_SCOPE)))


def score_site(m: Measured, last: Recorded | None) -> SiteLevel:
    cfg = m.config
    banded = []
    for p in cfg.parameters:
        value = m.values.get(p.name)
        b = None if value is None else band(value, p.thresholds, p.info.higher_is_worse)
        banded.append((p, value, b))
    total = sum(p.weight for p, _, b in banded if b is not None)
    params = [
        ParameterResult(
            p.name,
            value,
            b,
            p.weight,
            0.0 if b is None else p.weight / total * points(b),
            list(p.thresholds),
            m.notes.get(p.name) if value is None else None,
        )
        for p, value, b in banded
    ]
    total_score = sum(p.contribution for p in params)
    level = held_level(total_score, _level(last), cfg.levels, cfg.hysteresis)
    drivers = sorted((p for p in params if (p.band or 0) > 1), key=lambda p: -p.contribution)
    why = f"OPEL {level} (score {total_score:.1f}): " + (
        ", ".join(p.text() for p in drivers) if drivers else "every parameter in band 1"
    )
    why += held_text(level, total_score, cfg.levels, cfg.hysteresis)
    missing = [p.text() for p in params if p.band is None]
    if missing:
        why += "; left out: " + ", ".join(missing)
    return SiteLevel(m, level, total_score, params, why, _since(last, level))


def score_system(sites: list[SiteLevel], cfg: OpelConfig, last: Recorded | None) -> SystemLevel:
    if not sites:
        level = held_level(0.0, _level(last), cfg.levels, cfg.hysteresis)
        return SystemLevel(level, 0.0, f"OPEL {level}: no acute sites", _since(last, level))
    beds = sum(x.measured.ga_open for x in sites)
    weights = [x.measured.ga_open if beds else 1 for x in sites]
    total = sum(weights)
    value = sum(w * x.score for w, x in zip(weights, sites, strict=True)) / total
    level = held_level(value, _level(last), cfg.levels, cfg.hysteresis)
    if beds:
        basis = "open G&A beds"
        parts = [
            f"{x.code} OPEL {x.level} ({x.score:.1f}, {w} beds)"
            for w, x in zip(weights, sites, strict=True)
        ]
    else:
        basis = "site, equally (no open G&A beds)"
        parts = [f"{x.code} OPEL {x.level} ({x.score:.1f})" for x in sites]
    why = (
        f"OPEL {level} (score {value:.1f}): {len(sites)} acute site(s) weighted by {basis}: "
        + ", ".join(parts)
        + held_text(level, value, cfg.levels, cfg.hysteresis)
    )
    rows = [
        {
            "site": x.code,
            "name": x.name,
            "level": x.level,
            "score": round(x.score, 2),
            "weight": w,
            "contribution": round(w * x.score / total, 2),
        }
        for w, x in zip(weights, sites, strict=True)
    ]
    return SystemLevel(level, value, why, _since(last, level), rows)


def held_text(level: int, score: float, levels: list[float], hysteresis: float) -> str:
    if level == 1 or score >= levels[level - 2]:
        return ""
    return f"; held at OPEL {level} until the score falls below {levels[level - 2] - hysteresis:g}"


def _level(last: Recorded | None) -> int | None:
    return None if last is None else last.level


def _since(last: Recorded | None, level: int) -> datetime | None:
    return last.at if last is not None and last.level == level else None
