"""Feeds for teams and roles (SSE and JSON) and the notification admin API.

``GET /api/feeds/stream?audience=team:RMH-housekeeping,role:control-centre`` sends one
``event: notification`` per feed notification for those audiences, ``id`` = its ``seq``. A
client reconnecting with ``Last-Event-ID`` first gets what it missed from the table.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from wardwatch.api import sse
from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
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
    return sse.stream(
        request,
        rt,
        who,
        rt.notify.feed_bus.subscribe(),
        after=sse.last_event_id(last_event_id),
        replay=lambda after, limit: [
            (m["seq"], _frame(m)) for m in rt.notify.feed(sorted(wanted), after=after, limit=limit)
        ],
        frame=lambda event: _frame(event.data) if event.data.get("audience") in wanted else None,
        missed="notifications",
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
