"""The ingest batch's bulk statements, one per table, for PostgreSQL and SQLite.

The batch path uses Core statements (multi-row inserts, upserts, one query per table) rather
than the ORM, so thousands of readings a second stay cheap. Kept apart from
:mod:`wardwatch.virtualward.ingest` so the ingest steps read as steps, and the dialect
differences sit in one place.

PostgreSQL: each batch is one statement whatever its size, its rows passed as one JSON
parameter and expanded by json_to_recordset(); compiled once, one round trip, and several
times faster than multi-row VALUES or executemany. SQLite takes the executemany path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from wardwatch.core import fastjson
from wardwatch.virtualward.models import Device, Enrolment, Latest, Reading

READING_COLUMNS = (
    ("key", "text"),
    ("enrolment_id", "text"),
    ("parameter", "text"),
    ("value", "float8"),
    ("text_value", "text"),
    ("at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("source", "text"),
    ("device", "text"),
)
LATEST_COLUMNS = READING_COLUMNS[1:6]


def insert_from_json(table: str, columns: Sequence[tuple[str, str]]) -> str:
    """INSERT of a JSON array of rows: one text parameter, dumped by orjson and
    read by PostgreSQL's C parser (array parameters are dumped element by element in Python)."""
    names = ", ".join(name for name, _ in columns)
    shape = ", ".join(f"{name} {kind}" for name, kind in columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({shape})"
    )


PG_READINGS = text(
    insert_from_json("vw_readings", READING_COLUMNS)
    + " ON CONFLICT (key) DO NOTHING RETURNING key, id"
)
PG_LATEST = text(
    insert_from_json("vw_latest", LATEST_COLUMNS)
    + " ON CONFLICT (enrolment_id, parameter) DO UPDATE SET value = excluded.value,"
    " text_value = excluded.text_value, at = excluded.at WHERE excluded.at >= vw_latest.at"
)


PG_ENROLMENTS = text(
    "UPDATE vw_enrolments AS e SET last_score_id = u.score, last_score_at = u.at,"
    " last_reading_at = u.at, last_total = u.total, last_partial_total = u.partial,"
    " last_risk = u.risk, recent_totals = u.recent"
    " FROM unnest(CAST(:b_id AS text[]), CAST(:b_score AS bigint[]),"
    " CAST(:b_at AS timestamptz[]), CAST(:b_total AS int[]), CAST(:b_partial AS int[]),"
    " CAST(:b_risk AS text[]), CAST(:b_recent AS json[]))"
    " AS u(id, score, at, total, partial, risk, recent) WHERE e.id = u.id"
)


def as_arrays(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, list[Any]]:
    """Rows turned into one list per key: the array parameters of an ``unnest`` statement."""
    return {key: [r[key] for r in rows] for key in keys}


def _enrolment_arrays(updates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    arrays: dict[str, Any] = as_arrays(
        updates, ("b_id", "b_score", "b_at", "b_total", "b_partial", "b_risk")
    )
    arrays["b_recent"] = [fastjson.dumps(u["b_recent"]) for u in updates]
    return arrays


def json_rows(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """``rows`` as the one JSON parameter of an :func:`insert_from_json` statement (keys other than
    ``columns`` are ignored by ``json_to_recordset``; times become ISO 8601 with their zone)."""
    missing = {name for name, _ in columns} - set(rows[0]) if rows else set()
    if missing:
        raise ValueError(f"rows lack {sorted(missing)}")
    return {"rows": fastjson.dumps(rows)}


def _postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def table(model: Any) -> Table:
    """The Core table of an ORM class (for executemany updates by a non-key column)."""
    return cast(Table, model.__table__)


# --- the statements the ingest batch runs -----------------------------------------------


def insert_readings(s: Session, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert reading rows (one per key) unless their key is already stored; the keys that
    were new, with their ids, so a resend is told apart from a first delivery."""
    if _postgres(s):
        found = s.execute(PG_READINGS, json_rows(rows, READING_COLUMNS))
    else:
        found = s.execute(
            sqlite.insert(Reading)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(Reading.key, Reading.id),
            rows,
        )
    return {key: int(rid) for key, rid in found}


def upsert_latest(s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each (enrolment, parameter)'s newest value: a row older than the stored one (a late
    reading) leaves it alone."""
    if _postgres(s):
        s.execute(PG_LATEST, json_rows(rows, LATEST_COLUMNS))
        return
    stmt = sqlite.insert(Latest)
    stmt = stmt.on_conflict_do_update(
        index_elements=["enrolment_id", "parameter"],
        set_={
            "value": stmt.excluded.value,
            "text_value": stmt.excluded.text_value,
            "at": stmt.excluded.at,
        },
        where=stmt.excluded.at >= Latest.at,
    )
    s.execute(stmt, rows)


def update_enrolments(s: Session, updates: Sequence[Mapping[str, Any]]) -> None:
    """Each scored enrolment's latest score, risk and recent totals (``b_*`` keys)."""
    if _postgres(s):
        s.execute(PG_ENROLMENTS, _enrolment_arrays(updates))
        return
    enrolments_t = table(Enrolment)
    s.connection().execute(
        update(enrolments_t)
        .where(enrolments_t.c.id == bindparam("b_id"))
        .values(
            last_score_id=bindparam("b_score"),
            last_score_at=bindparam("b_at"),
            last_reading_at=bindparam("b_at"),
            last_total=bindparam("b_total"),
            last_partial_total=bindparam("b_partial"),
            last_risk=bindparam("b_risk"),
            recent_totals=bindparam("b_recent", type_=enrolments_t.c.recent_totals.type),
        ),
        updates,
    )


PG_SEEN = text(
    "UPDATE vw_devices AS d SET last_seen_at = u.at"
    " FROM unnest(CAST(:b_serial AS text[]), CAST(:b_at AS timestamptz[])) AS u(serial, at)"
    " WHERE d.serial = u.serial AND (d.last_seen_at IS NULL OR d.last_seen_at < u.at)"
)


def mark_seen(s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Devices' last-seen times (``b_serial``, ``b_at``; one row per serial), never moved
    backwards. PostgreSQL: one statement for the batch, the rows as two arrays."""
    if _postgres(s):
        s.execute(PG_SEEN, as_arrays(rows, ("b_serial", "b_at")))
        return
    devices = table(Device)
    s.connection().execute(
        update(devices)
        .where(devices.c.serial == bindparam("b_serial"))
        .where(devices.c.last_seen_at.is_(None) | (devices.c.last_seen_at < bindparam("b_at")))
        .values(last_seen_at=bindparam("b_at")),
        rows,
    )


def set_batteries(s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Devices' battery levels (``b_serial``, ``b_pct``, ``b_at``); an older report than the
    one stored is ignored."""
    devices = table(Device)
    s.connection().execute(
        update(devices)
        .where(devices.c.serial == bindparam("b_serial"))
        .where(devices.c.battery_at.is_(None) | (devices.c.battery_at <= bindparam("b_at")))
        .values(battery_pct=bindparam("b_pct"), battery_at=bindparam("b_at")),
        rows,
    )
