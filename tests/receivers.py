"""Real local receivers for notification tests: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.serving import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next planned status (the last one repeats).

    A planned ``"hang"`` sleeps ``hang_seconds`` before answering 200, like a stuck server.
    """

    url: str
    plan: list[int | str] = field(default_factory=lambda: [200])
    hang_seconds: float = 10.0
    received: list[Received] = field(default_factory=list)
    answered: list[int | str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> int | str:
        with self.lock:
            answer = self.plan[0] if len(self.plan) == 1 else self.plan.pop(0)
            self.answered.append(answer)
            return answer

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"{len(self.received)} of {n} requests arrived"
            time.sleep(0.01)
        return self.received


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = receiver.next_answer()
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
            receiver.arrived.set()
            if answer == "hang":
                time.sleep(receiver.hang_seconds)
                answer = 200
            self.send_response(int(answer))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(
    plan: list[int | str] | None = None, hang_seconds: float = 10.0
) -> Iterator[Receiver]:
    receiver = Receiver(url="", hang_seconds=hang_seconds)
    if plan:
        receiver.plan = list(plan)
    # Port 0: the kernel picks a free port as the server binds, so no other process can
    # take it first.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.daemon_threads = True
    server.block_on_close = False  # a hanging handler must not hold up the test's end
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free local port (one ``free_port`` reserved: the
    controller binds it itself)."""
    from aiosmtpd.controller import Controller

    box = Mailbox(host="127.0.0.1", port=free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
