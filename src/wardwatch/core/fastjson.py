"""JSON on the ingest hot paths, by orjson (several times faster than the standard library).

Used where thousands of readings a second pass through: reading request bodies and MQTT
payloads, keeping fragments of what was refused, and the JSON parameters of the bulk
statements. What orjson will not read (a number beyond a double, such as ``1e400``, which is
valid JSON and a valid FHIR decimal, or the ``NaN`` the standard library also takes) is read
by the standard library, so a body is refused exactly when it was before, and one odd value
refuses its own reading, not the whole batch. Where a digest must stay stable across
releases (reading keys derived from a resource), the standard library's encoder stays in use.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ``ValueError`` (the standard library's message, with the position)
    when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (a response body); datetimes as ISO 8601 with their
    offset. A value orjson cannot write (an integer beyond 64 bits, a non-string key) falls
    back to the standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=_iso, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(value: Any) -> str:
    """:func:`dumps_bytes` as text (a statement parameter, a kept fragment)."""
    return dumps_bytes(value).decode()


def _iso(value: Any) -> str:
    isoformat = getattr(value, "isoformat", None)
    if isoformat is None:
        raise TypeError(f"{type(value).__name__} cannot be written as JSON")
    return str(isoformat())
