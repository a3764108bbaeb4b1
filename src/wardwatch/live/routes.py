"""``GET /api/stream``: server-sent events of every change, and ``GET /api/events``: the log.

A client that reconnects with ``Last-Event-ID`` first receives what it missed from the
event log, then live events, with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.capacity.occupancy import ward_meta
from wardwatch.core.bus import OVERFLOW
from wardwatch.core.events import DomainEvent
from wardwatch.db.eventlog import EventRecord, domain_event
from wardwatch.runtime import Runtime

router = APIRouter(prefix="/api", tags=["live"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
REPLAY_LIMIT = 5000


def logged_events(
    rt: Runtime, *, after: int, limit: int, type: str | None = None, bed_id: str | None = None
) -> list[DomainEvent]:
    query = select(EventRecord).where(EventRecord.seq > after).order_by(EventRecord.seq)
    if type:
        query = query.where(EventRecord.type == type)
    if bed_id:
        query = query.where(EventRecord.bed_id == bed_id)
    with rt.db.read() as s:
        meta = ward_meta(s)
        out = []
        for r in s.scalars(query.limit(limit)):
            m = meta.get(r.ward_id or "")
            out.append(
                domain_event(
                    r, site_code=m.site_code if m else None, ward_code=m.code if m else None
                )
            )
        return out


@router.get("/events")
def events(
    rt: RuntimeDep,
    _: Reader,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    type: str | None = None,
    bed_id: str | None = None,
) -> list[dict[str, Any]]:
    """The append-only event log, oldest first, after sequence number ``after``."""
    return [
        e.to_json() for e in logged_events(rt, after=after, limit=limit, type=type, bed_id=bed_id)
    ]


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    rt: RuntimeDep,
    who: Reader,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: one ``event: change`` per logged event, ``id`` = its sequence."""
    sub = rt.bus.subscribe()
    after = (
        int(last_event_id)
        if last_event_id and re.fullmatch(r"[0-9]{1,18}", last_event_id)
        else None
    )
    heartbeat = rt.settings.sse_heartbeat_seconds

    async def body() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            last = -1
            if after is not None:
                missed = await asyncio.to_thread(logged_events, rt, after=after, limit=REPLAY_LIMIT)
                for event in missed:
                    last = event.seq
                    yield _frame(event)
                if len(missed) == REPLAY_LIMIT:
                    yield 'event: resync\ndata: {"reason": "too many missed events"}\n\n'
            checked = time.monotonic()
            while not await request.is_disconnected():
                if time.monotonic() - checked >= heartbeat:  # even while events flow
                    checked = time.monotonic()
                    if not await asyncio.to_thread(_still_allowed, rt, who):
                        yield 'event: error\ndata: {"reason": "token revoked"}\n\n'
                        return
                try:
                    event = await asyncio.wait_for(sub.get(), timeout=heartbeat)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is OVERFLOW:
                    yield 'event: resync\ndata: {"reason": "client too slow"}\n\n'
                    return
                if event.seq <= last:
                    continue
                yield _frame(event)
        finally:
            sub.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _still_allowed(rt: Runtime, who: Principal) -> bool:
    """A stream lives long: end it when its token is revoked."""
    return rt.auth.is_active(who.token_id)


def _frame(event: DomainEvent) -> str:
    return f"id: {event.seq}\nevent: change\ndata: {json.dumps(event.to_json())}\n\n"
