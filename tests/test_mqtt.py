"""Readings through a real MQTT broker (Mosquitto) into WardWatch, on SQLite and PostgreSQL.

The door runs in its own event loop thread as the app's lifespan runs it; readings are
published by paho-mqtt, a client this project did not write. Every test uses its own topic
prefix and client identifiers (and forgets its broker sessions afterwards), so tests never
see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho_mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine, func, select

from wardwatch.app import create_app
from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.actor import Actor
from wardwatch.core.clock import ManualClock
from wardwatch.db.session import make_engine
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Device, Reading, Rejected
from wardwatch.virtualward.mqtt import MqttDoor
from wardwatch.virtualward.mqtt_broker import SESSION_NEVER_EXPIRES, Broker, topic_device
from wardwatch.virtualward.schemas import DeviceIn, EnrolmentRead, EnrolRequest

NURSE = Actor(name="nurse", role="clinician")
#: One set scoring 0 on the chart.
CALM = {
    "respiration_rate": (16, "/min"),
    "spo2": (97, "%"),
    "systolic_bp": (125, "mm[Hg]"),
    "pulse": (72, "/min"),
    "consciousness": ("A", None),
    "temperature": (36.8, "Cel"),
}


# --- helpers -------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def readings(
    values: dict[str, tuple[Any, str | None]], prefix: str, **each: Any
) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-{name}", "code": name, "value": v, **({"unit": u} if u else {}), **each}
        for name, (v, u) in values.items()
    ]


def body(**doc: Any) -> bytes:
    return json.dumps(doc).encode()


def enrol(rt: Runtime, local_id: str, serial: str) -> EnrolmentRead:
    rt.virtualward.register_device(DeviceIn(serial=serial, kind="oximeter"), NURSE)
    return rt.virtualward.enrol(
        EnrolRequest(patient=PatientIn(local_id=local_id), ward="VW1-FRA", devices=[serial]),
        NURSE,
    )


def count(rt: Runtime, model: Any) -> int:
    with rt.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def rejected(rt: Runtime) -> list[tuple[str, str | None, str, str]]:
    with rt.db.read() as s:
        rows = s.execute(
            select(Rejected.source, Rejected.sender, Rejected.reason, Rejected.payload).order_by(
                Rejected.id
            )
        )
        return [(a, b, c, d) for a, b, c, d in rows]


def _paho_client(url: str, client_id: str, **kwargs: Any) -> paho_mqtt.Client:
    broker = Broker.parse(url)
    client = paho_mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    return client


def publish(url: str, topic: str, *payloads: bytes) -> None:
    """Publish with QoS 1, in order, and wait until the broker has each one."""
    broker = Broker.parse(url)
    client = _paho_client(url, f"ww-test-pub-{uuid.uuid4().hex[:12]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def connect_as(url: str, client_id: str, *, clean: bool) -> None:
    """Connect once as ``client_id`` (MQTT 5) and leave: with ``clean``, the broker forgets
    that client's session; without, the connection takes the session over."""
    broker = Broker.parse(url)
    client = _paho_client(url, client_id, protocol=paho_mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0 if clean else SESSION_NEVER_EXPIRES
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.host, broker.port, clean_start=clean, properties=props)
    client.loop_start()
    try:
        assert connected.wait(5), f"could not connect to {broker} as {client_id}"
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def running(rt: Runtime) -> Iterator[MqttDoor]:
    """The door on its own event loop thread until the block ends (then stopped cleanly)."""
    door = MqttDoor(rt)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(door.run(stop),))
    thread.start()
    try:
        wait_until(door.subscribed.is_set, "the door to subscribe")
        yield door
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        assert not thread.is_alive(), "the door did not stop"
        loop.close()


