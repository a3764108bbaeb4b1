"""``GET /api/stream``: server-sent events of every change, and ``GET /api/events``: the log.

A client that reconnects with ``Last-Event-ID`` first receives what it missed from the
event log, then live events, with no gap and no duplicate.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from wardwatch.api import sse
from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.capacity.occupancy import ward_meta
from wardwatch.core.events import DomainEvent
from wardwatch.db.eventlog import EventRecord, domain_event
from wardwatch.runtime import Runtime

router = APIRouter(prefix="/api", tags=["live"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]


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
    return sse.stream(
        request,
        rt,
        who,
        rt.bus.subscribe(),
        after=sse.last_event_id(last_event_id),
        replay=lambda after, limit: [
            (e.seq, _frame(e)) for e in logged_events(rt, after=after, limit=limit)
        ],
        frame=_frame,
        missed="events",
    )


def _frame(event: DomainEvent) -> str:
    return f"id: {event.seq}\nevent: change\ndata: {json.dumps(event.to_json())}\n\n"
