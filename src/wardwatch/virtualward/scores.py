"""Writing NEWS2 scores in bulk."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

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
_NAMES = ", ".join(name for name, _ in _COLUMNS)
_ARRAYS = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _COLUMNS)
#: One statement per batch on PostgreSQL (arrays expanded by unnest); the ids come back with
#: their enrolment, so the order RETURNING happens to use does not matter.
PG_SCORES = text(
    f"INSERT INTO vw_scores ({_NAMES}) SELECT * FROM unnest({_ARRAYS})"  # noqa: S608
    " RETURNING enrolment_id, id"
)


def insert_scores(s: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (at most one per enrolment); their new ids, in the same order."""
    if s.get_bind().dialect.name == "postgresql":
        arrays: dict[str, Any] = {name: [r[name] for r in rows] for name, _ in _COLUMNS}
        arrays["detail"] = [json.dumps(r["detail"]) for r in rows]
        ids: dict[str, int] = {e: i for e, i in s.execute(PG_SCORES, arrays)}
        return [int(ids[r["enrolment_id"]]) for r in rows]
    stmt = insert(Score).returning(Score.id, sort_by_parameter_order=True)
    return list(s.scalars(stmt, list(rows)))
