"""Differential test of the HL7 batch path: random ADT streams, each applied one message at a
time (``Hl7Service.handle``, a transaction each) on one database and in random batches
(``Hl7Service.handle_batch``, group commit) on a twin database, must give the same answers
and leave the same board, stays, tasks, pending moves, event log, notifications and audit.

The streams are built to hit the awkward cases: messages that cannot be applied (unknown
patients, beds taken, bad bed statuses) between ones that can, late messages (older event
times), resends of earlier messages, cancellations, swaps and pending moves, several
messages for the same bed or patient in one batch. Any shortcut the batch path takes (and
it takes several, for speed) must never change an outcome.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tests.conftest import SMALL_SYSTEM, own_schema, postgres_url, sqlite_copy
from tests.hl7util import adt, pid, pv1
from wardwatch.capacity import counts, pending
from wardwatch.capacity.lookups import OPEN_STAYS, find_or_create_patient, find_patient, lock_beds
from wardwatch.capacity.models import Patient, Site, Stay
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.core.errors import WardWatchError
from wardwatch.db import migrate
from wardwatch.db.session import absent, make_engine, note_absent
from wardwatch.flow.schemas import BedRequestCreate
from wardwatch.flow.service import NO_REQUEST
from wardwatch.ingest.hl7v2.adt import NO_CLOCK
from wardwatch.ingest.hl7v2.parse import parse
from wardwatch.runtime import Runtime
from wardwatch.tasks.models import Task
from wardwatch.tasks.service import OPEN_CLEANING, QUIET_SITE

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FIRST = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
PATIENTS = [f"D{n}" for n in range(1, 6)]
BEDS = list(range(1, 7))  # ACU1-AMU has six
WARD = "ACU1-AMU"


def _ts(at: datetime) -> str:
    return at.strftime("%Y%m%d%H%M%S")


def _bed(n: int) -> str:
    return f"{WARD}^^{n}^ACU1"


def stream(seed: int, length: int) -> list[bytes]:
    """A random but reproducible ADT stream on one ward."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(length):
        if out and rng.random() < 0.06:  # a resend of an earlier message, byte for byte
            out.append(rng.choice(out))
            continue
        at = FIRST + timedelta(minutes=2 * i)
        if rng.random() < 0.1:  # a late message
            at -= timedelta(minutes=rng.randint(3, 60))
        ts, p, b = _ts(at), rng.choice(PATIENTS), rng.choice(BEDS)
        cid = f"S{seed}-{i}"
        event = rng.choices(
            ["A01", "A02", "A03", "A20", "A11", "A12", "A13", "A08", "A17", "A21", "A22",
             "A05", "A15", "A16", "A26", "A27"],
            weights=[14, 10, 10, 14, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 1, 1],
        )[0]  # fmt: skip
        if event == "A20":
            status = rng.choice("UUUHCIKO")
            out.append(adt(event, ts, f"NPU|{_bed(b)}|{status}", control_id=cid))
        elif event == "A17":
            q, c = rng.choice(PATIENTS), rng.choice(BEDS)
            segments = (pid(p, sex="U"), pv1(_bed(b)), pid(q, sex="U"), pv1(_bed(c)))
            out.append(adt(event, ts, *segments, control_id=cid))
        elif event in ("A05", "A15"):
            pending = pv1(_bed(b) if event == "A05" else "", pending=_bed(b))
            out.append(adt(event, ts, pid(p, sex="U"), pending, control_id=cid))
            if rng.random() < 0.5:  # and at once the move it announced (often one batch)
                done = "A01" if event == "A05" else "A02"
                then = adt(done, ts, pid(p, sex="U"), pv1(_bed(b)), control_id=f"{cid}+")
                out.append(then)
        else:
            out.append(adt(event, ts, pid(p, sex="U"), pv1(_bed(b)), control_id=cid))
    return out


def batches(seed: int, messages: list[bytes]) -> Iterator[list[bytes]]:
    rng = random.Random(seed * 7919)
    i = 0
    while i < len(messages):
        size = rng.randint(1, 10)
        yield messages[i : i + size]
        i += size


