"""Real HL7 bytes on a real loopback socket, through the listener `wardwatch serve` starts.

Includes a client nobody in this project wrote: python-hl7's ``mllp_send`` command and its
``MLLPClient`` class.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7.client
import pytest
import trustme
from typer.testing import CliRunner

from tests.conftest import PAYLOADS
from tests.hl7util import ack_fields, adt, pid, pv1
from tests.serving import free_port, serving
from wardwatch.app import create_app
from wardwatch.capacity.service import BedFilter
from wardwatch.cli import app as cli
from wardwatch.config import Settings
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
T0 = "20260105100000"


@pytest.fixture
def mllp(small: Runtime, clock: ManualClock) -> Iterator[tuple[Runtime, int]]:
    """The app with its MLLP listener, served by uvicorn in a thread, as `serve` runs it."""
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    port = free_port()
    with serving(create_app(small, mllp_port=port)):
        yield small, port


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_frame(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(EB + CR):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    assert data.startswith(SB)
    return data[1:-2].decode()


def _frame(raw: bytes) -> bytes:
    return SB + raw + EB + CR


def _occupied(rt: Runtime) -> set[str]:
    return {
        b.code for b in rt.capacity.list_beds(BedFilter(site="ACU1")) if b.state.value == "occupied"
    }


def test_one_message_is_acknowledged_after_it_is_applied(mllp: tuple[Runtime, int]) -> None:
    rt, port = mllp
    with _connect(port) as sock:
        sock.sendall(
            _frame(adt("A01", T0, pid("M1"), pv1("ACU1-AMU^^1^ACU1"), control_id="SOCK-1"))
        )
        ack = ack_fields(_read_frame(sock))
    assert (ack["code"], ack["control_id"]) == ("AA", "SOCK-1")
    assert _occupied(rt) == {"ACU1-AMU-01"}  # durable by the time the AA arrived


def test_frames_split_across_reads_and_several_in_one_read(mllp: tuple[Runtime, int]) -> None:
    rt, port = mllp
    one = _frame(adt("A01", T0, pid("S1"), pv1("ACU1-AMU^^1^ACU1"), control_id="SPLIT-1"))
    two = _frame(adt("A01", T0, pid("S2"), pv1("ACU1-AMU^^2^ACU1"), control_id="SPLIT-2"))
    three = _frame(adt("A01", T0, pid("S3"), pv1("ACU1-AMU^^3^ACU1"), control_id="SPLIT-3"))
    with _connect(port) as sock:
        for i in range(0, len(one), 7):  # a frame dribbled in 7-byte pieces
            sock.sendall(one[i : i + 7])
            time.sleep(0.002)
        assert ack_fields(_read_frame(sock))["control_id"] == "SPLIT-1"
        sock.sendall(two + three)  # two frames in one write
        got = [ack_fields(_read_frame(sock))["control_id"] for _ in range(2)]
    assert got == ["SPLIT-2", "SPLIT-3"]  # in order
    assert _occupied(rt) == {"ACU1-AMU-01", "ACU1-AMU-02", "ACU1-AMU-03"}


def test_python_hl7_mllp_send_command(mllp: tuple[Runtime, int], tmp_path: Path) -> None:
    """python-hl7's own command-line client sends a file of messages and gets AAs."""
    rt, port = mllp
    exe = shutil.which("mllp_send") or str(Path(sys.executable).parent / "mllp_send")
    payload = tmp_path / "msgs.hl7"
    # --loose: a file as PAS exports look, segments separated by CRLF.
    payload.write_bytes(
        b"".join(
            adt(
                "A01", T0, pid(f"C{i}"), pv1(f"ACU1-AMU^^{i + 3}^ACU1"), control_id=f"CLI-{i}"
            ).replace(b"\r", b"\r\n")
            for i in (1, 2)
        )
    )
    result = subprocess.run(
        [exe, "--loose", "--port", str(port), "--file", str(payload), "127.0.0.1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    acks = [a for a in result.stdout.decode().replace("\n", "\r").split("MSH") if a.strip()]
    assert len(acks) == 2
    assert all("MSA|AA|CLI-" in a for a in acks), result.stdout
    assert {"ACU1-AMU-04", "ACU1-AMU-05"} <= _occupied(rt)


def test_python_hl7_client_class_with_the_corpus(mllp: tuple[Runtime, int]) -> None:
    rt, port = mllp
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        for path in sorted((PAYLOADS / "hl7").glob("a01_*.hl7")):
            reply = client.send_message(path.read_bytes())
            assert b"MSA|AA|" in reply or b"MSA#AA#" in reply, (path.name, reply)
    assert len(rt.capacity.list_stays()) == 4


def test_garbage_gets_an_error_and_is_closed_without_harming_others(
    mllp: tuple[Runtime, int],
) -> None:
    rt, port = mllp
    good = _connect(port)
    with _connect(port) as bad:
        bad.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        nak = ack_fields(_read_frame(bad))
        assert nak["code"] == "AR" and "start block" in nak["text"]
        assert bad.recv(100) == b""  # closed by the server
    with good:
        good.sendall(_frame(adt("A01", T0, pid("G1"), pv1("ACU1-AMU^^1^ACU1"))))
        assert ack_fields(_read_frame(good))["code"] == "AA"
    [row] = rt.hl7.list(status="quarantined")
    assert "start block" in row["detail"]


def test_truncated_frame_is_answered_quarantined_and_the_next_one_works(
    mllp: tuple[Runtime, int],
) -> None:
    rt, port = mllp
    whole = adt("A01", T0, pid("TR1"), pv1("ACU1-AMU^^1^ACU1"), control_id="TRUNC-1")
    with _connect(port) as sock:
        sock.sendall(SB + whole[:40])  # cut off: no end block...
        sock.sendall(
            _frame(adt("A01", T0, pid("TR2"), pv1("ACU1-AMU^^2^ACU1"), control_id="AFTER-1"))
        )  # ...then a new frame starts
        first, second = ack_fields(_read_frame(sock)), ack_fields(_read_frame(sock))
    assert first["code"] == "AR" and "truncated" in first["text"]
    assert (second["code"], second["control_id"]) == ("AA", "AFTER-1")
    assert _occupied(rt) == {"ACU1-AMU-02"}
    [row] = rt.hl7.list(status="quarantined")
    assert rt.hl7.get(row["id"])["raw"].startswith("MSH|")


def test_a_frame_cut_by_a_disconnect_is_kept(mllp: tuple[Runtime, int]) -> None:
    rt, port = mllp
    with _connect(port) as sock:
        sock.sendall(SB + adt("A01", T0, pid("D1"), pv1("ACU1-AMU^^1^ACU1"))[:60])
    deadline = time.monotonic() + 5
    while not rt.hl7.list(status="quarantined"):
        assert time.monotonic() < deadline, "the cut frame was not kept"
        time.sleep(0.02)
    assert "connection closed" in rt.hl7.list(status="quarantined")[0]["detail"]
    assert _occupied(rt) == set()


def test_eight_concurrent_connections(mllp: tuple[Runtime, int]) -> None:
    rt, port = mllp
    beds = [
        b.code
        for b in rt.capacity.list_beds(BedFilter(site="ACU1"))
        if b.state.value == "available"
    ][:16]
    results: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        codes = []
        with _connect(port) as sock:
            for j in range(2):
                bed = beds[n * 2 + j]
                ward, num = bed.rsplit("-", 1)
                sock.sendall(
                    _frame(
                        adt(
                            "A01",
                            T0,
                            pid(f"C{n}-{j}", sex="U"),
                            pv1(f"{ward}^^{num}^ACU1"),
                            control_id=f"CONC-{n}-{j}",
                        )
                    )
                )
                codes.append(ack_fields(_read_frame(sock))["code"])
        results[n] = codes

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(8))
    assert all(codes == ["AA", "AA"] for codes in results.values()), results
    assert _occupied(rt) == set(beds)


def test_messages_waiting_on_several_connections_share_one_commit(
    small: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: while one batch is being applied, the messages arriving on the other
    connections wait, then go together in the next batch; every ACK still says AA."""
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    sizes: list[int] = []
    gate = threading.Event()
    real = small.hl7.handle_batch

    def held(items: list[tuple[bytes, str | None]]) -> list[Any]:
        sizes.append(len(items))
        if len(sizes) == 1:
            gate.wait(10)  # the first batch waits until the others are queued
        return real(items)

    monkeypatch.setattr(small.hl7, "handle_batch", held)
    port = free_port()
    app = create_app(small, mllp_port=port)
    codes: dict[int, str] = {}

    def send(n: int) -> None:
        with _connect(port) as sock:
            raw = adt("A01", T0, pid(f"G{n}", sex="U"), pv1(f"ACU1-AMU^^{n + 1}^ACU1"))
            sock.sendall(_frame(raw))
            codes[n] = ack_fields(_read_frame(sock))["code"]

    with serving(app):
        first = threading.Thread(target=send, args=(0,))
        first.start()
        deadline = time.monotonic() + 10
        while not sizes and time.monotonic() < deadline:
            time.sleep(0.01)
        others = [threading.Thread(target=send, args=(n,)) for n in range(1, 6)]
        for t in others:
            t.start()
        queue = app.state.mllp._commits._waiting
        while len(queue) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        for t in [first, *others]:
            t.join(timeout=30)
    assert sizes == [1, 5]
    assert codes == dict.fromkeys(range(6), "AA")
    assert {f"ACU1-AMU-0{n}" for n in range(1, 7)} <= _occupied(small)


def test_an_end_block_without_its_carriage_return_still_ends_the_frame(
    mllp: tuple[Runtime, int],
) -> None:
    rt, port = mllp
    with _connect(port) as sock:
        sock.sendall(
            SB + adt("A01", T0, pid("E1"), pv1("ACU1-AMU^^1^ACU1"), control_id="NOCR-1") + EB
        )  # no 0x0D
        assert ack_fields(_read_frame(sock))["control_id"] == "NOCR-1"
        sock.sendall(
            CR + _frame(adt("A01", T0, pid("E2"), pv1("ACU1-AMU^^2^ACU1"), control_id="NOCR-2"))
        )  # the late 0x0D is skipped
        assert ack_fields(_read_frame(sock))["code"] == "AA"
    assert _occupied(rt) == {"ACU1-AMU-01", "ACU1-AMU-02"}


def test_an_oversized_message_is_refused_and_the_connection_closed(
    mllp: tuple[Runtime, int],
) -> None:
    _, port = mllp  # the listener's limit is 1 MiB
    with _connect(port) as sock:
        sock.sendall(SB + b"MSH|^~\\&|" + b"X" * (1 << 20) + b"\r")
        nak = ack_fields(_read_frame(sock))
        assert nak["code"] == "AR" and "larger than" in nak["text"]
        assert sock.recv(100) == b""


def test_only_allowed_peers_may_connect(small: Runtime) -> None:
    """With WARDWATCH_MLLP_ALLOWED_PEERS set, other hosts are closed on without a word."""
    small.settings.mllp_allowed_peers = "10.99.99.99"
    port = free_port()
    with serving(create_app(small, mllp_port=port)), _connect(port) as sock:
        try:
            sock.sendall(_frame(adt("A01", T0, pid("X1"), pv1("ACU1-AMU^^1^ACU1"))))
            reply = sock.recv(100)
        except ConnectionError:  # a reset is as good as a close here
            reply = b""
        assert reply == b""
    assert small.hl7.list() == []
    assert _occupied(small) == set()
    small.settings.mllp_allowed_peers = "10.99.99.99, 127.0.0.1"
    port = free_port()
    with serving(create_app(small, mllp_port=port)), _connect(port) as sock:
        sock.sendall(_frame(adt("A01", T0, pid("X1"), pv1("ACU1-AMU^^1^ACU1"))))
        assert ack_fields(_read_frame(sock))["code"] == "AA"


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Any]:
    """A test CA, the listener's certificate from it, and a PAS client certificate from it
    (real X.509 and TLS, made by trustme)."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    pas = ca.issue_cert("pas.example.nhs.uk", common_name="PAS-LIVE")
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(files["cert"]), append=True)
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    return {**files, "authority": ca, "pas": pas}


def _tls_client(tls_files: dict[str, Any], *, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    tls_files["authority"].configure_trust(ctx)
    if with_cert:
        tls_files["pas"].configure_cert(ctx)
    return ctx


def test_mllp_over_tls_takes_only_senders_with_a_certificate_from_the_ca(
    small: Runtime, clock: ManualClock, tls_files: dict[str, Any]
) -> None:
    """HAZ-018: with TLS and a client CA set, a PAS with a certificate from that CA is
    answered and its certificate's name is kept with the message; a sender without one, and
    plain TCP, are closed on before any message is read."""
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    small.settings.mllp_tls_cert = tls_files["cert"]
    small.settings.mllp_tls_key = tls_files["key"]
    small.settings.mllp_tls_client_ca = tls_files["ca"]
    port = free_port()
    message = _frame(adt("A01", T0, pid("T1"), pv1("ACU1-AMU^^1^ACU1")))
    with serving(create_app(small, mllp_port=port)):
        # Plain TCP on the TLS port: no answer, nothing kept.
        with _connect(port) as sock:
            try:
                sock.sendall(message)
                reply = sock.recv(100)
            except ConnectionError:
                reply = b""
            assert not reply.startswith(SB)
        # TLS without a client certificate: the handshake (or the first read) fails.
        anonymous = _tls_client(tls_files, with_cert=False)
        with (
            pytest.raises((ssl.SSLError, ConnectionError)),
            anonymous.wrap_socket(_connect(port), server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(message)
            _read_frame(tls)
        assert small.hl7.list() == [] and _occupied(small) == set()
        # The PAS, with its certificate: applied and acknowledged, its name kept.
        pas = _tls_client(tls_files, with_cert=True)
        with pas.wrap_socket(_connect(port), server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(message)
            assert ack_fields(_read_frame(tls))["code"] == "AA"
    (row,) = small.hl7.list()
    assert row["source"].startswith("mllp+tls:127.0.0.1:") and row["source"].endswith(
        " cn=PAS-LIVE"
    )
    assert _occupied(small) == {"ACU1-AMU-01"}


def test_a_half_tls_configuration_is_refused_not_served_in_the_clear(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, mllp_tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValueError, match="needs both"):
        settings.mllp_tls()
    settings = Settings(data_dir=tmp_path, mllp_tls_client_ca=tmp_path / "ca.pem")
    with pytest.raises(ValueError, match="needs _TLS_CERT"):
        settings.mllp_tls()
    missing = Settings(
        data_dir=tmp_path, mllp_tls_cert=tmp_path / "no.pem", mllp_tls_key=tmp_path / "no.key"
    )
    with pytest.raises(ValueError, match="not usable"):
        missing.mllp_tls()
    result = CliRunner().invoke(
        cli,
        ["serve", "--mllp-port", "2575"],
        env={"WARDWATCH_DATA_DIR": str(tmp_path), "WARDWATCH_MLLP_TLS_CERT": "x.pem"},
    )
    assert result.exit_code == 2 and "needs both" in result.output
