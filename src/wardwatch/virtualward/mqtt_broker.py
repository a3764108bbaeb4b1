"""The MQTT door's connection to the broker: where it is, how we connect, what a topic names.

The door itself (batches, storing, retries, acknowledging) is :mod:`wardwatch.virtualward.mqtt`.

**Where.** ``settings.mqtt_url``: ``mqtt://[user:password@]host[:1883]``, ``mqtts://`` for TLS
(port 8883 by default), parsed by :class:`Broker`. The password never reaches a log or an
error message.

**Manual acknowledgement.** aiomqtt (2.5) has no public manual acknowledgement
(empicano/aiomqtt#345; the pull request adding one, #346, is not merged), and by default
paho-mqtt sends the PUBACK as soon as its ``on_message`` callback returns -- before aiomqtt
has even handed the message to us. So a crash between receipt and commit would lose readings
the broker believes delivered. paho-mqtt 2.x has application-controlled acknowledgements:
``manual_ack_set(True)`` makes ``_handle_publish`` skip the PUBACK, and ``ack(mid, qos)``
queues it later. aiomqtt keeps its paho client as ``Client._client``; :func:`new_client`
switches manual acknowledgement on *before* connecting (a persistent session can deliver
messages straight after CONNACK) and the door calls ``ack`` only after the ingest transaction
returned. This is the one private attribute we touch (:func:`paho_client`); everything else
is aiomqtt's public API.

Each connection uses a *fresh* aiomqtt client, so a message received on a connection is
never acknowledged on a later one (message ids are per connection: an old id could name a
different, redelivered message); paho also drops queued packets when it reconnects.

**Persistent session.** MQTT 5 with a fixed client identifier (``settings.mqtt_client_id``),
``clean_start=False`` and a session that never expires: the MQTT 5 form of MQTT 3.1.1's
``clean_session=False``. (aiomqtt's default, clean start on the first connection only, would
throw away whatever the broker kept for us while WardWatch was down.) Unacknowledged
messages are redelivered when we reconnect. MQTT 5 also lets us set *Receive Maximum*
(:data:`RECEIVE_MAXIMUM`): how many unacknowledged messages the broker may send us. With
MQTT 3.1.1 the broker alone decides (Mosquitto: 20), which caps every batch at 20 messages.

**Topic.** ``wardwatch/vitals/<device serial>``: :func:`topic_device` reads the serial from
the topic's last level (below the subscription's fixed part), and :func:`with_device` makes
it the device of a message that names neither ``device`` nor ``patient`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho_mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wardwatch.core import fastjson

log = logging.getLogger(__name__)

#: Unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum):
#: twice a batch, so the next batch arrives while one is being stored.
RECEIVE_MAXIMUM = 400
#: MQTT 5 Session Expiry Interval meaning "never": the broker keeps our session (and the
#: readings sent while we are away) as MQTT 3.1.1 does for ``clean_session=False``.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
#: Device serials as registered (see DeviceIn).
SERIAL = re.compile(r"[A-Za-z0-9._:-]{1,80}")


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker is, from ``mqtt://[user:password@]host[:port]`` (``mqtts://``: TLS)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> Broker:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(
                f"MQTT URL {_safe(url)!r} must start with mqtt:// (or mqtts:// for TLS), "
                "e.g. mqtt://127.0.0.1:1883"
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"MQTT URL {_safe(url)!r} has an invalid port") from None
        if not parts.hostname:
            raise ValueError(f"MQTT URL {_safe(url)!r} names no host")
        if parts.path.strip("/") or parts.query:
            raise ValueError(
                f"MQTT URL {_safe(url)!r}: give only the broker; the topic is WARDWATCH_MQTT_TOPIC"
            )
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=tls,
        )

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def _safe(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def topic_device(topic: str, topic_filter: str) -> str | None:
    """The device serial a topic names: its last level, if below the filter's fixed part."""
    fixed = 0
    for level in topic_filter.split("/"):
        if level in ("+", "#"):
            break
        fixed += 1
    levels = topic.split("/")
    if len(levels) <= fixed or not SERIAL.fullmatch(levels[-1]):
        return None
    return levels[-1]


def with_device(payload: bytes, serial: str | None) -> bytes | str:
    """The payload with ``device`` set from the topic when it names neither device nor
    patient at its top level (otherwise as received)."""
    if serial is None:
        return payload
    try:
        doc = fastjson.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload  # compact.parse says why
    if not isinstance(doc, dict) or "device" in doc or "patient" in doc:
        return payload
    doc["device"] = serial
    return fastjson.dumps(doc)


def new_client(broker: Broker, client_id: str, tls: ssl.SSLContext | None) -> aiomqtt.Client:
    """A fresh client for one connection: MQTT 5, persistent session, manual acknowledgement."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
        tls_context=tls,
        keepalive=30,
        timeout=10,
    )
    paho_client(client).manual_ack_set(True)  # before connecting: see the module docstring
    return client


def paho_client(client: aiomqtt.Client) -> paho_mqtt.Client:
    """aiomqtt's underlying paho client: the only way to manual acknowledgements in 2.5."""
    return client._client


def check_granted(granted: object, topic: str) -> None:
    """Fail on a refused subscription; warn when only QoS 0 (no redelivery) was granted."""
    codes = list(granted) if isinstance(granted, list | tuple) else []
    for code in codes:
        value = getattr(code, "value", code)
        if isinstance(value, int) and value >= 0x80:
            raise aiomqtt.MqttError(f"the broker refused the subscription to {topic!r}: {code}")
        if value == 0:
            log.warning(
                "MQTT: the broker granted only QoS 0 on %r: readings it sends cannot be "
                "redelivered if WardWatch stops before storing them",
                topic,
            )


async def next_or_stop(
    messages: aiomqtt.client.MessagesIterator, stop: asyncio.Event | None
) -> aiomqtt.Message | None:
    """The next message, or None once ``stop`` is set; MqttError if the connection drops.
    A message taken just as ``stop`` is set is simply not acknowledged (redelivered later)."""
    if stop is None:
        return await anext(messages)
    if stop.is_set():
        return None
    get = asyncio.ensure_future(anext(messages))
    halt = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.cancel()
        if not get.done():
            get.cancel()
    if get.done() and not get.cancelled():
        return get.result()  # a message, or MqttError if the connection dropped
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await get
    return None


async def sleep_or_stop(stop: asyncio.Event | None, seconds: float) -> bool:
    """Wait ``seconds``; True if ``stop`` was set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
