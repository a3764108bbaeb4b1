"""Webhook and email delivery against real local receivers: signatures, retries with backoff on
the injected clock, dead letters and their retry, hanging receivers, and waking on commit."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import auth
from tests.receivers import receiving, smtp_server
from tests.serving import free_port
from tests.test_notify import TASK, record, rows
from wardwatch.app import create_app
from wardwatch.cli import app as cli
from wardwatch.core.clock import ManualClock
from wardwatch.notify import outbox
from wardwatch.notify.channels import verify
from wardwatch.notify.config import parse_rules
from wardwatch.notify.dispatcher import Dispatcher
from wardwatch.notify.models import Notification
from wardwatch.runtime import Runtime

SECRET_ENV = "WW_TEST_HOOK_SECRET"
SECRET = "s3cret-for-tests"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def configure(rt: Runtime, channels: dict[str, Any], notify: list[str]) -> None:
    rule = {"name": "page", "on": ["task.created", "task.escalated"], "notify": notify}
    rt.notify.use(parse_rules(yaml.safe_dump({"channels": channels, "rules": [rule]})))


def hook(url: str, **options: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret_env": SECRET_ENV, **options}


def deliver(rt: Runtime) -> int:
    return Dispatcher(rt.notify).deliver_due()


def by_channel(rt: Runtime) -> dict[str, Notification]:
    return {r.channel: r for r in rows(rt)}


# --- webhooks ------------------------------------------------------------------------------


def test_a_webhook_is_signed_and_carries_the_notification(rt: Runtime) -> None:
    with receiving() as receiver:
        configure(rt, {"pager": hook(receiver.url)}, ["pager"])
        record(rt, "task.created", TASK)
        assert deliver(rt) == 1
        (got,) = receiver.received
    (row,) = rows(rt)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == (
        "sent",
        1,
        rt.clock.now(),
        None,
    )
    h = {k.lower(): v for k, v in got.headers.items()}
    assert h["x-wardwatch-delivery"] == row.id
    assert verify(
        SECRET,
        timestamp=h["x-wardwatch-timestamp"],
        body=got.body,
        signature=h["x-wardwatch-signature"],
    )
    assert not verify(
        "another secret",
        timestamp=h["x-wardwatch-timestamp"],
        body=got.body,
        signature=h["x-wardwatch-signature"],
    )
    assert not verify(
        SECRET,
        timestamp=h["x-wardwatch-timestamp"],
        body=got.body.replace(b"urgent", b"routine"),
        signature=h["x-wardwatch-signature"],
    )
    message = json.loads(got.body)
    assert message["id"] == row.id and message["event"] == "task.created"
    assert message["data"]["bed"] == "RMH-W1-03" and message["data"]["priority"] == "urgent"


def test_a_receiver_that_fails_twice_gets_it_on_the_third_attempt_with_backoff(
    rt: Runtime, clock: ManualClock
) -> None:
    start = clock.now()
    with receiving([500, 502, 200]) as receiver:
        configure(rt, {"pager": hook(receiver.url, backoff_seconds=10)}, ["pager"])
        record(rt, "task.created", TASK)
        assert deliver(rt) == 1
        (row,) = rows(rt)
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "failed",
            1,
            start + timedelta(seconds=10),
        )
        assert row.last_error == "the receiver answered HTTP 500"
        assert deliver(rt) == 0  # not due yet
        clock.advance(timedelta(seconds=10))
        assert deliver(rt) == 1
        (row,) = rows(rt)
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "failed",
            2,
            start + timedelta(seconds=10 + 20),
        )
        clock.advance(timedelta(seconds=19))
        assert deliver(rt) == 0
        clock.advance(timedelta(seconds=1))
        assert deliver(rt) == 1
        assert receiver.answered == [500, 502, 200]
    (row,) = rows(rt)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 3, clock.now(), None)


def test_a_receiver_that_always_fails_goes_dead_and_the_api_retries_it(
    rt: Runtime, clock: ManualClock
) -> None:
    with receiving([503]) as receiver:
        configure(rt, {"pager": hook(receiver.url, max_attempts=3)}, ["pager"])
        record(rt, "task.created", TASK)
        for _ in range(3):
            assert deliver(rt) == 1
            clock.advance(timedelta(hours=1))
        assert deliver(rt) == 0  # dead letters are never retried by themselves
        row, told = rows(rt)
        assert (row.status, row.attempts) == ("dead", 3)
        assert row.last_error == "the receiver answered HTTP 503"
        # HAZ-N01 (a): the control centre is told on its feed, whatever the rules say.
        assert (told.channel, told.audience, told.status) == ("feed", "role:control-centre", "sent")
        assert told.subject.startswith("Not delivered after 3 attempts (webhook pager): ")
        assert told.body["notification"] == row.id and told.event_seq == row.event_seq
        assert [n["id"] for n in rt.notify.feed(["role:control-centre"])] == [told.id]
        receiver.plan = [200]  # the receiver is fixed
        with TestClient(create_app(rt)) as client:
            admin = auth(rt, "control-centre")
            dead = client.get("/api/notifications?status=dead", headers=admin).json()
            assert [(n["id"], n["channel"], n["attempts"]) for n in dead] == [(row.id, "pager", 3)]
            assert client.get("/api/notifications", headers=auth(rt, "porter")).status_code == 403
            r = client.post(f"/api/notifications/{row.id}/retry", headers=admin)
            assert r.status_code == 200 and r.json()["status"] == "pending"
            _wait(lambda: rt.notify.get(row.id).status == "sent")  # woken by the commit
            again = client.post(f"/api/notifications/{row.id}/retry", headers=admin)
            assert again.status_code == 409 and "not dead" in again.json()["message"]
            missing = client.post("/api/notifications/ntf_nope/retry", headers=admin)
            assert missing.status_code == 404
        assert rt.notify.get(row.id).attempts == 1
        assert len(receiver.received) == 4


def test_a_hanging_receiver_costs_only_its_timeout_and_delays_nobody(rt: Runtime) -> None:
    with receiving(["hang"], hang_seconds=10) as stuck, receiving() as fine:
        configure(
            rt,
            {"stuck": hook(stuck.url, timeout_seconds=0.5), "fine": hook(fine.url)},
            ["stuck", "fine"],
        )
        record(rt, "task.created", TASK)
        began = time.monotonic()
        assert deliver(rt) == 2
        assert time.monotonic() - began < 5  # far less than the receiver's 10 s hang
        assert len(fine.received) == 1
    got = by_channel(rt)
    assert got["fine"].status == "sent"
    assert (got["stuck"].status, got["stuck"].last_error) == ("failed", "no answer within 0.5 s")
    assert all(r.status != "sending" for r in rows(rt))  # nothing stuck


@contextmanager
def running(dispatcher: Dispatcher) -> Iterator[None]:
    """The dispatcher's ``run()`` loop on its own event loop in a thread, as the app runs it."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(dispatcher.run())

    def main() -> None:
        with suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    _wait(lambda: dispatcher.running)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)


