"""The MQTT door: device and gateway readings from a broker, acknowledged only once stored.

WardWatch subscribes to ``settings.mqtt_topic`` (default ``wardwatch/vitals/#``) on
``settings.mqtt_url`` (``mqtt://[user:password@]host[:1883]``, ``mqtts://`` for TLS, port 8883
by default) with QoS 1. Each message is the compact JSON payload of
:mod:`wardwatch.virtualward.compact`, read exactly as
:meth:`VirtualWardService.receive_compact` (and so ``POST /api/readings``) reads it, with
source ``"mqtt"``. The door calls ``compact.parse`` and the ingestor itself rather than
``receive_compact`` only so that several messages can share one transaction (below) and a
message's device can come from its topic.

**Acknowledged only after commit**, on a persistent MQTT 5 session: a message is
acknowledged (PUBACK, with paho's manual acknowledgement) only once the ingest transaction
that stored it returned, in the order received, so a crash between receipt and commit loses
nothing: the broker redelivers what was never acknowledged. How the connection is set up for
that (the one private attribute we touch, a fresh client per connection, the session that
never expires, *Receive Maximum*) is :mod:`wardwatch.virtualward.mqtt_broker`.

**Batching.** What is already queued when a batch starts (up to :data:`MAX_BATCH_MESSAGES`
messages or :data:`MAX_BATCH_BYTES`) is stored in one ingest call -- one transaction -- and
then acknowledged in the order received. One message may itself hold a batch (its
``readings`` list). Nothing waits for a batch to fill: a lone reading is stored at once.

**Topic.** ``wardwatch/vitals/<device serial>``. When a message names neither ``device`` nor
``patient`` at its top level and the topic's last level (below the subscription's fixed
part) looks like a serial, that serial is the message's device (the rule is
:mod:`wardwatch.virtualward.mqtt_broker`'s). A device a message names itself always wins, so
a gateway may publish many devices' readings on its own topic.

**Failures.**

- A message that cannot be read (not JSON, wrong shape) is kept in ``vw_rejected`` with the
  reason and acknowledged: it will never get better. So is each refused reading.
- The database unreachable or busy (``OperationalError``, ``InterfaceError``, a pool
  timeout): nothing is acknowledged; the batch is retried with back-off (0.5 s doubling to
  30 s) for as long as it takes, and logged at each attempt. The broker holds the rest.
- A batch that met a concurrent change (deadlock, serialisation failure: ``Conflict``) is
  retried at once, up to :data:`CONFLICT_RETRIES` times, then treated as below.
- Any other error while storing a batch: its messages are retried one by one; a message that
  still fails is kept in ``vw_rejected`` (reason ``could not be processed``, with the whole
  payload, for replay) and acknowledged, so that one bad message cannot stop the readings
  of every other patient. The error is logged with where it was raised.
- The broker gone: reconnect with back-off (1 s doubling to 30 s), logged.

A redelivered message is harmless: readings are stored once per key (the sender's reading
id, or a digest of the content), so only a whole-message refusal is recorded again.

Logs name topics, counts and error types, never payloads (they carry patient identifiers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

import aiomqtt
import paho.mqtt.client as paho_mqtt
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from wardwatch.core.actor import Actor
from wardwatch.core.errors import Conflict
from wardwatch.virtualward import compact
from wardwatch.virtualward.ingest import Battery, IngestResult
from wardwatch.virtualward.mqtt_broker import (
    Broker,
    check_granted,
    new_client,
    next_or_stop,
    paho_client,
    sleep_or_stop,
    topic_device,
    with_device,
)
from wardwatch.virtualward.readings import RawReading

if TYPE_CHECKING:
    from wardwatch.runtime import Runtime

log = logging.getLogger(__name__)

#: Who the event log says stored MQTT readings.
MQTT_ACTOR = Actor(name="mqtt", role="integration")
#: Half the broker's Receive Maximum (mqtt_broker.RECEIVE_MAXIMUM): the next batch arrives
#: while one is being stored.
MAX_BATCH_MESSAGES = 200
#: About 5,000 readings of the compact payload: a transaction of a few hundred milliseconds,
#: short enough not to hold patients' rows locked against clinicians for long.
MAX_BATCH_BYTES = 512_000
CONNECT_BACKOFF = (1.0, 30.0)
STORE_BACKOFF = (0.5, 30.0)
#: A batch that met a concurrent change (deadlock, serialisation failure) is retried this
#: many times before it is treated as a failing batch.
CONFLICT_RETRIES = 3
TRANSIENT = (OperationalError, InterfaceError, PoolTimeout, DisconnectionError)


@dataclass(slots=True)
class Parsed:
    """One message read: what to ingest, or why the whole of it was refused."""

    topic: str
    readings: list[RawReading]
    batteries: list[Battery]
    rejected: list[tuple[str, str, str]]
    whole_refused: bool = False


@dataclass(slots=True)
class Stats:
    """Counters since the door started, or of one batch (for logs, tests, the benchmark)."""

    connections: int = 0
    messages: int = 0
    acknowledged: int = 0
    batches: int = 0
    stored: int = 0  # readings
    duplicates: int = 0  # readings resent
    refused: int = 0  # readings refused
    rejected_messages: int = 0  # whole messages that could not be read
    set_aside: int = 0  # messages kept in vw_rejected because storing them failed
    store_retries: int = 0

    def add(self, other: Stats | IngestResult) -> None:
        if isinstance(other, IngestResult):
            other = Stats(
                stored=other.stored, duplicates=other.duplicates, refused=len(other.refused)
            )
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


Outcome = Literal["committed", "stopped", "lost"]


class MqttDoor:
    """Subscribes, stores batches through the ingestor, acknowledges after commit."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        url: str | None = None,
        topic: str | None = None,
        client_id: str | None = None,
    ) -> None:
        settings = runtime.settings
        url = url or settings.mqtt_url
        if not url:
            raise ValueError("no MQTT broker configured (WARDWATCH_MQTT_URL)")
        self.runtime = runtime
        self.broker = Broker.parse(url)
        self.topic = topic or settings.mqtt_topic
        self.client_id = client_id or settings.mqtt_client_id
        self.stats = Stats()
        #: Set while connected and subscribed.
        self.subscribed = asyncio.Event()
        self._tls = ssl.create_default_context() if self.broker.tls else None

    # --- the connection loop (event loop) --------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Until ``stop`` is set (or the task is cancelled): connect, consume, reconnect."""
        delay = CONNECT_BACKOFF[0]
        while stop is None or not stop.is_set():
            try:
                await self._session(stop)
                return  # stopped
            except aiomqtt.MqttError as exc:
                was_up = self.subscribed.is_set()
                if was_up:
                    delay = CONNECT_BACKOFF[0]  # it was working: try again soon
                log.warning(
                    "MQTT broker %s %s (%s); reconnecting in %.0f s",
                    self.broker,
                    "connection lost" if was_up else "not reachable",
                    f"{exc}: {exc.__cause__}" if exc.__cause__ else exc,
                    delay,
                )
            except Exception as exc:  # a bug must not end the door for good: log, start again
                log.error(
                    "MQTT door failed (%s); reconnecting in %.0f s%s",
                    _why(exc),
                    delay,
                    _frames(exc),
                )
            finally:
                self.subscribed.clear()
            if await sleep_or_stop(stop, delay):
                return
            delay = min(delay * 2, CONNECT_BACKOFF[1])

    async def _session(self, stop: asyncio.Event | None) -> None:
        """One connection, until ``stop`` is set (returns) or it fails (raises MqttError)."""
        client = new_client(self.broker, self.client_id, self._tls)
        async with client:
            granted = await client.subscribe(self.topic, qos=1)
            check_granted(granted, self.topic)
            self.stats.connections += 1
            self.subscribed.set()
            log.info(
                "MQTT: connected to %s as %r, subscribed to %r (QoS 1, persistent session)",
                self.broker,
                self.client_id,
                self.topic,
            )
            while True:
                batch = await self._next_batch(client, stop)
                if batch is None:
                    return
                outcome = await self._commit(client, batch, stop)
                if outcome == "stopped":
                    return  # not acknowledged: the broker redelivers it next time
                if outcome == "lost":
                    raise aiomqtt.MqttError("disconnected while storing a batch")
                self._acknowledge(client, batch)

    async def _next_batch(
        self, client: aiomqtt.Client, stop: asyncio.Event | None
    ) -> list[aiomqtt.Message] | None:
        """The next message (waiting for it), plus what is already queued; None on stop."""
        messages = client.messages
        first = await next_or_stop(messages, stop)
        if first is None:
            return None
        batch = [first]
        size = len(first.payload)
        while len(messages) and len(batch) < MAX_BATCH_MESSAGES and size < MAX_BATCH_BYTES:
            message = await anext(messages)  # queued already: returns at once
            batch.append(message)
            size += len(message.payload)
        return batch

    async def _commit(
        self, client: aiomqtt.Client, batch: list[aiomqtt.Message], stop: asyncio.Event | None
    ) -> Outcome:
        """Store the batch, retrying while the database is unavailable."""
        delay = STORE_BACKOFF[0]
        while True:
            try:
                done = await asyncio.to_thread(self.store, batch)
            except Exception as exc:
                self.stats.store_retries += 1
                if isinstance(exc, TRANSIENT):
                    log.warning(
                        "database unavailable (%s); %d MQTT message(s) not acknowledged, "
                        "retrying in %.1f s",
                        _why(exc),
                        len(batch),
                        delay,
                    )
                else:
                    log.error(
                        "could not store or set aside %d MQTT message(s) (%s); not "
                        "acknowledged, retrying in %.1f s%s",
                        len(batch),
                        _why(exc),
                        delay,
                        _frames(exc),
                    )
                if not paho_client(client).is_connected():
                    return "lost"  # the broker will redeliver them on the next connection
                if await sleep_or_stop(stop, delay):
                    return "stopped"
                delay = min(delay * 2, STORE_BACKOFF[1])
                continue
            self._count(batch, done)
            return "committed"

    def _acknowledge(self, client: aiomqtt.Client, batch: Sequence[aiomqtt.Message]) -> None:
        """PUBACK each message, in the order received (MQTT requires that order)."""
        paho = paho_client(client)
        for message in batch:
            if message.qos > 0:
                rc = paho.ack(message.mid, message.qos)
                if rc != paho_mqtt.MQTT_ERR_SUCCESS:  # the broker will redeliver it
                    log.info("MQTT: could not acknowledge message %d (%s)", message.mid, rc)
                    continue
            self.stats.acknowledged += 1

    def _count(self, batch: Sequence[aiomqtt.Message], done: Stats) -> None:
        done.batches, done.messages = 1, len(batch)
        self.stats.add(done)
        log.debug(
            "MQTT: %d message(s): %d readings stored, %d resent, %d refused",
            len(batch),
            done.stored,
            done.duplicates,
            done.refused,
        )

    # --- storing (a worker thread) -------------------------------------------------------

    def store(self, batch: Sequence[aiomqtt.Message]) -> Stats:
        """Store a batch in one transaction (one per message if that fails). Raises only when
        nothing could be done and the batch must not be acknowledged."""
        parsed = [self.parse(m.topic.value, m.payload) for m in batch]
        done = Stats(
            refused=sum(len(p.rejected) for p in parsed if not p.whole_refused),
            rejected_messages=sum(p.whole_refused for p in parsed),
        )
        try:
            done.add(self._ingest(parsed))
            return done
        except TRANSIENT:
            raise
        except Exception as exc:
            if len(parsed) == 1:
                self._set_aside(parsed[0], batch[0].payload, exc)
                done.set_aside += 1
                return done
            log.error(
                "a batch of %d MQTT messages failed (%s): one by one now%s",
                len(parsed),
                _why(exc),
                _frames(exc),
            )
        for p, message in zip(parsed, batch, strict=True):
            try:
                done.add(self._ingest([p]))
            except TRANSIENT:
                raise
            except Exception as exc:
                self._set_aside(p, message.payload, exc)
                done.set_aside += 1
        return done

    def parse(self, topic: str, payload: bytes) -> Parsed:
        """Read one message (never raises: what cannot be read becomes a refusal)."""
        serial = topic_device(topic, self.topic)
        body = with_device(payload, serial)
        try:
            readings, batteries, refused = compact.parse(body)
        except Exception as exc:  # PayloadError, or anything the parser did not foresee
            reason = str(exc) if isinstance(exc, compact.PayloadError) else f"unreadable: {exc}"
            sender = f"device:{serial}" if serial else f"topic:{topic}"
            return Parsed(topic, [], [], [(sender, reason, _text(payload))], whole_refused=True)
        return Parsed(topic, readings, batteries, refused)

    def _ingest(self, parsed: Sequence[Parsed]) -> IngestResult:
        readings = [r for p in parsed for r in p.readings]
        batteries = [b for p in parsed for b in p.batteries]
        rejected = [x for p in parsed for x in p.rejected]
        ingestor = self.runtime.virtualward.ingestor
        attempt = 0
        while True:
            try:
                return ingestor.ingest(
                    readings,
                    source="mqtt",
                    actor=MQTT_ACTOR,
                    batteries=batteries,
                    rejected=rejected,
                )
            except Conflict:
                attempt += 1
                if attempt > CONFLICT_RETRIES:
                    raise
                log.info("MQTT batch met a concurrent change; retrying it")

    def _set_aside(self, parsed: Parsed, payload: bytes, exc: Exception) -> None:
        """Keep a message that made storing fail in vw_rejected (it is then acknowledged)."""
        log.error(
            "MQTT message on %r could not be stored (%s): kept in vw_rejected%s",
            parsed.topic,
            _why(exc),
            _frames(exc),
        )
        if parsed.readings:
            sender = parsed.readings[0].sender
        else:
            serial = topic_device(parsed.topic, self.topic)
            sender = f"device:{serial}" if serial else f"topic:{parsed.topic}"
        self.runtime.virtualward.ingestor.ingest(
            [],
            source="mqtt",
            actor=MQTT_ACTOR,
            rejected=[(sender, f"could not be processed ({_why(exc)})", _text(payload))],
        )


