"""In-process event bus: services publish after commit; SSE streams and listeners subscribe.

Publishing is thread-safe (services run in worker threads); each subscriber owns a bounded
asyncio queue on its event loop. A subscriber that falls behind is not allowed to hold up
anyone else: its queue is closed with an overflow marker and it must resynchronise. A bus
over NATS for several workers can implement the same two methods.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from wardwatch.core.events import DomainEvent

OVERFLOW = DomainEvent(seq=-1, type="stream.overflow", at=datetime.min.replace(tzinfo=UTC))


class Bus(Protocol):
    def publish(self, events: Iterable[DomainEvent]) -> None: ...


class Subscription:
    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self._bus = bus
        self._loop = loop
        self.queue: asyncio.Queue[DomainEvent] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    def _offer(self, event: DomainEvent) -> None:  # runs on the subscriber's loop
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)

    async def get(self) -> DomainEvent:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._remove(self)


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        """Subscribe from inside a running event loop."""
        sub = Subscription(self, asyncio.get_running_loop(), maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, events: Iterable[DomainEvent]) -> None:
        batch = list(events)
        if not batch:
            return
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            for event in batch:
                try:
                    sub._loop.call_soon_threadsafe(sub._offer, event)
                except RuntimeError:  # its loop has closed: drop the subscriber
                    self._remove(sub)
                    break
