"""Building HL7 v2 test messages (real bytes, CR between segments)."""

from __future__ import annotations

from itertools import count

_ids = count(1)


def pid(local: str, nhs: str | None = None, sex: str = "F") -> str:
    ids = f"{local}^^^ACU1^MR" + (f"~{nhs}^^^NHS^NH" if nhs else "")
    return f"PID|1||{ids}||Test^Patient||19500101|{sex}"


def pv1(bed: str = "", visit: str = "", prior: str = "", pending: str = "") -> str:
    fields = ["PV1", "1", "I", bed] + [""] * 39
    fields[6] = prior
    fields[19] = visit
    fields[42] = pending
    return "|".join(fields).rstrip("|")


def adt(
    event: str,
    at: str,
    *segments: str,
    control_id: str | None = None,
    version: str = "2.5.1",
    occurred: str = "",
) -> bytes:
    cid = control_id or f"T{next(_ids):06d}"
    head = [
        f"MSH|^~\\&|PAS|ACU1|WARDWATCH|ACU1|{at}||ADT^{event}^ADT_{event}|{cid}|P|{version}",
        f"EVN|{event}|{at}||||{occurred}",
    ]
    return "\r".join([*head, *segments]).encode() + b"\r"


def ack_fields(ack: str) -> dict[str, str]:
    """MSA-1, MSA-2, MSA-3 and ERR-3.1 of an ACK."""
    segs = {line.split("|")[0]: line.split("|") for line in ack.strip("\r").split("\r")}
    msa, err = segs["MSA"], segs.get("ERR", [])
    return {
        "code": msa[1],
        "control_id": msa[2],
        "text": msa[3] if len(msa) > 3 else "",
        "error": err[3].split("^")[0] if len(err) > 3 else "",
    }
