"""The HL7 v2 feed: apply a message, store it, and only then acknowledge it.

- AA is returned only after the transaction that applied the message (and stored it) has
  committed. A message that cannot be applied is rolled back whole, stored as
  ``quarantined`` with the reason, and answered AE (or AR when it is not acceptable at
  all). Nothing is silently dropped: every byte received is stored.
- A resent message (same MSH-3, MSH-4 and MSH-10) is acknowledged again and applied once. A
  resent *quarantined* message is tried again (the mapping may have been fixed since).
- The integration engineer lists quarantined messages, fixes the cause and replays them
  (API and CLI), oldest first.
- ADT messages change the bed board (adt.py); ORU^R01 observations go to the virtual-ward
  ingestor (oru.py), which stores them in its own transaction before the message is logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from wardwatch.capacity.lookups import lock_beds, lock_system
from wardwatch.capacity.moves import BedMoves
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import ConcurrentChange, Conflict, NotFound, WardWatchError
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.filters import one_of
from wardwatch.db.session import Database, StepFailed, Tx
from wardwatch.ingest.hl7v2 import adt, oru
from wardwatch.ingest.hl7v2.ack import AckError, build_ack
from wardwatch.ingest.hl7v2.feeds import FeedWatch, duration
from wardwatch.ingest.hl7v2.locations import Locations
from wardwatch.ingest.hl7v2.models import Hl7Message
from wardwatch.ingest.hl7v2.parse import Hl7Error, Parsed, decode, parse
from wardwatch.virtualward.ingest import Ingestor

FINAL = ("accepted", "ignored", "discarded")
#: The ``source`` of messages loaded from a file (``wardwatch hl7 replay FILE``).
FROM_FILE = "file:"
#: How many times a message is applied when it meets another writer at the same moment
#: (``ConcurrentChange``) before it is kept in quarantine.
TRIES = 3
#: The event of a message newly put in quarantine (HAZ-017): the integration engineer and the
#: control centre are told (built-in rule) when it is the first while the queue was empty.
QUARANTINED = "hl7.quarantined"
#: Messages have waited in quarantine a while: said again every ``remind_every`` while
#: the queue is not empty (HAZ-017), so a broken feed is not forgotten after its first notice.
WAITING = "hl7.quarantine_waiting"
#: A transaction's scratch: the messages it has put in quarantine so far.
_ANNOUNCED = "hl7_quarantined"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Handled:
    ack: str
    ack_code: str
    status: str
    detail: str
    message_id: str | None


class Hl7Service:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        timezone: str = "Europe/London",
        retention_days: int = 90,
        application: str = "WARDWATCH",
        ingestor: Ingestor | None = None,
        remind_every: timedelta = timedelta(hours=4),
        silence: timedelta | None = timedelta(hours=1),
    ) -> None:
        self.db = db
        self.clock = clock
        self.moves = BedMoves(clock)
        self.locations = Locations()
        self.tz = ZoneInfo(timezone)
        self.retention = timedelta(days=retention_days)
        self.application = application
        #: Where ORU^R01 observations go (the virtual ward's); without it ORU is refused.
        self.ingestor = ingestor
        #: While messages wait in quarantine, how often to say so again (:meth:`remind`).
        self.remind_every = remind_every
        #: Each sending system and when it was last heard; a silent one is reported.
        self.feeds = FeedWatch(db, clock, silence=silence)

    # --- receiving -----------------------------------------------------------------------

    def handle(self, raw: bytes, *, source: str | None = None) -> Handled:
        """Apply one message and return the acknowledgement to send (after commit).

        Never raises: an unexpected failure is logged, the message kept when the database
        allows, and the sender told AE so that it keeps the message and retries.
        """
        try:
            return self._handle(raw, source)
        except Exception:
            log.exception("HL7 message could not be processed")
            error = Hl7Error(
                "internal error while applying the message; it was not applied and is "
                "kept in quarantine",
                code="207",
            )
            try:
                msg: Parsed | None = parse(raw)
            except Hl7Error:
                msg = None
            try:
                row_id: str | None = self._quarantine_unparsed(raw, error, source)
            except Exception:  # the database itself is failing: the sender keeps it
                log.exception("HL7 message could not be stored either")
                row_id = None
            return self._reply(msg, "AE", error.text, "quarantined", row_id, error)

    def _handle(self, raw: bytes, source: str | None) -> Handled:
        try:
            msg = parse(raw)
        except Hl7Error as exc:
            row_id = self._quarantine_unparsed(raw, exc, source)
            return self._reply(None, exc.ack, exc.text, "quarantined", row_id, exc)
        if _live(source):
            self.feeds.heard([msg.sender])
        existing = self._find(msg.key)
        if existing is not None and existing.status in FINAL:
            return self._duplicate(msg, existing)
        return self._process(msg, raw, source, existing_id=existing.id if existing else None)

    def _duplicate(self, msg: Parsed, existing: Hl7Message) -> Handled:
        return self._reply(
            msg,
            existing.ack_code,
            f"duplicate of a message received "
            f"{existing.received_at.isoformat()}: not applied again",
            existing.status,
            existing.id,
        )

    def handle_batch(self, items: Sequence[tuple[bytes, str | None]]) -> list[Handled]:
        """Apply several messages, in order, with as few commits as they allow (group
        commit); their answers, in the same order.

        Consecutive ADT messages share one transaction, each a step of its own (a
        savepoint): one that cannot be applied is undone alone and quarantined, the others
        kept. AA still means committed: the answers are returned only once the commit is
        done. Anything else (ORU, bytes that do not parse, a resend of a message already in
        the run) is handled alone, in its place, as :meth:`handle` does; so is a message that
        met a copy stored by another worker at the same moment (after the run's commit). If a
        run itself fails (the database), each of its messages is handled alone: nothing is
        lost.
        """
        answers: list[Handled | None] = [None] * len(items)
        run: list[tuple[int, Parsed]] = []
        keys: set[str] = set()  # the run's message keys

        def finish_run() -> None:
            if run:  # a run of one too: its duplicate check then shares its transaction
                try:
                    try:  # optimistic: no savepoints (most batches apply whole)
                        self._apply_batch(items, run, answers, careful=False)
                    except StepFailed:  # one did not: again, each message in a savepoint
                        self._apply_batch(items, run, answers, careful=True)
                except Exception:
                    log.warning("HL7 batch failed: applying it one by one", exc_info=True)
                for i, _ in run:
                    if answers[i] is None:
                        answers[i] = self.handle(items[i][0], source=items[i][1])
            run.clear()
            keys.clear()

        senders: set[str] = set()
        for i, (raw, source) in enumerate(items):
            try:
                msg: Parsed | None = parse(raw)
            except Hl7Error:
                msg = None
            if msg is not None and _live(source):
                senders.add(msg.sender)
            if msg is not None and msg.message_code == "ADT":
                key = msg.key
                if key in keys:
                    finish_run()
                run.append((i, msg))
                keys.add(key)
                continue
            finish_run()
            answers[i] = self.handle(raw, source=source)
        finish_run()
        self.feeds.heard(senders)
        return cast(list[Handled], answers)  # every message was answered above

    def _apply_batch(
        self,
        items: Sequence[tuple[bytes, str | None]],
        batch: list[tuple[int, Parsed]],
        answers: list[Handled | None],
        *,
        careful: bool,
    ) -> None:
        """The batch's ADT messages (no key twice) in one transaction; fills ``answers`` for
        those it settled, and only once the transaction has committed.

        ``careful``: each message in a savepoint, so that one that fails is undone alone and
        quarantined. Without it (the optimistic first try) the first message that fails
        raises :class:`StepFailed` and the whole transaction is rolled back, to be tried
        again carefully; the outcome is the same either way, only cheaper when nothing
        fails."""
        settled: list[tuple[int, Handled]] = []
        kept: list[dict[str, Any]] = []  # the new message rows, inserted together
        with self.db.transaction() as tx:
            s = tx.session
            stored = {
                m.key: m
                for m in s.scalars(
                    select(Hl7Message).where(one_of(s, Hl7Message.key, {m.key for _, m in batch}))
                )
            }
            todo: list[tuple[int, Parsed, str | None, adt.Adt]] = []
            for i, msg in batch:
                existing = stored.get(msg.key)
                if existing is not None and existing.status in FINAL:
                    settled.append((i, self._duplicate(msg, existing)))
                    continue
                existing_id = existing.id if existing else None
                todo.append((i, msg, existing_id, self._adt(tx, msg, existing_id or new_id("hl7"))))
            if len(todo) > 1:  # several: read ahead what they name (one statement each)
                self.db.look_ahead(tx, *adt.look_ahead(tx, [a for _, _, _, a in todo]))
            else:  # one: a bed it locks is still remembered, not read again
                lock_beds(s, ())
            for i, msg, existing_id, message in todo:
                raw, source = items[i]
                row_id = message.message_id
                try:
                    with self.db.step(tx, savepoint=careful):
                        outcome = adt.apply(message)
                except ConcurrentChange:
                    continue  # met a copy stored elsewhere: handle() sorts it out
                except (Hl7Error, WardWatchError) as exc:
                    error = _as_hl7_error(exc)
                    outcome = None
                if outcome is None:
                    answer = self._keep_quarantined(
                        tx, row_id, msg, raw, source, existing_id, error, later=kept
                    )
                else:
                    self._store_applied(s, row_id, msg, raw, source, existing_id, outcome, kept)
                    answer = self._reply(msg, "AA", outcome.detail, outcome.status, row_id)
                settled.append((i, answer))
            if not careful:  # the steps' rows are written here: one that breaks a key
                try:  # (a patient stored meanwhile by another worker) is then found
                    s.flush()  # carefully, in its own step, the others kept
                except (DBAPIError, StaleDataError) as exc:
                    raise StepFailed(exc) from exc
            if kept:  # a key stored meanwhile by another worker fails the batch: see above
                s.execute(insert(Hl7Message), kept)
        for i, handled in settled:  # committed: now they may be answered
            answers[i] = handled

    def _adt(self, tx: Tx, msg: Parsed, row_id: str, actor: Actor | None = None) -> adt.Adt:
        feed = actor or Actor(name=f"hl7:{msg.get('MSH', 3) or 'unknown'}", role="integration")
        return adt.Adt(
            tx=tx,
            moves=self.moves,
            msg=msg,
            tz=self.tz,
            actor=feed,
            message_id=row_id,
            locations=self.locations,
        )

    def _apply_adt(
        self, tx: Tx, msg: Parsed, row_id: str, actor: Actor | None = None
    ) -> adt.Outcome:
        return adt.apply(self._adt(tx, msg, row_id, actor))

    def reject(self, raw: bytes, text: str, *, source: str | None = None) -> Handled:
        """Quarantine bytes that never made a message (a truncated frame) and answer AR."""
        error = Hl7Error(text, ack="AR", code="100")
        row_id = self._quarantine_unparsed(raw, error, source)
        return self._reply(None, "AR", text, "quarantined", row_id, error)

    def _process(
        self,
        msg: Parsed,
        raw: bytes,
        source: str | None,
        *,
        existing_id: str | None,
        actor: Actor | None = None,
        tries: int = TRIES,
    ) -> Handled:
        row_id = existing_id or new_id("hl7")
        feed = actor or Actor(name=f"hl7:{msg.get('MSH', 3) or 'unknown'}", role="integration")
        if msg.message_code == "ORU" and self.ingestor is not None:
            return self._observations(self.ingestor, msg, raw, source, row_id, existing_id, feed)
        try:
            with self.db.transaction() as tx:
                if msg.message_code != "ADT":
                    raise Hl7Error(
                        f"message type {msg.message_type} is not supported here "
                        f"(ADT and ORU^R01 only)",
                        ack="AR",
                        code="200",
                        location="MSH^1^9",
                    )
                outcome = self._apply_adt(tx, msg, row_id, feed)
                self._store_applied(tx.session, row_id, msg, raw, source, existing_id, outcome)
        except (Hl7Error, WardWatchError) as exc:
            if isinstance(exc, Conflict) and existing_id is None and self._find(msg.key):
                return self._handle(raw, source)  # a copy was stored at the same moment
            if isinstance(exc, ConcurrentChange) and tries > 1:
                # Another writer met the same rows at the same moment (the same new patient
                # from another feed, a deadlock): nothing of this try was kept. Not a bad
                # message: apply it again, reading afresh.
                log.info("HL7 %s met another writer; trying again", msg.control_id)
                return self._process(
                    msg, raw, source, existing_id=existing_id, actor=actor, tries=tries - 1
                )
            return self._quarantine(msg, raw, source, row_id, existing_id, _as_hl7_error(exc))
        return self._reply(msg, "AA", outcome.detail, outcome.status, row_id)

    def _observations(
        self,
        ingestor: Ingestor,
        msg: Parsed,
        raw: bytes,
        source: str | None,
        row_id: str,
        existing_id: str | None,
        feed: Actor,
    ) -> Handled:
        """ORU^R01: the readings are stored (the ingestor's transaction), then the message is
        logged with what became of them; oru.py says why that order is safe."""
        try:
            got = oru.receive(msg, tz=self.tz, db=self.db, ingest=ingestor, actor=feed)
        except (Hl7Error, WardWatchError) as exc:
            return self._quarantine(msg, raw, source, row_id, existing_id, _as_hl7_error(exc))
        try:
            with self.db.transaction() as tx:
                self._store(
                    tx.session,
                    row_id,
                    msg,
                    raw,
                    source,
                    status=got.status,
                    ack_code=got.ack,
                    detail=got.detail,
                    location=got.errors[0].location[:40] if got.errors else None,
                    existing=existing_id,
                )
        except Conflict:
            return self._handle(raw, source)  # a copy was logged at the same moment
        return self._reply(msg, got.ack, got.detail, got.status, row_id, errors=got.errors)

    def _quarantine(
        self,
        msg: Parsed,
        raw: bytes,
        source: str | None,
        row_id: str,
        existing_id: str | None,
        error: Hl7Error,
    ) -> Handled:
        """Keep a message that was not applied, with its reason, and answer AE/AR."""
        try:
            with self.db.transaction() as tx:
                answer = self._keep_quarantined(tx, row_id, msg, raw, source, existing_id, error)
        except Conflict:
            return self._handle(raw, source)
        return answer

    def _store_applied(
        self,
        s: Any,
        row_id: str,
        msg: Parsed,
        raw: bytes,
        source: str | None,
        existing_id: str | None,
        outcome: adt.Outcome,
        later: list[dict[str, Any]] | None = None,
    ) -> None:
        """Keep a message applied (or ignored as late) with its outcome, answered AA."""
        self._store(
            s,
            row_id,
            msg,
            raw,
            source,
            status=outcome.status,
            ack_code="AA",
            detail=outcome.detail,
            existing=existing_id,
            later=later,
        )

    def _keep_quarantined(
        self,
        tx: Tx,
        row_id: str,
        msg: Parsed,
        raw: bytes,
        source: str | None,
        existing_id: str | None,
        error: Hl7Error,
        *,
        later: list[dict[str, Any]] | None = None,
    ) -> Handled:
        """In ``tx``: keep the message as quarantined with its reason, tell of a new one, and
        the AE/AR to send once ``tx`` has committed."""
        self._store(
            tx.session,
            row_id,
            msg,
            raw,
            source,
            status="quarantined",
            ack_code=error.ack,
            detail=error.text,
            location=error.location,
            existing=existing_id,
            later=later,
        )
        if existing_id is None:
            self._announce(tx, row_id, msg.message_type, error)
        return self._reply(msg, error.ack, error.text, "quarantined", row_id, error)

    def _store(
        self,
        s: Any,
        row_id: str,
        msg: Parsed,
        raw: bytes,
        source: str | None,
        *,
        status: str,
        ack_code: str,
        detail: str,
        location: str | None = None,
        existing: str | None = None,
        later: list[dict[str, Any]] | None = None,
    ) -> None:
        """Keep the message (or update the kept copy, ``existing``) with its outcome; a new
        row goes to ``later`` when given (a batch inserts its rows together)."""
        now = self.clock.now()
        try:
            event_time = adt.event_time(msg, self.tz)
        except Hl7Error:
            event_time = None
        if existing is not None:
            row = s.get(Hl7Message, existing)
            row.status, row.ack_code, row.detail = status, ack_code, detail
            if row.control_id is None:  # kept before it could be read: now it has its key
                row.key, row.control_id = msg.key[:240], msg.control_id
                row.message_type, row.version = msg.message_type, msg.version
            row.error_location, row.processed_at = location, now
            row.attempts += 1
            return
        row = {
            "id": row_id,
            "key": msg.key[:240],
            "control_id": msg.control_id,
            "message_type": msg.message_type,
            "version": msg.version,
            "event_time": event_time,
            "received_at": now,
            "processed_at": now,
            "status": status,
            "ack_code": ack_code,
            "detail": detail,
            "error_location": location,
            "source": source,
            "raw": decode(raw),
        }
        if later is not None:
            later.append(row)
        else:
            s.add(Hl7Message(**row))

    def _quarantine_unparsed(self, raw: bytes, exc: Hl7Error, source: str | None) -> str:
        key = "unparsed|" + hashlib.sha256(raw).hexdigest()
        existing = self._find(key)
        if existing is not None:
            return existing.id
        row_id = new_id("hl7")
        now = self.clock.now()
        try:
            with self.db.transaction() as tx:
                tx.session.add(
                    Hl7Message(
                        id=row_id,
                        key=key,
                        received_at=now,
                        processed_at=now,
                        status="quarantined",
                        ack_code=exc.ack,
                        detail=exc.text,
                        error_location=exc.location,
                        source=source,
                        raw=decode(raw),
                    )
                )
                self._announce(tx, row_id, None, exc)
        except Conflict:
            found = self._find(key)
            return found.id if found else row_id
        return row_id

    def _announce(self, tx: Tx, row_id: str, message_type: str | None, error: Hl7Error) -> None:
        """Record that message ``row_id`` was newly put in quarantine (HAZ-017), noting
        whether it is the first while the queue was empty: the built-in rule tells the
        integration engineer and the control centre then, once, not at every message of a
        broken feed. The reason stays in the queue (it may quote patient details): the
        event names the message, its type, the answer and the failing field only."""
        first = not tx.scratch.get(_ANNOUNCED) and not tx.session.scalar(
            select(exists().where(Hl7Message.status == "quarantined", Hl7Message.id != row_id))
        )
        tx.scratch.setdefault(_ANNOUNCED, []).append(row_id)  # a container: see Database.step
        what = f"HL7 {message_type} message" if message_type else "Unreadable HL7 message"
        tx.record(
            QUARANTINED,
            at=self.clock.now(),
            actor=Actor(name="hl7", role="integration"),
            data={
                "message": row_id,
                "message_type": message_type,
                "ack": error.ack,
                "location": error.location,
                "first": "yes" if first else "no",
                "summary": f"{what} quarantined ({error.ack}): the PAS feed needs attention; "
                "the queue is at /api/hl7/messages?status=quarantined",
            },
        )

    def _find(self, key: str) -> Hl7Message | None:
        with self.db.read() as s:
            return s.scalars(select(Hl7Message).where(Hl7Message.key == key)).first()

    def _reply(
        self,
        msg: Parsed | None,
        code: str,
        text: str,
        status: str,
        message_id: str | None,
        error: Hl7Error | None = None,
        *,
        errors: list[AckError] | None = None,
    ) -> Handled:
        ack = build_ack(
            msg,
            code,
            now=self.clock.now(),
            text=text,
            error_code=error.code if error else None,
            error_location=error.location if error else None,
            application=self.application,
            errors=errors or (),
        )
        return Handled(ack=ack, ack_code=code, status=status, detail=text, message_id=message_id)

    # --- the integration engineer's tools ------------------------------------------------

    def list(self, *, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(Hl7Message).order_by(Hl7Message.received_at, Hl7Message.id).limit(limit)
        if status:
            query = query.where(Hl7Message.status == status)
        with self.db.read() as s:
            return [_read(m, raw=False) for m in s.scalars(query)]

    def get(self, message_id: str) -> dict[str, Any]:
        with self.db.read() as s:
            row = s.get(Hl7Message, message_id)
            if row is None:
                raise NotFound(f"no HL7 message with id {message_id!r}")
            return _read(row, raw=True)

    def replay(self, message_id: str, actor: Actor) -> dict[str, Any]:
        """Try a quarantined message again (after fixing its cause)."""
        with self.db.read() as s:
            row = s.get(Hl7Message, message_id)
            if row is None:
                raise NotFound(f"no HL7 message with id {message_id!r}")
            if row.status != "quarantined":
                raise Conflict(
                    f"message {message_id} is {row.status}: only quarantined "
                    f"messages can be replayed"
                )
            if row.raw is None:
                raise Conflict(f"message {message_id}'s text is past its retention period")
            raw = row.raw.encode("utf-8")
        try:
            msg = parse(raw)
        except Hl7Error as exc:
            with self.db.transaction() as tx:
                found = tx.session.get_one(Hl7Message, message_id)
                found.attempts += 1
                found.detail = exc.text
            return self.get(message_id)
        self._process(
            msg,
            raw,
            None,
            existing_id=message_id,
            actor=Actor(name=f"hl7-replay:{actor.name}", role="integration"),
        )
        return self.get(message_id)

    def replay_quarantined(self, actor: Actor) -> dict[str, int]:
        """Replay every quarantined message, oldest first; returns counts by outcome."""
        ids = [m["id"] for m in self.list(status="quarantined", limit=100_000)]
        counts = {"accepted": 0, "ignored": 0, "quarantined": 0}
        for message_id in ids:
            counts[self.replay(message_id, actor)["status"]] += 1
        return counts

    def discard(self, message_id: str, reason: str, actor: Actor) -> dict[str, Any]:
        with self.db.transaction() as tx:
            row = tx.session.get(Hl7Message, message_id)
            if row is None:
                raise NotFound(f"no HL7 message with id {message_id!r}")
            if row.status != "quarantined":
                raise Conflict(f"message {message_id} is {row.status}, not quarantined")
            row.status = "discarded"
            row.detail = f"discarded by {actor.label}: {reason} (was: {row.detail})"
        return self.get(message_id)

    def remind(self) -> dict[str, Any] | None:
        """While messages wait in quarantine, say so again every ``remind_every``: once the
        oldest has waited that long, and no sooner than that after the last reminder. The
        built-in rule tells the integration engineer and the control centre (HAZ-017: the
        bed board is wrong for those patients until the messages are replayed). Called by
        the server's periodic checks; returns what was said, or None."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            s = tx.session
            lock_system(s)  # one reminder at a time
            count, oldest = s.execute(
                select(func.count(), func.min(Hl7Message.received_at)).where(
                    Hl7Message.status == "quarantined"
                )
            ).one()
            if not count or now - oldest < self.remind_every:
                return None
            last = s.scalar(select(func.max(EventRecord.at)).where(EventRecord.type == WAITING))
            if last is not None and now - last < self.remind_every:
                return None
            waited = duration(now - oldest)
            many = f"{count} HL7 messages wait" if count > 1 else "1 HL7 message waits"
            data = {
                "count": count,
                "oldest": oldest.isoformat(),
                "waited": waited,
                "summary": f"{many} in quarantine, the oldest for {waited}: the bed board "
                "may be wrong for those patients until they are fixed and replayed "
                "(/api/hl7/messages?status=quarantined)",
            }
            tx.record(WAITING, at=now, actor=Actor(name="hl7", role="integration"), data=data)
        return data

    def purge(self) -> int:
        """Forget the text of messages older than the retention period (not quarantined)."""
        cutoff = self.clock.now() - self.retention
        with self.db.transaction() as tx:
            result = tx.session.execute(
                update(Hl7Message)
                .where(
                    Hl7Message.received_at < cutoff,
                    Hl7Message.status != "quarantined",
                    Hl7Message.raw.is_not(None),
                )
                .values(raw=None)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _live(source: str | None) -> bool:
    """Whether a message came from a live feed, not from a file loaded by hand (an export
    of what a silent feed missed must not make it look heard, HAZ-035)."""
    return not (source or "").startswith(FROM_FILE)


def _as_hl7_error(exc: Exception) -> Hl7Error:
    if isinstance(exc, Hl7Error):
        return exc
    message = exc.message if isinstance(exc, WardWatchError) else str(exc)
    return Hl7Error(message, ack="AE", code="207")


def _read(m: Hl7Message, *, raw: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "control_id": m.control_id,
        "type": m.message_type,
        "version": m.version,
        "event_time": m.event_time,
        "received_at": m.received_at,
        "processed_at": m.processed_at,
        "status": m.status,
        "ack_code": m.ack_code,
        "detail": m.detail,
        "error_location": m.error_location,
        "attempts": m.attempts,
        "source": m.source,
    }
    if raw:
        out["raw"] = m.raw
    return out


def split_file(data: bytes) -> Iterable[bytes]:
    """Messages from a PAS export: MLLP-framed, or plain text with a blank line or MSH
    at the start of each message."""
    if b"\x0b" in data:
        for chunk in data.split(b"\x0b")[1:]:
            yield chunk.split(b"\x1c", 1)[0]
        return
    text = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    current: list[bytes] = []
    for segment in text.split(b"\r"):
        if segment.startswith(b"MSH") and current:
            yield b"\r".join(current)
            current = []
        if segment.strip():
            current.append(segment)
    if current:
        yield b"\r".join(current)
