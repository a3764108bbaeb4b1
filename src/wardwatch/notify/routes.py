"""Feeds for teams and roles (SSE and JSON) and the notification admin API.

``GET /api/feeds/stream?audience=team:RMH-housekeeping,role:control-centre`` sends one
``event: notification`` per feed notification for those audiences, ``id`` = its ``seq``. A
client reconnecting with ``Last-Event-ID`` first gets what it missed from the table.
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

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.core.bus import OVERFLOW
from wardwatch.core.errors import ValidationFailed
from wardwatch.notify.config import AUDIENCE
from wardwatch.notify.schemas import NotificationRead

router = APIRouter(prefix="/api", tags=["notifications"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
Admin = Annotated[Principal, principal_for(P.NOTIFY_ADMIN)]
AudienceQuery = Annotated[
    str,
    Query(
        max_length=2000,
        description="comma-separated audiences, e.g. team:RMH-housekeeping,role:control-centre",
    ),
]
REPLAY_LIMIT = 5000
MAX_AUDIENCES = 20


def audiences_of(value: str) -> list[str]:
    found = [a.strip() for a in value.split(",") if a.strip()]
    bad = [a for a in found if not AUDIENCE.match(a)]
    if not found or bad or len(found) > MAX_AUDIENCES:
        raise ValidationFailed(
            f"audience must be 1 to {MAX_AUDIENCES} comma-separated <kind>:<name> "
            "(kind team, role, supervisor, site or ward)" + (f"; not {bad[0]!r}" if bad else "")
        )
    return found


@router.get("/feeds")
def feed(
    rt: RuntimeDep,
    _: Reader,
    audience: AudienceQuery,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """Feed notifications for these audiences after sequence ``after``, oldest first."""
    return list(rt.notify.feed(audiences_of(audience), after=after, limit=limit))


@router.get("/feeds/stream", response_class=StreamingResponse)
async def feed_stream(
    request: Request,
    rt: RuntimeDep,
    who: Reader,
    audience: AudienceQuery,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: ``event: notification``, ``id`` = the notification's ``seq``."""
    wanted = set(audiences_of(audience))
    sub = rt.notify.feed_bus.subscribe()
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
                missed = await asyncio.to_thread(
                    rt.notify.feed, sorted(wanted), after=after, limit=REPLAY_LIMIT
                )
                for message in missed:
                    last = message["seq"]
                    yield _frame(message)
                if len(missed) == REPLAY_LIMIT:
                    yield 'event: resync\ndata: {"reason": "too many missed notifications"}\n\n'
            checked = time.monotonic()
            while not await request.is_disconnected():
                if time.monotonic() - checked >= heartbeat:
                    checked = time.monotonic()
                    if not await asyncio.to_thread(rt.auth.is_active, who.token_id):
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
                if event.seq > last and event.data.get("audience") in wanted:
                    yield _frame(event.data)
        finally:
            sub.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _frame(message: dict[str, Any]) -> str:
    return f"id: {message['seq']}\nevent: notification\ndata: {json.dumps(message)}\n\n"


@router.get("/notifications", response_model=list[NotificationRead])
def notifications(
    rt: RuntimeDep,
    _: Admin,
    status: str | None = None,
    channel: Annotated[str | None, Query(max_length=120)] = None,
    task_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> list[NotificationRead]:
    """Every notification and its delivery status, newest first (``status=dead``: dead letters)."""
    return rt.notify.list(status=status, channel=channel, task_id=task_id, limit=limit)


@router.get("/notifications/{notification_id}", response_model=NotificationRead)
def notification(rt: RuntimeDep, _: Admin, notification_id: str) -> NotificationRead:
    return rt.notify.get(notification_id)


@router.post("/notifications/{notification_id}/retry", response_model=NotificationRead)
def retry(rt: RuntimeDep, who: Admin, notification_id: str) -> NotificationRead:
    """Send a dead notification again (409 if it is not dead)."""
    return rt.notify.retry(notification_id, who.actor)
