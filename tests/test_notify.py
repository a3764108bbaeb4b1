"""Notification rules, the outbox written with each event, feeds (JSON and SSE), the CLI."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import auth
from tests.serving import serving
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.cli import app as cli
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.db.eventlog import EventRecord
from wardwatch.notify.config import RulesError, default_rules, parse_rules
from wardwatch.notify.models import Notification
from wardwatch.notify.rules import event_fields, plan
from wardwatch.notify.service import NotifyService
from wardwatch.runtime import Runtime

TASK = {
    "task": "task_1",
    "kind": "cleaning",
    "team": "RMH-housekeeping",
    "priority": "urgent",
    "bed": "RMH-W1-03",
    "cleaning": "infection",
    "summary": "Infection clean of bed RMH-W1-03",
}


def record(rt: Runtime, type: str, data: dict[str, Any], site: str | None = "RMH") -> None:
    with rt.db.transaction() as tx:
        tx.record(type, at=rt.clock.now(), actor=SYSTEM, site_code=site, data=data)


def rows(rt: Runtime) -> list[Notification]:
    with rt.db.read() as s:
        return list(s.scalars(select(Notification).order_by(Notification.seq)))


def targets(type: str, data: dict[str, Any], site: str = "RMH") -> list[str]:
    fields = event_fields(type, data, site=site, ward=None, states={})
    planned, _ = plan(default_rules(), fields)
    return [f"{p.channel}:{p.audience}" for p in planned]


# --- rules ---------------------------------------------------------------------------------


def test_default_rules_route_task_events() -> None:
    assert targets("task.created", TASK) == ["feed:team:RMH-housekeeping"]
    assert targets("task.priority_changed", TASK) == ["feed:team:RMH-housekeeping"]
    assert targets("task.done", TASK) == ["feed:role:control-centre", "feed:team:RMH-porters"]
    assert targets("task.done", {**TASK, "kind": "transfer"}) == []
    level1 = {**TASK, "level": 1, "escalate_to": "supervisor"}
    assert targets("task.escalated", level1) == [
        "feed:team:RMH-housekeeping",
        "feed:supervisor:RMH-housekeeping",
    ]
    level2 = {**TASK, "level": 2, "supervisor_email": "hk.sup@example.nhs.uk"}
    assert targets("task.escalated", level2) == [
        "feed:role:control-centre",
        "email:hk.sup@example.nhs.uk",
    ]
    assert targets("bed.state_changed", {"bed": "RMH-W1-03"}) == []


def test_when_filters_wildcards_lists_and_subjects() -> None:
    config = parse_rules(
        """
rules:
  - name: urgent anything
    on: ["task.*"]
    when: {priority: [urgent, clean_next], site: RMH}
    notify: ["feed:role:control-centre"]
    subject: "{priority}: bed {bed}"
  - name: all events
    on: ["*"]
    when: {type: bed.state_changed, to_state: awaiting_clean}
    notify: ["feed:site:{site}"]
