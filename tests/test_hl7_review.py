"""Regression tests from the review of the HL7 feed (each failed before its fix).

Each asserts the correct behaviour for an edge a real feed produces: a sender whose clock
runs fast, a quarantined admission replayed after an A08, bad field sizes, reservations that
belong to other patients, pending moves left behind, catch-up backlogs, swaps, repeated
cancellations, and the hour the clocks go back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.hl7util import adt, pid, pv1
from wardwatch.capacity.service import BedFilter
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.ingest.hl7v2.adt import event_time
from wardwatch.ingest.hl7v2.models import Hl7Message
from wardwatch.ingest.hl7v2.parse import parse
from wardwatch.ingest.hl7v2.service import Handled
from wardwatch.runtime import Runtime

_FOLLOW = {"on": False}


def send(rt: Runtime, raw: bytes) -> Handled:
    """Hand a message to the feed; with ``live`` the clock follows each event's time."""
    if _FOLLOW["on"]:
        when = event_time(parse(raw), ZoneInfo("Europe/London"))
        assert when is not None
        rt.clock.set(when + timedelta(seconds=30))  # type: ignore[attr-defined]
    return rt.hl7.handle(raw, source="test")


def at(rt: Runtime, code: str) -> str:
    return rt.capacity.list_beds(BedFilter(code=code))[0].state.value


def board(rt: Runtime, ward: str = "ACU1-AMU") -> dict[str, str]:
    return {b.code: b.state.value for b in rt.capacity.list_beds(BedFilter(ward=ward))}


def npu(bed: str, status: str) -> str:
    return f"NPU|{bed}|{status}"


@pytest.fixture
def feed(small: Runtime, clock: ManualClock) -> Runtime:
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    return small


@pytest.fixture
def live(small: Runtime) -> Any:
    _FOLLOW["on"] = True
    yield small
    _FOLLOW["on"] = False


B1, B2, B3 = "ACU1-AMU^^1^ACU1", "ACU1-AMU^^2^ACU1", "ACU1-AMU^^3^ACU1"


def pending(rt: Runtime) -> list[tuple[str, str | None, str | None, bool]]:
    return [(p.kind, p.local_id, p.to_bed, p.reserved) for p in rt.capacity.pending()]


def stored(rt: Runtime) -> list[tuple[str | None, str]]:
    with rt.db.read() as s:
        return [(m.control_id, m.status) for m in s.scalars(select(Hl7Message))]


def test_f1_future_event_time_blocks_later_real_events(
    feed: Runtime, clock: ManualClock
) -> None:  # clock 12:00Z
    assert send(feed, adt("A01", "20260105130000", pid("P1"), pv1(B1))).ack_code == "AA"
    assert feed.capacity.list_stays()[0].admitted_at == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    clock.set(datetime(2026, 1, 5, 12, 30, tzinfo=UTC))
    h = send(feed, adt("A03", "20260105123000", pid("P1"), pv1(B1)))
    assert h.status == "accepted", h.detail


def test_f2_replayed_admission_is_ignored_after_a08(feed: Runtime) -> None:
    send(feed, adt("A20", "20260105095000", npu(B1, "C")))
    h = send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    assert h.ack_code == "AE"  # bed closed -> quarantined
    assert send(feed, adt("A08", "20260105100500", pid("P1"), pv1(B1))).ack_code == "AA"
    send(feed, adt("A20", "20260105101000", npu(B1, "U")))  # cause fixed
    res = feed.hl7.replay(h.message_id, SYSTEM)
    assert res["status"] == "accepted", res["detail"]


def test_f3a_bad_offset_message_is_not_stored(feed: Runtime) -> None:
    h = send(feed, adt("A01", "20260105100000+2500", pid("P1"), pv1(B1), control_id="OFF1"))
    assert stored(feed), (h.ack_code, h.detail)


def test_f3b_long_hospital_number_is_not_stored(feed: Runtime) -> None:
    h = send(feed, adt("A01", "20260105100000", pid("P" * 41), pv1(B1), control_id="LONG1"))
    assert stored(feed), (h.ack_code, h.detail)


def test_f3c_long_visit_number_or_control_id_not_stored_on_pg(feed: Runtime, backend: str) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1, visit="V" * 41), control_id="L2"))
    send(feed, adt("A01", "20260105100000", pid("P2"), pv1(B2), control_id="C" * 81))
    assert len(stored(feed)) == 2, stored(feed)  # PG: [] (DataError, dropped)


