"""The bed state machine as pure rules."""

from __future__ import annotations

import itertools

import pytest

from wardwatch.capacity.states import (
    MANUAL_TRANSITIONS,
    REASON_REQUIRED,
    BedState,
    check_manual,
)

S = BedState


def test_every_state_is_in_the_table() -> None:
    assert set(MANUAL_TRANSITIONS) == set(BedState)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(BedState, BedState)))
def test_check_manual_matches_the_table(current: BedState, target: BedState) -> None:
    problem = check_manual(current, target, reason="some reason")
    legal = target in MANUAL_TRANSITIONS[current] and current != target
    assert (problem is None) == legal, (current, target, problem)


def test_occupied_is_reached_and_left_only_by_patient_moves() -> None:
    assert all(S.OCCUPIED not in targets for targets in MANUAL_TRANSITIONS.values())
    assert MANUAL_TRANSITIONS[S.OCCUPIED] == frozenset()
    assert "discharge or transfer" in (check_manual(S.OCCUPIED, S.AVAILABLE, None) or "")
    assert "admitting" in (check_manual(S.AVAILABLE, S.OCCUPIED, None) or "")


def test_an_empty_bed_must_be_cleaned_before_it_is_reserved() -> None:
    assert check_manual(S.AWAITING_CLEAN, S.RESERVED, None) is not None
    assert check_manual(S.CLEANING, S.RESERVED, None) is not None


@pytest.mark.parametrize("target", sorted(REASON_REQUIRED))
def test_blocking_and_closing_need_a_reason(target: BedState) -> None:
    assert "reason is required" in (check_manual(S.AVAILABLE, target, None) or "")
    assert "reason is required" in (check_manual(S.AVAILABLE, target, "   ") or "")
    assert check_manual(S.AVAILABLE, target, "infection control") is None
