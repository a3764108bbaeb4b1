"""Which beds can take which patient, and why: pure rules shared by suggestions, allocation
and the "clean next" priority. No I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Need:
    specialty: str
    sex: str | None
    age_group: str
    isolation: bool


@dataclass(frozen=True, slots=True)
class Place:
    ward_code: str
    specialty: str
    ward_kind: str  # core|escalation
    age_group: str
    sex_policy: str  # mixed|male|female
    side_room: bool
    virtual: bool


def refusal(need: Need, place: Place) -> str | None:
    """Why this bed cannot take this patient at all, or None."""
    if place.virtual:
        return "a virtual-ward place, not a hospital bed"
    if place.age_group != need.age_group:
        return f"{place.ward_code} is a {place.age_group} ward; the patient is {need.age_group}"
    sexed = place.sex_policy in ("male", "female") and need.sex in ("male", "female")
    if sexed and place.sex_policy != need.sex:
        return f"{place.ward_code} is {place.sex_policy}-only (a mixed-sex breach)"
    if need.isolation and not place.side_room:
        return "the patient needs a side room"
    return None


def reasons(need: Need, place: Place) -> tuple[int, list[str]]:
    """A rank (lower is better) and the reasons, for a bed that can take the patient."""
    why: list[str] = []
    rank = 0
    if place.specialty.casefold() == need.specialty.casefold():
        why.append(f"{place.specialty} ward: the right specialty")
    else:
        rank += 10
        why.append(f"outlier: a {place.specialty} ward for a {need.specialty} patient")
    if place.ward_kind == "escalation":
        rank += 5
        why.append("escalation ward")
    if place.side_room:
        if need.isolation:
            why.append("side room, as isolation needs")
        else:
            rank += 1  # keep side rooms for those who need them
            why.append("side room (better kept for isolation)")
    return rank, why