async def run_mqtt(runtime: Runtime, stop: asyncio.Event | None = None) -> None:
    """Run the MQTT door on ``runtime.settings`` until ``stop`` is set or cancelled."""
    await MqttDoor(runtime).run(stop)


class MqttTask:
    """The door as a background task of the web app (see ``app.py``'s lifespan)."""

    def __init__(self, runtime: Runtime) -> None:
        self.stop = asyncio.Event()
        self.door = MqttDoor(runtime)
        self.task = asyncio.create_task(self.door.run(self.stop), name="wardwatch-mqtt")

    async def close(self, grace: float = 5.0) -> None:
        """Finish the batch in hand and disconnect; cancel if that takes over ``grace`` s
        (what was stored but not acknowledged is then redelivered, and stored once)."""
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def start_mqtt(runtime: Runtime) -> MqttTask | None:
    """Start the door if ``settings.mqtt_url`` is set (a malformed URL raises at once)."""
    if not runtime.settings.mqtt_url:
        return None
    return MqttTask(runtime)


# --- helpers -------------------------------------------------------------------------------


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")[:20000]


def _why(exc: BaseException) -> str:
    """What went wrong, safe to log: a database error's type and first line (never the SQL
    parameters or the DETAIL line, which may hold payloads); only the type of any other."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [""])[0][:200]
        return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return type(exc).__name__


def _frames(exc: BaseException) -> str:
    """Where an error was raised (file, line, code), without its message."""
    return "\n" + "".join(traceback.format_tb(exc.__traceback__)).rstrip()
