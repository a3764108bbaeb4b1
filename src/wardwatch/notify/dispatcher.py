"""The delivery worker: sends queued notifications as soon as they commit, and retries.

``run()`` is started by the app's lifespan. It is woken (thread-safely) by every commit
that queued a webhook or email notification, and sweeps once a second for retries that
have come due on the clock. Each delivery runs as its own task, so a receiver that hangs
holds up nothing but itself, for at most its channel's timeout. ``run_once()`` delivers
everything due at the clock's now and waits for the results: tests step through retries
with a ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from wardwatch.notify import outbox
from wardwatch.notify.channels import Channel, DeliveryError, EmailSender, WebhookSender
from wardwatch.notify.config import DEFAULT_EMAIL, EmailChannel, WebhookChannel
from wardwatch.notify.service import NotifyService

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        service: NotifyService,
        *,
        max_in_flight: int = 64,
        sweep_seconds: float = 1.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        self.max_in_flight = max_in_flight
        self.sweep_seconds = sweep_seconds
        self.env = env
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        """True once ``run()`` is listening for wake-ups."""
        return self._wakeup is not None

    def wake(self) -> None:
        """Deliver now: safe to call from any thread (services run in worker threads)."""
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(wakeup.set)

    async def run(self) -> None:
        """Deliver until cancelled."""
        self._loop, wakeup = asyncio.get_running_loop(), asyncio.Event()
        self.service.add_waker(self.wake)
        self.service.add_handoff(self.take)
        self._wakeup = wakeup
        try:
            async with httpx.AsyncClient() as client:
                self._client = client
                while True:
                    wakeup.clear()
                    filled = await self._start_due()
                    if filled:  # there may be more: claim again at once
                        await asyncio.sleep(0)
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), self.sweep_seconds)
        finally:
            self.service.remove_handoff(self.take)
            self.service.remove_waker(self.wake)
            for task in self._in_flight:
                task.cancel()  # their rows stay "sending" and come back when the lease ends
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            self._client = None
            self._loop = self._wakeup = None

    def take(self, claims: list[outbox.Claim]) -> None:
        """Send deliveries claimed for us in a committed transaction (from any thread)."""
        loop = self._loop
        if loop is None:
            return  # stopping: the claims come due again when their lease ends
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._start, claims)

    def _start(self, claims: list[outbox.Claim]) -> None:
        for c in claims:
            task = asyncio.create_task(self._deliver(c))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    async def _start_due(self) -> bool:
        """Claim what is due and start sending it; True if the batch was full."""
        free = self.max_in_flight - len(self._in_flight)
        if free <= 0:
            return False
        try:
            claims = await asyncio.to_thread(outbox.claim, *self._claim_args(free))
        except Exception:
            log.exception("claiming notifications failed; trying again shortly")
            return False
        self._start(claims)
        return len(claims) == free

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        if self._wakeup is not None:
            self._wakeup.set()  # room for more

    def _claim_args(self, limit: int) -> tuple[Any, ...]:
        return self.service.db, self.service.clock.now(), limit

    async def run_once(self) -> int:
        """Deliver everything due now, concurrently; the number of attempts made."""
        own = self._client is None
        client = httpx.AsyncClient() if self._client is None else self._client
        made = 0
        try:
            while claims := await asyncio.to_thread(
                outbox.claim, *self._claim_args(self.max_in_flight)
            ):
                await asyncio.gather(*(self._deliver(c, client) for c in claims))
                made += len(claims)
        finally:
            if own:
                await client.aclose()
        return made

    def deliver_due(self) -> int:
        """``run_once`` for synchronous callers (tests, the CLI)."""
        return asyncio.run(self.run_once())

    async def _deliver(self, claim: outbox.Claim, client: httpx.AsyncClient | None = None) -> None:
        item = claim.item
        sender: Channel | None = None
        error: str | None = None
        try:
            sender = self._sender(item.channel, item.kind, client or self._client)
            await sender.send(item)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a bug must not leave the row "sending" until the lease ends
            log.exception("delivering notification %s failed unexpectedly", item.id)
            error = f"unexpected error ({type(exc).__name__})"
        policy = sender or EmailSender(DEFAULT_EMAIL, self.service.settings)
        try:
            await asyncio.to_thread(
                outbox.finish,
                self.service.db,
                claim,
                self.service.clock.now(),
                error=error,
                max_attempts=policy.max_attempts,
                backoff=policy.backoff(claim.attempts),
                on_dead=self.service.dead_letter,
            )
        except Exception:
            log.exception("recording the result of notification %s failed", item.id)

    def _sender(self, name: str, kind: str, client: httpx.AsyncClient | None) -> Channel:
        config = self.service.config.channels.get(name)
        if kind == "email":
            if name == "email":
                config = DEFAULT_EMAIL
            if isinstance(config, EmailChannel):
                return EmailSender(config, self.service.settings)
        elif kind == "webhook" and isinstance(config, WebhookChannel) and client is not None:
            return WebhookSender(config, client, self.env)
        raise DeliveryError(f"channel {name!r} ({kind}) is not configured any more")