def test_a_commit_wakes_the_dispatcher_and_a_hanging_receiver_blocks_nothing(
    rt: Runtime,
) -> None:
    # Sweeping once a minute: only the wake-up after commit can deliver within seconds.
    dispatcher = Dispatcher(rt.notify, sweep_seconds=60)
    with (
        receiving(["hang"], hang_seconds=10) as stuck,
        receiving() as fine,
        running(dispatcher),
    ):
        rt.notify.use(
            parse_rules(
                yaml.safe_dump(
                    {
                        "channels": {
                            "stuck": hook(stuck.url, timeout_seconds=8),
                            "fine": hook(fine.url),
                        },
                        "rules": [
                            {"name": "a", "on": ["task.escalated"], "notify": ["stuck"]},
                            {"name": "b", "on": ["task.created"], "notify": ["fine"]},
                        ],
                    }
                )
            )
        )
        record(rt, "task.escalated", TASK)
        assert stuck.arrived.wait(timeout=5)
        record(rt, "task.created", TASK)
        fine.wait_for(1, timeout=5)
        _wait(lambda: by_channel(rt)["fine"].status == "sent")
        assert by_channel(rt)["stuck"].status == "sending"  # still waiting on the stuck one


def test_a_claim_left_by_a_dead_worker_comes_back_after_its_lease(
    rt: Runtime, clock: ManualClock
) -> None:
    with receiving() as receiver:
        configure(rt, {"pager": hook(receiver.url)}, ["pager"])
        record(rt, "task.created", TASK)
        (claim,) = outbox.claim(rt.db, clock.now(), 10)  # a worker claims it, then dies
        assert deliver(rt) == 0
        clock.advance(outbox.LEASE + timedelta(seconds=1))
        assert deliver(rt) == 1
        assert len(receiver.received) == 1
    (row,) = rows(rt)
    assert (row.status, row.attempts) == ("sent", 2)
    # The dead worker's late answer is not recorded over the newer attempt.
    late = outbox.finish(
        rt.db, claim, clock.now(), error="late", max_attempts=1, backoff=timedelta()
    )
    assert late is None
    assert rows(rt)[0].status == "sent"