@pytest.fixture
def mq(
    small: Runtime, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[Runtime, str]]:
    """The runtime set up for this test's own topic prefix and client id; yields the prefix.
    Afterwards: the door logged no error, and the broker forgets the session (it would be
    kept for ever otherwise)."""
    run = uuid.uuid4().hex[:12]
    prefix = f"wwtest/{run}/vitals"
    small.settings.mqtt_url = mqtt_url
    small.settings.mqtt_topic = f"{prefix}/#"
    small.settings.mqtt_client_id = f"ww-test-{run}"
    yield small, prefix
    connect_as(mqtt_url, small.settings.mqtt_client_id, clean=True)
    errors = [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert errors == [], errors


# --- pure parts ----------------------------------------------------------------------------


def test_broker_urls() -> None:
    b = Broker.parse("mqtts://dev%40ice:p%3Ass@broker.nhs.example")
    assert (b.host, b.port, b.tls, b.username, b.password) == (
        "broker.nhs.example",
        8883,
        True,
        "dev@ice",
        "p:ss",
    )
    assert str(b) == "mqtts://dev@ice@broker.nhs.example:8883" and "p:ss" not in repr(b)
    assert Broker.parse("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError, match="must start with mqtt://") as exc:
        Broker.parse("http://user:secret@host:1883")
    assert "secret" not in str(exc.value)
    with pytest.raises(ValueError, match="the topic is WARDWATCH_MQTT_TOPIC"):
        Broker.parse("mqtt://host:1883/wardwatch/vitals")
    with pytest.raises(ValueError, match="invalid port"):
        Broker.parse("mqtt://host:99999")


def test_the_device_a_topic_names() -> None:
    f = "wardwatch/vitals/#"
    assert topic_device("wardwatch/vitals/WW-OX-0042", f) == "WW-OX-0042"
    assert topic_device("wardwatch/vitals/site-1/WW-OX-0042", f) == "WW-OX-0042"
    assert topic_device("wardwatch/vitals", f) is None  # no level below the filter's fixed part
    assert topic_device("wardwatch/vitals/not a serial", f) is None
    assert topic_device("wardwatch/vitals/OX-1", "wardwatch/+/OX-1") == "OX-1"


# --- readings through the broker -----------------------------------------------------------


def test_a_single_reading_on_a_device_topic(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    e = enrol(rt, "MQ-1", "OX-M1")
    with running(rt) as door:
        # No "device" in the message: the topic's last level names it.
        publish(
            mqtt_url,
            f"{prefix}/OX-M1",
            body(
                at=iso(clock.now()),
                readings=[{"id": "p1", "code": "8867-4", "value": 71, "unit": "/min"}],
            ),
        )
        wait_until(lambda: door.stats.acknowledged == 1, "the message to be acknowledged")
    assert rt.virtualward.readings(e.id) == {"pulse": [(clock.now(), 71.0)]}
    with rt.db.read() as s:
        assert s.scalars(select(Reading.source)).all() == ["mqtt"]
    latest = rt.virtualward.get(e.id).latest
    assert latest is not None and latest.partial and latest.total is None  # one of six: partial


def test_a_batch_is_scored_and_its_battery_report_kept(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    e = enrol(rt, "MQ-2", "OX-M2")
    with running(rt) as door:
        publish(
            mqtt_url,
            f"{prefix}/OX-M2",
            body(device="OX-M2", battery=15, at=iso(clock.now()), readings=readings(CALM, "b")),
        )
        wait_until(lambda: door.stats.acknowledged == 1, "the message to be acknowledged")
    got = rt.virtualward.get(e.id)
    assert got.latest is not None
    assert (got.latest.total, got.latest.partial, got.latest.risk) == (0, False, "low")
    assert got.devices[0].battery_pct == 15
    assert [a.kind for a in rt.virtualward.alerts()] == ["battery_low"]


def test_a_gateway_batch_naming_several_devices(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    patients = {serial: enrol(rt, f"MQ-{serial}", serial) for serial in ("G-1", "G-2", "G-3")}
    items = [r for serial in patients for r in readings(CALM, f"gw-{serial}", device=serial)]
    with running(rt) as door:
        # The gateway's own serial is on the topic; each reading names its device.
        publish(mqtt_url, f"{prefix}/GATEWAY-7", body(at=iso(clock.now()), readings=items))
        wait_until(lambda: door.stats.acknowledged == 1, "the message to be acknowledged")
        assert (door.stats.stored, door.stats.refused) == (18, 0)
    for e in patients.values():
        latest = rt.virtualward.get(e.id).latest
        assert latest is not None and latest.total == 0 and not latest.partial
    assert rejected(rt) == []


def test_malformed_messages_are_kept_and_the_rest_still_flows(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    e = enrol(rt, "MQ-3", "OX-M3")
    topic = f"{prefix}/OX-M3"
    good = body(at=iso(clock.now()), readings=readings(CALM, "after"))
    with running(rt) as door:
        publish(mqtt_url, topic, b"{not json", b"[1, 2]", b'{"readings": 5}', b"\xff\xfe", good)
        wait_until(lambda: door.stats.acknowledged == 5, "all five to be acknowledged")
    kept = rejected(rt)
    assert [(source, sender) for source, sender, _, _ in kept] == [("mqtt", "device:OX-M3")] * 4
    reasons = [reason for _, _, reason, _ in kept]
    assert "not JSON" in reasons[0] and "JSON object" in reasons[1]
    assert "'readings' must be a list" in reasons[2] and "not JSON" in reasons[3]
    assert [payload for *_, payload in kept][:3] == ["{not json", "[1, 2]", '{"readings": 5}']
    latest = rt.virtualward.get(e.id).latest
    assert latest is not None and latest.total == 0


def test_an_impossible_value_is_refused_with_its_reason_the_rest_stored(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    e = enrol(rt, "MQ-4", "OX-M4")
    items = [*readings(CALM, "ok"), {"id": "hr-900", "code": "pulse", "value": 900, "unit": "/min"}]
    with running(rt) as door:
        publish(mqtt_url, f"{prefix}/OX-M4", body(at=iso(clock.now()), readings=items))
        wait_until(lambda: door.stats.acknowledged == 1, "the message to be acknowledged")
        assert (door.stats.stored, door.stats.refused) == (6, 1)
    ((source, sender, reason, payload),) = rejected(rt)
    assert (source, sender) == ("mqtt", "device:OX-M4")
    assert "pulse 900" in reason and "not possible" in reason and '"hr-900"' in payload
    assert rt.virtualward.readings(e.id)["pulse"] == [(clock.now(), 72.0)]
    latest = rt.virtualward.get(e.id).latest
    assert latest is not None and latest.total == 0


def test_an_unknown_device_is_refused(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    with running(rt) as door:
        publish(
            mqtt_url, f"{prefix}/NOPE-1", body(at=iso(clock.now()), readings=readings(CALM, "u"))
        )
        wait_until(lambda: door.stats.acknowledged == 1, "the message to be acknowledged")
    kept = rejected(rt)
    assert len(kept) == 6 and all("unknown device 'NOPE-1'" in r for _, _, r, _ in kept)
    assert count(rt, Reading) == 0


def test_a_resent_message_is_stored_once(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    enrol(rt, "MQ-5", "OX-M5")
    message = body(at=iso(clock.now()), readings=readings(CALM, "same"))
    with running(rt) as door:
        publish(mqtt_url, f"{prefix}/OX-M5", message, message)
        wait_until(lambda: door.stats.acknowledged == 2, "both to be acknowledged")
        assert (door.stats.stored, door.stats.duplicates) == (6, 6)
    assert count(rt, Reading) == 6


# --- acknowledged only after commit --------------------------------------------------------


def _down(backend: str, tmp_path: Path) -> Any:
    """An engine on a database that cannot be opened (a directory; a closed port)."""
    if backend == "sqlite":
        return create_engine(f"sqlite:///{tmp_path}")  # a directory is no database file
    return make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2}
    )


def test_nothing_is_acknowledged_before_it_is_stored(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock, backend: str, tmp_path: Path
) -> None:
    """The database down: nothing is acknowledged, so the broker redelivers every message to
    the next connection with the same session; what was stored is not delivered again."""
    rt, prefix = mq
    e = enrol(rt, "MQ-6", "OX-M6")
    topic = f"{prefix}/OX-M6"
    down = Runtime(settings=rt.settings, clock=clock, engine=_down(backend, tmp_path))
    with running(down) as first:
        publish(mqtt_url, topic, b"{oops", body(at=iso(clock.now()), readings=readings(CALM, "a")))
        wait_until(lambda: first.stats.store_retries >= 2, "the door to retry the store")
        assert first.stats.acknowledged == 0 and first.stats.batches == 0
    down.close()
    assert (count(rt, Reading), count(rt, Rejected)) == (0, 0)
    # WardWatch again, database up: both messages come back (an auto-acknowledging client
    # would have lost them), are stored and acknowledged.
    with running(rt) as second:
        wait_until(lambda: second.stats.acknowledged == 2, "the redelivered messages")
    assert (count(rt, Reading), len(rejected(rt))) == (6, 1)
    # Acknowledged means done: a third connection gets only what is new.
    with running(rt) as third:
        publish(mqtt_url, topic, body(at=iso(clock.now()), readings=readings(CALM, "b")))
        wait_until(lambda: third.stats.acknowledged == 1, "the new message")
        assert third.stats.messages == 1
    assert (count(rt, Reading), len(rejected(rt))) == (12, 1)
    assert rt.virtualward.get(e.id).latest is not None


def test_the_door_reconnects_when_the_broker_drops_it(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    enrol(rt, "MQ-7", "OX-M7")
    with running(rt) as door:
        # A second connection with our client id makes the broker drop the door's.
        connect_as(mqtt_url, rt.settings.mqtt_client_id, clean=False)
        wait_until(lambda: door.stats.connections == 2 and door.subscribed.is_set(), "reconnect")
        publish(
            mqtt_url, f"{prefix}/OX-M7", body(at=iso(clock.now()), readings=readings(CALM, "r"))
        )
        wait_until(lambda: door.stats.acknowledged == 1, "the message after reconnecting")
    assert count(rt, Reading) == 6


def test_the_app_starts_the_door_and_gets_what_was_sent_while_it_was_down(
    mq: tuple[Runtime, str], mqtt_url: str, clock: ManualClock
) -> None:
    rt, prefix = mq
    e = enrol(rt, "MQ-8", "OX-M8")
    with running(rt):
        pass  # WardWatch ran once: the broker keeps its session from now on
    publish(mqtt_url, f"{prefix}/OX-M8", body(at=iso(clock.now()), readings=readings(CALM, "w")))
    with TestClient(create_app(rt)):
        wait_until(lambda: count(rt, Reading) == 6, "the reading sent while WardWatch was down")
    latest = rt.virtualward.get(e.id).latest
    assert latest is not None and latest.total == 0
    with rt.db.read() as s:
        assert s.scalar(select(Device.last_seen_at)) == clock.now()
