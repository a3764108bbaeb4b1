"""One server-sent-events stream for every live endpoint (changes, team feeds).

A client that reconnects with ``Last-Event-ID`` first gets what it missed (``replay``), then
live items from its bus subscription, with no gap and no duplicate: it subscribes before it
replays and skips live items at or below the last replayed ``seq``. Heartbeats keep proxies
from closing it, and on each the token is checked again, so a revoked token ends the stream.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from wardwatch.auth.service import Principal
from wardwatch.core.bus import OVERFLOW, Subscription
from wardwatch.core.events import DomainEvent
from wardwatch.runtime import Runtime

REPLAY_LIMIT = 5000

#: ``(after, limit) -> [(seq, frame)]``: what was missed, oldest first.
Replay = Callable[[int, int], list[tuple[int, str]]]


def last_event_id(header: str | None) -> int | None:
    """The ``Last-Event-ID`` a client sent, if it is a sequence number we could have sent."""
    return int(header) if header and re.fullmatch(r"[0-9]{1,18}", header) else None


def stream(
    request: Request,
    rt: Runtime,
    who: Principal,
    sub: Subscription,
    *,
    after: int | None,
    replay: Replay,
    frame: Callable[[DomainEvent], str | None],
    missed: str,
) -> StreamingResponse:
    """The SSE response. ``frame`` turns a live item into its frame, or None to skip it;
    ``missed`` names what a resync says there were too many of."""
    heartbeat = rt.settings.sse_heartbeat_seconds

    async def body() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            last = -1
            if after is not None:
                found = await asyncio.to_thread(replay, after, REPLAY_LIMIT)
                for seq, text in found:
                    last = seq
                    yield text
                if len(found) == REPLAY_LIMIT:
                    yield f'event: resync\ndata: {{"reason": "too many missed {missed}"}}\n\n'
            checked = time.monotonic()
            while not await request.is_disconnected():
                if time.monotonic() - checked >= heartbeat:  # even while items flow
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
                live = frame(event) if event.seq > last else None
                if live is not None:
                    yield live
        finally:
            sub.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
