"""Is each hospital feed still talking? (HAZ-035)

A PAS or interface engine that stops sending (a channel stopped, a firewall changed, a
certificate expired) leaves the bed board as it was, and the board still looks live: the
live pages' "Live" says the page hears WardWatch, not that WardWatch hears the PAS.

Each sending system (MSH-3|MSH-4) is remembered with when it was last heard, written at
most once a minute by each process (nothing on the path of a message otherwise). The
server's periodic checks report a feed heard within the last week but not for
``silence`` (``hl7.feed_silent``, to the integration engineer and the control centre by the
built-in rules), once, and say when it is heard again (``hl7.feed_resumed``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from wardwatch.capacity.lookups import lock_system
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.db.session import Database, Tx
from wardwatch.ingest.hl7v2.models import Hl7Feed

log = logging.getLogger(__name__)

#: How often a process writes that it heard a sender (the report is this much late at most).
HEARD_EVERY = timedelta(minutes=1)
#: A feed not heard for longer than this is taken as retired, not silent.
RETIRED_AFTER = timedelta(days=7)
SILENT = "hl7.feed_silent"
RESUMED = "hl7.feed_resumed"
ACTOR = Actor(name="hl7", role="integration")


def duration(d: timedelta) -> str:
    """'3 days 4 h', '5 h 7 min', '12 min'."""
    minutes = int(d.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


class FeedWatch:
    def __init__(self, db: Database, clock: Clock, *, silence: timedelta | None) -> None:
        """``silence``: how long a feed may be quiet before it is reported (None: never)."""
        self.db = db
        self.clock = clock
        self.silence = silence
        self._written: dict[str, datetime] = {}  # sender -> when this process last wrote it
        self._lock = threading.Lock()  # messages are handled in several threads

    def heard(self, senders: Iterable[str]) -> None:
        """These senders were just heard. Written when this process has not written them in
        the last minute; a failure is logged, never raised (the messages are answered)."""
        now = self.clock.now()
        with self._lock:
            due = sorted(
                s
                for s in set(senders)
                if s and (s not in self._written or now - self._written[s] >= HEARD_EVERY)
            )
            for sender in due:
                self._written[sender] = now
        if not due:
            return
        try:
            with self.db.transaction() as tx:
                make = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
                stmt = make(Hl7Feed)
                upsert = stmt.on_conflict_do_update(
                    index_elements=["sender"],
                    set_={"last_heard_at": stmt.excluded.last_heard_at},
                    where=Hl7Feed.last_heard_at < stmt.excluded.last_heard_at,
                )
                tx.session.execute(upsert, [{"sender": s, "last_heard_at": now} for s in due])
        except Exception:
            log.exception("could not note HL7 senders heard: %s", ", ".join(due))
            with self._lock:  # try again with the next message
                for sender in due:
                    self._written.pop(sender, None)

    def check(self) -> list[dict[str, Any]]:
        """Report each feed newly silent (heard within the last week, not for ``silence``)
        and each silent one heard again; what was reported."""
        if self.silence is None:
            return []
        now = self.clock.now()
        said: list[dict[str, Any]] = []
        with self.db.transaction() as tx:
            lock_system(tx.session)  # one checker at a time
            for feed in tx.session.scalars(select(Hl7Feed).order_by(Hl7Feed.sender)):
                quiet = now - feed.last_heard_at
                if feed.silent_since is None and self.silence <= quiet < RETIRED_AFTER:
                    feed.silent_since = feed.last_heard_at  # silent since it was last heard
                    said.append(self._say(tx, SILENT, feed, quiet, now))
                elif feed.silent_since is not None and feed.last_heard_at > feed.silent_since:
                    gap = feed.last_heard_at - feed.silent_since
                    said.append(self._say(tx, RESUMED, feed, gap, now))
                    feed.silent_since = None
        return said

    def _say(
        self, tx: Tx, kind: str, feed: Hl7Feed, quiet: timedelta, now: datetime
    ) -> dict[str, Any]:
        if kind == SILENT:
            summary = (
                f"HL7 feed {feed.sender} silent for {duration(quiet)}: nothing received since "
                f"{feed.last_heard_at:%H:%M %d %b} UTC; the bed board may be missing its moves "
                "since then: check the interface engine"
            )
        else:
            summary = f"HL7 feed {feed.sender} heard again after {duration(quiet)} of silence"
        data = {
            "sender": feed.sender,
            "last_heard_at": feed.last_heard_at.isoformat(),
            "quiet": duration(quiet),
            "summary": summary,
        }
        tx.record(kind, at=now, actor=ACTOR, data=data)
        return data

    def senders(self) -> list[dict[str, Any]]:
        """Every sender heard, with when it was last heard and whether it is reported silent."""
        now = self.clock.now()
        with self.db.read() as s:
            return [
                {
                    "sender": f.sender,
                    "last_heard_at": f.last_heard_at,
                    "quiet": duration(max(now - f.last_heard_at, timedelta(0))),
                    "silent_since": f.silent_since,
                    "retired": now - f.last_heard_at >= RETIRED_AFTER,
                }
                for f in s.scalars(select(Hl7Feed).order_by(Hl7Feed.sender))
            ]

    def silent(self) -> list[dict[str, Any]]:
        """The senders reported silent and not heard since: what the control-centre page warns
        of (no patient data)."""
        now = self.clock.now()
        with self.db.read() as s:
            query = (
                select(Hl7Feed)
                .where(Hl7Feed.silent_since.is_not(None))
                .where(Hl7Feed.last_heard_at <= Hl7Feed.silent_since)
                .order_by(Hl7Feed.sender)
            )
            return [
                {
                    "sender": f.sender,
                    "last_heard_at": f.last_heard_at,
                    "quiet": duration(max(now - f.last_heard_at, timedelta(0))),
                }
                for f in s.scalars(query)
            ]
