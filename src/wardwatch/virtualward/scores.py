"""Writing NEWS2 scores in bulk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from wardwatch.virtualward.bulk import insert_from_json, json_rows
from wardwatch.virtualward.models import Score

_COLUMNS = (
    ("enrolment_id", "text"),
    ("patient_id", "text"),
    ("at", "timestamptz"),
    ("oldest_at", "timestamptz"),
    ("computed_at", "timestamptz"),
    ("scale", "int"),
    ("total", "int"),
    ("partial_total", "int"),
    ("partial", "boolean"),
    ("risk", "text"),
    ("detail", "json"),
)
#: One statement per batch on PostgreSQL (rows as one JSON parameter, like the readings:
#: see virtualward/bulk.py); the ids come back with their enrolment, so the order RETURNING
#: happens to use does not matter.
PG_SCORES = text(insert_from_json("vw_scores", _COLUMNS) + " RETURNING enrolment_id, id")


def insert_scores(s: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (at most one per enrolment); their new ids, in the same order."""
    if s.get_bind().dialect.name == "postgresql":
        ids: dict[str, int] = {
            e: i for e, i in s.execute(PG_SCORES, json_rows(list(rows), _COLUMNS))
        }
        return [int(ids[r["enrolment_id"]]) for r in rows]
    stmt = insert(Score).returning(Score.id, sort_by_parameter_order=True)
    return list(s.scalars(stmt, list(rows)))
