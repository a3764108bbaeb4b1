"""The compact JSON payload devices and gateways send (over MQTT or ``POST /api/readings``).

One message is one JSON object; ``readings`` may hold one reading or a batch::

    {
      "device": "WW-OX-0042",            # the sender, unless each reading names its own
      "battery": 64,                     # optional, percent
      "at": "2026-11-25T09:30:00Z",      # optional default time for the readings
      "readings": [
        {"id": "r-1001", "code": "8867-4", "value": 88, "unit": "/min"},
        {"id": "r-1002", "code": "spo2", "value": 95, "unit": "%",
         "at": "2026-11-25T09:30:05Z"},
        {"id": "r-1003", "code": "consciousness", "value": "A"},
        {"id": "r-1004", "code": "temperature", "absent": "error"}
      ]
    }

A gateway can report several devices' batteries with ``"batteries": [{"device": "WW-OX-0042",
"battery": 64, "at": "..."}]`` (``battery`` at the top level is the sender device's own).

A reading may name ``device`` or ``patient`` (``nhs:<number>`` or ``local:<id>``) itself, so a
gateway can forward many devices' readings in one message. ``code`` is a LOINC code or a
parameter name. A reading that cannot be read is refused on its own; the rest are kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wardwatch.core import fastjson
from wardwatch.virtualward.ingest import Battery
from wardwatch.virtualward.readings import RawReading

MAX_READINGS = 5000
MAX_BYTES = 2_000_000


class PayloadError(ValueError):
    """The whole message cannot be read (not JSON, wrong shape)."""


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: time must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an ISO 8601 time") from None
    return parsed


def parse(
    body: bytes | str,
) -> tuple[list[RawReading], list[Battery], list[tuple[str, str, str]]]:
    """Readings, battery reports and (sender, reason, fragment) of readings refused here.

    Raises :class:`PayloadError` when the message as a whole cannot be read.
    """
    if len(body) > MAX_BYTES:
        raise PayloadError(f"message is larger than {MAX_BYTES} bytes")
    try:
        doc = fastjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("the message must be a JSON object with a 'readings' list")
    items = doc.get("readings")
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise PayloadError("'readings' must be a list of readings (or one reading)")
    if len(items) > MAX_READINGS:
        raise PayloadError(f"at most {MAX_READINGS} readings in one message")
    device = doc.get("device")
    patient = doc.get("patient")
    if device is not None and not isinstance(device, str):
        raise PayloadError("'device' must be a string (the device serial)")
    if patient is not None and not isinstance(patient, str):
        raise PayloadError("'patient' must be a string (nhs:<number> or local:<id>)")
    try:
        default_at = _time(doc.get("at"), "at")
    except ValueError as exc:
        raise PayloadError(str(exc)) from None
    readings: list[RawReading] = []
    refused: list[tuple[str, str, str]] = []
    for n, item in enumerate(items):
        fragment = fastjson.dumps(item)[:4000]
        try:
            readings.append(_reading(item, n, device, patient, default_at, fragment))
        except ValueError as exc:
            who = (item.get("device") if isinstance(item, dict) else None) or device or patient
            refused.append((f"device:{who}" if who else "unknown sender", str(exc), fragment))
    batteries = _batteries(doc.get("batteries"), default_at, refused)
    battery = doc.get("battery")
    if battery is not None:
        if (
            device is None
            or isinstance(battery, bool)
            or not isinstance(battery, int | float)
            or not 0 <= battery <= 100
        ):
            refused.append(
                (f"device:{device}", "battery must be 0-100 and needs 'device'", str(battery))
            )
        else:
            at = default_at or max((r.at for r in readings if r.at), default=None)
            if at is not None:
                batteries.append(Battery(device, int(battery), at))
    return readings, batteries, refused


def _batteries(
    items: Any, default_at: datetime | None, refused: list[tuple[str, str, str]]
) -> list[Battery]:
    """A gateway's battery reports for several devices: ``[{"device", "battery", "at"}]``."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise PayloadError("'batteries' must be a list of {device, battery, at}")
    out: list[Battery] = []
    for n, item in enumerate(items):
        fragment = fastjson.dumps(item)[:4000]
        try:
            if not isinstance(item, dict) or not isinstance(item.get("device"), str):
                raise ValueError(f"batteries[{n}] needs a 'device' (its serial)")
            pct = item.get("battery")
            if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
                raise ValueError(f"batteries[{n}]: battery must be a number 0-100")
            at = _time(item.get("at"), f"batteries[{n}]") or default_at
            if at is None:
                raise ValueError(f"batteries[{n}] has no time ('at', here or for the message)")
            out.append(Battery(item["device"], int(pct), at))
        except ValueError as exc:
            refused.append(
                (
                    f"device:{item.get('device') if isinstance(item, dict) else None}",
                    str(exc),
                    fragment,
                )
            )
    return out


def _reading(
    item: Any,
    n: int,
    device: str | None,
    patient: str | None,
    default_at: datetime | None,
    fragment: str,
) -> RawReading:
    where = f"readings[{n}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    unknown = set(item) - {"id", "code", "value", "unit", "at", "device", "patient", "absent"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    code = item.get("code")
    if not isinstance(code, str) or not code:
        raise ValueError(f"{where}: 'code' (a LOINC code or parameter name) is required")
    value = item.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float | str)):
        raise ValueError(f"{where}: 'value' must be a number (or an ACVPU letter)")
    for name in ("id", "unit", "device", "patient", "absent"):
        if item.get(name) is not None and not isinstance(item[name], str | int):
            raise ValueError(f"{where}: '{name}' must be a string")
    rid = item.get("id")
    return RawReading(
        code=code,
        value=value,
        unit=item.get("unit"),
        at=_time(item.get("at"), where) or default_at,
        id=str(rid) if rid is not None else None,
        device=item.get("device") or device,
        patient=item.get("patient") or (patient if not item.get("device") else None),
        absent=item.get("absent"),
        payload=fragment,
    )