"""
    )
    fields = event_fields("task.created", TASK, site="RMH", ward=None, states={})
    planned, _ = plan(config, fields)
    assert [(p.audience, p.subject) for p in planned] == [
        ("role:control-centre", "urgent: bed RMH-W1-03")
    ]
    for changed in ({"priority": "routine"}, {}):
        other = event_fields("task.created", {**TASK, **changed}, site="XYZ", ward=None, states={})
        assert plan(config, other)[0] == []
    bed = event_fields(
        "bed.state_changed", {}, site="RMH", ward=None, states={"to_state": "awaiting_clean"}
    )
    assert [p.audience for p in plan(config, bed)[0]] == ["site:RMH"]


def test_a_missing_template_field_skips_that_target_and_the_event_still_commits(
    rt: Runtime,
) -> None:
    rt.notify.use(parse_rules('rules: [{name: r, on: [x.y], notify: ["feed:team:{team}"]}]'))
    record(rt, "x.y", {"bed": "B1"})
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(EventRecord)) == 1
    assert rows(rt) == []
    assert rt.notify.skipped == {"r -> feed:team:{team}": 1}


# --- the outbox: in the event's own transaction --------------------------------------------


def test_notifications_commit_with_their_event(rt: Runtime) -> None:
    record(rt, "task.created", TASK)
    (row,) = rows(rt)
    with rt.db.read() as s:
        event = s.scalars(select(EventRecord)).one()
    assert (row.event_seq, row.event_type, row.task_id) == (event.seq, "task.created", "task_1")
    assert (row.kind, row.audience, row.status, row.sent_at) == (
        "feed",
        "team:RMH-housekeeping",
        "sent",
        rt.clock.now(),
    )
    assert row.subject == TASK["summary"] and row.id.startswith("ntf_")


def test_a_rolled_back_event_leaves_no_notification(rt: Runtime) -> None:
    with pytest.raises(RuntimeError, match="boom"), rt.db.transaction() as tx:
        tx.record("task.created", at=rt.clock.now(), actor=SYSTEM, data=TASK)
        raise RuntimeError("boom")
    with rt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(EventRecord)) == 0
    assert rows(rt) == []


def test_bodies_carry_codes_and_ids_never_patient_data(rt: Runtime) -> None:
    leaky = {**TASK, "nhs_number": "9434765919", "patient": "Jane Doe", "stay": "stay_x"}
    record(rt, "task.created", leaky)
    (row,) = rows(rt)
    text = json.dumps(row.message())
    assert "9434765919" not in text and "Jane" not in text and "stay_x" not in text
    assert row.body == {"event": "task.created", "site": "RMH", **TASK}


def test_a_discharge_tells_the_housekeeping_team(small: Runtime) -> None:
    """Through the real services: discharge → cleaning task → the team's feed."""
    bed = small.capacity.list_beds(BedFilter(code="ACU1-AMU-01"))[0]
    stay = small.capacity.admit(
        AdmitRequest(bed_id=bed.id, patient=PatientIn(local_id="L1")), SYSTEM
    )
    small.capacity.discharge(stay.id, DischargeRequest(destination="home", pathway=0), SYSTEM)
    (row,) = rows(small)
    assert (row.audience, row.event_type) == ("team:ACU1-housekeeping", "task.created")
    assert row.body["bed"] == "ACU1-AMU-01" and row.body["ward"] == "ACU1-AMU"


# --- the rules file ------------------------------------------------------------------------

