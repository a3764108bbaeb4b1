"""The bed state machine: pure rules, no I/O.

States follow DOMAIN.md: an empty bed is not always an available bed. Patient moves (admit,
transfer, discharge) are the only way into or out of ``occupied``; every other change is a
manual transition from :data:`MANUAL_TRANSITIONS`.
"""

from __future__ import annotations

from enum import StrEnum


class BedState(StrEnum):
    OCCUPIED = "occupied"
    AWAITING_CLEAN = "awaiting_clean"
    CLEANING = "cleaning"
    AVAILABLE = "available"
    RESERVED = "reserved"
    BLOCKED = "blocked"
    CLOSED = "closed"


S = BedState

#: States a patient can be admitted or transferred into.
ADMITTABLE: frozenset[BedState] = frozenset({S.AVAILABLE, S.RESERVED})

#: Changes anyone with the right role may make directly (not patient moves).
MANUAL_TRANSITIONS: dict[BedState, frozenset[BedState]] = {
    S.AVAILABLE: frozenset({S.RESERVED, S.BLOCKED, S.CLOSED, S.AWAITING_CLEAN}),
    S.RESERVED: frozenset({S.AVAILABLE, S.BLOCKED}),
    S.AWAITING_CLEAN: frozenset({S.CLEANING, S.AVAILABLE, S.BLOCKED, S.CLOSED}),
    S.CLEANING: frozenset({S.AVAILABLE, S.AWAITING_CLEAN, S.BLOCKED}),
    S.BLOCKED: frozenset({S.AWAITING_CLEAN, S.AVAILABLE, S.CLOSED}),
    S.CLOSED: frozenset({S.AWAITING_CLEAN, S.AVAILABLE, S.BLOCKED}),
    S.OCCUPIED: frozenset(),
}

#: The subset of manual changes that belong to the cleaning loop (housekeeping may make them).
CLEANING_TRANSITIONS: frozenset[tuple[BedState, BedState]] = frozenset(
    {
        (S.AWAITING_CLEAN, S.CLEANING),
        (S.AWAITING_CLEAN, S.AVAILABLE),
        (S.CLEANING, S.AVAILABLE),
        (S.CLEANING, S.AWAITING_CLEAN),
    }
)

#: States that need a reason when entered by hand.
REASON_REQUIRED: frozenset[BedState] = frozenset({S.BLOCKED, S.CLOSED})

#: HL7 v2 table 0116 bed status for each state (used by the FHIR and HL7 faces).
HL7_0116: dict[BedState, str] = {
    S.OCCUPIED: "O",
    S.AWAITING_CLEAN: "H",
    S.CLEANING: "H",
    S.AVAILABLE: "U",
    S.RESERVED: "U",
    S.BLOCKED: "C",
    S.CLOSED: "C",
}


def check_manual(current: BedState, target: BedState, reason: str | None) -> str | None:
    """Why a manual change from ``current`` to ``target`` is refused, or None if it is legal."""
    if current == target:
        return f"bed is already {current.value}"
    if current == S.OCCUPIED:
        return "bed is occupied: discharge or transfer the patient first"
    if target == S.OCCUPIED:
        return "a bed becomes occupied only by admitting or transferring a patient into it"
    if target not in MANUAL_TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in MANUAL_TRANSITIONS[current]))
        return f"cannot go from {current.value} to {target.value} (allowed: {allowed})"
    if target in REASON_REQUIRED and not (reason and reason.strip()):
        return f"a reason is required to make a bed {target.value}"
    return None