def test_f4a_cancelling_one_plan_releases_another_patients_reservation(live: Runtime) -> None:
    send(live, adt("A05", "20260105100000", pid("P1"), pv1(B1)))  # bed 1 reserved for P1
    send(live, adt("A01", "20260105100500", pid("P2"), pv1(B1)))  # P2 uses it
    send(live, adt("A03", "20260105101000", pid("P2"), pv1(B1)))
    send(live, adt("A20", "20260105101500", npu(B1, "U")))
    send(live, adt("A05", "20260105102000", pid("P3"), pv1(B1)))  # now reserved for P3
    assert send(live, adt("A27", "20260105102500", pid("P1"), pv1(B1))).ack_code == "AA"
    assert pending(live) == [("admit", "P3", "ACU1-AMU-01", True)]
    assert at(live, "ACU1-AMU-01") == "reserved"


def test_f4b_a13_takes_a_bed_reserved_for_another_patient(feed: Runtime) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    send(feed, adt("A03", "20260105101000", pid("P1"), pv1(B1)))
    send(feed, adt("A20", "20260105101500", npu(B1, "U")))
    send(feed, adt("A05", "20260105102000", pid("P3"), pv1(B1)))  # reserved for P3
    h = send(feed, adt("A13", "20260105102500", pid("P1"), pv1(B1)))
    assert h.ack_code == "AE", (h.detail, pending(feed))


def test_f5_pending_transfer_survives_discharge(feed: Runtime) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    send(feed, adt("A15", "20260105100500", pid("P1"), pv1(B1, pending=B2)))
    send(feed, adt("A03", "20260105101000", pid("P1"), pv1(B1)))
    assert pending(feed) == [] and at(feed, "ACU1-AMU-02") == "available"


def test_f6_a12_restores_a_reservation_nobody_holds(feed: Runtime) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    send(feed, adt("A15", "20260105100500", pid("P1"), pv1(B1, pending=B2)))
    send(feed, adt("A02", "20260105101000", pid("P1"), pv1(B2)))
    assert send(feed, adt("A12", "20260105101500", pid("P1"), pv1(B1))).ack_code == "AA"
    assert not (at(feed, "ACU1-AMU-02") == "reserved" and pending(feed) == [])


def test_f7_backlog_pending_move_stamps_wall_clock(
    feed: Runtime,
) -> None:  # clock 12:00, events 10:xx
    send(feed, adt("A05", "20260105100000", pid("P1"), pv1(B1)))
    send(feed, adt("A01", "20260105101000", pid("P1"), pv1(B1)))
    assert feed.capacity.list_stays()[0].admitted_at == datetime(2026, 1, 5, 10, 10, tzinfo=UTC)


def test_f8a_late_a17_ignores_second_patients_clock(feed: Runtime) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    send(feed, adt("A01", "20260105100000", pid("P2"), pv1(B2)))
    send(feed, adt("A02", "20260105103000", pid("P2"), pv1(B3)))  # P2 moved at 10:30
    h = send(feed, adt("A17", "20260105102000", pid("P1"), pv1(B1), pid("P2"), pv1(B2)))
    assert h.status == "ignored", board(feed)


def test_f8b_a17_same_patient_twice(feed: Runtime) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    h = send(feed, adt("A17", "20260105100500", pid("P1"), pv1(B1), pid("P1"), pv1(B1)))
    assert h.ack_code == "AE", h.detail


def test_f9_second_a12_after_two_transfers(feed: Runtime) -> None:
    send(feed, adt("A01", "20260105100000", pid("P1"), pv1(B1)))
    send(feed, adt("A02", "20260105100500", pid("P1"), pv1(B2)))
    send(feed, adt("A02", "20260105101000", pid("P1"), pv1(B3)))
    assert send(feed, adt("A12", "20260105101500", pid("P1"), pv1(B2))).ack_code == "AA"
    h = send(feed, adt("A12", "20260105102000", pid("P1"), pv1(B1)))
    assert h.ack_code == "AA", h.detail


def test_f10_bst_fallback_discharge_ignored(feed: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 10, 25, 0, 0, tzinfo=UTC))
    send(feed, adt("A01", "20261024230000", pid("P1"), pv1(B1)))
    clock.set(datetime(2026, 10, 25, 0, 50, tzinfo=UTC))
    send(feed, adt("A02", "20261025014500", pid("P1"), pv1(B2)))  # 01:45 BST = 00:45Z
    clock.set(datetime(2026, 10, 25, 1, 20, tzinfo=UTC))
    h = send(feed, adt("A03", "20261025011500", pid("P1"), pv1(B2)))  # 01:15 GMT = 01:15Z
    assert h.status == "accepted", h.detail


def test_fx_cancelled_admission_counts_as_long_stay(feed: Runtime, clock: ManualClock) -> None:
    send(feed, adt("A01", "20260105110000", pid("P1"), pv1(B1)))
    clock.set(datetime(2026, 1, 25, 10, 1, tzinfo=UTC))
    send(feed, adt("A11", "20260125100000", pid("P1"), pv1(B1)))
    row = feed.occupancy.sitrep(date(2026, 1, 20))["rows"][-1]
    assert row["long_stay_7_plus"] == 0