GOOD = """\
channels:
  housekeeping-pager: {type: webhook, url: "http://127.0.0.1:9/hook", secret_env: HK_SECRET}
  bed-managers: {type: email, to: [bed.managers@example.nhs.uk]}
rules:
  - name: cleaning needed
    on: [task.created]
    when: {kind: cleaning}
    notify: ["feed:team:{team}", housekeeping-pager, bed-managers]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("when:", "wen:"), ":7: rules.0.wen: Extra inputs are not permitted"),
        (
            GOOD.replace(", bed-managers]", ", bed-manager]"),
            ":8: rules.0.notify.2: unknown channel",
        ),
        (GOOD.replace('"http://127.0.0.1:9/hook"', "not-a-url"), ":2: channels.housekeeping-pager"),
        (
            GOOD.replace("type: email", "type: pager"),
            ":3: channels.bed-managers: Input tag 'pager'",
        ),
        (GOOD.replace("bed.managers@", "bed.managers-at-"), "is not an email address"),
        (GOOD.replace("{team}", "{team"), "use {name} placeholders only"),
        (GOOD.replace("feed:team:", "feed:crowd:"), "must be <kind>:<name>"),
        (GOOD.replace("secret_env: HK_SECRET", "secret: x"), "secret_env: Field required"),
        (GOOD.replace("bed-managers:", "feed:"), "not 'feed' or 'email'"),
        (GOOD.replace("[task.created]", "[Task Created]"), "is not an event type"),
        ("rules: [1, 2", "not valid YAML"),
        ("- a list", "expected a mapping"),
    ],
)
def test_bad_rules_files_name_the_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, source="rules.yaml")
    assert expected in " | ".join(caught.value.problems), caught.value.problems


def test_the_rules_file_comes_from_settings(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    service = NotifyService(rt.db, rt.clock, Settings(notify_file=path))
    assert list(service.config.channels) == ["housekeeping-pager", "bed-managers"]
    with pytest.raises(RulesError, match="cannot read"):
        NotifyService(rt.db, rt.clock, Settings(notify_file=tmp_path / "missing.yaml"))


def test_cli_checks_a_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace(", bed-managers]", ", nowhere]"))
    monkeypatch.delenv("HK_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["notify", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 channels, 1 rules: OK" in result.stdout and "HK_SECRET is not set" in result.stderr
    result = CliRunner().invoke(cli, ["notify", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:8: rules.0.notify.2: unknown channel 'nowhere'" in result.stderr


# --- feeds: JSON and server-sent events ----------------------------------------------------


def test_feed_api_lists_an_audiences_notifications(rt: Runtime, client: TestClient) -> None:
    record(rt, "task.created", TASK)
    record(rt, "task.created", {**TASK, "task": "task_2", "team": "RMH-porters"})
    headers = auth(rt, "housekeeping")
    r = client.get("/api/feeds?audience=team:RMH-housekeeping", headers=headers)
    assert r.status_code == 200 and [m["task"] for m in r.json()] == ["task_1"]
    both = client.get("/api/feeds?audience=team:RMH-housekeeping,team:RMH-porters", headers=headers)
    first = both.json()[0]["seq"]
    assert [m["task"] for m in both.json()] == ["task_1", "task_2"]
    after = client.get(
        f"/api/feeds?audience=team:RMH-housekeeping,team:RMH-porters&after={first}",
        headers=headers,
    )
    assert [m["task"] for m in after.json()] == ["task_2"]
    bad = client.get("/api/feeds?audience=everyone", headers=headers)
    assert bad.status_code == 422 and "<kind>:<name>" in bad.json()["message"]
    assert client.get("/api/feeds?audience=team:X").status_code == 401


def _frames(url: str, headers: dict[str, str], out: queue.Queue[dict[str, Any]]) -> None:
    with contextlib.suppress(httpx.RemoteProtocolError):  # the test server stopping
        _read_frames(url, headers, out)


def _read_frames(url: str, headers: dict[str, str], out: queue.Queue[dict[str, Any]]) -> None:
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=None)) as c,
        c.stream("GET", url, headers=headers) as r,
    ):
        out.put({"status": r.status_code})
        frame: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith("id: "):
                frame["id"] = int(line[4:])
            elif line.startswith("event: "):
                frame["event"] = line[7:]
            elif line.startswith("data: "):
                frame["data"] = json.loads(line[6:])
            elif line == "" and frame:
                out.put(frame)
                frame = {}


def listen_to(url: str, headers: dict[str, str]) -> queue.Queue[dict[str, Any]]:
    q: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=_frames, args=(url, headers, q), daemon=True).start()
    assert q.get(timeout=10) == {"status": 200}
    return q


def test_feed_stream_delivers_after_commit_and_replays_on_reconnect(rt: Runtime) -> None:
    rt.settings.sse_heartbeat_seconds = 0.2
    headers = auth(rt, "porter")
    with serving(create_app(rt)) as base:
        url = f"{base}/api/feeds/stream?audience=team:RMH-housekeeping,role:control-centre"
        q = listen_to(url, headers)
        _wait(lambda: rt.notify.feed_bus.subscriber_count == 1)
        record(rt, "task.created", {**TASK, "team": "RMH-porters"})  # not for this stream
        record(rt, "task.created", TASK)
        frame = q.get(timeout=5)  # arrives within a second or so; generous for slow CI
        assert frame["event"] == "notification" and frame["data"]["task"] == "task_1"
        assert frame["id"] == frame["data"]["seq"]
        assert frame["data"]["audience"] == "team:RMH-housekeeping"
        seen = frame["id"]
        record(rt, "task.done", {**TASK, "task": "task_3"})  # before the reconnect: replayed
        replay = listen_to(url, {**headers, "Last-Event-ID": str(seen)})
        got = replay.get(timeout=5)
        assert got["data"]["audience"] == "role:control-centre"
        assert got["id"] > seen and got["data"]["task"] == "task_3"


def _wait(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
