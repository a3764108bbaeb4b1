"""Decoding and parsing HL7 v2 with python-hl7, tolerant of what real feeds send.

Handles CR, CRLF or LF between segments, any encoding characters in MSH-1/MSH-2, escape
sequences, repeated fields and Z-segments (ignored). Problems raise :class:`Hl7Error` with
the acknowledgement code and HL7 error code (table 0357) to send back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import hl7

from wardwatch.capacity.nhs import normalise_nhs_number

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
MAX_CONTROL_ID = 80  # the hl7_messages column; HL7 itself allows 20 (2.3) to 199 (2.5.1)
_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"  # YYYY[MM[DD[HH[MM[SS]]]]]
    r"(?:\.(\d{1,6})\d*)?([+-]\d{4})?$"  # [.S to microseconds][+/-ZZZZ]
)


class Hl7Error(Exception):
    """A message we cannot apply. ``ack`` is AR (rejected) or AE (error)."""

    def __init__(
        self, text: str, *, ack: str = "AE", code: str = "207", location: str | None = None
    ) -> None:
        super().__init__(text)
        self.text = text
        self.ack = ack
        self.code = code  # HL7 table 0357
        self.location = location


ERROR_NAMES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def decode(raw: bytes) -> str:
    """UTF-8 when it is, else Latin-1 (many PAS exports are 8859/1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def normalise(text: str) -> str:
    """One CR between segments, none at the ends."""
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(seg for seg in text.split("\r") if seg.strip())


@dataclass
class Parsed:
    """A parsed message (never changed once parsed: what is read of it is kept)."""

    message: hl7.Message
    text: str
    _read: dict[tuple[str, int, int, int, int, int], str] = field(
        default_factory=dict, repr=False, compare=False
    )
    _segments: dict[str, list[hl7.Segment]] = field(default_factory=dict, repr=False, compare=False)

    def get(
        self,
        segment: str,
        position: int,
        component: int = 1,
        *,
        repetition: int = 1,
        occurrence: int = 1,
        subcomponent: int = 1,
    ) -> str:
        """A value (unescaped) or '' when absent. Positions are 1-based, as HL7 counts."""
        key = (segment, position, component, repetition, occurrence, subcomponent)
        value = self._read.get(key)
        if value is None:
            value = self._read[key] = self._extract(*key)
        return value

    def _extract(
        self,
        segment: str,
        position: int,
        component: int,
        repetition: int,
        occurrence: int,
        subcomponent: int,
    ) -> str:
        try:
            value = self.message.extract_field(
                segment, occurrence, position, repetition, component, subcomponent
            )
        except (IndexError, KeyError):
            return ""
        return str(self.message.unescape(value)) if value else ""

    def repetitions(self, segment: str, field: int, occurrence: int = 1) -> int:
        """How many repetitions a field has (0 when empty)."""
        count = 0
        while count < 50:
            try:
                self.message.extract_field(segment, occurrence, field, count + 1, 1, 1)
            except (IndexError, KeyError):
                break
            count += 1
        if (
            count == 1
            and not self.get(segment, field, occurrence=occurrence)
            and not self.get(segment, field, 2, occurrence=occurrence)
        ):
            return 0
        return count

    def segments(self, name: str) -> list[hl7.Segment]:
        found = self._segments.get(name)
        if found is None:
            found = self._segments[name] = [s for s in self.message if str(s[0]) == name]
        return list(found)

    def has(self, name: str) -> bool:
        return bool(self.segments(name))

    @property
    def control_id(self) -> str:
        return self.get("MSH", 10)

    @property
    def version(self) -> str:
        return self.get("MSH", 12)

    @property
    def message_code(self) -> str:
        return self.get("MSH", 9, 1)

    @property
    def trigger(self) -> str:
        return self.get("MSH", 9, 2) or self.get("EVN", 1)

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger}"

    @property
    def sender(self) -> str:
        """The sending system: MSH-3|MSH-4 (application and facility)."""
        return f"{self.get('MSH', 3)}|{self.get('MSH', 4)}"

    @property
    def key(self) -> str:
        return f"{self.sender}|{self.control_id}"


def pid_identifiers(msg: Parsed, occurrence: int = 1) -> tuple[str | None, str | None]:
    """(NHS number, hospital number) a PID segment gives, as every HL7 door reads them.

    PID-3 repetitions: type NH or authority NHS/NHSNBR is the NHS number; MR or PI (else the
    first other) the hospital number. Older (v2.3) feeds put the NHS number in PID-2. Values
    are stripped of padding, so a padded identifier names the same patient as a plain one.
    Not checked here: the NHS number's check digit is the caller's to refuse.
    """
    nhs: str | None = None
    local: str | None = None
    for rep in range(1, msg.repetitions("PID", 3, occurrence) + 1):
        value = msg.get("PID", 3, 1, repetition=rep, occurrence=occurrence).strip()
        kind = msg.get("PID", 3, 5, repetition=rep, occurrence=occurrence).upper()
        authority = msg.get("PID", 3, 4, repetition=rep, occurrence=occurrence).upper()
        if not value:
            continue
        if kind == "NH" or authority in ("NHS", "NHSNBR"):
            nhs = value
        elif local is None or kind in ("MR", "PI"):
            local = value
    legacy = msg.get("PID", 2, occurrence=occurrence).strip()
    if nhs is None and legacy and len(normalise_nhs_number(legacy)) == 10:
        nhs = legacy
    return nhs, local


def parse(raw: bytes) -> Parsed:
    text = normalise(decode(raw))
    if not text.startswith("MSH"):
        raise Hl7Error(
            "the message does not start with an MSH segment", ack="AR", code="100", location="MSH"
        )
    if len(text) < 8:
        raise Hl7Error("the MSH segment is truncated", ack="AR", code="100", location="MSH")
    try:
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises several kinds on broken input
        raise Hl7Error(f"the message cannot be parsed: {exc}", ack="AR", code="102") from exc
    parsed = Parsed(message, text)
    if len(parsed.control_id) > MAX_CONTROL_ID:
        raise Hl7Error(
            f"MSH-10 is longer than {MAX_CONTROL_ID} characters",
            ack="AR",
            code="102",
            location="MSH^1^10",
        )
    if not parsed.control_id:
        raise Hl7Error(
            "MSH-10 (message control id) is empty", ack="AR", code="101", location="MSH^1^10"
        )
    if parsed.version not in SUPPORTED_VERSIONS:
        raise Hl7Error(
            f"HL7 version {parsed.version or '(none)'} is not supported "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})",
            ack="AR",
            code="203",
            location="MSH^1^12",
        )
    return parsed


def parse_ts(value: str, field: str, tz: ZoneInfo) -> datetime | None:
    """An HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]); local time if no offset."""
    if not value:
        return None
    m = _TS.match(value.strip())
    if not m:
        raise Hl7Error(f"{field}: {value!r} is not an HL7 timestamp", code="102", location=field)
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    zone: tzinfo = tz
    try:
        if offset:
            sign = 1 if offset[0] == "+" else -1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError as exc:
        raise Hl7Error(
            f"{field}: {value!r} is not a real date ({exc})", code="102", location=field
        ) from exc


def format_ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S%z")
