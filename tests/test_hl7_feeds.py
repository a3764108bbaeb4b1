"""HAZ-035: a hospital feed that stops sending is reported, once, to the integration engineer
and the control centre, and again when it is heard; a retired feed is not; a sender is
written at most once a minute by each process."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from typer.testing import CliRunner

from tests.conftest import auth
from tests.hl7util import adt, pid, pv1
from wardwatch.cli import app as cli
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.ingest.hl7v2.feeds import RESUMED, SILENT
from wardwatch.ingest.hl7v2.service import Hl7Service
from wardwatch.runtime import Runtime

AUDIENCES = ["role:integration", "role:control-centre"]


def admission(n: int, sender: str = "PAS") -> bytes:
    raw = adt("A01", "20260105100000", pid(f"F{n}"), pv1(f"ACU1-AMU^^{n}^ACU1"), control_id=f"F{n}")
    return raw.replace(b"MSH|^~\\&|PAS|", f"MSH|^~\\&|{sender}|".encode(), 1)


def events(rt: Runtime, kind: str) -> list[dict[str, str]]:
    with rt.db.read() as s:
        query = select(EventRecord.data).where(EventRecord.type == kind).order_by(EventRecord.seq)
        return list(s.scalars(query))


def test_a_feed_gone_quiet_is_reported_once_and_again_when_heard(
    small: Runtime, clock: ManualClock
) -> None:
    start = clock.now()
    assert small.hl7.handle(admission(1), source="t").ack_code == "AA"
    clock.set(start + timedelta(minutes=59))
    assert small.hl7.feeds.check() == []
    clock.set(start + timedelta(minutes=60))
    [said] = small.hl7.feeds.check()
    assert said["sender"] == "PAS|ACU1" and said["quiet"] == "1 h 0 min"
    assert said["summary"].startswith("HL7 feed PAS|ACU1 silent for 1 h 0 min")
    told = [n for n in small.notify.feed(AUDIENCES) if "silent for" in n["subject"]]
    assert sorted(n["audience"] for n in told) == sorted(AUDIENCES)
    clock.set(start + timedelta(hours=3))
    assert small.hl7.feeds.check() == []  # said once
    [row] = small.hl7.feeds.senders()
    assert row["silent_since"] == start and row["quiet"] == "3 h 0 min"
    assert [f["sender"] for f in small.hl7.feeds.silent()] == ["PAS|ACU1"]
    assert small.hl7.handle(admission(2), source="t").ack_code == "AA"
    assert small.hl7.feeds.silent() == []  # heard: no longer warned of, even before a check
    [again] = small.hl7.feeds.check()
    assert again["summary"] == "HL7 feed PAS|ACU1 heard again after 3 h 0 min of silence"
    assert small.hl7.feeds.senders()[0]["silent_since"] is None
    assert len(events(small, SILENT)) == len(events(small, RESUMED)) == 1
    assert not any("F1" in str(e) or "F2" in str(e) for e in events(small, SILENT))


def test_each_sender_is_watched_on_its_own(small: Runtime, clock: ManualClock) -> None:
    """Two systems feed one board: the one that stops is reported while the other talks."""
    start = clock.now()
    answers = small.hl7.handle_batch([(admission(1), "t"), (admission(2, "ED"), "t")])
    assert [a.ack_code for a in answers] == ["AA", "AA"]
    for minutes in (30, 60, 90):
        clock.set(start + timedelta(minutes=minutes))
        small.hl7.handle(admission(2 + minutes, "ED"), source="t")
    assert [s["sender"] for s in small.hl7.feeds.check()] == ["PAS|ACU1"]


def test_a_retired_feed_or_a_watch_turned_off_says_nothing(
    small: Runtime, clock: ManualClock
) -> None:
    small.hl7.handle(admission(1), source="t")
    clock.advance(timedelta(days=8))
    assert small.hl7.feeds.check() == []  # a week without a word: retired, not silent
    assert small.hl7.feeds.senders()[0]["retired"] is True
    off = Hl7Service(small.db, clock, silence=None)
    off.handle(admission(2), source="t")
    clock.advance(timedelta(hours=5))
    assert off.feeds.check() == []


def test_a_sender_is_written_at_most_once_a_minute(small: Runtime, clock: ManualClock) -> None:
    writes: list[str] = []

    def note(*args: object) -> None:
        if "hl7_feeds" in str(args[2]) and str(args[2]).lstrip().startswith("INSERT"):
            writes.append(str(args[2]))

    event.listen(small.engine, "before_cursor_execute", note)
    try:
        for n in range(1, 5):
            small.hl7.handle(admission(n), source="t")
            clock.advance(timedelta(seconds=10))
        assert len(writes) == 1
        clock.advance(timedelta(seconds=30))
        small.hl7.handle(admission(5), source="t")
        assert len(writes) == 2
    finally:
        event.remove(small.engine, "before_cursor_execute", note)
    assert small.hl7.feeds.senders()[0]["last_heard_at"] == clock.now()


def test_the_engineer_sees_the_feeds_through_the_api_and_the_cli(
    small: Runtime, clock: ManualClock, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    small.hl7.handle(admission(1), source="t")
    clock.advance(timedelta(hours=2))
    small.hl7.feeds.check()
    got = client.get("/api/hl7/feeds", headers=auth(small, "integration"))
    assert got.status_code == 200
    [feed] = got.json()
    assert (feed["sender"], feed["quiet"]) == ("PAS|ACU1", "2 h 0 min")
    assert feed["silent_since"] is not None
    assert client.get("/api/hl7/feeds", headers=auth(small, "read-only")).status_code == 403
    # What the control-centre page warns of: any reader may see it (no patient data).
    silent = client.get("/api/hl7/feeds/silent", headers=auth(small, "read-only"))
    assert silent.status_code == 200
    assert [(f["sender"], f["quiet"]) for f in silent.json()] == [("PAS|ACU1", "2 h 0 min")]
    monkeypatch.setattr("wardwatch.cli.runtime", lambda: small)
    result = CliRunner().invoke(cli, ["hl7", "feeds", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["sender"] == "PAS|ACU1"
    table = CliRunner().invoke(cli, ["hl7", "feeds"])
    assert "SILENT since" in table.output


def test_a_process_that_heard_a_sender_earlier_never_moves_it_back(
    small: Runtime, clock: ManualClock
) -> None:
    """Two processes note one sender: the later time stands, whichever writes last."""
    start = clock.now()
    clock.set(start + timedelta(minutes=5))
    small.hl7.feeds.heard(["PAS|ACU1"])
    # Another worker process, whose message came in a moment before, writes after it.
    other = Hl7Service(small.db, ManualClock(start + timedelta(minutes=4)))
    other.feeds.heard(["PAS|ACU1"])
    assert small.hl7.feeds.senders()[0]["last_heard_at"] == start + timedelta(minutes=5)


def test_an_export_loaded_by_hand_does_not_make_a_silent_feed_look_heard(
    small: Runtime, clock: ManualClock
) -> None:
    """The engineer loads the PAS's export of what a dead feed missed: still silent."""
    small.hl7.handle(admission(1), source="mllp:10.0.0.5:40000")
    clock.advance(timedelta(hours=2))
    assert [s["sender"] for s in small.hl7.feeds.check()] == ["PAS|ACU1"]
    loaded = small.hl7.handle_batch([(admission(2), "file:pas-export.hl7")])
    assert loaded[0].ack_code == "AA"
    small.hl7.handle(admission(3), source="file:pas-export.hl7")
    assert small.hl7.feeds.check() == []  # not "heard again"
    assert small.hl7.feeds.senders()[0]["silent_since"] is not None
