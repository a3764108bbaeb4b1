"""Group commit: several HL7 messages applied in one transaction, each in a savepoint.

``Hl7Service.handle_batch`` is what the MLLP listener calls with the messages waiting on all
its connections. These tests hold it to the promises of ``handle``: the same answers, the
same board, and a message that fails leaves no trace (no patient, event, task, notification
or counter of its own) while the others in its batch are kept. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.hl7util import ack_fields, adt, pid, pv1
from wardwatch.capacity.lookups import (
    LOCKED_BEDS,
    find_or_create_patient,
    find_patient,
    know_open_stays,
    know_patients,
    lock_bed,
    lock_beds,
    open_stay_of,
)
from wardwatch.capacity.models import Patient, Site
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.core.errors import ConcurrentChange, Conflict
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Tx
from wardwatch.ingest.hl7v2.models import Hl7Message
from wardwatch.ingest.hl7v2.service import TRIES
from wardwatch.notify.models import Notification
from wardwatch.runtime import Runtime
from wardwatch.tasks.models import Task

T0 = "20260105100000"


@pytest.fixture
def feed(small: Runtime, clock: ManualClock) -> Runtime:
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    return small


@contextmanager
def another_writer_files_first(rt: Runtime, local_id: str) -> Iterator[list[str]]:
    """While open, the first transaction about to write a new patient ``local_id`` is beaten
    to it: another connection commits the same patient just before (once). Yields the list
    that says it happened."""
    raced: list[str] = []

    def files_first(session: Session, *_: object) -> None:
        if raced or not any(isinstance(o, Patient) and o.local_id == local_id for o in session.new):
            return
        with Session(rt.engine) as other:
            other.add(Patient(id=new_id("pat"), local_id=local_id, sex="unknown"))
            other.commit()
        raced.append(local_id)

    event.listen(rt.db._factory, "before_flush", files_first)
    try:
        yield raced
    finally:
        event.remove(rt.db._factory, "before_flush", files_first)


def board(rt: Runtime, ward: str = "ACU1-AMU") -> dict[str, str]:
    return {b.code: b.state.value for b in rt.capacity.list_beds(BedFilter(ward=ward))}


def counted(rt: Runtime, model: type, *where: object) -> int:
    with rt.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def patients(rt: Runtime) -> set[str]:
    with rt.db.read() as s:
        return {p.local_id for p in s.scalars(select(Patient))}


def test_a_batch_answers_as_one_by_one_would_and_failures_leave_no_trace(feed: Runtime) -> None:
    first = adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1"), control_id="B-1")
    batch = [
        first,
        # Bed 1 is taken by then: refused after P2 was looked up (and would be created).
        adt("A01", "20260105100100", pid("P2"), pv1("ACU1-AMU^^1^ACU1"), control_id="B-2"),
        adt("A01", "20260105100200", pid("P3"), pv1("NOWHERE^^1^ACU1"), control_id="B-3"),
        b"this is not HL7",
        adt("A02", "20260105100300", pid("P1"), pv1("ACU1-AMU^^2^ACU1"), control_id="B-5"),
        first,  # resent within the batch: answered again, applied once
        adt("A03", "20260105100400", pid("P1"), pv1("ACU1-AMU^^2^ACU1"), control_id="B-7"),
        adt("A20", "20260105100500", "NPU|ACU1-AMU^^1^ACU1|U", control_id="B-8"),
        adt("A02", "20260105100600", pid("P9"), pv1("ACU1-AMU^^3^ACU1"), control_id="B-9"),
    ]
    answers = feed.hl7.handle_batch([(raw, "test") for raw in batch])

    codes = [a.ack_code for a in answers]
    assert codes == ["AA", "AE", "AE", "AR", "AA", "AA", "AA", "AA", "AE"]
    assert [ack_fields(a.ack)["control_id"] for a in answers][:3] == ["B-1", "B-2", "B-3"]
    assert "not applied again" in answers[5].detail
    assert [ack_fields(a.ack)["error"] for a in answers if a.ack_code == "AE"] == [
        "207",  # the bed is occupied (a domain refusal)
        "103",  # unknown location
        "204",  # unknown patient
    ]
    beds = board(feed)
    assert (beds["ACU1-AMU-01"], beds["ACU1-AMU-02"], beds["ACU1-AMU-03"]) == (
        "available",  # admitted, left by transfer, cleaned (A20 U)
        "awaiting_clean",  # transferred to, then discharged
        "available",
    )
    # The refused admission left no patient behind; the unknown patient was not created.
    assert patients(feed) == {"P1"}
    # Every message is kept once with what became of it.
    with feed.db.read() as s:
        kept = {m.control_id: (m.status, m.ack_code) for m in s.scalars(select(Hl7Message))}
    assert kept == {
        "B-1": ("accepted", "AA"),
        "B-2": ("quarantined", "AE"),
        "B-3": ("quarantined", "AE"),
        None: ("quarantined", "AR"),
        "B-5": ("accepted", "AA"),
        "B-7": ("accepted", "AA"),
        "B-8": ("accepted", "AA"),
        "B-9": ("quarantined", "AE"),
    }
    # Bed 1's clean was asked for by the transfer and finished by the A20; bed 2's is open.
    with feed.db.read() as s:
        tasks = {(t.bed_code, t.status) for t in s.scalars(select(Task))}
    assert tasks == {("ACU1-AMU-01", "done"), ("ACU1-AMU-02", "requested")}
    # Only the applied messages' events are in the log (no trace of B-2's attempt).
    assert counted(feed, EventRecord, EventRecord.type == "stay.admitted") == 1
    assert counted(feed, EventRecord, EventRecord.type == "stay.transferred_in") == 1
    assert counted(feed, EventRecord, EventRecord.type == "stay.discharged") == 1
    # (and the rt fixture checks the ward counters still agree with the beds)


def test_a_batch_matches_the_same_messages_sent_one_by_one(
    small: Runtime, clock: ManualClock
) -> None:
    """The same story on two wards: one by one on AMU, as one batch on F1."""
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))

    def story(ward: str, tag: str) -> list[bytes]:
        return [
            adt("A01", T0, pid(f"{tag}1"), pv1(f"{ward}^^1^ACU1"), control_id=f"{tag}-1"),
            adt("A01", T0, pid(f"{tag}2"), pv1(f"{ward}^^1^ACU1"), control_id=f"{tag}-2"),
            adt("A01", T0, pid(f"{tag}3"), pv1(f"{ward}^^3^ACU1"), control_id=f"{tag}-3"),
            adt(
                "A02",
                "20260105100500",
                pid(f"{tag}1"),
                pv1(f"{ward}^^2^ACU1"),
                control_id=f"{tag}-4",
            ),
            adt("A03", "20260105101000", pid(f"{tag}3"), pv1(f"{ward}^^3^ACU1")),
            adt("A20", "20260105101500", f"NPU|{ward}^^3^ACU1|C"),
            adt("A11", "20260105102000", pid(f"{tag}1"), pv1(f"{ward}^^2^ACU1")),
        ]

    alone = [small.hl7.handle(raw, source="t").ack_code for raw in story("ACU1-AMU", "A")]
    together = [
        a.ack_code for a in small.hl7.handle_batch([(r, "t") for r in story("ACU1-F1", "F")])
    ]
    assert together == alone
    amu, f1 = board(small, "ACU1-AMU"), board(small, "ACU1-F1")
    first_four = [amu[f"ACU1-AMU-0{n}"] for n in range(1, 5)]
    assert first_four == [f1[f"ACU1-F1-0{n}"] for n in range(1, 5)]
    # Bed 1 left by the transfer; bed 2 still occupied, since an admission cannot be
    # cancelled (A11, AE) after its patient moved; bed 3 closed after its discharge (A20 C).
    assert first_four == ["awaiting_clean", "occupied", "closed", "available"]
    assert alone[-1] == "AE"


def test_a_failed_step_undoes_its_events_and_planned_work_but_not_the_others(
    feed: Runtime,
) -> None:
    """Database.step directly. Each step marks a bed dirty; the reactors then ask for a
    clean (a task), plan its notification and count the bed; the second step fails after
    all that (a reactor of ours raises), so none of it may remain."""
    beds = {b.code: b.id for b in feed.capacity.list_beds(BedFilter(ward="ACU1-AMU"))}

    def fail_for_bed_2(tx: Tx, rec: EventRecord) -> None:
        if rec.type == "task.created" and rec.bed_id == beds["ACU1-AMU-02"]:
            raise Conflict("changed my mind")

    feed.db.react(fail_for_bed_2)
    dirty = BedState.AWAITING_CLEAN
    with feed.db.transaction() as tx:
        with feed.db.step(tx):
            feed.hl7.moves.change_state(tx, beds["ACU1-AMU-01"], dirty, "kept", SYSTEM)
        with pytest.raises(Conflict, match="changed my mind"), feed.db.step(tx):
            feed.hl7.moves.change_state(tx, beds["ACU1-AMU-02"], dirty, "undone", SYSTEM)
    now = board(feed)
    assert (now["ACU1-AMU-01"], now["ACU1-AMU-02"]) == ("awaiting_clean", "available")
    assert counted(feed, EventRecord, EventRecord.reason == "kept") == 1
    assert counted(feed, EventRecord, EventRecord.reason == "undone") == 0
    with feed.db.read() as s:
        tasks = list(s.scalars(select(Task)))
        told = list(s.scalars(select(Notification)))
    assert [t.bed_code for t in tasks] == ["ACU1-AMU-01"]
    assert told and {n.task_id for n in told} == {tasks[0].id}
    # (and the rt fixture checks the counters: the undone step's -1/+1 was never applied)


def test_a_unique_key_clash_inside_a_step_is_a_concurrent_change(feed: Runtime) -> None:
    raw = adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1"), control_id="DUP")
    feed.hl7.handle(raw, source="t")
    with feed.db.read() as s:
        stored = s.scalars(select(Hl7Message)).one()
    with feed.db.transaction() as tx:
        with pytest.raises(ConcurrentChange), feed.db.step(tx):
            tx.session.add(
                Hl7Message(
                    id="hl7-clash",
                    key=stored.key,
                    received_at=stored.received_at,
                    status="accepted",
                    ack_code="AA",
                )
            )
        tx.session.add(  # the transaction goes on after the failed step
            Hl7Message(
                id="hl7-after",
                key="after",
                received_at=stored.received_at,
                status="accepted",
                ack_code="AA",
            )
        )
    assert counted(feed, Hl7Message) == 2


def test_a_step_rolled_back_forgets_the_beds_it_locked_and_what_it_made(
    feed: Runtime,
) -> None:
    """What a batch remembers (capacity/lookups.py) follows its savepoints: a bed locked
    inside a step that is rolled back is no longer locked (PostgreSQL releases it) and must
    not be taken as locked; a patient or a stay made there no longer exists."""
    beds = {b.code: b.id for b in feed.capacity.list_beds(BedFilter(ward="ACU1-AMU"))}
    kept, undone = beds["ACU1-AMU-01"], beds["ACU1-AMU-02"]
    made = PatientIn(local_id="GONE", sex="unknown")
    staying = PatientIn(local_id="STAYS", sex="unknown")
    with feed.db.transaction() as tx:
        s = tx.session
        lock_beds(s, [kept])
        know_patients(s, [made])
        outside = find_or_create_patient(s, staying)
        know_open_stays(s, [outside.id])
        dirty = beds["ACU1-AMU-04"]
        feed.tasks.look_ahead(tx, frozenset(), frozenset({dirty}))
        with pytest.raises(Conflict), feed.db.step(tx):
            lock_bed(s, undone)
            find_or_create_patient(s, made)
            feed.hl7.moves.admit(tx, beds["ACU1-AMU-03"], staying, SYSTEM)
            assert open_stay_of(s, outside) is not None
            site = s.scalar(select(Site.id).where(Site.code == "ACU1"))
            feed.tasks.create(
                tx, kind="cleaning", type_="standard", site_id=site, bed_id=dirty,
                actor=SYSTEM, cause="test", description="clean",
            )  # fmt: skip
            assert feed.tasks.open_task_for_bed(s, dirty, "cleaning") is not None
            assert set(s.info[LOCKED_BEDS]) >= {kept, undone}
            raise Conflict("undo it")
        assert set(s.info[LOCKED_BEDS]) == {kept}
        assert find_patient(s, made) is None
        assert open_stay_of(s, outside) is None  # the admission was undone with its step
        assert feed.tasks.open_task_for_bed(s, dirty, "cleaning") is None  # and the task
        if feed.db.dialect == "postgresql":  # and the database agrees about the locks
            with feed.engine.connect() as other:
                nowait = "SELECT id FROM beds WHERE id = :id FOR UPDATE NOWAIT"
                other.execute(text(nowait), {"id": undone})  # free again
                other.rollback()
                with pytest.raises(OperationalError, match="could not obtain lock"):
                    other.execute(text(nowait), {"id": kept})
    assert "GONE" not in patients(feed)


def test_a_patient_stored_elsewhere_while_a_batch_is_written_is_met_carefully(
    feed: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The optimistic try writes its steps' rows only at its end. If one of them then breaks
    a key (another worker stored the same new patient meanwhile), the batch is tried again
    with a savepoint a message, not handed back to be applied one by one: both admitted,
    onto the one patient record."""
    if feed.db.dialect != "postgresql":
        pytest.skip("SQLite lets no other writer in while a batch is open")
    with another_writer_files_first(feed, "RACE") as raced:
        answers = feed.hl7.handle_batch(
            [
                (adt("A01", T0, pid("RACE"), pv1("ACU1-AMU^^1^ACU1")), "t"),
                (adt("A01", T0, pid("CALM"), pv1("ACU1-AMU^^2^ACU1")), "t"),
            ]
        )
    assert raced and [a.ack_code for a in answers] == ["AA", "AA"], [a.detail for a in answers]
    assert "batch failed" not in caplog.text  # settled in the batch, not one by one
    assert counted(feed, Patient, Patient.local_id == "RACE") == 1
    assert board(feed)["ACU1-AMU-01"] == board(feed)["ACU1-AMU-02"] == "occupied"


