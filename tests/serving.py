"""A real uvicorn server in a background thread, for tests that need real sockets.

Ports are safe across processes, so pytest-xdist workers (and two test runs on one machine)
never collide:

- ``serving()`` binds its listening socket itself (port 0: the kernel picks a free one) and
  hands the bound socket to uvicorn, so nothing can take the port in between.
- ``free_port()`` is for code that binds the port itself (the app's MLLP listener, the SMTP
  test server, a server restarted on the same port) or for a port where nothing may listen.
  Its ports come from below the kernel's ephemeral range, which neither ``bind(0)`` nor an
  outgoing connection ever picks, and each is claimed with a lock file that the claiming
  process holds until it exits, so no other test process hands out the same port.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import uvicorn
from fastapi import FastAPI

#: Where ports are claimed: one lock file per port, shared by every test process.
PORT_LOCKS = Path(tempfile.gettempdir()) / "wardwatch-test-ports"
#: How many ports below the ephemeral range ``free_port`` may use.
PORT_SPAN = 10_000

# Ports handed out by this process (by ``free_port`` or a ``serving`` socket): none is handed
# out twice, so a port a test reserved for the MLLP listener never comes back to the same
# process as another server's port (seen once in CI, when both came from port 0).
_handed_out: set[int] = set()
# The claims of this process: open, locked files (closing one would release its port).
_claims: list[IO[bytes]] = []
_lock = threading.Lock()


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _claimable_ports() -> list[int]:
    """The ports ``free_port`` tries, starting at a place that differs between processes, so
    parallel workers rarely try the same ones (the lock files decide when they do)."""
    high = _ephemeral_low()
    low = max(1024, high - PORT_SPAN)
    if high - low < 1000:  # no room below the ephemeral range: use a fixed block instead
        low, high = 20_000, 20_000 + PORT_SPAN
    ports = list(range(low, high))
    start = (os.getpid() * 7919) % len(ports)
    return ports[start:] + ports[:start]


def _claim(port: int) -> bool:
    """Claim ``port`` for this process if no other test process has, and nothing else
    listens there now; the claim lasts until this process exits."""
    PORT_LOCKS.mkdir(exist_ok=True)
    claim = (PORT_LOCKS / str(port)).open("wb")
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.close()
        return False
    with socket.socket() as probe:
        # SO_REUSEADDR as the servers use it: a port whose old connections linger in
        # TIME_WAIT (from an earlier run) is usable; one that something listens on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            claim.close()
            return False
    _claims.append(claim)
    return True


def free_port() -> int:
    """A loopback port that is free now and stays reserved for this process: no other
    caller here, no other test process and no port-0 bind anywhere will get it."""
    with _lock:
        for port in _claimable_ports():
            if port not in _handed_out and _claim(port):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port to claim below {_ephemeral_low()}")


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


@contextmanager
def serving(app: FastAPI, port: int | None = None, *, lifespan: bool = True) -> Iterator[str]:
    """Serve ``app`` (and whatever its lifespan starts) until the block ends; yields the URL.

    Without ``port`` the listening socket is bound here, before the server starts, so
    nothing the app's lifespan binds can take the same port. With ``lifespan=False`` the
    app's lifespan does not run: no MLLP listener, no delivery worker, and no periodic
    checks, whose first OPEL levels would otherwise reach streams at a moment the test does
    not control.
    """
    if port is None:
        sock = _bound_socket()
    else:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=2,
        lifespan="auto" if lifespan else "off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    # Generous: a lifespan may start worker processes (ingest workers import all of
    # WardWatch), and CI runs four test processes on two cores. Only a failure waits it out.
    deadline = time.monotonic() + 60
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
