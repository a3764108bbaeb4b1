"""The demo front door's rates: how many ambulances and ED patients, when, and how long
their handovers take as a site fills. Pure functions and numbers, no services (the
simulation that uses them is :mod:`wardwatch.demo.frontdoor`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wardwatch.demo.generator import WardPlan

#: Relative arrivals by local hour (0-23); scaled to average 1 over a day when used.
AMBULANCE_BY_HOUR = [0.6, 0.5, 0.45, 0.4, 0.4, 0.45, 0.55, 0.75, 0.95, 1.2, 1.4, 1.5]
AMBULANCE_BY_HOUR += [1.5, 1.45, 1.4, 1.35, 1.3, 1.25, 1.15, 1.05, 0.95, 0.85, 0.75, 0.65]
WALK_IN_BY_HOUR = [0.45, 0.35, 0.25, 0.2, 0.2, 0.25, 0.4, 0.7, 1.2, 1.55, 1.6, 1.55]
WALK_IN_BY_HOUR += [1.45, 1.4, 1.35, 1.35, 1.35, 1.35, 1.3, 1.25, 1.1, 0.9, 0.7, 0.55]
#: Categories of the patients conveyed (C1 life-threatening ... C4 less urgent).
CATEGORIES = ["C1", "C2", "C3", "C4"]
CATEGORY_WEIGHTS = [10, 58, 28, 4]
#: Specialties the ED does not admit to (they have their own front doors).
NOT_FROM_ED = frozenset(
    {"maternity", "neonatology", "paediatrics", "critical care", "elective orthopaedics"}
)


@dataclass(frozen=True, slots=True)
class Config:
    """Rates and shares of the simulated front door (the defaults are the demo's).

    0.125 conveyances a bed a day: a hospital of ~500-870 beds sees ~60-110 ambulances a
    day. Walk-ins twice that (ED attendances ~3x ambulance arrivals). Half of those brought
    by ambulance are admitted and 15% of walk-ins (~27% overall: England's major EDs admit
    ~25-30%). Non-admitted stays: median 2.5 h, sigma 0.6 (~78% within 4 h, the 2024
    target being 76%; ~0.5% past 12 h).
    """

    ambulances_per_bed_day: float = 0.125
    walk_ins_per_ambulance: float = 2.0
    admit_by_ambulance: float = 0.5
    admit_walk_in: float = 0.15
    pre_alert_c2: float = 0.2
    dta_hours: tuple[float, float] = (2.0, 5.0)
    stay_median_hours: float = 2.5
    stay_sigma: float = 0.6


def pressure(occupancy: float | None) -> float:
    """0 at 85% G&A occupancy or less (Bagust: shortages start past ~85%), 1 from 98%."""
    return 0.0 if occupancy is None else min(1.0, max(0.0, (occupancy - 0.85) / 0.13))


def handover_minutes(occupancy: float | None, z: float) -> float:
    """Arrival to handover for a crew whose luck is the standard normal draw ``z``.

    Log-normal: median 12 min, sigma 0.4 at 85% or less (~70% within 15 min, ~1% over 30);
    ~20 min at the demo's ~93% (a fifth over 30, ~2% over 60; winter 2022 saw ~40% over
    30); 32 min, sigma 0.65 when full (half over 30, a sixth over 60).
    """
    p = pressure(occupancy)
    median, sigma = 12.0 + 20.0 * p * p, 0.4 + 0.25 * p
    return min(360.0, max(4.0, median * math.exp(sigma * z)))


def acute_beds(plans: Sequence[WardPlan]) -> dict[str, int]:
    """Open beds per acute site (what its front door's rates scale with)."""
    beds: dict[str, int] = {}
    for p in plans:
        if p.site_kind == "acute" and p.site:
            beds[p.site] = beds.get(p.site, 0) + p.beds
    return beds


def ed_plans(plans: Sequence[WardPlan], site: str) -> list[WardPlan]:
    """The wards of ``site`` its ED admits to."""
    ok = [p for p in plans if p.site == site and p.site_kind == "acute"]
    return sorted((p for p in ok if p.specialty not in NOT_FROM_ED), key=lambda p: p.code)


def admissions_per_day(beds: int, config: Config) -> float:
    """Expected decisions to admit a day in the ED of a site of ``beds`` open beds."""
    ambulances = beds * config.ambulances_per_bed_day
    walk_ins = ambulances * config.walk_ins_per_ambulance
    return ambulances * config.admit_by_ambulance + walk_ins * config.admit_walk_in


def ed_shares(plans: Sequence[WardPlan], config: Config | None = None) -> dict[str, float]:
    """Ward code → the share of its acute admissions that arrive as ED decisions to admit
    (the generator queues only the rest, so occupancy stays where it was)."""
    config = config or Config()
    out: dict[str, float] = {}
    for site, beds in acute_beds(plans).items():
        eligible = ed_plans(plans, site)
        demand = sum(p.admissions_per_day for p in eligible)
        if demand > 0:
            share = min(1.0, admissions_per_day(beds, config) / demand)
            out.update({p.code: share for p in eligible})
    return out