def test_a_message_refused_by_a_reactor_is_quarantined_alone(feed: Runtime) -> None:
    """A step can fail after the move itself (here a reactor refuses the admission to bed 2):
    that message is undone and kept once as quarantined; its neighbours stand."""
    bed2 = feed.capacity.list_beds(BedFilter(code="ACU1-AMU-02"))[0].id

    def refuse_bed_2(tx: Tx, rec: EventRecord) -> None:
        if rec.bed_id == bed2:
            raise Conflict("bed 2 is being refurbished")

    feed.db.react(refuse_bed_2)
    answers = feed.hl7.handle_batch(
        [
            (adt("A01", T0, pid(f"P{n}"), pv1(f"ACU1-AMU^^{n}^ACU1"), control_id=f"R-{n}"), "t")
            for n in (1, 2, 3)
        ]
    )
    assert [a.ack_code for a in answers] == ["AA", "AE", "AA"]
    assert answers[1].detail == "bed 2 is being refurbished"
    beds = board(feed)
    assert [beds[f"ACU1-AMU-0{n}"] for n in (1, 2, 3)] == ["occupied", "available", "occupied"]
    assert patients(feed) == {"P1", "P3"}
    assert sorted((r["control_id"], r["status"]) for r in feed.hl7.list()) == [
        ("R-1", "accepted"),
        ("R-2", "quarantined"),
        ("R-3", "accepted"),
    ]


