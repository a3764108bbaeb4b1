"""Pure parsing pieces of the HL7 v2 feed: timestamps, escaping, the ACK, export files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from wardwatch.ingest.hl7v2.ack import build_ack, escape
from wardwatch.ingest.hl7v2.parse import Hl7Error, normalise, parse, parse_ts
from wardwatch.ingest.hl7v2.service import split_file

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", datetime(2026, 1, 1, tzinfo=LONDON)),
        ("202601051030", datetime(2026, 1, 5, 10, 30, tzinfo=LONDON)),
        ("20260705103000", datetime(2026, 7, 5, 9, 30, tzinfo=UTC)),  # BST
        ("20260105103000.25", datetime(2026, 1, 5, 10, 30, 0, 250000, tzinfo=LONDON)),
        ("20260105103000.1234567+0000", datetime(2026, 1, 5, 10, 30, 0, 123456, tzinfo=UTC)),
        ("20260105103000-0500", datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=-5)))),
    ],
)
def test_timestamps(value: str, expected: datetime) -> None:
    assert parse_ts(value, "EVN-2", LONDON) == expected


@pytest.mark.parametrize("value", ["yesterday", "2026-01-05", "20261305", "2026010525"])
def test_bad_timestamps_are_data_type_errors(value: str) -> None:
    with pytest.raises(Hl7Error) as err:
        parse_ts(value, "EVN-2", LONDON)
    assert err.value.code == "102" and err.value.location == "EVN-2"


def test_segment_endings_are_normalised() -> None:
    assert normalise("MSH|a\r\nEVN|b\nPID|c\r\r\n") == "MSH|a\rEVN|b\rPID|c"


def test_escape_round_trips_through_the_parser() -> None:
    text = "Ward 7|Bay 2^Bed 3~Side & room"
    raw = f"MSH|^~\\&|P|F|W|F|20260105||ADT^A01|1|P|2.5\rNTE|1||{escape(text)}\r".encode()
    assert parse(raw).get("NTE", 3) == text


def test_ack_for_unparseable_input_is_still_well_formed() -> None:
    ack = build_ack(
        None, "AR", now=datetime(2026, 1, 5, tzinfo=UTC), text="no MSH", error_code="100"
    )
    segments = ack.strip("\r").split("\r")
    assert segments[0].startswith("MSH|^~\\&|WARDWATCH|")
    assert segments[1] == "MSA|AR||no MSH"
    assert segments[2].startswith("ERR||") and "100^Segment sequence error^HL70357" in ack


def test_export_files_split_into_messages() -> None:
    two = b"MSH|^~\\&|A\r\nEVN|A01\r\nMSH|^~\\&|B\r\nEVN|A02\r\n"
    assert list(split_file(two)) == [b"MSH|^~\\&|A\rEVN|A01", b"MSH|^~\\&|B\rEVN|A02"]
    framed = b"\x0bMSH|1\rEVN|x\r\x1c\x0d\x0bMSH|2\r\x1c\x0d"
    assert list(split_file(framed)) == [b"MSH|1\rEVN|x\r", b"MSH|2\r"]
