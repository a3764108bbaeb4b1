"""HL7 v2 ORU^R01 vital signs into the virtual ward, on SQLite and PostgreSQL.

Real message bytes (tests/payloads/oru/) over a real loopback MLLP socket, through the
listener `wardwatch serve` starts, including python-hl7's own ``MLLPClient`` and
``mllp_send``; the field-level cases drive ``Hl7Service.handle``, the function the listener
calls.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import hl7.client
import pytest
from sqlalchemy import delete, select

from tests.conftest import PAYLOADS
from tests.hl7util import adt, pid
from tests.serving import free_port, serving
from wardwatch.app import create_app
from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.actor import Actor
from wardwatch.core.clock import ManualClock
from wardwatch.ingest.hl7v2.models import Hl7Message
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Rejected
from wardwatch.virtualward.schemas import DeviceIn, EnrolRequest

ORU = PAYLOADS / "oru"
SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
ENROLLED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 12, 30, tzinfo=UTC)  # the payloads' readings are 12:10-12:15
NURSE = Actor(name="nurse", role="clinician")


@pytest.fixture
def mllp(small: Runtime, clock: ManualClock) -> Iterator[tuple[Runtime, int]]:
    """The app with its MLLP listener, served by uvicorn in a thread, as `serve` runs it."""
    clock.set(ENROLLED)
    port = free_port()
    with serving(create_app(small, mllp_port=port)):
        yield small, port


@pytest.fixture
def feed(small: Runtime, clock: ManualClock) -> Runtime:
    clock.set(ENROLLED)
    return small


def enrol(
    rt: Runtime, local: str | None, nhs: str | None = None, devices: tuple[str, ...] = ()
) -> str:
    for serial in devices:
        rt.virtualward.register_device(DeviceIn(serial=serial), NURSE)
    req = EnrolRequest(
        patient=PatientIn(local_id=local, nhs_number=nhs),
        ward="VW1-FRA",
        devices=list(devices),
    )
    return rt.virtualward.enrol(req, NURSE).id


def exchange(port: int, *messages: bytes) -> list[str]:
    """Send each message framed on one connection; the ACKs, in order."""
    acks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for raw in messages:
            sock.sendall(SB + raw + EB + CR)
            data = b""
            while not data.endswith(EB + CR):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {data!r}")
                data += chunk
            acks.append(data[1:-2].decode())
    return acks


def msa(ack: str) -> tuple[str, str, str]:
    """MSA-1, MSA-2, MSA-3."""
    fields = next(s for s in ack.split("\r") if s.startswith("MSA|")).split("|")
    return fields[1], fields[2], fields[3] if len(fields) > 3 else ""


def errs(ack: str) -> list[tuple[str, str, str]]:
    """Every ERR segment as (ERR-2 location, ERR-3.1 code, ERR-8 text)."""
    out = []
    for segment in ack.split("\r"):
        if segment.startswith("ERR|"):
            f = segment.split("|")
            out.append((f[2], f[3].split("^")[0], f[8]))
    return out


def count(rt: Runtime, enrolment_id: str) -> int:
    return sum(len(v) for v in rt.virtualward.readings(enrolment_id).values())


def rejected(rt: Runtime) -> list[tuple[str | None, str, str]]:
    with rt.db.read() as s:
        rows = s.scalars(select(Rejected).where(Rejected.source == "hl7").order_by(Rejected.id))
        return [(r.sender, r.reason, r.payload) for r in rows]


def payload(name: str) -> bytes:
    return (ORU / name).read_bytes()


# --- over the socket --------------------------------------------------------------------


def test_a_full_set_is_stored_scored_and_acknowledged(
    mllp: tuple[Runtime, int], clock: ManualClock
) -> None:
    rt, port = mllp
    # Enrolled by hospital number only; the message also carries the NHS number.
    eid = enrol(rt, "VW5001")
    clock.set(NOW)
    [ack] = exchange(port, payload("r01_v251_cr.hl7"))
    assert msa(ack)[:2] == ("AA", "ORU251-0001") and errs(ack) == []
    assert ack.split("\r")[0].split("|")[8] == "ACK^R01^ACK"
    # Durable and scored by the time the AA arrived: RR 22 (2), SpO2 95 (1), SBP 125 (0),
    # pulse 95 (1), alert (0), 38.2 °C (1), on air (0) = 5.
    latest = rt.virtualward.get(eid).latest
    assert latest is not None
    assert (latest.total, latest.partial, latest.risk) == (5, False, "medium")
    assert latest.at == datetime(2026, 1, 5, 12, 10, tzinfo=UTC)
    got = rt.virtualward.readings(eid)
    assert set(got) == {
        "respiration_rate",
        "spo2",
        "systolic_bp",
        "diastolic_bp",
        "pulse",
        "consciousness",
        "temperature",
    }
    assert got["consciousness"][0][1] == "A" and got["diastolic_bp"][0][1] == 78
    [row] = rt.hl7.list()
    assert (row["type"], row["version"], row["status"], row["ack_code"]) == (
        "ORU^R01",
        "2.5.1",
        "accepted",
        "AA",
    )
    assert row["detail"] == "7 of 7 observations stored"


def test_v23_lf_and_v24_crlf_through_python_hl7_client(
    mllp: tuple[Runtime, int], clock: ManualClock
) -> None:
    """python-hl7's MLLPClient sends the files' bytes as they are (LF, CRLF)."""
    rt, port = mllp
    v23, v24 = enrol(rt, "VW5002"), enrol(rt, "VW5003")
    clock.set(NOW)
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        replies = [
            client.send_message(payload(name)).decode()
            for name in ("r01_v23_lf.hl7", "r01_v24_crlf.hl7")
        ]
    assert [msa(r.strip(SB.decode() + EB.decode() + "\r"))[0] for r in replies] == ["AA", "AA"]
    assert "|2.3\r" in replies[0] and "|2.4\r" in replies[1]  # answered in their versions
    # v2.3: no OBX-14, so OBR-7; no offset, so Europe/London (GMT in January).
    first = rt.virtualward.readings(v23)
    assert {at for values in first.values() for at, _ in values} == {
        datetime(2026, 1, 5, 12, 15, tzinfo=UTC)
    }
    assert first["consciousness"] == [(datetime(2026, 1, 5, 12, 15, tzinfo=UTC), "A")]
    assert rt.virtualward.get(v23).latest.total == 0  # type: ignore[union-attr]
    # v2.4: two OBR groups whose OBX set ids both start at 1; 98.6 [degF] is 37.0 °C.
    second = rt.virtualward.readings(v24)
    assert count(rt, v24) == 6
    assert second["temperature"] == [(datetime(2026, 1, 5, 12, 12, tzinfo=UTC), 37.0)]
    assert second["pulse"] == [(datetime(2026, 1, 5, 12, 10, tzinfo=UTC), 80)]
    latest = rt.virtualward.get(v24).latest
    assert latest is not None and (latest.total, latest.partial) == (0, False)


def test_mllp_send_command_and_a_result_that_cannot_be_obtained(
    mllp: tuple[Runtime, int], clock: ManualClock, tmp_path: Path
) -> None:
    """python-hl7's command-line client; OBX-11 X is stored as an absent value."""
    rt, port = mllp
    eid = enrol(rt, "VW5006")
    clock.set(NOW)
    exe = shutil.which("mllp_send") or str(Path(sys.executable).parent / "mllp_send")
    file = tmp_path / "oru.hl7"
    file.write_bytes(payload("r01_v251_absent.hl7").replace(b"\r", b"\r\n"))
    result = subprocess.run(
        [exe, "--loose", "--port", str(port), "--file", str(file), "127.0.0.1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "MSA|AA|ORUABS-0001" in result.stdout.decode().replace("\n", "\r"), result.stdout
    got = rt.virtualward.readings(eid)
    assert got["systolic_bp"] == [(datetime(2026, 1, 5, 12, 10, tzinfo=UTC), None)]
    latest = rt.virtualward.get(eid).latest
    assert latest is not None and latest.partial and latest.total is None
    assert latest.missing == ["systolic_bp"] and "systolic_bp" in latest.reasons
    assert rejected(rt) == []


def test_a_bad_observation_is_refused_and_the_others_stored(
    mllp: tuple[Runtime, int], clock: ManualClock
) -> None:
    rt, port = mllp
    eid = enrol(rt, "VW5005")
    clock.set(NOW)
    ack, again = exchange(
        port, payload("r01_v251_bad_pulse.hl7"), payload("r01_v251_bad_pulse.hl7")
    )
    code, control, text = msa(ack)
    assert (code, control) == ("AE", "ORUBAD-0001")
    assert text.startswith("3 of 4 observations stored, 1 refused")
    [(where, error, reason)] = errs(ack)
    assert (where, error) == ("OBX^3", "207")
    assert "pulse 900/min is not possible" in reason
    assert set(rt.virtualward.readings(eid)) == {"respiration_rate", "spo2", "temperature"}
    [(sender, why, kept)] = rejected(rt)
    assert sender == "patient:local:VW5005" and "900/min" in why
    assert kept.startswith("MSH|") and "\rOBX|3|NM|8867-4" in kept
    [row] = rt.hl7.list()
    assert (row["status"], row["ack_code"], row["error_location"]) == ("accepted", "AE", "OBX^3")
    # The same message again: answered AE again, nothing stored or refused twice.
    assert msa(again)[:2] == ("AE", "ORUBAD-0001") and "duplicate" in msa(again)[2]
    assert count(rt, eid) == 3 and len(rejected(rt)) == 1 and len(rt.hl7.list()) == 1


def test_a_resent_message_is_acknowledged_again_and_stored_once(
    mllp: tuple[Runtime, int], clock: ManualClock
) -> None:
    rt, port = mllp
    eid = enrol(rt, "VW5001", nhs="9434765005")
    clock.set(NOW)
    first = exchange(port, payload("r01_v251_cr.hl7"))
    second, third = exchange(port, payload("r01_v251_cr.hl7"), payload("r01_v251_cr.hl7"))
    assert [msa(a)[:2] for a in (*first, second, third)] == [("AA", "ORU251-0001")] * 3
    assert count(rt, eid) == 7 and len(rt.virtualward.scores(eid)) == 1
    assert len(rt.hl7.list()) == 1
    # A crash after the readings committed but before the message was logged: no ACK went
    # out, the sender resends, and the readings' own keys keep them single.
    with rt.db.transaction() as tx:
        tx.session.execute(delete(Hl7Message))
    [after_crash] = exchange(port, payload("r01_v251_cr.hl7"))
    assert msa(after_crash)[:2] == ("AA", "ORU251-0001")
    assert count(rt, eid) == 7 and len(rt.virtualward.scores(eid)) == 1
    [row] = rt.hl7.list()
    assert row["status"] == "ignored" and "7 already stored" in row["detail"]


def test_an_unknown_patient_waits_in_quarantine_until_fixed(
    mllp: tuple[Runtime, int], clock: ManualClock
) -> None:
    """Enrolled under the NHS number; the monitor sends the hospital number only."""
    rt, port = mllp
    eid = enrol(rt, None, nhs="9434765013")
    clock.set(NOW)
    [ack] = exchange(port, payload("r01_v23_lf.hl7"))
    assert msa(ack)[0] == "AE" and msa(ack)[2].startswith("0 of 6 observations stored")
    assert {(where, code) for where, code, _ in errs(ack)} == {("PID^1^3", "204")}
    assert len(errs(ack)) == 6 and "unknown patient" in errs(ack)[0][2]
    [row] = rt.hl7.list(status="quarantined")
    assert row["ack_code"] == "AE" and row["type"] == "ORU^R01"
    assert len(rejected(rt)) == 6 and count(rt, eid) == 0
    # The PAS sends the hospital number (A08); the engineer replays the message.
    [a08] = exchange(
        port, adt("A08", "20260105122500", pid("VW5002", nhs="9434765013"), control_id="A08-1")
    )
    assert msa(a08)[0] == "AA"
    replayed = rt.hl7.replay(row["id"], Actor(name="eng", role="integration"))
    assert replayed["status"] == "accepted" and replayed["ack_code"] == "AA"
    assert replayed["attempts"] == 2 and count(rt, eid) == 6


def test_a_device_linked_to_the_patient(mllp: tuple[Runtime, int], clock: ManualClock) -> None:
    rt, port = mllp
    eid = enrol(rt, "VW5004", devices=("WW-OX-0042",))
    clock.set(NOW)
    [ack] = exchange(port, payload("r01_v251_device.hl7"))
    assert msa(ack)[0] == "AA", ack
    assert rt.virtualward.readings(eid)["pulse"] == [(datetime(2026, 1, 5, 12, 10, tzinfo=UTC), 88)]
    assert rt.virtualward.device("WW-OX-0042").last_seen_at == datetime(
        2026, 1, 5, 12, 10, tzinfo=UTC
    )


def test_a_device_linked_to_another_patient_is_refused(
    mllp: tuple[Runtime, int], clock: ManualClock
) -> None:
    rt, port = mllp
    named = enrol(rt, "VW5004")
    wearer = enrol(rt, "VW5099", devices=("WW-OX-0042",))
    clock.set(NOW)
    [ack] = exchange(port, payload("r01_v251_device.hl7"))
    assert msa(ack)[0] == "AE"
    assert [(where, code) for where, code, _ in errs(ack)] == [("OBX^1", "207"), ("OBX^2", "207")]
    assert all("linked to another patient" in text for _, _, text in errs(ack))
    assert count(rt, named) == 0 and count(rt, wearer) == 0
    assert rt.hl7.list()[0]["status"] == "quarantined"
    assert [sender for sender, _, _ in rejected(rt)] == ["device:WW-OX-0042"] * 2


# --- fields, through the service the listener calls ---------------------------------------


def test_statuses_codes_and_value_types_refused_one_by_one(
    feed: Runtime, clock: ManualClock
) -> None:
    eid = enrol(feed, "VW5001")
    clock.set(NOW)
    text = payload("r01_v251_cr.hl7").decode()
    changes = {
        "OBX|1|NM|9279-1^Respiratory rate^LN||22|/min^breaths per minute^UCUM|||||F": (
            "OBX|1|NM|9279-1^Respiratory rate^LN||22|/min^breaths per minute^UCUM|||||D"
        ),
        "||95|%^percent^UCUM|||||F": "||95|%^percent^UCUM|||||W",
        "OBX|3|NM|8480-6^Systolic blood pressure^LN": "OBX|3|NM|150021^NIBP sys^MDC",
        "OBX|4|NM|8462-4^Diastolic blood pressure^LN||78": "OBX|4|TX|8462-4^Diastolic^LN||78",
        "OBX|5|NM|8867-4^Heart rate^LN||95|/min^beats per minute^UCUM|||||F": (
            "OBX|5|NM|8867-4^Heart rate^LN||9x5|/min^beats per minute^UCUM|||||F"
        ),
        "A^Alert^L||||||F": "A^Alert^L||||||I",
    }
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    handled = feed.hl7.handle(text.encode(), source="test")
    assert handled.ack_code == "AE"
    found = [(where, code) for where, code, _ in errs(handled.ack)]
    assert found == [
        ("OBX^1^11", "207"),
        ("OBX^2^11", "207"),
        ("OBX^3^3", "103"),
        ("OBX^4^2", "102"),
        ("OBX^5^5", "102"),
        ("OBX^6^11", "103"),
    ]
    reasons = [t for _, _, t in errs(handled.ack)]
    assert "never removes stored readings" in reasons[0] and "wrong" in reasons[1]
    assert "'MDC', not LOINC" in reasons[2] and "'9x5' is not a number" in reasons[4]
    # Only the temperature got through; the six others are kept with their reasons.
    assert set(feed.virtualward.readings(eid)) == {"temperature"}
    assert len(rejected(feed)) == 6
    assert handled.status == "accepted"


def test_parameter_names_local_time_and_several_patients(feed: Runtime, clock: ManualClock) -> None:
    """Our parameter names in OBX-3; a time without offset read as UK summer time; two
    PID groups in one message, each reading filed against its own patient."""
    clock.set(datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    first, second = enrol(feed, "VW5001"), enrol(feed, "VW5002")
    clock.set(datetime(2026, 7, 1, 9, 30, tzinfo=UTC))
    raw = "\r".join(
        [
            r"MSH|^~\&|GW|VW1|WARDWATCH|VW1|20260701102000||ORU^R01^ORU_R01|MULTI-1|P|2.5",
            r"PID|1||VW5001^^^VW1^MR||A^B||19500101|F",
            "OBR|1|||V^Vitals^L|||20260701101000",
            "OBX|1|NM|pulse^Pulse^L||70|/min|||||F",
            "OBX|2|NM|temperature^Temp^L||37.1|Cel|||||F|||20260701101500+0100",
            r"PID|2||VW5002^^^VW1^MR||C^D||19500101|M",
            "OBR|1|||V^Vitals^L|||20260701101200",
            "OBX|1|NM|pulse^Pulse^L||90|/min|||||F",
        ]
    ).encode()
    handled = feed.hl7.handle(raw, source="test")
    assert handled.ack_code == "AA", handled.ack
    summer = feed.virtualward.readings(first)
    assert summer["pulse"] == [(datetime(2026, 7, 1, 9, 10, tzinfo=UTC), 70)]  # BST
    assert summer["temperature"] == [(datetime(2026, 7, 1, 9, 15, tzinfo=UTC), 37.1)]
    assert feed.virtualward.readings(second) == {
        "pulse": [(datetime(2026, 7, 1, 9, 12, tzinfo=UTC), 90)]
    }


def test_message_level_problems(feed: Runtime, clock: ManualClock) -> None:
    clock.set(NOW)
    base = payload("r01_v251_cr.hl7")
    other_event = feed.hl7.handle(base.replace(b"ORU^R01^ORU_R01", b"ORU^R30^ORU_R30"))
    assert (other_event.ack_code, other_event.status) == ("AR", "quarantined")
    assert errs(other_event.ack)[0][:2] == ("MSH^1^9", "201")
    no_obx = b"\r".join(s for s in base.split(b"\r") if not s.startswith(b"OBX"))
    no_obx = no_obx.replace(b"ORU251-0001", b"EMPTY-1")
    empty = feed.hl7.handle(no_obx)
    assert (empty.ack_code, empty.status) == ("AA", "ignored")
    bad_nhs = base.replace(b"9434765005", b"9434765006").replace(b"ORU251-0001", b"NHS-1")
    refused = feed.hl7.handle(bad_nhs)
    assert refused.ack_code == "AE" and refused.status == "quarantined"
    assert {(w, c) for w, c, _ in errs(refused.ack)} == {("PID^1^3", "102")}
    assert "NHS number" in errs(refused.ack)[0][2]