def test_a_batch_tells_of_its_first_quarantine_once(
    feed: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """HAZ-017 (a) inside one batch: two broken messages with the queue empty make one
    'first' (the second is not stored yet when the first is announced), so one notification
    for each audience, as one by one."""
    broken = [
        adt("A01", T0, pid(f"Q{n}"), pv1(f"AMU^^{n}^ACU1"), control_id=f"Q{n}") for n in (1, 2)
    ]
    answers = feed.hl7.handle_batch([(raw, "test") for raw in broken])
    assert [a.ack_code for a in answers] == ["AE", "AE"]
    assert "batch failed" not in caplog.text  # settled in the batch, not one by one
    with feed.db.read() as s:
        query = select(EventRecord).where(EventRecord.type == "hl7.quarantined")
        firsts = [r.data["first"] for r in s.scalars(query.order_by(EventRecord.seq))]
    assert firsts == ["yes", "no"]
    assert counted(feed, Notification, Notification.event_type == "hl7.quarantined") == 2


def test_an_open_stay_found_is_held_for_the_transaction(feed: Runtime) -> None:
    """open_stay_of locks the stay it finds and keeps it for the rest of the transaction:
    asked again (a reactor asks after the move), nothing is read."""
    feed.hl7.handle(adt("A01", T0, pid("HELD"), pv1("ACU1-AMU^^1^ACU1")), source="t")
    reads: list[str] = []

    def read(*args: object) -> None:
        reads.append(str(args[2]))

    with feed.db.transaction() as tx:
        patient = find_patient(tx.session, PatientIn(local_id="HELD", sex="unknown"))
        assert patient is not None
        stay = open_stay_of(tx.session, patient)
        assert stay is not None
        event.listen(feed.engine, "before_cursor_execute", read)
        try:
            assert open_stay_of(tx.session, patient) is stay
        finally:
            event.remove(feed.engine, "before_cursor_execute", read)
    assert reads == []


def _statements(rt: Runtime, send: object) -> list[str]:
    """The SQL statements sent while ``send()`` runs, whitespace squeezed."""
    sent: list[str] = []

    def note(*args: object) -> None:
        sent.append(" ".join(str(args[2]).split()))

    event.listen(rt.engine, "before_cursor_execute", note)
    try:
        send()  # type: ignore[operator]
    finally:
        event.remove(rt.engine, "before_cursor_execute", note)
    return sent


def test_one_message_asks_for_its_patient_and_its_clock_once(feed: Runtime) -> None:
    """A message alone (no reading ahead) still asks only once for what it needs twice: a
    new patient by each identifier (looked up, then filed), and a known patient's clock
    (checked for lateness, then advanced)."""
    admit = adt("A01", T0, pid("ONCE", nhs="9434765919"), pv1("ACU1-AMU^^1^ACU1"))
    sent = _statements(feed, lambda: feed.hl7.handle(admit, source="t"))
    by_id = [q for q in sent if q.startswith("SELECT patients.") and "FROM patients" in q]
    assert len(by_id) == 2, by_id  # by NHS number and by local id, each once
    move = adt(
        "A02", "20260105110000", pid("ONCE"), pv1("ACU1-AMU^^2^ACU1", prior="ACU1-AMU^^1^ACU1")
    )
    sent = _statements(feed, lambda: feed.hl7.handle(move, source="t"))
    assert sum("FROM hl7_patient_clocks" in q for q in sent) == 1, sent
    assert any(q.startswith("UPDATE hl7_patient_clocks") for q in sent)
    beds = board(feed)
    assert (beds["ACU1-AMU-01"], beds["ACU1-AMU-02"]) == ("awaiting_clean", "occupied")


def test_a_message_alone_that_meets_another_writer_is_tried_again_not_quarantined(
    feed: Runtime,
) -> None:
    """A message applied alone whose new patient is stored by another writer between its
    look-up and its commit (two feeds admitting the same person at the same moment) breaks
    the key, and nothing of it is kept: it is applied again, reading afresh, and answered
    AA onto the one patient record; it is not quarantined as if it were bad."""
    if feed.db.dialect != "postgresql":
        pytest.skip("SQLite lets no other writer in while a message is applied")
    with another_writer_files_first(feed, "TWICE") as raced:
        answer = feed.hl7.handle(adt("A01", T0, pid("TWICE"), pv1("ACU1-AMU^^1^ACU1")), source="t")
    assert raced and answer.ack_code == "AA", answer.detail
    assert counted(feed, Patient, Patient.local_id == "TWICE") == 1
    assert counted(feed, Hl7Message, Hl7Message.status == "quarantined") == 0
    assert board(feed)["ACU1-AMU-01"] == "occupied"


def test_a_message_that_keeps_meeting_another_writer_is_kept_after_a_few_tries(
    feed: Runtime,
) -> None:
    """Tried again only a few times: a message that meets another writer on every try (here
    the patient is removed before each look-up and stored again before each write) is kept
    in quarantine with the reason, AE, and nothing of it on the board."""
    if feed.db.dialect != "postgresql":
        pytest.skip("SQLite lets no other writer in while a message is applied")
    writes: list[int] = []

    def other() -> Session:
        return Session(feed.engine)

    def removed_before_each_look_up(*args: object) -> None:
        if "FROM patients" in str(args[2]) and str(args[2]).lstrip().startswith("SELECT"):
            with other() as s:
                s.execute(delete(Patient).where(Patient.local_id == "AGAIN"))
                s.commit()

    def stored_before_each_write(session: Session, *_: object) -> None:
        if any(isinstance(o, Patient) and o.local_id == "AGAIN" for o in session.new):
            with other() as s:
                s.add(Patient(id=new_id("pat"), local_id="AGAIN", sex="unknown"))
                s.commit()
            writes.append(1)

    event.listen(feed.engine, "before_cursor_execute", removed_before_each_look_up)
    event.listen(feed.db._factory, "before_flush", stored_before_each_write)
    try:
        answer = feed.hl7.handle(adt("A01", T0, pid("AGAIN"), pv1("ACU1-AMU^^1^ACU1")), source="t")
    finally:
        event.remove(feed.engine, "before_cursor_execute", removed_before_each_look_up)
        event.remove(feed.db._factory, "before_flush", stored_before_each_write)
    assert len(writes) == TRIES
    assert answer.ack_code == "AE" and "someone else at the same moment" in answer.detail
    assert counted(feed, Hl7Message, Hl7Message.status == "quarantined") == 1
    assert board(feed)["ACU1-AMU-01"] == "available"
