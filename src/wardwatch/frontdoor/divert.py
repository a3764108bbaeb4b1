"""Divert and mutual aid: which nearby acute sites could take ambulances from one under pressure.

A site is under pressure when it is at its config's ``divert.at_level`` (default OPEL 4) or
its mean handover time has reached ``divert.handover_mean_minutes`` (default 30). Each other
acute site is then suggested only if all hold: within ``max_distance_km`` (great-circle
distance between the sites' coordinates), G&A beds available now (at least
``min_available_beds``), a lower OPEL level, and a shorter mean handover (a site with no
ambulance in the window has no queue). Suggestions come nearest first, each with its
reasons; every site not suggested is listed with why, including a site without coordinates.
These are suggestions for the control centre to weigh, never an automatic divert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from wardwatch.frontdoor.opel import OpelService
from wardwatch.frontdoor.opel_scoring import OpelSnapshot, SiteLevel

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


@dataclass(frozen=True)
class Suggestion:
    site: str
    name: str
    distance_km: float
    level: int
    available_beds: int
    mean_handover_minutes: float | None
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        mean = self.mean_handover_minutes
        return {
            "site": self.site,
            "name": self.name,
            "distance_km": round(self.distance_km, 1),
            "level": self.level,
            "available_beds": self.available_beds,
            "mean_handover_minutes": None if mean is None else round(mean, 1),
            "reasons": self.reasons,
        }


@dataclass(frozen=True)
class Rejection:
    site: str
    name: str
    reason: str
    distance_km: float | None = None

    def as_dict(self) -> dict[str, Any]:
        distance = None if self.distance_km is None else round(self.distance_km, 1)
        return {
            "site": self.site,
            "name": self.name,
            "reason": self.reason,
            "distance_km": distance,
        }


@dataclass(frozen=True)
class DivertAdvice:
    site: str
    name: str
    level: int
    under_pressure: bool
    reasons: list[str]
    suggestions: list[Suggestion] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "name": self.name,
            "level": self.level,
            "under_pressure": self.under_pressure,
            "reasons": self.reasons,
            "suggestions": [x.as_dict() for x in self.suggestions],
            "rejected": [x.as_dict() for x in self.rejected],
        }


def suggestions(opel: OpelService, site_code: str) -> DivertAdvice:
    """Advice for ``site_code`` now (404 for an unknown site, 422 for one that is not acute)."""
    snapshot = opel.compute()
    if snapshot.site(site_code) is None:
        with opel.db.read() as s:
            opel.require_acute(s, site_code)
    return advise(snapshot, site_code)


def advise(snapshot: OpelSnapshot, site_code: str) -> DivertAdvice:
    here = snapshot.site(site_code)
    if here is None:
        raise KeyError(site_code)
    divert = here.measured.config.divert
    hours = f"{here.measured.config.handover_window_hours:g}"
    mean = here.mean_handover
    by_level = here.level >= divert.at_level
    by_queue = mean is not None and mean >= divert.handover_mean_minutes
    reasons = [
        f"{here.name} is at OPEL {here.level} (divert is considered from OPEL {divert.at_level})",
        _queue_text(mean, hours, divert.handover_mean_minutes, by_queue),
    ]
    if not (by_level or by_queue):
        reasons.append("not under pressure: no divert or mutual aid suggested")
        return DivertAdvice(here.code, here.name, here.level, False, reasons)
    if here.measured.lat is None or here.measured.lon is None:
        reasons.append(
            f"{here.name} has no coordinates in the system file: distances cannot be "
            f"measured, so no site can be suggested"
        )
    found: list[Suggestion] = []
    rejected: list[Rejection] = []
    for other in snapshot.sites:
        if other.code == here.code:
            continue
        distance, problems = _problems(here, other)
        if problems:
            rejected.append(Rejection(other.code, other.name, "; ".join(problems), distance))
        else:
            assert distance is not None  # noqa: S101 -- no problems means a distance
            found.append(_suggest(here, other, distance))
    found.sort(key=lambda x: (x.distance_km, x.site))
    rejected.sort(key=lambda x: (x.distance_km is None, x.distance_km or 0.0, x.site))
    if not found:
        reasons.append("no other acute site meets every condition (see rejected)")
    return DivertAdvice(here.code, here.name, here.level, True, reasons, found, rejected)


def _queue_text(mean: float | None, hours: str, threshold: float, over: bool) -> str:
    if mean is None:
        return f"no ambulance arrivals in the last {hours} h"
    side = "at or over" if over else "under"
    return (
        f"mean handover {mean:.0f} min over the last {hours} h, {side} the "
        f"{threshold:g}-minute threshold"
    )


def _distance(here: SiteLevel, other: SiteLevel) -> float | None:
    a, b = here.measured, other.measured
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    return haversine_km(a.lat, a.lon, b.lat, b.lon)


def _problems(here: SiteLevel, other: SiteLevel) -> tuple[float | None, list[str]]:
    divert = here.measured.config.divert
    distance = _distance(here, other)
    problems: list[str] = []
    if other.measured.lat is None or other.measured.lon is None:
        problems.append("no coordinates in the system file: distance unknown")
    elif distance is None:
        problems.append(f"distance unknown ({here.name} has no coordinates)")
    elif distance > divert.max_distance_km:
        problems.append(f"{distance:.1f} km away, beyond the {divert.max_distance_km:g} km limit")
    if other.level >= here.level:
        problems.append(f"at OPEL {other.level}, not lower than OPEL {here.level} here")
    beds = other.measured.available_beds
    if beds < divert.min_available_beds:
        problems.append(f"{beds} G&A bed(s) available (needs at least {divert.min_available_beds})")
    theirs, ours = other.mean_handover, here.mean_handover
    if theirs is not None and theirs >= (ours or 0.0):
        problems.append(
            f"mean handover {theirs:.0f} min, not shorter than "
            + (f"{ours:.0f} min here" if ours is not None else "here (no crews here)")
        )
    return distance, problems


def _suggest(here: SiteLevel, other: SiteLevel, distance: float) -> Suggestion:
    divert = here.measured.config.divert
    theirs, ours = other.mean_handover, here.mean_handover
    hours = f"{other.measured.config.handover_window_hours:g}"
    queue = (
        f"no ambulance arrivals in the last {hours} h (no queue)"
        if theirs is None
        else f"mean handover {theirs:.0f} min against {ours or 0:.0f} min here"
    )
    return Suggestion(
        site=other.code,
        name=other.name,
        distance_km=distance,
        level=other.level,
        available_beds=other.measured.available_beds,
        mean_handover_minutes=theirs,
        reasons=[
            f"{distance:.1f} km away (within {divert.max_distance_km:g} km)",
            f"at OPEL {other.level}, lower than OPEL {here.level} here",
            f"{other.measured.available_beds} G&A bed(s) available now",
            queue,
        ],
    )