QUERIES = {
    "beds": "SELECT b.code, b.state, b.state_reason, p.local_id FROM beds b "
    "LEFT JOIN stays s ON s.id = b.stay_id LEFT JOIN patients p ON p.id = s.patient_id",
    "stays": "SELECT p.local_id, b.code, s.admitted_at, s.discharged_at, s.on_leave_since, "
    "s.expected_discharge_date, s.visit_number FROM stays s "
    "JOIN patients p ON p.id = s.patient_id JOIN beds b ON b.id = s.bed_id",
    "patients": "SELECT local_id, nhs_number, sex FROM patients",
    "tasks": "SELECT kind, type, bed_code, status, priority FROM tasks",
    "pending": "SELECT m.kind, m.status, p.local_id, b.code, m.reserved, m.expected_at "
    "FROM pending_moves m JOIN patients p ON p.id = m.patient_id "
    "LEFT JOIN beds b ON b.id = m.to_bed_id",
    "clocks": "SELECT p.local_id, c.last_event_at FROM hl7_patient_clocks c "
    "JOIN patients p ON p.id = c.patient_id",
    "messages": "SELECT control_id, status, ack_code, detail, error_location, attempts "
    "FROM hl7_messages",
    "notifications": "SELECT rule, channel, kind FROM notifications",
    "requests": "SELECT p.local_id, r.status, r.source, r.cancel_reason FROM bed_requests r "
    "JOIN patients p ON p.id = r.patient_id",
    "audit": "SELECT action, resource, detail FROM audit_log",
    "counts": "SELECT w.code, c.state, c.beds FROM ward_state_counts c "
    "JOIN wards w ON w.id = c.ward_id WHERE c.beds <> 0",
}
#: The event log in its order: what happened, to which bed, from and to what.
EVENTS = (
    "SELECT e.type, b.code, e.from_state, e.to_state, e.reason, e.at FROM event_log e "
    "LEFT JOIN beds b ON b.id = e.bed_id ORDER BY e.seq"
)


def snapshot(rt: Runtime) -> dict[str, Any]:
    with rt.engine.connect() as conn:
        got: dict[str, Any] = {
            name: sorted(tuple(map(str, row)) for row in conn.execute(text(sql)))
            for name, sql in QUERIES.items()
        }
        got["events"] = [tuple(map(str, row)) for row in conn.execute(text(EVENTS))]
    with rt.db.read() as s:
        assert counts.drift(s) == {}, "ward_state_counts drifted from the beds"
    return got


def ask_for_beds(rt: Runtime, seed: int) -> list[str]:
    """Bed requests for three of the stream's patients: a move for one in a bed, an
    admission for one who is not. What became of each asking."""
    said = []
    for local in random.Random(seed).sample(PATIENTS, 3):
        with rt.db.read() as s:
            stay = s.scalar(
                select(Stay.id)
                .join(Patient, Patient.id == Stay.patient_id)
                .where(Patient.local_id == local, Stay.discharged_at.is_(None))
            )
        who: dict[str, Any] = {"stay_id": stay} if stay else {"patient": {"local_id": local}}
        ask = BedRequestCreate.model_validate(
            {"site": "ACU1", "specialty": "general medicine", **who}
        )
        try:
            said.append(rt.flow.create(ask, SYSTEM).status)
        except WardWatchError as exc:
            said.append(type(exc).__name__)
    return said


@pytest.fixture
def twin(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A second, empty database of the same kind as the test's own."""
    if backend == "sqlite":
        engine = sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "twin.db")
        yield engine
        engine.dispose()
        return
    url = postgres_url()
    assert url is not None  # the backend fixture skipped otherwise
    with own_schema(url, "ww_twin") as schema_url:
        engine = make_engine(schema_url)
        try:
            migrate.upgrade(engine)
            yield engine
        finally:
            engine.dispose()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_batches_leave_what_one_by_one_leaves(
    small: Runtime, clock: ManualClock, twin: Engine, tmp_path: Path, seed: int
) -> None:
    twin_clock = ManualClock(clock.now())  # the time ``small`` was loaded at
    other = Runtime(settings=Settings(data_dir=tmp_path), clock=twin_clock, engine=twin)
    other.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    clock.set(NOW)
    twin_clock.set(NOW)
    messages = stream(seed, 90)
    first, second = messages[:40], messages[40:]

    alone = [small.hl7.handle(raw, source="t") for raw in first]
    together = [
        answer
        for batch in batches(seed, first)
        for answer in other.hl7.handle_batch([(raw, "t") for raw in batch])
    ]
    # Halfway, the control centre asks beds for some patients (in bed or not): the rest of
    # the stream must close those requests the same way (moved elsewhere, discharged).
    assert ask_for_beds(small, seed) == ask_for_beds(other, seed)
    alone += [small.hl7.handle(raw, source="t") for raw in second]
    together += [
        answer
        for batch in batches(seed, second)
        for answer in other.hl7.handle_batch([(raw, "t") for raw in batch])
    ]

    def outcome(answers: list[Any]) -> list[tuple[str, str, str]]:
        return [(a.ack_code, a.status, a.detail) for a in answers]

    assert outcome(together) == outcome(alone)
    codes = {a.ack_code for a in alone}
    assert {"AA", "AE"} <= codes, f"the stream should mix applied and refused: {codes}"
    statuses = {a.status for a in alone}
    assert {"accepted", "quarantined", "ignored"} <= statuses, statuses
    one, two = snapshot(small), snapshot(other)
    for part in one:
        assert two[part] == one[part], part


