"""Writing and reading NEWS2 scores (Core, in bulk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from wardwatch.virtualward.models import Score


def insert_scores(s: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows``; their new ids, in the same order."""
    stmt = insert(Score).returning(Score.id, sort_by_parameter_order=True)
    return list(s.scalars(stmt, list(rows)))
