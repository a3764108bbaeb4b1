"""Version-checked rows changed alike are written by one grouped UPDATE (db/session.py
``_group_versioned_updates``), and keep every promise of the ORM's own version check: a
row someone changed since it was read fails the whole write, nothing of it kept. On SQLite
and PostgreSQL."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from wardwatch.capacity.models import Bed
from wardwatch.core.errors import ConcurrentChange
from wardwatch.runtime import Runtime

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@contextmanager
def statements(rt: Runtime) -> Iterator[Counter[str]]:
    """Count the SQL statements run, by their first words (``UPDATE beds``)."""
    seen: Counter[str] = Counter()

    def count(*args: Any) -> None:
        seen[" ".join(re.findall(r"\w+", str(args[2]))[:2])] += 1

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)


def ward_beds(rt: Runtime, n: int) -> list[str]:
    with rt.db.read() as s:
        return list(s.scalars(select(Bed.id).order_by(Bed.id).limit(n)))


def versions(rt: Runtime, ids: list[str]) -> dict[str, tuple[str | None, int]]:
    """Each bed's reason and version."""
    with rt.db.read() as s:
        rows = s.execute(select(Bed.id, Bed.state_reason, Bed.version).where(Bed.id.in_(ids)))
        return {i: (reason, v) for i, reason, v in rows}


def note(beds: list[Bed], reason: str) -> None:
    """A change that leaves the bed counters alone (the fixture checks them)."""
    for bed in beds:
        bed.state_reason, bed.state_since = reason, AT


def test_beds_changed_alike_are_one_update_and_their_versions_move_on(small: Runtime) -> None:
    ids = ward_beds(small, 3)
    before = versions(small, ids)
    with statements(small) as seen, small.db.transaction() as tx:
        beds = list(tx.session.scalars(select(Bed).where(Bed.id.in_(ids))))
        note(beds, "estates work")
        tx.session.flush()
        assert {b.version for b in beds} == {before[b.id][1] + 1 for b in beds}
        assert not tx.session.dirty  # written: the ORM has nothing left to write
    assert seen["UPDATE beds"] == 1
    assert versions(small, ids) == {i: ("estates work", v + 1) for i, (_, v) in before.items()}


def test_a_row_changed_by_someone_else_since_it_was_read_fails_the_whole_write(
    small: Runtime,
) -> None:
    ids = ward_beds(small, 3)
    before = versions(small, ids)
    with pytest.raises(ConcurrentChange), small.db.transaction() as tx:
        beds = list(tx.session.scalars(select(Bed).where(Bed.id.in_(ids))))
        # Someone moves the second bed on after it was read (here through the same
        # connection, as another writer would between our read and our write).
        tx.session.connection().execute(
            update(Bed).where(Bed.id == ids[1]).values(version=Bed.version + 1)
        )
        note(beds, "estates work")
    assert versions(small, ids) == before  # nothing of it kept


def test_inside_a_savepoint_the_orm_writes_each_row_itself(small: Runtime) -> None:
    """A savepoint rolled back must put the beds back as they were read: the ORM does
    that only for rows it wrote, so none is grouped there."""
    ids = ward_beds(small, 2)
    before = versions(small, ids)
    with statements(small) as seen, small.db.transaction() as tx:
        beds = list(tx.session.scalars(select(Bed).where(Bed.id.in_(ids))))
        with pytest.raises(RuntimeError), small.db.step(tx):
            note(beds, "undone")
            tx.session.flush()
            raise RuntimeError("undo it")
        assert [b.state_reason for b in beds] == [before[b.id][0] for b in beds]
    assert seen["UPDATE beds"] == 2
    assert versions(small, ids) == before


def test_rows_changed_differently_are_grouped_by_what_changed(small: Runtime) -> None:
    ids = ward_beds(small, 4)
    with statements(small) as seen, small.db.transaction() as tx:
        beds = list(tx.session.scalars(select(Bed).where(Bed.id.in_(ids)).order_by(Bed.id)))
        note(beds[:2], "estates work")
        for bed in beds[2:]:
            bed.state_reason = "noted"  # another set of columns: another statement
    assert seen["UPDATE beds"] == 2
    got = versions(small, ids)
    assert [got[i][0] for i in ids] == ["estates work"] * 2 + ["noted"] * 2


def test_a_row_whose_version_is_not_at_hand_is_left_to_the_orm(small: Runtime) -> None:
    """A row whose version attribute was expired is written by the ORM (which reads the
    version first); the others are still grouped, and every version moves on once."""
    ids = ward_beds(small, 3)
    before = versions(small, ids)
    with statements(small) as seen, small.db.transaction() as tx:
        beds = list(tx.session.scalars(select(Bed).where(Bed.id.in_(ids)).order_by(Bed.id)))
        tx.session.expire(beds[0], ["version"])
        note(beds, "estates work")
    assert seen["UPDATE beds"] == 2
    assert versions(small, ids) == {i: ("estates work", v + 1) for i, (_, v) in before.items()}
