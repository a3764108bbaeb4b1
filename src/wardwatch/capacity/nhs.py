"""NHS number validation (10 digits, modulus 11 check digit)."""

from __future__ import annotations

import re

_TEN_DIGITS = re.compile(r"[0-9]{10}")


def normalise_nhs_number(value: str) -> str:
    """Strip the spaces and dashes people type (``943 476 5919``)."""
    return value.replace(" ", "").replace("-", "")


def nhs_number_problem(value: str) -> str | None:
    """Why ``value`` is not a valid NHS number, or None when it is."""
    digits = normalise_nhs_number(value)
    if not _TEN_DIGITS.fullmatch(digits):  # ASCII only (str.isdigit accepts other scripts)
        return "an NHS number has exactly 10 digits (0-9)"
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10:
        return "not a valid NHS number (no check digit can make it valid)"
    if check != int(digits[9]):
        return "not a valid NHS number (check digit does not match)"
    return None