def test_a_missing_secret_sends_nothing_and_says_why(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with receiving() as receiver:
        configure(rt, {"pager": hook(receiver.url)}, ["pager"])
        record(rt, "task.created", TASK)
        deliver(rt)
        assert receiver.received == []
    (row,) = rows(rt)
    assert row.status == "failed" and f"{SECRET_ENV} is not set" in (row.last_error or "")


def test_a_channel_removed_from_the_rules_fails_clearly(rt: Runtime) -> None:
    configure(rt, {"pager": hook("http://127.0.0.1:9/hook")}, ["pager"])
    record(rt, "task.created", TASK)
    configure(rt, {}, ["feed:role:control-centre"])
    deliver(rt)
    (row,) = [r for r in rows(rt) if r.channel == "pager"]
    assert row.last_error == "channel 'pager' (webhook) is not configured any more"


# --- email ---------------------------------------------------------------------------------


def test_escalation_email_through_a_real_smtp_server(rt: Runtime) -> None:
    escalated = {**TASK, "level": 1, "supervisor_email": "hk.sup@example.nhs.uk"}
    with smtp_server() as box:
        rt.settings.smtp_host, rt.settings.smtp_port = box.host, box.port
        record(rt, "task.escalated", escalated)  # the built-in rules
        assert deliver(rt) == 1
        _wait(lambda: len(box.messages) == 1)
    email = next(r for r in rows(rt) if r.kind == "email")
    assert (email.status, email.audience) == ("sent", "hk.sup@example.nhs.uk")
    sender, recipients, msg = box.messages[0]
    assert (sender, recipients) == (rt.settings.smtp_from, ["hk.sup@example.nhs.uk"])
    assert msg["Subject"] == "[WardWatch] Infection clean of bed RMH-W1-03"
    assert msg["X-WardWatch-Delivery"] == email.id
    text = msg.get_payload(decode=True).decode()
    assert "bed: RMH-W1-03" in text and "level: 1" in text


def test_an_email_channel_sends_to_each_recipient(rt: Runtime) -> None:
    to = ["bed.managers@example.nhs.uk", "{supervisor_email}"]
    configure(rt, {"managers": {"type": "email", "to": to}}, ["managers"])
    with smtp_server() as box:
        rt.settings.smtp_host, rt.settings.smtp_port = box.host, box.port
        record(rt, "task.created", {**TASK, "supervisor_email": "sup@example.nhs.uk"})
        record(rt, "task.created", TASK)  # no supervisor: that recipient is skipped
        assert deliver(rt) == 3
        _wait(lambda: len(box.messages) == 3)
    assert sorted(r for _, rcpt, _ in box.messages for r in rcpt) == [
        "bed.managers@example.nhs.uk",
        "bed.managers@example.nhs.uk",
        "sup@example.nhs.uk",
    ]
    assert rt.notify.skipped == {"page -> managers": 1}


def test_email_failures_are_recorded_with_their_reason(rt: Runtime, clock: ManualClock) -> None:
    configure(rt, {}, ["email:ops@example.nhs.uk"])
    record(rt, "task.created", TASK)
    deliver(rt)
    assert rows(rt)[0].last_error == "email is not configured: set WARDWATCH_SMTP_HOST"
    rt.settings.smtp_host, rt.settings.smtp_port = "127.0.0.1", _closed_port()
    clock.advance(timedelta(hours=1))
    deliver(rt)
    (row,) = rows(rt)
    assert row.status == "failed" and (row.last_error or "").startswith("SMTP ")
    assert row.attempts == 2


def _closed_port() -> int:
    return free_port()  # nothing listens there


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_cli_lists_dead_letters_and_retries_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    rt = Runtime.build()
    try:
        url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: refused
        configure(rt, {"pager": hook(url, max_attempts=1)}, ["pager"])
        record(rt, "task.created", TASK)
        deliver(rt)
        row, _told = rows(rt)
        assert row.status == "dead"
    finally:
        rt.close()
    runner = CliRunner()
    listed = runner.invoke(cli, ["notify", "list", "--status", "dead", "--json"])
    assert listed.exit_code == 0, listed.output
    (dead,) = json.loads(listed.stdout)
    assert (dead["id"], dead["last_error"]) == (
        row.id,
        "could not reach the receiver (ConnectError)",
    )
    retried = runner.invoke(cli, ["notify", "retry", row.id])
    assert retried.exit_code == 0 and f"{row.id}: pending" in retried.stdout
    again = runner.invoke(cli, ["notify", "retry", row.id])
    assert again.exit_code == 1 and "not dead" in again.stderr
    bad = runner.invoke(cli, ["notify", "list", "--status", "lost"])
    assert bad.exit_code == 2 and "no status 'lost'" in bad.stderr
