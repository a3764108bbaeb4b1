"""FHIR vital signs in: ``POST /fhir/Observation`` and batch/transaction Bundles, answered.

The whole request is ONE call of the virtual-ward ingestor (one database transaction) and is
answered only once what it accepted is durable. Each Observation is translated by
:mod:`.vitals_translate`; what the door or the core refuses is kept in ``vw_rejected`` in
that same transaction, and the answer says for each Observation what became of it: 201
stored, 200 a resend (with the first copy's id), 400 unreadable, 422 unusable. A
``transaction`` is processed entry by entry like a ``batch`` (see the package's
:mod:`.observations` for why). The create answer echoes what was sent, not the stored form:
a device's token must not learn who the device is linked to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydantic import ValidationError
from sqlalchemy import select

from wardwatch.core.actor import Actor
from wardwatch.ingest.fhir.routes import NotSupported, SearchError, _base, fhir_response
from wardwatch.ingest.fhir.vitals_translate import Refused, as_object, sender_of, translate
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Reading
from wardwatch.virtualward.readings import RawReading

MAX_BYTES = 5_000_000
MAX_ENTRIES = 2000
KEPT_CHARS = 4000
_STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    422: "422 Unprocessable Entity",
}
_JSON_TYPES = {"application/fhir+json", "application/json", ""}


@dataclass
class _Item:
    """One Observation of a request, and what became of it."""

    doc: dict[str, Any] | None
    payload: str
    sender: str = "unknown sender"
    #: (HTTP status, issue code, messages) when the whole Observation was refused.
    failure: tuple[int, str, list[str]] | None = None
    first: int = 0  # index of its first reading in the batch
    count: int = 0  # how many readings it became
    panel: bool = False
    warnings: list[str] = field(default_factory=list)  # components refused by the door


@dataclass
class _Result:
    status: int
    fid: str | None = None
    at: datetime | None = None
    issues: list[tuple[str, str, str]] = field(default_factory=list)  # severity, code, text


def _item(resource: Any, where: str = "") -> _Item:
    """A parsed resource checked against the R4B Observation model (400 if it fails)."""
    payload = json.dumps(resource)[:KEPT_CHARS]
    item = _Item(resource if isinstance(resource, dict) else None, payload, sender_of(resource))
    prefix = f"{where}: " if where else ""
    if not isinstance(resource, dict):
        item.failure = (400, "invalid", [f"{prefix}the resource is not a JSON object"])
    elif resource.get("resourceType") != "Observation":
        kind = resource.get("resourceType")
        item.failure = (
            400,
            "not-supported",
            [f"{prefix}expected an Observation, not {kind!r}: WardWatch takes vital signs only"],
        )
    else:
        try:
            Observation.model_validate(resource)
        except ValidationError as exc:
            item.failure = (400, "invalid", [prefix + m for m in _problems(exc)])
    return item


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ").split("\n")[0]
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def _process(rt: Runtime, items: list[_Item], actor: Actor) -> list[_Result]:
    """Translate every item, ingest all their readings in one call, and say what became of each."""
    readings: list[RawReading] = []
    rejected: list[tuple[str, str, str]] = []
    for item in items:
        if item.failure is None and item.doc is not None:
            try:
                found, refused, item.panel = translate(item.doc, item.payload)
            except Refused as exc:
                item.failure = (422, exc.code, [exc.message])
            else:
                item.first, item.count = len(readings), len(found)
                readings += found
                item.warnings = refused
                rejected += [(item.sender, reason, item.payload) for reason in refused]
                continue
        if item.failure is not None:
            rejected.append((item.sender, "; ".join(item.failure[2])[:500], item.payload))
    result = rt.virtualward.ingestor.ingest(readings, source="fhir", actor=actor, rejected=rejected)
    why = {r.index: r.reason for r in result.refused}
    kept = [r.key() for r, o in zip(readings, result.outcomes, strict=True) if o != "refused"]
    ids = _ids_by_key(rt, kept)
    return [_result(item, readings, result.outcomes, why, ids) for item in items]


def _result(
    item: _Item,
    readings: Sequence[RawReading],
    outcomes: Sequence[str],
    why: dict[int, str],
    ids: dict[str, tuple[int, datetime]],
) -> _Result:
    if item.failure is not None:
        status, code, messages = item.failure
        return _Result(status, issues=[("error", code, m) for m in messages])
    span = range(item.first, item.first + item.count)
    issues = [("warning", "invalid", w) for w in item.warnings]
    issues += [("warning", "processing", why[i]) for i in span if i in why]
    found = [ids[k] for i in span if outcomes[i] != "refused" and (k := readings[i].key()) in ids]
    if not found:
        return _Result(422, issues=[("error", c, m) for _, c, m in issues])
    first_id, at = min(found)
    fid = f"{'vp' if item.panel else 'vs'}-{first_id}"
    stored = any(outcomes[i] == "stored" for i in span)
    return _Result(201 if stored else 200, fid, at, issues)


def _ids_by_key(rt: Runtime, keys: Sequence[str]) -> dict[str, tuple[int, datetime]]:
    """Reading key -> (id, received at), for the readings just stored or found again."""
    out: dict[str, tuple[int, datetime]] = {}
    unique = sorted(set(keys))
    with rt.db.read() as s:
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            query = select(Reading.key, Reading.id, Reading.received_at)
            for key, rid, at in s.execute(query.where(Reading.key.in_(chunk))):
                out[key] = (int(rid), at)
    return out


def _outcome(issues: Iterable[tuple[str, str, str]]) -> OperationOutcome:
    data = [{"severity": sev, "code": code, "diagnostics": text} for sev, code, text in issues]
    return OperationOutcome.model_validate({"issue": data})


def _json_body(request: Request, body: bytes) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _JSON_TYPES:
        raise NotSupported("send FHIR JSON (Content-Type: application/fhir+json)", 415)
    if len(body) > MAX_BYTES:
        raise NotSupported(f"the body is larger than {MAX_BYTES} bytes: split it", 413)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SearchError(f"the body is not JSON: {exc}") from None


def _keep(rt: Runtime, actor: Actor, reason: str, body: bytes) -> None:
    """Keep a body that could not be read at all in vw_rejected (like the compact door)."""
    text = body.decode("utf-8", "replace")[:20000]
    rt.virtualward.ingestor.ingest(
        [], source="fhir", actor=actor, rejected=[("unknown sender", reason, text)]
    )


def create(rt: Runtime, request: Request, body: bytes, actor: Actor) -> Response:
    try:
        doc = _json_body(request, body)
    except SearchError as exc:
        _keep(rt, actor, exc.message, body)
        raise
    item = _item(doc)
    (result,) = _process(rt, [item], actor)
    if result.fid is None:
        return fhir_response(_outcome(result.issues), result.status)
    base = _base(request)
    headers = {"Location": f"{base}/Observation/{result.fid}"}
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    if "return=minimal" in prefer:
        return Response(status_code=result.status, headers=headers)
    if result.issues or "return=operationoutcome" in prefer:
        done = "stored" if result.status == 201 else "already stored (a resend)"
        info = ("information", "informational", f"{done} as Observation/{result.fid}")
        return fhir_response(_outcome([info, *result.issues]), result.status, headers)
    doc = item.doc or {}
    meta = {**as_object(doc.get("meta")), "lastUpdated": result.at}
    echo = {**doc, "id": result.fid, "meta": meta}
    return fhir_response(Observation.model_validate(echo), result.status, headers)


def _entry_item(entry: Any, n: int) -> _Item:
    where = f"entry[{n}]"
    if not isinstance(entry, dict):
        return _Item(
            None,
            json.dumps(entry)[:KEPT_CHARS],
            failure=(400, "invalid", [f"{where} is not a JSON object"]),
        )
    request = entry.get("request")
    method = request.get("method") if isinstance(request, dict) else None
    url = str(request.get("url", "")) if isinstance(request, dict) else ""
    target = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    item = _item(entry.get("resource"), where)
    if item.failure is None and (method != "POST" or target != "Observation"):
        got = f"{method} {url}" if method else "no request"
        item.failure = (
            400,
            "not-supported",
            [f"{where}: only POST Observation is supported (got {got})"],
        )
    return item


def bundle(rt: Runtime, request: Request, body: bytes, actor: Actor) -> Response:
    try:
        doc = _json_body(request, body)
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            hint = (
                " (POST an Observation to /fhir/Observation)"
                if isinstance(doc, dict) and doc.get("resourceType") == "Observation"
                else ""
            )
            raise SearchError(f"POST /fhir takes a Bundle of type batch or transaction{hint}")
        kind = doc.get("type")
        if kind not in ("batch", "transaction"):
            raise SearchError(f"Bundle type {kind!r}: only batch and transaction are accepted")
        entries = doc.get("entry", [])
        if not isinstance(entries, list):
            raise SearchError("Bundle.entry must be a list")
        try:
            Bundle.model_validate({k: v for k, v in doc.items() if k != "entry"})
        except ValidationError as exc:
            raise SearchError("; ".join(_problems(exc))) from None
    except SearchError as exc:
        _keep(rt, actor, exc.message, body)
        raise
    if len(entries) > MAX_ENTRIES:
        raise NotSupported(f"at most {MAX_ENTRIES} entries in one Bundle: split it", 413)
    results = _process(rt, [_entry_item(e, n) for n, e in enumerate(entries)], actor)
    out: list[dict[str, Any]] = []
    for r in results:
        response: dict[str, Any] = {"status": _STATUS_TEXT[r.status]}
        if r.fid is not None and r.at is not None:
            response["location"] = f"Observation/{r.fid}"
            response["lastModified"] = r.at.isoformat()
        if r.issues:
            response["outcome"] = _outcome(r.issues)
        out.append({"response": response})
    data: dict[str, Any] = {"type": f"{kind}-response"}
    if out:
        data["entry"] = out
    return fhir_response(Bundle.model_validate(data))
