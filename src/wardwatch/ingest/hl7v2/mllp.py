"""An MLLP listener (``0x0B message 0x1C 0x0D``) on asyncio.

Each connection is read as a stream: frames may be split across reads or several may come
in one read. Messages from one connection are applied strictly in order, each acknowledged
only after its transaction commits. Group commit: the messages waiting on all connections
are applied together by one worker thread, in one transaction (each in a savepoint of its
own, see :meth:`Hl7Service.handle_batch`), so many connections share each commit and never
contend with each other for the same beds. A connection that sends bytes outside a frame,
or a frame larger than the limit, gets an AR and is closed; other connections are
untouched. A frame cut short by a new start block is answered AR and quarantined; one cut
short by a disconnect is quarantined.

With ingest workers (``wardwatch serve --ingest-workers N``) the batches are applied in N
worker processes, up to N batches at once (:mod:`wardwatch.ingest.pool`). A batch whose
worker died is never acknowledged: its senders' connections are closed, and each sends its
message again.

With a TLS context (``WARDWATCH_MLLP_TLS_CERT``/``_KEY``) the listener speaks MLLP over TLS
only, and with ``_TLS_CLIENT_CA`` every sender must present a certificate signed by that CA
(mutual TLS): its subject CN is kept with each message it sends (``source``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from wardwatch.core.errors import Unavailable
from wardwatch.ingest.hl7v2.service import Handled, Hl7Service

log = logging.getLogger(__name__)

START, END, CR = b"\x0b", b"\x1c", b"\x0d"
MAX_MESSAGE = 1 << 20  # 1 MiB
WHITESPACE = b" \t\r\n"
#: At most this many messages share a commit. A batch holds the locks of the beds it moved
#: until then (~13 ms a message here), so a person changing one of those beds waits at most
#: a batch; larger batches gained nothing in throughput (PERFORMANCE.md).
MAX_BATCH = 16
#: Before it starts a batch, a lane waits at most this long for the connections answered
#: within this long to send their next message, so that they share one commit instead of a
#: lane taking them one by one (a batch's fixed cost is that of ~4 messages).
GATHER_S = 0.002

#: Applies a batch of (message, source) and returns their answers, only after the commit.
ApplyBatch = Callable[[list[tuple[bytes, str | None]]], Awaitable[list[Handled]]]


class GroupCommit:
    """Messages from every connection, applied in batches, at most ``lanes`` at once.

    A connection submits one message at a time and waits for its answer, so a batch holds
    at most one message per connection, no two batches in hand hold messages of the same
    connection, and each connection's order is kept. While the batches are being applied
    the next one gathers.

    The connections answered together send again together, so before it starts a lane
    waits (at most ``gather``, :data:`GATHER_S`) for those answered in the last ``gather``
    that have not sent again, until it holds its share of the busy connections (those waiting,
    in hand or just answered, over the lanes). A connection alone, or one among quiet ones,
    is never held.
    """

    def __init__(self, apply: ApplyBatch, lanes: int = 1, *, gather: float = GATHER_S) -> None:
        if lanes < 1:
            raise ValueError("group commit needs at least one lane")
        self.apply = apply
        self.lanes = lanes
        self.gather = gather
        self._waiting: list[tuple[bytes, str, asyncio.Future[Handled]]] = []
        self._draining = 0  # drainers running; each ends when it finds nothing waiting
        self._drainers: set[asyncio.Task[None]] = set()  # their tasks, kept referenced
        self._in_hand = 0  # messages being applied
        #: Connections answered lately (when, loop time) that have not sent again.
        self._answered: dict[str, float] = {}
        self._arrived = asyncio.Event()

    async def submit(self, raw: bytes, source: str) -> Handled:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Handled] = loop.create_future()
        self._waiting.append((raw, source, answer))
        if self._answered.pop(source, None) is not None:
            self._arrived.set()
        if self._draining < self.lanes:
            self._draining += 1
            drainer = loop.create_task(self._drain())
            self._drainers.add(drainer)
            drainer.add_done_callback(self._drainers.discard)
        return await answer

    async def _drain(self) -> None:
        try:
            await self._drain_waiting()
        finally:  # in the same step as its last look at the queue: nothing is left behind
            self._draining -= 1

    async def _drain_waiting(self) -> None:
        while self._waiting:
            if self._answered:
                await self._gather()
                if not self._waiting:  # another lane took them meanwhile
                    return
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            items: list[tuple[bytes, str | None]] = [(raw, source) for raw, source, _ in batch]
            self._in_hand += len(batch)
            try:
                answers = await self.apply(items)
            except BaseException as exc:  # handle_batch answers everything, but no waiter
                for _, _, answer in batch:  # may ever be left hanging
                    if not answer.done():
                        answer.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                if isinstance(exc, Unavailable):
                    log.error("HL7 batch of %d not acknowledged: %s", len(batch), exc)
                else:
                    log.exception("HL7 batch could not be handled")
                continue
            finally:
                self._in_hand -= len(batch)
            answered = asyncio.get_running_loop().time()
            for (_, source, answer), handled in zip(batch, answers, strict=True):
                if not answer.done():  # its connection may have gone
                    answer.set_result(handled)
                    self._answered[source] = answered
            if len(self._answered) > 4 * MAX_BATCH:  # connections that went quiet or closed
                self._forget_before(answered)

    def _forget_before(self, now: float) -> None:
        self._answered = {k: t for k, t in self._answered.items() if now - t < self.gather}

    async def _gather(self) -> None:
        """Wait (at most ``self.gather``) for the connections answered lately to send,
        until this lane holds its share of the busy connections; forget those answered
        longer ago (they are quiet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.gather
        while len(self._waiting) < MAX_BATCH:
            now = loop.time()
            self._forget_before(now)
            busy = len(self._waiting) + len(self._answered) + self._in_hand
            if not self._answered or len(self._waiting) * self.lanes >= busy:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - now)
            except TimeoutError:
                return


