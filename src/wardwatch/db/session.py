"""Engines, sessions and the one transaction helper every service writes through."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Column, Engine, Table, bindparam, create_engine, event, inspect, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import ColumnProperty, InstanceState, Mapper, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Update

from wardwatch.core import fastjson
from wardwatch.core.actor import Actor
from wardwatch.core.bus import Bus
from wardwatch.core.errors import ConcurrentChange
from wardwatch.core.events import DomainEvent
from wardwatch.db.audit import AuditEntry
from wardwatch.db.eventlog import EventRecord, domain_event

log = logging.getLogger(__name__)

#: PostgreSQL: serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

#: Called for every event recorded in a transaction, inside that transaction, before it
#: commits. Reactors let one domain follow another's events atomically (a discharge and its
#: cleaning task commit together or not at all) without importing it. A reactor may record
#: further events; they are offered to every reactor in turn.
Reactor = Callable[["Tx", EventRecord], None]

#: A guard against reactors that keep answering each other's events.
MAX_REACTIONS = 10_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with sane settings for each backend (SQLite: WAL, foreign keys, busy wait)."""
    # JSON columns are read by orjson (the plans, thresholds and recent totals an ingest
    # batch loads with its enrolments; the event log).
    kwargs.setdefault("json_deserializer", fastjson.loads)
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        else:
            path = url.split("///", 1)[1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself so that BEGIN IMMEDIATE serialises writers.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the lock up front, so two writers queue instead of deadlocking.
            immediate = conn.get_execution_options().get("wardwatch_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@dataclass
class Tx:
    """An open transaction: the session, and the events to publish once it commits."""

    session: Session
    _pending: list[tuple[EventRecord, str | None, str | None]] = field(default_factory=list)
    #: Work to do just before the commit, once per key (e.g. applying summed counters).
    before_commit: dict[str, Callable[[Session], None]] = field(default_factory=dict)
    #: Room for those hooks' state, by key: containers (a Counter, a list, a dict, a set)
    #: that a :meth:`Database.step` puts back as they were when it rolls back, in place (the
    #: hooks hold them), so a failed step leaves no work planned.
    scratch: dict[str, Any] = field(default_factory=dict)
    #: Work to do once the transaction has committed (e.g. waking a delivery worker), by key.
    #: Never run if it rolls back; an exception in one is logged, not raised.
    after_commit: dict[str, Callable[[], None]] = field(default_factory=dict)
    #: How many of the pending events the reactors have seen.
    _reacted: int = 0

    def record(
        self,
        type: str,
        *,
        at: datetime,
        actor: Actor,
        site_id: str | None = None,
        site_code: str | None = None,
        ward_id: str | None = None,
        ward_code: str | None = None,
        bed_id: str | None = None,
        stay_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Append an event to the log, in this transaction."""
        rec = EventRecord(
            at=at,
            type=type,
            actor=actor.label,
            site_id=site_id,
            ward_id=ward_id,
            bed_id=bed_id,
            stay_id=stay_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=data,
        )
        self.session.add(rec)
        self._pending.append((rec, site_code, ward_code))
        return rec

    def audit(
        self,
        *,
        at: datetime,
        actor: Actor,
        action: str,
        resource: str,
        ids: list[str],
        detail: str | None = None,
    ) -> None:
        """Record who read or changed patient data, in this transaction."""
        self.session.add(
            AuditEntry(
                at=at,
                actor=actor.label,
                action=action,
                resource=resource,
                resource_ids=",".join(ids),
                detail=detail,
            )
        )

    def codes_for(self, record: EventRecord) -> tuple[str | None, str | None]:
        """The (site code, ward code) an event recorded in this transaction was given."""
        for rec, site, ward in self._pending:
            if rec is record:
                return site, ward
        return None, None

    def _events(self) -> list[DomainEvent]:
        return [
            domain_event(rec, site_code=site, ward_code=ward) for rec, site, ward in self._pending
        ]


#: A look-ahead: before a feed applies a batch, a domain reads in one statement which of the
#: batch's patients and beds have nothing of its own open (no pending move, no open task...)
#: and notes them with :func:`note_absent` (see :meth:`Database.look_ahead`).
LookAhead = Callable[[Tx, frozenset[str], frozenset[str]], None]
_ABSENT = "wardwatch.absent."


def absent(session: Session, kind: str) -> AbstractSet[str]:
    """The keys a look-ahead of this transaction found to have no ``kind`` rows (an empty
    set when none ran): a domain may skip its query for them. Kept in ``Session.info``, so a
    step rolled back forgets what it changed."""
    return session.info.get(_ABSENT + kind) or frozenset()


def note_absent(session: Session, kind: str, keys: AbstractSet[str]) -> None:
    session.info.setdefault(_ABSENT + kind, set()).update(keys)


def now_present(session: Session, kind: str, key: str | None) -> None:
    """This transaction made a ``kind`` row for ``key``: it is no longer known to have none.
    Every place that makes (or reopens) one must say so."""
    found = session.info.get(_ABSENT + kind)
    if found is not None and key is not None:
        found.discard(key)


#: For each kind of row ("patient"), the kinds of :func:`absent` a row of it made in this
#: transaction has none of (registered with :func:`none_when_made`).
_NONE_WHEN_MADE: dict[str, set[str]] = {}


def none_when_made(what: str, kind: str) -> None:
    """Register that a ``what`` row made in a transaction has no ``kind`` rows until the same
    transaction makes one (and says so with :func:`now_present`): no other transaction can
    name a row it cannot see yet. Called once, where ``kind`` is defined."""
    _NONE_WHEN_MADE.setdefault(what, set()).add(kind)


def made(session: Session, what: str, key: str) -> None:
    """This transaction made a new ``what`` row: note it absent from every kind registered
    for it (:func:`none_when_made`), so that no domain asks the database about it."""
    for kind in _NONE_WHEN_MADE.get(what, ()):
        note_absent(session, kind, {key})


def _is_container(value: object) -> bool:
    return isinstance(value, (dict, list, set))


def _restore(work: Any, before: Any) -> None:
    """Put a scratch container back as it was (``before``: its copy; None: it was new)."""
    work.clear()
    if before is None:
        return
    if isinstance(work, list):
        work.extend(before)
    else:
        work.update(before)


def _changed_columns(state: InstanceState[Any]) -> dict[str, Any] | None:
    """The column attributes ``state`` changed, with their new values; None if it changed
    anything a grouped UPDATE leaves to the ORM (a relationship, a foreign key)."""
    mapper = state.mapper
    changed: dict[str, Any] = {}
    # The attributes set since the row was read, with the values they were read with.
    for key, was in state.committed_state.items():
        if key not in state.dict:
            return None
        now = state.dict[key]
        if was is now or was == now:
            continue  # set to what it was
        prop = mapper.attrs[key]
        if not isinstance(prop, ColumnProperty):
            return None
        if len(prop.columns) != 1 or prop.columns[0].foreign_keys:
            return None
        changed[key] = state.dict[key]
    return changed


#: The grouped UPDATE statements built so far, by kind of row and columns changed.
_GROUPED: dict[tuple[Mapper[Any], tuple[str, ...]], Update] = {}


def _grouped_update(mapper: Mapper[Any], version: Column[Any], keys: tuple[str, ...]) -> Update:
    """UPDATE one row of ``mapper``'s table: the columns ``keys``, the next version, where
    the id and the version seen match (bound as ``_id``, ``_seen``, ``_next``, ``_<key>``)."""
    (pk,) = mapper.primary_key
    values: dict[Any, Any] = {mapper.get_property(k).columns[0]: bindparam("_" + k) for k in keys}
    values[version] = bindparam("_next")
    return (
        update(cast(Table, mapper.local_table))
        .where(pk == bindparam("_id"), version == bindparam("_seen"))
        .values(values)
    )


def _group_versioned_updates(session: Session, _context: object, _objects: object) -> None:
    """Before a flush: rows of a version-checked kind (beds, tasks) changed in the same
    columns are written by one UPDATE a kind and column set, executed for all of them at
    once, instead of one statement each (the ORM never groups updates it version-checks).
    Each still matches only the version it was read at, so a row someone else changed
    meanwhile fails the flush with ``StaleDataError``, as the ORM's own would; the rows
    written are then marked clean, and the ORM flushes the rest.

    Only outside savepoints: a savepoint rolled back would not undo that marking, while a
    transaction that fails at its top level is abandoned whole (``Database.transaction``)."""
    if session.in_nested_transaction() or session.deleted:
        return
    groups: dict[tuple[Mapper[Any], tuple[str, ...]], list[tuple[Any, dict[str, Any]]]] = {}
    for obj in session.dirty:
        state = inspect(obj)
        mapper = state.mapper
        if mapper.version_id_col is None or not callable(mapper.version_id_generator):
            continue  # not version-checked, or versions the code sets itself
        if mapper.get_property_by_column(mapper.version_id_col).key not in state.dict:
            continue  # the version seen is not at hand (expired): the ORM reads it
        changed = _changed_columns(state)
        if changed:
            groups.setdefault((mapper, tuple(sorted(changed))), []).append((obj, changed))
    for (mapper, keys), rows in groups.items():
        if len(rows) < 2:
            continue  # the ORM writes one row as well
        version = cast(Column[Any], mapper.version_id_col)
        bump = cast(Callable[[Any], Any], mapper.version_id_generator)
        version_key = mapper.get_property_by_column(version).key
        rows.sort(key=lambda row: inspect(row[0]).identity)  # in key order, as the ORM
        params = []
        for obj, changed in rows:
            seen = inspect(obj).dict[version_key]
            row = {"_id": inspect(obj).identity[0], "_seen": seen, "_next": bump(seen)}
            row.update(("_" + k, v) for k, v in changed.items())
            params.append(row)
        stmt = _GROUPED.get((mapper, keys))
        if stmt is None:
            stmt = _GROUPED[(mapper, keys)] = _grouped_update(mapper, version, keys)
        matched = session.connection().execute(stmt, params).rowcount
        if matched != len(params):
            raise StaleDataError(
                f"{mapper.class_.__name__}: {len(params) - matched} of {len(params)} rows "
                "were changed by someone else since they were read"
            )
        for (obj, changed), row in zip(rows, params, strict=True):
            for key, value in changed.items():
                set_committed_value(obj, key, value)
            set_committed_value(obj, version_key, row["_next"])


class StepFailed(Exception):
    """A step without a savepoint failed (``Database.step(savepoint=False)``): what it did
    cannot be undone alone, so its transaction must be abandoned. ``error``: why it failed."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"a step failed without a savepoint: {error}")
        self.error = error


class Database:
    def __init__(self, engine: Engine, bus: Bus | None = None) -> None:
        self.engine = engine
        self.bus = bus
        self._factory = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._factory, "before_flush", _group_versioned_updates)
        self.reactors: list[Reactor] = []
        self.look_aheads: list[LookAhead] = []

    def react(self, reactor: Reactor) -> None:
        """Run ``reactor`` on every event recorded in every transaction, before it commits."""
        self.reactors.append(reactor)

    def prepare(self, look_ahead: LookAhead) -> None:
        """Run ``look_ahead`` when a feed is about to apply a batch (:meth:`look_ahead`)."""
        self.look_aheads.append(look_ahead)

    def look_ahead(self, tx: Tx, patient_ids: frozenset[str], bed_ids: frozenset[str]) -> None:
        """A batch is about to change these patients and beds (the beds locked): let each
        domain read, a statement for all of them, what it will need (see :func:`absent`)."""
        for prepare in self.look_aheads:
            prepare(tx, patient_ids, bed_ids)

    def _run_reactors(self, tx: Tx) -> None:
        """Offer every event not yet offered (and those the reactors record) to each reactor."""
        i = tx._reacted
        while i < len(tx._pending):
            if i >= MAX_REACTIONS:
                raise RuntimeError("reactors recorded too many events in one transaction")
            record = tx._pending[i][0]
            for reactor in self.reactors:
                reactor(tx, record)
            i += 1
            tx._reacted = i

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Commit on success, roll back on error; publish events only after the commit."""
        session = self._factory()
        session.connection(execution_options={"wardwatch_write": True})
        tx = Tx(session)
        try:
            yield tx
            if self.reactors:
                self._run_reactors(tx)
            for hook in tx.before_commit.values():
                hook(session)
            session.flush()
            events = tx._events()
            session.commit()
        except (IntegrityError, StaleDataError) as exc:
            session.rollback()
            raise ConcurrentChange(
                "the record was changed by someone else at the same moment; nothing was "
                "saved: reload and try again"
            ) from exc
        except DBAPIError as exc:
            session.rollback()
            if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
                raise ConcurrentChange(
                    "two changes to the same records met (a deadlock or serialisation "
                    "failure); nothing was saved: try again"
                ) from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        if self.bus is not None and events:
            self.bus.publish(events)
        for key, callback in tx.after_commit.items():
            try:
                callback()
            except Exception:
                log.exception("after-commit callback %s failed", key)

    @contextmanager
    def step(self, tx: Tx, *, savepoint: bool = True) -> Iterator[None]:
        """Part of ``tx`` that stands or falls alone (a savepoint), for a feed that applies
        several messages in one transaction (group commit).

        ``savepoint=False`` is the optimistic form, for a caller that starts ``tx`` over
        (with savepoints) when any step fails: the step's reactors still run at its end, so
        what happens is exactly what happens with a savepoint, without the two statements
        a savepoint costs; a step that fails leaves ``tx`` unusable (:class:`StepFailed`).

        At its end the reactors see its events, inside the savepoint; the before-commit work
        (counters, notifications) stays planned for the commit, so a batch does it once. On
        an error everything the step did is undone, its planned work included, and the error
        propagates, the rest of ``tx`` intact. A row that breaks a unique key (someone
        stored the same thing at the same moment) raises :class:`ConcurrentChange`.
        """
        if not savepoint:
            try:
                yield
                if self.reactors:
                    self._run_reactors(tx)
            except Exception as exc:
                raise StepFailed(exc) from exc
            return
        mark = len(tx._pending)
        planned = {key: copy.copy(work) for key, work in tx.scratch.items()}
        info = tx.session.info  # what look-ups remember (capacity/lookups.py), locks included
        remembered = {key: copy.copy(v) for key, v in info.items() if _is_container(v)}
        nested = tx.session.begin_nested()
        try:
            yield
            if self.reactors:
                self._run_reactors(tx)
            nested.commit()
        except BaseException as exc:
            nested.rollback()  # also after a failed flush, which leaves it inactive
            del tx._pending[mark:]
            tx._reacted = min(tx._reacted, mark)
            for key, work in tx.scratch.items():
                _restore(work, planned.get(key))
            # PostgreSQL releases the row locks taken inside a savepoint rolled back, and
            # the rows the step made are gone: forget what the step learnt.
            for key, value in info.items():
                if _is_container(value):
                    _restore(value, remembered.get(key))
            if isinstance(exc, (IntegrityError, StaleDataError)):
                raise ConcurrentChange(
                    "the record was changed by someone else at the same moment; nothing of "
                    "this step was kept"
                ) from exc
            raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closing it ends its transaction (nothing is flushed)."""
        session = self._factory(autoflush=False)
        try:
            yield session
        finally:
            session.close()
