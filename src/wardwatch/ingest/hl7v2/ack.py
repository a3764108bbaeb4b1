"""Acknowledgements (ACK) in the sender's own version and encoding characters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from wardwatch.core.ids import new_id
from wardwatch.ingest.hl7v2.parse import ERROR_NAMES, Parsed, format_ts

DEFAULT_SEPARATORS = "|^~\\&"


class AckError(NamedTuple):
    """One ERR segment: HL7 error code (table 0357), location (``OBX^3^5``) and reason."""

    code: str
    location: str
    text: str


def escape(text: str, seps: str = DEFAULT_SEPARATORS) -> str:
    """Escape free text for an HL7 field (\\F\\ \\S\\ \\R\\ \\E\\ \\T\\), one line."""
    field, comp, rep, esc, sub = seps[0], seps[1], seps[2], seps[3], seps[4]
    out = []
    for ch in text.replace("\r", " ").replace("\n", " "):
        if ch == esc:
            out.append(f"{esc}E{esc}")
        elif ch == field:
            out.append(f"{esc}F{esc}")
        elif ch == comp:
            out.append(f"{esc}S{esc}")
        elif ch == rep:
            out.append(f"{esc}R{esc}")
        elif ch == sub:
            out.append(f"{esc}T{esc}")
        else:
            out.append(ch)
    return "".join(out)


def build_ack(
    original: Parsed | None,
    code: str,
    *,
    now: datetime,
    text: str | None = None,
    error_code: str | None = None,
    error_location: str | None = None,
    application: str = "WARDWATCH",
    errors: Sequence[AckError] = (),
) -> str:
    """An ACK for ``original`` (or a bare one when it could not be parsed at all)."""
    seps = DEFAULT_SEPARATORS
    if original is not None:
        msh = original.text.split("\r", 1)[0]
        if len(msh) >= 8:
            seps = msh[3:8]
    f, c = seps[0], seps[1]

    def g(field: int, comp: int = 1) -> str:
        return escape(original.get("MSH", field, comp), seps) if original else ""

    version = g(12) or "2.5.1"
    trigger = g(9, 2) or (original.get("EVN", 1) if original else "")
    msh = f.join(
        [
            "MSH",
            seps[1:],
            application,
            g(6),
            g(3),
            g(4),
            format_ts(now),
            "",
            f"ACK{c}{trigger}{c}ACK" if trigger else "ACK",
            new_id("ack")[4:],
            g(11) or "P",
            version,
        ]
    )
    msa = f.join(["MSA", code, g(10)] + ([escape(text, seps)[:80]] if text else []))
    segments = [msh, msa]
    if code != "AA":
        # One ERR per problem when the caller lists them (an ORU with several refused OBX),
        # else one ERR for the whole message.
        listed = errors or [AckError(error_code or "207", error_location or "", text or "")]
        segments += [_err(e, seps) for e in listed]
    return "\r".join(segments) + "\r"


def _err(error: AckError, seps: str) -> str:
    f, c = seps[0], seps[1]
    name = ERROR_NAMES.get(error.code, "Application error")
    return f.join(
        [
            "ERR",
            "",
            error.location.replace("^", c),
            f"{error.code}{c}{escape(name, seps)}{c}HL70357",
            "E",
            "",
            "",
            "",
            escape(error.text or name, seps),
        ]
    )
