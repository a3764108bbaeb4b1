"""Bed counts per ward and state, kept in step with the beds in the same transaction.

A system-wide snapshot reads these few thousand rows instead of grouping every bed, which
keeps it fast at national scale (100,000 beds). Each transaction sums its changes and
applies them just before it commits, in a fixed key order (so two transactions touching the
same counters cannot deadlock). :func:`recount` rebuilds them from the beds;
:func:`drift` says where they disagree (``wardwatch db check``).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Integer, String, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from wardwatch.capacity.models import Bed, Ward
from wardwatch.db.base import Base
from wardwatch.db.session import Tx

KEY = "capacity.bed_counts"


class WardStateCount(Base):
    __tablename__ = "ward_state_counts"

    ward_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    beds: Mapped[int] = mapped_column(Integer, default=0)


def add(tx: Tx, ward_id: str, state: str, delta: int) -> None:
    """Count ``delta`` beds into (ward, state) when ``tx`` commits."""
    deltas: Counter[tuple[str, str]] = tx.scratch.setdefault(KEY, Counter())
    deltas[(ward_id, state)] += delta
    if KEY not in tx.before_commit:
        tx.before_commit[KEY] = lambda session: _apply(session, deltas)


def _apply(session: Session, deltas: Counter[tuple[str, str]]) -> None:
    """One upsert for every changed counter, in key order (so two transactions touching the
    same counters take their row locks in the same order and cannot deadlock)."""
    values = [
        {"ward_id": ward_id, "state": state, "beds": delta}
        for (ward_id, state), delta in sorted(deltas.items())
        if delta != 0
    ]
    deltas.clear()
    if not values:
        return
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = make(WardStateCount)
    upsert = stmt.on_conflict_do_update(
        index_elements=["ward_id", "state"],
        set_={"beds": WardStateCount.beds + stmt.excluded.beds},
    )
    # Core, with the rows as parameters: compiled once for all (a VALUES list of its own
    # would be compiled again for every transaction); the rows still go in key order.
    session.connection().execute(upsert, values)


def rows(session: Session) -> list[tuple[str, str, int]]:
    """(ward id, state, beds) for every non-empty counter."""
    result = session.execute(
        select(WardStateCount.ward_id, WardStateCount.state, WardStateCount.beds).where(
            WardStateCount.beds != 0
        )
    )
    return [(w, st, int(n)) for w, st, n in result]


def group_rows(session: Session) -> list[tuple[str, str, bool, str, int]]:
    """(site id, ward kind, general & acute, state, beds), summed in the database."""
    result = session.execute(
        select(
            Ward.site_id,
            Ward.kind,
            Ward.general_acute,
            WardStateCount.state,
            func.sum(WardStateCount.beds),
        )
        .join(Ward, Ward.id == WardStateCount.ward_id)
        .group_by(Ward.site_id, Ward.kind, Ward.general_acute, WardStateCount.state)
    )
    return [(site, kind, bool(ga), state, int(n)) for site, kind, ga, state, n in result if n]


def grouped(session: Session) -> list[tuple[str, str, int]]:
    """The same figures counted from the beds themselves (slower; the reference)."""
    result = session.execute(
        select(Bed.ward_id, Bed.state, func.count()).group_by(Bed.ward_id, Bed.state)
    )
    return [(w, st, int(n)) for w, st, n in result]


def drift(session: Session) -> dict[tuple[str, str], tuple[int, int]]:
    """Where the counters disagree with the beds: {(ward, state): (counter, beds)}."""
    kept = {(w, st): n for w, st, n in rows(session)}
    real = {(w, st): n for w, st, n in grouped(session)}
    return {
        k: (kept.get(k, 0), real.get(k, 0))
        for k in kept.keys() | real.keys()
        if kept.get(k, 0) != real.get(k, 0)
    }


def recount(session: Session) -> None:
    """Rebuild every counter from the beds (after a bulk change made outside the services)."""
    session.execute(delete(WardStateCount))
    session.execute(
        insert(WardStateCount).from_select(
            ["ward_id", "state", "beds"],
            select(Bed.ward_id, Bed.state, func.count()).group_by(Bed.ward_id, Bed.state),
        )
    )
