"""ADT events applied through the HL7 feed, on SQLite and PostgreSQL.

The feed is driven with real message bytes through ``Hl7Service.handle`` (the function the
MLLP listener calls); the socket itself is covered in test_hl7_mllp.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import PAYLOADS, SMALL_SYSTEM, auth
from tests.hl7util import ack_fields, adt, pid, pv1
from wardwatch.app import periodic_checks
from wardwatch.capacity.service import BedFilter
from wardwatch.cli import app as cli
from wardwatch.core.actor import Actor
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.ingest.hl7v2.service import Handled
from wardwatch.runtime import Runtime

T0 = "20260105100000"  # 10:00 GMT, after the system was loaded at 09:30


def send(rt: Runtime, raw: bytes) -> Handled:
    return rt.hl7.handle(raw, source="test")


def board(rt: Runtime, ward: str = "ACU1-AMU") -> dict[str, str]:
    return {b.code: b.state.value for b in rt.capacity.list_beds(BedFilter(ward=ward))}


def at(rt: Runtime, code: str) -> str:
    return rt.capacity.list_beds(BedFilter(code=code))[0].state.value


@pytest.fixture
def feed(small: Runtime, clock: ManualClock) -> Runtime:
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    return small


def test_payload_corpus_variants_are_all_accepted(feed: Runtime) -> None:
    expected = {
        "a01_v23_lf.hl7": ("ACU1-AMU-01", "9434765919", "H1001", "female"),
        "a01_v24_crlf.hl7": ("ACU1-M1-02", "4010232137", "H1002", "male"),
        "a01_v25_cr.hl7": ("ACU1-F1-03", None, "H1003", "female"),
        "a01_v251_custom_encoding.hl7": ("ACU1-AMU-04", "4505577104", "H1004", "female"),
    }
    for name in expected:
        handled = send(feed, (PAYLOADS / "hl7" / name).read_bytes())
        assert handled.ack_code == "AA", (name, handled.detail)
    stays = {s.local_id: s for s in feed.capacity.list_stays()}
    for name, (bed, nhs, local, sex) in expected.items():
        stay = stays[local]
        assert (stay.bed_code, stay.nhs_number, stay.sex) == (bed, nhs, sex), name
    # EVN-6 (when it happened) wins over EVN-2; an explicit offset is honoured.
    assert stays["H1002"].admitted_at == datetime(2026, 1, 5, 9, 40, tzinfo=UTC)
    assert stays["H1003"].admitted_at == datetime(2026, 1, 5, 9, 59, tzinfo=UTC)
    assert stays["H1001"].visit_number == "VIS1001"


def test_custom_encoding_characters_are_kept_in_the_ack(feed: Runtime) -> None:
    handled = send(feed, (PAYLOADS / "hl7" / "a01_v251_custom_encoding.hl7").read_bytes())
    assert handled.ack.startswith("MSH#$*/@#WARDWATCH#ACU1#PAS#ACU1#")
    assert "\rMSA#AA#V251-0001#" in handled.ack


def test_admit_transfer_discharge(feed: Runtime) -> None:
    assert send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1", "V1"))).ack_code == "AA"
    assert at(feed, "ACU1-AMU-01") == "occupied"
    h = send(
        feed,
        adt(
            "A02",
            "20260105103000",
            pid("P1"),
            pv1("ACU1-F1^^2^ACU1", "V1", prior="ACU1-AMU^^1^ACU1"),
        ),
    )
    assert h.ack_code == "AA" and h.detail == "moved to ACU1-F1-02"
    assert (at(feed, "ACU1-AMU-01"), at(feed, "ACU1-F1-02")) == ("awaiting_clean", "occupied")
    h = send(feed, adt("A03", "20260105110000", pid("P1"), pv1("ACU1-F1^^2^ACU1", "V1")))
    assert h.ack_code == "AA"
    assert at(feed, "ACU1-F1-02") == "awaiting_clean"
    [stay] = feed.capacity.list_stays(active=False)
    assert stay.discharged_at == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)


def test_resent_message_is_acknowledged_again_and_applied_once(feed: Runtime) -> None:
    msg = adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1"), control_id="SAME-1")
    first, second = send(feed, msg), send(feed, msg)
    assert first.ack_code == second.ack_code == "AA"
    assert "not applied again" in second.detail
    assert len(feed.capacity.list_stays()) == 1
    assert ack_fields(second.ack)["control_id"] == "SAME-1"
    assert len(feed.hl7.list()) == 1


def test_late_messages_never_leave_a_bed_wrong(feed: Runtime) -> None:
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A02", "20260105110000", pid("P1"), pv1("ACU1-AMU^^3^ACU1")))
    # A transfer that happened at 10:30 arrives after the 11:00 one: it must not apply.
    late = send(feed, adt("A02", "20260105103000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    assert late.ack_code == "AA" and late.status == "ignored"
    assert "later event" in late.detail
    assert board(feed)["ACU1-AMU-03"] == "occupied"
    assert board(feed)["ACU1-AMU-02"] == "available"
    # A discharge, then a late admission-era transfer: the patient stays discharged.
    send(feed, adt("A03", "20260105120000", pid("P1"), pv1("ACU1-AMU^^3^ACU1")))
    stale = send(feed, adt("A02", "20260105113000", pid("P1"), pv1("ACU1-AMU^^4^ACU1")))
    assert stale.status == "ignored"
    assert board(feed)["ACU1-AMU-04"] == "available"
    assert feed.capacity.list_stays() == []


def test_cancel_admit_restores_the_bed_exactly(feed: Runtime) -> None:
    # The bed was reserved before the admission: cancelling puts it back to reserved.
    send(feed, adt("A14", T0, pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    assert board(feed)["ACU1-AMU-02"] == "reserved"
    send(feed, adt("A01", "20260105101000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    assert board(feed)["ACU1-AMU-02"] == "occupied"
    h = send(feed, adt("A11", "20260105102000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    assert h.ack_code == "AA", h.detail
    assert board(feed)["ACU1-AMU-02"] == "reserved"  # held for the expected patient again
    assert [m.kind for m in feed.capacity.pending()] == ["admit"]
    [stay] = feed.capacity.list_stays(active=False)
    assert stay.cancelled_at is not None
    # A plain admission cancelled: the bed is available again, no cleaning needed.
    send(feed, adt("A01", "20260105103000", pid("P2"), pv1("ACU1-AMU^^3^ACU1")))
    send(feed, adt("A11", "20260105103500", pid("P2"), pv1("ACU1-AMU^^3^ACU1")))
    assert board(feed)["ACU1-AMU-03"] == "available"


def test_an_admission_is_not_cancelled_after_its_patient_moved_until_the_move_is(
    feed: Runtime,
) -> None:
    """A11 after an A02: the bed the patient lies in now was never the admission's, and the
    bed they left has been dealt with since, so nothing can be put back exactly. Refused
    (AE, quarantined, the board untouched) with what to do; once the transfer is cancelled
    (A12), the replayed A11 undoes the admission exactly."""
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A02", "20260105103000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    before = board(feed)
    h = send(feed, adt("A11", "20260105104000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    assert (h.ack_code, h.status) == ("AE", "quarantined")
    assert "moved since the admission (now in bed ACU1-AMU-02)" in h.detail
    assert "cancel the move first" in h.detail
    assert board(feed) == before
    assert (
        send(feed, adt("A12", "20260105104500", pid("P1"), pv1("ACU1-AMU^^2^ACU1"))).ack_code
        == "AA"
    )
    engineer = Actor(name="engineer", role="integration")
    assert h.message_id is not None
    assert feed.hl7.replay(h.message_id, engineer)["status"] == "accepted"
    b = board(feed)
    assert (b["ACU1-AMU-01"], b["ACU1-AMU-02"]) == ("available", "available")
    assert feed.capacity.list_stays() == []


def test_cancel_transfer_and_cancel_discharge(feed: Runtime) -> None:
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A02", "20260105103000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    h = send(feed, adt("A12", "20260105104000", pid("P1"), pv1("ACU1-AMU^^2^ACU1")))
    assert h.ack_code == "AA", h.detail
    b = board(feed)
    assert (b["ACU1-AMU-01"], b["ACU1-AMU-02"]) == ("occupied", "available")
    send(feed, adt("A03", "20260105110000", pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    assert board(feed)["ACU1-AMU-01"] == "awaiting_clean"
    h = send(feed, adt("A13", "20260105111000", pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    assert h.ack_code == "AA", h.detail
    assert board(feed)["ACU1-AMU-01"] == "occupied"
    assert len(feed.capacity.list_stays()) == 1


def test_cancel_discharge_refused_when_the_bed_was_taken(feed: Runtime) -> None:
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A03", "20260105103000", pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    bed = feed.capacity.list_beds(BedFilter(code="ACU1-AMU-01"))[0]
    from wardwatch.capacity.states import BedState
    from wardwatch.core.actor import SYSTEM

    feed.capacity.change_bed_state(bed.id, BedState.AVAILABLE, None, SYSTEM)
    send(feed, adt("A01", "20260105110000", pid("P2"), pv1("ACU1-AMU^^1^ACU1")))
    h = send(feed, adt("A13", "20260105111000", pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    assert h.ack_code == "AE" and "now occupied" in h.detail
    assert [s.local_id for s in feed.capacity.list_stays()] == ["P2"]


def test_pending_moves_show_as_expected_arrivals_and_departures(
    feed: Runtime, client: TestClient
) -> None:
    headers = auth(feed, "control-centre")
    send(feed, adt("A05", T0, pid("P1"), pv1("ACU1-AMU^^5^ACU1")))
    send(feed, adt("A01", T0, pid("P2"), pv1("ACU1-AMU^^1^ACU1")))
    send(
        feed,
        adt("A15", "20260105101000", pid("P2"), pv1("ACU1-AMU^^1^ACU1", pending="ACU1-F1^^4^ACU1")),
    )
    send(
        feed,
        adt(
            "A16",
            "20260105102000",
            pid("P2"),
            pv1("ACU1-AMU^^1^ACU1"),
            "PV2|||||||||20260106150000",
        ),
    )
    moves = client.get("/api/pending", headers=headers).json()
    got = {(m["kind"], m["to_bed"], m["from_bed"], m["reserved"]) for m in moves}
    assert got == {
        ("admit", "ACU1-AMU-05", None, True),
        ("transfer", "ACU1-F1-04", "ACU1-AMU-01", True),
        ("discharge", None, "ACU1-AMU-01", False),
    }
    assert (board(feed)["ACU1-AMU-05"], at(feed, "ACU1-F1-04")) == ("reserved", "reserved")
    departure = next(m for m in moves if m["kind"] == "discharge")
    assert departure["expected_at"] == "2026-01-06T15:00:00Z"
    # Cancelling the pending transfer (A26) releases its reservation.
    h = send(feed, adt("A26", "20260105103000", pid("P2"), pv1("ACU1-AMU^^1^ACU1")))
    assert h.ack_code == "AA", h.detail
    assert at(feed, "ACU1-F1-04") == "available"
    # The actual transfer to another bed closes nothing wrongly; the admission uses its bed.
    send(feed, adt("A01", "20260105110000", pid("P1"), pv1("ACU1-AMU^^5^ACU1")))
    kinds = [m["kind"] for m in client.get("/api/pending", headers=headers).json()]
    assert kinds == ["discharge"]


def test_swap_and_leave_of_absence(feed: Runtime) -> None:
    send(feed, adt("A01", T0, pid("P1", sex="M"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A01", T0, pid("P2", sex="F"), pv1("ACU1-AMU^^2^ACU1")))
    h = send(
        feed,
        adt(
            "A17",
            "20260105103000",
            pid("P1", sex="M"),
            pv1("ACU1-AMU^^1^ACU1"),
            pid("P2", sex="F"),
            pv1("ACU1-AMU^^2^ACU1"),
        ),
    )
    assert h.ack_code == "AA", h.detail
    beds = {s.local_id: s.bed_code for s in feed.capacity.list_stays()}
    assert beds == {"P1": "ACU1-AMU-02", "P2": "ACU1-AMU-01"}
    send(feed, adt("A21", "20260105110000", pid("P1", sex="M"), pv1("ACU1-AMU^^2^ACU1")))
    stay = next(s for s in feed.capacity.list_stays() if s.local_id == "P1")
    assert stay.on_leave_since is not None and board(feed)["ACU1-AMU-02"] == "occupied"
    send(feed, adt("A22", "20260105120000", pid("P1", sex="M"), pv1("ACU1-AMU^^2^ACU1")))
    stay = next(s for s in feed.capacity.list_stays() if s.local_id == "P1")
    assert stay.on_leave_since is None


def test_a20_bed_status_and_a08_update(feed: Runtime) -> None:
    npu = adt("A20", T0, "NPU|ACU1-AMU^^6^ACU1|K")
    assert send(feed, npu).ack_code == "AA"
    bed = feed.capacity.list_beds(BedFilter(code="ACU1-AMU-06"))[0]
    assert (bed.state.value, bed.state_reason) == ("blocked", "contaminated (PAS)")
    assert send(feed, adt("A20", "20260105101000", "NPU|ACU1-AMU^^6^ACU1|H")).ack_code == "AA"
    assert at(feed, "ACU1-AMU-06") == "awaiting_clean"
    occupied = send(feed, adt("A20", "20260105102000", "NPU|ACU1-AMU^^6^ACU1|O"))
    assert occupied.ack_code == "AE" and ack_fields(occupied.ack)["error"] == "103"
    send(feed, adt("A01", T0, pid("P1", sex="U"), pv1("ACU1-AMU^^1^ACU1")))
    h = send(
        feed,
        adt(
            "A08",
            "20260105103000",
            pid("P1", "9434765919", sex="F"),
            pv1("ACU1-AMU^^1^ACU1"),
            "PV2|||||||||20260109",
        ),
    )
    assert h.ack_code == "AA"
    [stay] = feed.capacity.list_stays()
    assert (stay.nhs_number, stay.sex, str(stay.expected_discharge_date)) == (
        "9434765919",
        "female",
        "2026-01-09",
    )


BAD = {
    "no MSH": (b"EVN|A01|20260105100000\rPID|1||X1^^^ACU1^MR\r", "AR", "100"),
    "truncated MSH": (b"MSH|^~\\&|PA", "AR", "101"),
    "unknown event": (adt("A99", T0, pid("X1"), pv1("ACU1-AMU^^1^ACU1")), "AR", "201"),
    "unsupported version": (
        adt("A01", T0, pid("X1"), pv1("ACU1-AMU^^1^ACU1"), version="2.2"),
        "AR",
        "203",
    ),
    "not ADT": (b"MSH|^~\\&|LAB|ACU1|WW|ACU1|20260105100000||ORM^O01|O1|P|2.5.1\r", "AR", "200"),
    "unknown location": (adt("A01", T0, pid("X1"), pv1("NOWHERE^^1^ACU1")), "AE", "103"),
    "unknown bed": (adt("A01", T0, pid("X1"), pv1("ACU1-AMU^^99^ACU1")), "AE", "103"),
    "no bed": (adt("A01", T0, pid("X1"), pv1("")), "AE", "101"),
    "bad timestamp": (adt("A01", "yesterday", pid("X1"), pv1("ACU1-AMU^^1^ACU1")), "AE", "102"),
    "impossible date": (
        adt("A01", "20261345100000", pid("X1"), pv1("ACU1-AMU^^1^ACU1")),
        "AE",
        "102",
    ),
    "bad NHS number": (
        adt("A01", T0, pid("X1", "9434765918"), pv1("ACU1-AMU^^1^ACU1")),
        "AE",
        "102",
    ),
    "no PID": (adt("A01", T0, pv1("ACU1-AMU^^1^ACU1")), "AE", "100"),
    "unknown patient": (adt("A03", T0, pid("NOBODY"), pv1("ACU1-AMU^^1^ACU1")), "AE", "204"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_messages_get_the_right_ack_are_quarantined_and_change_nothing(
    feed: Runtime, case: str
) -> None:
    raw, code, error = BAD[case]
    before = board(feed)
    handled = send(feed, raw)
    fields = ack_fields(handled.ack)
    assert (fields["code"], fields["error"]) == (code, error), handled.detail
    assert handled.status == "quarantined"
    assert handled.detail  # a readable reason
    [row] = feed.hl7.list(status="quarantined")
    assert feed.hl7.get(row["id"])["raw"]  # kept, to fix and replay
    assert board(feed) == before
    assert feed.capacity.list_stays() == []


def _quarantine_events(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.read() as s:
        rows = s.scalars(
            select(EventRecord)
            .where(EventRecord.type == "hl7.quarantined")
            .order_by(EventRecord.seq)
        )
        return [dict(r.data or {}) for r in rows]


def test_a_quarantine_tells_the_engineer_once_while_the_queue_is_not_empty(
    feed: Runtime,
) -> None:
    """HAZ-017 (a): a message put in quarantine is logged as an event; the integration
    engineer and the control centre are told on their feeds when it is the first while the
    queue was empty, not at every message of a broken feed; the event names no patient."""
    audiences = ["role:integration", "role:control-centre"]
    engineer = Actor(name="engineer", role="integration")
    first = send(feed, adt("A01", T0, pid("P1"), pv1("AMU^^1^ACU1")))  # "AMU": not mapped
    send(feed, adt("A01", "20260105100500", pid("P2"), pv1("AMU^^2^ACU1")))
    send(feed, b"not HL7 at all")
    events = _quarantine_events(feed)
    assert [(e["first"], e["message_type"]) for e in events] == [
        ("yes", "ADT^A01"),
        ("no", "ADT^A01"),
        ("no", None),
    ]
    assert events[0]["message"] == first.message_id and events[0]["ack"] == "AE"
    assert not any("P1" in str(v) or "P2" in str(v) for e in events for v in e.values())
    told = feed.notify.feed(audiences)
    assert sorted(n["audience"] for n in told) == sorted(audiences)
    assert all(n["subject"].startswith("HL7 ADT^A01 message quarantined (AE)") for n in told)
    # A replay that fails again is not news.
    assert first.message_id is not None
    assert feed.hl7.replay(first.message_id, engineer)["status"] == "quarantined"
    assert len(_quarantine_events(feed)) == 3
    # The engineer empties the queue; the next broken message is news again.
    for row in feed.hl7.list(status="quarantined"):
        feed.hl7.discard(row["id"], "PAS test data", engineer)
    send(feed, adt("A01", "20260105101000", pid("P3"), pv1("AMU^^3^ACU1")))
    assert [e["first"] for e in _quarantine_events(feed)] == ["yes", "no", "no", "yes"]
    assert len(feed.notify.feed(audiences)) == 4


def test_messages_left_in_quarantine_are_recalled_every_few_hours(
    feed: Runtime, clock: ManualClock
) -> None:
    """HAZ-017 (a): while messages wait in quarantine the integration engineer and the
    control centre are reminded every few hours (4 by default) how many wait and for how
    long the oldest: not before the oldest has waited that long, not twice within it, not
    once the queue is empty; the reminder names no patient."""
    audiences = ["role:integration", "role:control-centre"]
    start = clock.now()
    send(feed, adt("A01", T0, pid("P1"), pv1("AMU^^1^ACU1")))  # "AMU": not mapped
    clock.advance(timedelta(hours=1))
    send(feed, adt("A01", "20260105100500", pid("P2"), pv1("AMU^^2^ACU1")))
    clock.set(start + timedelta(hours=3, minutes=59))
    assert feed.hl7.remind() is None  # the oldest has waited less than 4 h
    clock.set(start + timedelta(hours=4))
    said = feed.hl7.remind()
    assert said is not None and (said["count"], said["waited"]) == (2, "4 h 0 min")
    assert said["summary"].startswith("2 HL7 messages wait in quarantine, the oldest for 4 h")
    told = [n for n in feed.notify.feed(audiences) if "wait in quarantine" in n["subject"]]
    assert sorted(n["audience"] for n in told) == sorted(audiences)
    clock.advance(timedelta(hours=3, minutes=59))
    assert feed.hl7.remind() is None  # reminded 3 h 59 min ago
    clock.advance(timedelta(minutes=1))
    again = feed.hl7.remind()
    assert again is not None and again["waited"] == "8 h 0 min"
    with feed.db.read() as s:
        reminders = s.scalars(
            select(EventRecord.data).where(EventRecord.type == "hl7.quarantine_waiting")
        ).all()
    assert len(reminders) == 2
    assert not any("P1" in str(v) or "P2" in str(v) for r in reminders for v in r.values())
    engineer = Actor(name="engineer", role="integration")
    for row in feed.hl7.list(status="quarantined"):
        feed.hl7.discard(row["id"], "PAS test data", engineer)
    clock.advance(timedelta(days=2))
    assert feed.hl7.remind() is None  # nothing waits


def test_the_servers_periodic_checks_remind_of_the_quarantine_and_a_silent_feed(
    feed: Runtime, clock: ManualClock
) -> None:
    """``wardwatch serve`` runs the quarantine reminder and the feed silence check with its
    other periodic checks."""
    send(feed, adt("A01", T0, pid("P1"), pv1("AMU^^1^ACU1")))
    clock.advance(timedelta(hours=5))

    async def one_round() -> None:
        with pytest.raises(TimeoutError):  # the loop runs until the server stops
            await asyncio.wait_for(periodic_checks(feed), timeout=3)

    asyncio.run(one_round())
    with feed.db.read() as s:
        types = s.scalars(select(EventRecord.type)).all()
    assert types.count("hl7.quarantine_waiting") == 1
    assert types.count("hl7.feed_silent") == 1  # PAS|ACU1, quiet for 5 h


def test_quarantine_fix_and_replay_through_the_api(feed: Runtime, client: TestClient) -> None:
    engineer = auth(feed, "integration")
    h = send(feed, adt("A01", T0, pid("P1"), pv1("AMU^^1^ACU1")))  # the PAS calls it "AMU"
    assert h.ack_code == "AE"
    queue = client.get(
        "/api/hl7/messages", params={"status": "quarantined"}, headers=engineer
    ).json()
    assert len(queue) == 1 and "unknown location 'AMU at ACU1'" in queue[0]["detail"]
    # Still broken: replay changes nothing and says why.
    r = client.post(f"/api/hl7/messages/{queue[0]['id']}/replay", headers=engineer)
    assert r.json()["status"] == "quarantined" and r.json()["attempts"] == 2
    # The engineer adds the mapping, then replays.
    admin = auth(feed, "admin")
    r = client.patch("/api/wards/ACU1-AMU", json={"pas_point_of_care": "AMU"}, headers=admin)
    assert r.status_code == 200, r.text
    r = client.post(f"/api/hl7/messages/{queue[0]['id']}/replay", headers=engineer)
    assert r.json()["status"] == "accepted", r.json()
    assert at(feed, "ACU1-AMU-01") == "occupied"
    assert (
        client.get("/api/hl7/messages", params={"status": "quarantined"}, headers=engineer).json()
        == []
    )
    # Replaying an accepted message is refused; the raw text read is audited.
    again = client.post(f"/api/hl7/messages/{queue[0]['id']}/replay", headers=engineer)
    assert again.status_code == 409
    assert client.get(f"/api/hl7/messages/{queue[0]['id']}", headers=engineer).json()["raw"]
    assert feed.auth.audit_log()[0]["resource"] == "hl7_message"
    assert client.get("/api/hl7/messages", headers=auth(feed, "ward")).status_code == 403


def test_the_location_map_follows_the_structure(feed: Runtime) -> None:
    """The PAS location map is cached by structure version: beds added or a mapping changed
    are seen by the very next message."""
    from wardwatch.capacity.schemas import BedsAdd, WardUpdate
    from wardwatch.core.actor import SYSTEM

    beds = feed.capacity.list_beds(BedFilter(ward="ACU1-AMU"))
    beyond = len(beds) + 1
    first = send(feed, adt("A01", T0, pid("P1"), pv1(f"ACU1-AMU^^{beyond}^ACU1")))
    assert first.ack_code == "AE" and "has no bed" in first.detail
    feed.system.add_beds("ACU1-AMU", BedsAdd(count=1), SYSTEM)
    again = send(feed, adt("A01", T0, pid("P1"), pv1(f"ACU1-AMU^^{beyond}^ACU1")))
    assert again.ack_code == "AA", again.detail
    feed.system.update_ward("ACU1-AMU", WardUpdate(pas_point_of_care="AMU"), SYSTEM)
    by_new_name = send(feed, adt("A01", T0, pid("P2"), pv1("AMU^^1^ACU1")))
    by_old_name = send(feed, adt("A01", T0, pid("P3"), pv1("ACU1-AMU^^2^ACU1")))
    assert (by_new_name.ack_code, by_old_name.ack_code) == ("AA", "AE")


def test_a_padded_identifier_names_the_same_patient(feed: Runtime) -> None:
    """PID-3 padded with spaces (fixed-width exports) is read as the plain identifier, by the
    ADT feed as by the ORU one: the patient is not split in two."""
    assert send(feed, adt("A01", T0, pid(" H77 "), pv1("ACU1-AMU^^1^ACU1"))).ack_code == "AA"
    moved = send(feed, adt("A02", "20260105101000", pid("H77"), pv1("ACU1-AMU^^2^ACU1")))
    assert moved.ack_code == "AA", moved.detail
    assert [(s.local_id, s.bed_code) for s in feed.capacity.list_stays()] == [
        ("H77", "ACU1-AMU-02")
    ]


def test_a_resent_quarantined_message_is_tried_again(feed: Runtime) -> None:
    msg = adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1"), control_id="RETRY-1")
    bed = feed.capacity.list_beds(BedFilter(code="ACU1-AMU-01"))[0]
    from wardwatch.capacity.states import BedState
    from wardwatch.core.actor import SYSTEM

    feed.capacity.change_bed_state(bed.id, BedState.BLOCKED, "spill", SYSTEM)
    assert send(feed, msg).ack_code == "AE"
    feed.capacity.change_bed_state(bed.id, BedState.AVAILABLE, None, SYSTEM)
    assert send(feed, msg).ack_code == "AA"
    [row] = feed.hl7.list()
    assert (row["status"], row["attempts"]) == ("accepted", 2)


def test_retention_forgets_old_text_but_keeps_quarantined(
    feed: Runtime, clock: ManualClock
) -> None:
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A01", T0, pid("P2"), pv1("NOWHERE^^1^ACU1")))
    clock.advance(timedelta(days=91))
    assert feed.hl7.purge() == 1
    rows = {r["status"]: feed.hl7.get(r["id"]) for r in feed.hl7.list()}
    assert rows["accepted"]["raw"] is None and rows["quarantined"]["raw"]


def test_cli_replays_a_pas_export_and_the_quarantine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["system", "load", str(SMALL_SYSTEM)]).exit_code == 0
    result = runner.invoke(cli, ["hl7", "replay", str(PAYLOADS / "hl7" / "day.hl7")])
    assert result.exit_code == 0, result.output
    assert "7 messages: 5 accepted, 1 ignored, 1 quarantined" in result.stdout
    listed = runner.invoke(cli, ["hl7", "quarantine", "list", "--json"])
    assert "UNMAPPED" in listed.stdout
    again = runner.invoke(cli, ["hl7", "replay", str(PAYLOADS / "hl7" / "day.hl7")])
    assert "7 messages: 5 accepted, 1 ignored, 1 quarantined" in again.stdout  # applied once
    replay = runner.invoke(cli, ["hl7", "quarantine", "replay"])
    assert "0 accepted" in replay.stdout and "1 quarantined" in replay.stdout
    beds = runner.invoke(cli, ["bed", "list", "--ward", "ACU1-M1", "--json"])
    assert beds.stdout.count('"occupied"') == 2


def test_a_different_visit_number_is_refused(feed: Runtime) -> None:
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^^1^ACU1", "VISIT-A")))
    h = send(feed, adt("A02", "20260105103000", pid("P1"), pv1("ACU1-AMU^^2^ACU1", "VISIT-B")))
    assert h.ack_code == "AE" and "does not match" in h.detail
    assert board(feed)["ACU1-AMU-01"] == "occupied"


def test_identifiers_of_two_patients_are_refused(feed: Runtime) -> None:
    send(feed, adt("A01", T0, pid("P1", "9434765919"), pv1("ACU1-AMU^^1^ACU1")))
    send(feed, adt("A01", T0, pid("P2", "4010232137"), pv1("ACU1-AMU^^2^ACU1")))
    h = send(feed, adt("A03", "20260105103000", pid("P1", "4010232137"), pv1("ACU1-AMU^^1^ACU1")))
    assert h.ack_code == "AE" and "two different patients" in h.detail
    assert board(feed)["ACU1-AMU-01"] == "occupied"


def test_bays_mapped_by_room_are_never_guessed(feed: Runtime, client: TestClient) -> None:
    admin = auth(feed, "admin")
    r = client.patch(
        "/api/wards/ACU1-AMU",
        headers=admin,
        json={"pas_beds": {"BAY1-1": 1, "BAY1-2": 2, "BAY2-1": 3, "BAY2-2": 4}},
    )
    assert r.status_code == 200
    send(feed, adt("A01", T0, pid("P1"), pv1("ACU1-AMU^BAY1^1^ACU1")))
    h = send(feed, adt("A02", "20260105103000", pid("P1"), pv1("ACU1-AMU^BAY2^1^ACU1")))
    assert h.ack_code == "AA" and h.detail == "moved to ACU1-AMU-03"
    unknown = send(feed, adt("A02", "20260105110000", pid("P1"), pv1("ACU1-AMU^BAY9^1^ACU1")))
    assert unknown.ack_code == "AE" and "has no bed" in unknown.detail
    assert board(feed)["ACU1-AMU-03"] == "occupied"