def test_what_a_look_ahead_notes_is_withdrawn_where_such_rows_are_made(small: Runtime) -> None:
    """Each "has none" note of a look-ahead is withdrawn, in the same transaction, by the
    code that makes such a row: a pending move, a cleaning task, a bed request, a task
    marked 'clean next'. (The differential test meets most of these inside batches; this
    checks each one directly.)"""
    beds = {b.code: b.id for b in small.capacity.list_beds(BedFilter(ward=WARD))}
    one, two = beds[f"{WARD}-01"], beds[f"{WARD}-02"]
    with small.db.transaction() as tx:
        s = tx.session
        patient = find_or_create_patient(s, PatientIn(local_id="LA1", sex="unknown"))
        # A patient made here has none of anything yet, before any look-ahead.
        for kind in (pending.NO_PENDING, NO_REQUEST, NO_CLOCK):
            assert patient.id in absent(s, kind), kind
        assert s.info[OPEN_STAYS] == {patient.id: None}
        feed = small.hl7._adt(tx, parse(adt("A08", "20261124100000")), "hl7-la1")
        feed.advance(patient, datetime(2026, 11, 24, 10, tzinfo=UTC))
        assert patient.id not in absent(s, NO_CLOCK) and feed._clock(patient.id) is not None
        site = s.scalar(select(Site.id).where(Site.code == "ACU1"))
        lock_beds(s, [one, two])
        small.db.look_ahead(tx, frozenset({patient.id}), frozenset({one, two}))
        pending.look_ahead(tx, frozenset({patient.id}), frozenset({one, two}))
        assert patient.id in absent(s, pending.NO_PENDING)
        assert {one, two} <= set(absent(s, pending.NOT_RESERVED))
        assert s.info[OPEN_CLEANING] == {one: (), two: ()} and site in absent(s, QUIET_SITE)

        small.hl7.moves.expect(tx, "admit", patient, SYSTEM, to_bed_id=one)
        assert patient.id not in absent(s, pending.NO_PENDING)
        assert one not in absent(s, pending.NOT_RESERVED) and two in absent(s, pending.NOT_RESERVED)

        small.tasks.create(
            tx, kind="cleaning", type_="standard", site_id=site, bed_id=two,
            actor=SYSTEM, cause="test", description="clean",
        )  # fmt: skip
        assert small.tasks.open_task_for_bed(s, two, "cleaning") is not None
        assert small.tasks.open_task_for_bed(s, one, "cleaning") is None

        ask = BedRequestCreate.model_validate(
            {"site": "ACU1", "specialty": "general medicine", "patient": {"local_id": "LA2"}}
        )
        small.flow.add(tx, ask, SYSTEM)
        asked = find_patient(s, PatientIn(local_id="LA2", sex="unknown"))
        assert asked is not None and asked.id not in absent(s, NO_REQUEST)
        assert patient.id in absent(s, NO_REQUEST)  # LA1 still has none
        assert site not in absent(s, QUIET_SITE)

    with small.db.transaction() as tx:  # and marking a task 'clean next' by hand
        s = tx.session
        small.db.look_ahead(tx, frozenset(), frozenset({two}))
        assert site not in absent(s, QUIET_SITE)  # a patient is waiting (LA2)
        note_absent(s, QUIET_SITE, {site})
        task = s.scalars(select(Task).where(Task.bed_id == two)).one()
        small.tasks.set_priority(tx, task, "clean_next", SYSTEM, "by hand", by_hand=True)
        assert site not in absent(s, QUIET_SITE)
