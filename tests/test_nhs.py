from __future__ import annotations

import pytest

from wardwatch.capacity.nhs import nhs_number_problem


def _with_check_digit(nine: str) -> str | None:
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return None if check == 10 else nine + str(0 if check == 11 else check)


@pytest.mark.parametrize("number", ["9434765919", "943 476 5919", "943-476-5919", "4010232137"])
def test_valid_numbers(number: str) -> None:
    assert nhs_number_problem(number) is None


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("9434765918", "check digit does not match"),
        ("943476591", "exactly 10 digits"),
        ("94347659190", "exactly 10 digits"),
        ("94347A5919", "exactly 10 digits"),
        ("", "exactly 10 digits"),
    ],
)
def test_invalid_numbers(number: str, why: str) -> None:
    assert why in (nhs_number_problem(number) or "")


def test_remainder_ten_is_never_valid() -> None:
    # Find nine digits whose check digit would be 10; no tenth digit can make them valid.
    nine = next(
        f"{n:09d}" for n in range(100000000, 100001000) if _with_check_digit(f"{n:09d}") is None
    )
    for last in "0123456789":
        assert "no check digit" in (nhs_number_problem(nine + last) or "")


def test_check_digit_eleven_becomes_zero() -> None:
    nine = next(
        f"{n:09d}"
        for n in range(100000000, 100001000)
        if sum(int(d) * w for d, w in zip(f"{n:09d}", range(10, 1, -1), strict=True)) % 11 == 0
    )
    assert nhs_number_problem(nine + "0") is None
