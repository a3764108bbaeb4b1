"""A real uvicorn server in a background thread, for tests that need real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

# Ports handed out by this process. The OS may give a port that was just released (by
# ``free_port``) to the next bind on port 0, so a port reserved for the MLLP listener could
# otherwise come back as the HTTP port of the same test server (seen once in CI).
_handed_out: set[int] = set()
_lock = threading.Lock()


def _bound_socket() -> socket.socket:
    """A socket bound to a loopback port that this process has never handed out before."""
    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
        with _lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return s
        s.close()


def free_port() -> int:
    """A loopback port that is free now and that no other caller in this process will get."""
    with _bound_socket() as s:
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` (and whatever its lifespan starts) until the block ends; yields the URL.

    Without ``port`` the listening socket is bound here, before the server starts, so
    nothing the app's lifespan binds can take the same port.
    """
    if port is None:
        sock = _bound_socket()
    else:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