class MllpServer:
    def __init__(
        self,
        service: Hl7Service,
        *,
        host: str = "127.0.0.1",
        port: int = 2575,
        max_message: int = MAX_MESSAGE,
        workers: int = 16,
        allowed_peers: frozenset[str] | None = None,
        tls: ssl.SSLContext | None = None,
        apply_batch: ApplyBatch | None = None,
        lanes: int = 1,
    ) -> None:
        """``apply_batch`` (and ``lanes``, how many batches it may have in hand at once):
        where the group-commit batches go; default ``service.handle_batch`` in a thread."""
        self.service = service
        self.tls = tls
        self.host = host
        self.port = port
        self.max_message = max_message
        self.allowed_peers = allowed_peers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp")
        self._commits = GroupCommit(apply_batch or self._handle_batch, lanes)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("MLLP%s listening on %s:%s", " over TLS" if self.tls else "", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await self._server.wait_closed()
        self._executor.shutdown(wait=True)

    async def _handle_batch(self, items: list[tuple[bytes, str | None]]) -> list[Handled]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.service.handle_batch, items)

    async def _run(self, fn: Callable[[], Handled]) -> Handled:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _send(self, writer: asyncio.StreamWriter, handled: Handled) -> None:
        writer.write(START + handled.ack.encode("utf-8") + END + CR)
        await writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        peer = writer.get_extra_info("peername")
        scheme = "mllp" if self.tls is None else "mllp+tls"
        source = f"{scheme}:{peer[0]}:{peer[1]}" if peer else scheme
        name = _common_name(writer.get_extra_info("peercert")) if self.tls else None
        if name:  # who the sender's certificate says it is
            source = f"{source} cn={name}"[:120]  # as stored
        if self.allowed_peers is not None and (not peer or peer[0] not in self.allowed_peers):
            log.warning("MLLP connection from %s refused: not in the allowed peers", source)
            writer.close()
            if task is not None:
                self._clients.discard(task)
            return
        buf = bytearray()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    rest = bytes(buf).strip(WHITESPACE)
                    if rest.startswith(START) and len(rest) > 1:
                        await self._run(
                            partial(
                                self.service.reject,
                                rest[1:],
                                "truncated frame: the connection closed before the end block",
                                source=source,
                            )
                        )
                    return
                buf.extend(data)
                if not await self._drain_frames(buf, writer, source):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the peer went away, or the server is stopping
        except Unavailable:  # its batch's worker died: no ACK, the sender sends it again
            log.warning("MLLP connection %s closed without an ACK: its worker stopped", source)
            return
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()

    async def _drain_frames(
        self, buf: bytearray, writer: asyncio.StreamWriter, source: str
    ) -> bool:
        """Handle every complete frame in ``buf``; False when the connection must close."""
        while True:
            while buf and buf[0] in WHITESPACE:
                del buf[0]
            if not buf:
                return True
            if buf[0:1] != START:
                garbage = bytes(buf[:200])
                handled = await self._run(
                    partial(
                        self.service.reject,
                        garbage,
                        "not MLLP: expected a start block (0x0B) before the message",
                        source=source,
                    )
                )
                await self._send(writer, handled)
                return False
            # The end block is 0x1C 0x0D; some senders omit the 0x0D, so 0x1C alone ends a
            # frame too (a 0x0D that arrives later is skipped as whitespace).
            end = buf.find(END)
            inner = buf.find(START, 1, end if end != -1 else len(buf))
            if inner != -1:  # a new frame began before this one ended
                cut = bytes(buf[1:inner])
                del buf[:inner]
                await self._send(
                    writer,
                    await self._run(
                        partial(
                            self.service.reject,
                            cut,
                            "truncated frame: a new start block arrived before the end block",
                            source=source,
                        )
                    ),
                )
                continue
            if end == -1:
                if len(buf) > self.max_message:
                    handled = await self._run(
                        partial(
                            self.service.reject,
                            bytes(buf[1:4096]),
                            f"message larger than {self.max_message} bytes",
                            source=source,
                        )
                    )
                    await self._send(writer, handled)
                    return False
                return True
            message = bytes(buf[1:end])
            del buf[: end + (2 if buf[end + 1 : end + 2] == CR else 1)]
            await self._send(writer, await self._commits.submit(message, source))


def _common_name(cert: object) -> str | None:
    """The subject CN of a peer certificate as ``ssl`` gives it (None without one)."""
    if not isinstance(cert, dict):
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)[:60]
    return None
