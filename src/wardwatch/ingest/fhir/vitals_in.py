"""FHIR vital signs in: ``POST /fhir/Observation`` and batch/transaction Bundles, answered.

The whole request is ONE call of the virtual-ward ingestor (one database transaction) and is
answered only once what it accepted is durable. Each Observation is translated by
:mod:`.vitals_translate`; what the door or the core refuses is kept in ``vw_rejected`` in
that same transaction, and the answer says for each Observation what became of it: 201
stored, 200 a resend (with the first copy's id), 400 unreadable, 422 unusable. A
``transaction`` is processed entry by entry like a ``batch`` (see the package's
:mod:`.observations` for why). The create answer echoes what was sent, not the stored form:
a device's token must not learn who the device is linked to.

Checking each Observation, fast. A Bundle may hold 2000 Observations, and the R4B pydantic
model costs about 100 µs for each, as much as storing and scoring it. So each resource is first
read by :func:`.vitals_translate.well_formed`, a plain-dict check of the elements a vital sign
is made of (identifier, status, category, code, subject and device identifiers, effective
time, issued, a Quantity, string or CodeableConcept value, dataAbsentReason, components, id,
meta.profile), each held to the model's type and pattern or stricter. It can only vouch, never
refuse: what it passes the model passes too (a test holds it to that over thousands of altered
Observations). Everything else goes through the full model exactly as before: an element it
does not list (note, performer, an extension), a wrong type even in an element WardWatch
ignores, a null, a number sent as a string, a date without a time. So nothing the model
checked is skipped, an invalid entry is refused (400) with the model's own message, and the
only cost of an unusual but valid Observation is the slower path. We chose this over checking
only the elements we read: an unknown or malformed element is an error in FHIR, and a device
that gets ``note`` wrong should be told, not half-read. Answers are built as plain JSON (every
part of them is ours; the tests parse each back through the R4B models), and the ids of the
readings stored are read in one query per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from fastapi import Request, Response
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError
from sqlalchemy import select

from wardwatch.core import fastjson
from wardwatch.core.actor import Actor
from wardwatch.db.filters import one_of
from wardwatch.ingest.fhir.routes import (
    FhirResponse,
    NotSupported,
    SearchError,
    _base,
    fhir_response,
)
from wardwatch.ingest.fhir.vitals_translate import (
    Refused,
    as_object,
    sender_of,
    translate,
    well_formed,
)
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Reading
from wardwatch.virtualward.readings import Fragment, RawReading

MAX_BYTES = 5_000_000
MAX_ENTRIES = 2000
KEPT_CHARS = 4000
SQLITE_KEYS_PER_QUERY = 10_000  # far below SQLite's bound-variable limit
_STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    422: "422 Unprocessable Entity",
}
_JSON_TYPES = {"application/fhir+json", "application/json", ""}


@dataclass(slots=True)
class _Item:
    """One Observation of a request, and what became of it. (Slots and tuples: one Bundle
    makes thousands of these, and every object the collector tracks makes its passes dearer.)"""

    doc: dict[str, Any] | None
    payload: Fragment
    #: (HTTP status, issue code, messages) when the whole Observation was refused.
    failure: tuple[int, str, list[str]] | None = None
    first: int = 0  # index of its first reading in the batch
    count: int = 0  # how many readings it became
    panel: bool = False
    warnings: Sequence[str] = ()  # components refused by the door


@dataclass(slots=True)
class _Result:
    status: int
    fid: str | None = None
    at: datetime | None = None
    issues: Sequence[tuple[str, str, str]] = ()  # severity, code, text


def _item(resource: Any, where: str = "") -> _Item:
    """A parsed resource checked against the R4B Observation model (400 if it fails): by the
    fast structural check when it can vouch for it, else by the model itself."""
    payload = Fragment(resource, KEPT_CHARS)
    item = _Item(resource if isinstance(resource, dict) else None, payload)
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
    elif not well_formed(resource):
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
    """Translate every item, ingest all their readings in one call, and say what became of each.

    A translated item lets its resource go: with the Bundle's parsed body dropped too
    (:func:`bundle`), thousands of dicts are not carried through the ingest, where each pass
    of the garbage collector would copy them into an older generation and bring the next full
    collection (tens of milliseconds) nearer."""
    readings: list[RawReading] = []
    rejected: list[tuple[str, str, str]] = []
    for item in items:
        if item.failure is None and item.doc is not None:
            try:
                found, refused, item.panel = translate(item.doc, item.payload)
            except Refused as exc:
                item.failure = (422, exc.code, [exc.message])
            else:
                if refused:
                    sender = sender_of(item.doc)
                    rejected += [(sender, reason, str(item.payload)) for reason in refused]
                item.doc = None  # see the docstring
                item.first, item.count = len(readings), len(found)
                readings += found
                item.warnings = refused
                continue
        if item.failure is not None:
            reason = "; ".join(item.failure[2])[:500]
            rejected.append((sender_of(item.doc), reason, str(item.payload)))
    result = rt.virtualward.ingestor.ingest(readings, source="fhir", actor=actor, rejected=rejected)
    why = {r.index: r.reason for r in result.refused}
    keys = [r.key() for r in readings]
    at = result.received_at
    ids = {k: (rid, at) for k, rid in result.stored_ids.items() if at is not None}
    resent = [k for k, o in zip(keys, result.outcomes, strict=True) if o == "duplicate"]
    ids.update(_ids_by_key(rt, [k for k in resent if k not in ids]))
    return [_result(item, keys, result.outcomes, why, ids) for item in items]


def _result(
    item: _Item,
    keys: Sequence[str],
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
    found = [ids[keys[i]] for i in span if outcomes[i] != "refused" and keys[i] in ids]
    if not found:
        return _Result(422, issues=[("error", c, m) for _, c, m in issues])
    first_id, at = min(found)
    fid = f"{'vp' if item.panel else 'vs'}-{first_id}"
    stored = any(outcomes[i] == "stored" for i in span)
    return _Result(201 if stored else 200, fid, at, issues)


def _ids_by_key(rt: Runtime, keys: Sequence[str]) -> dict[str, tuple[int, datetime]]:
    """Reading key -> (id, received at), for readings found again (resends), by one query
    (PostgreSQL: the keys as one array parameter). Those just stored come with the ingest's
    result."""
    out: dict[str, tuple[int, datetime]] = {}
    unique = sorted(set(keys))
    if not unique:
        return out
    query = select(Reading.key, Reading.id, Reading.received_at)
    step = SQLITE_KEYS_PER_QUERY  # one query per Bundle in practice (at most 2,000 entries)
    with rt.db.read() as s:
        for n in range(0, len(unique), step):
            for key, rid, at in s.execute(
                query.where(one_of(s, Reading.key, unique[n : n + step]))
            ):
                out[key] = (int(rid), at)
    return out


def _outcome(issues: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """An OperationOutcome, as the JSON it is sent as (its parts are ours, and valid)."""
    data = [{"severity": sev, "code": code, "diagnostics": text} for sev, code, text in issues]
    return {"resourceType": "OperationOutcome", "issue": data}


def _answer(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> FhirResponse:
    """A resource built here as plain JSON, sent as ``fhir_response`` sends a model (compact,
    UTF-8): building and dumping an R4B model of a 2000-entry answer costs more than the rest
    of the request. The tests parse every answer back through the R4B models."""
    body = fastjson.dumps_bytes(data)
    return FhirResponse(body, status_code=status, headers=headers)


@lru_cache(maxsize=64)  # a Bundle's answers share one receipt time
def _instant(at: datetime) -> str:
    """A FHIR instant as the R4B models write one (UTC as ``Z``)."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _json_body(content_type: str, body: bytes) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind not in _JSON_TYPES:
        raise NotSupported("send FHIR JSON (Content-Type: application/fhir+json)", 415)
    if len(body) > MAX_BYTES:
        raise NotSupported(f"the body is larger than {MAX_BYTES} bytes: split it", 413)
    try:
        return fastjson.loads(body)
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
        doc = _json_body(request.headers.get("content-type", ""), body)
    except SearchError as exc:
        _keep(rt, actor, exc.message, body)
        raise
    item = _item(doc)
    (result,) = _process(rt, [item], actor)
    if result.fid is None:
        return _answer(_outcome(result.issues), result.status)
    base = _base(request)
    headers = {"Location": f"{base}/Observation/{result.fid}"}
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    if "return=minimal" in prefer:
        return Response(status_code=result.status, headers=headers)
    if result.issues or "return=operationoutcome" in prefer:
        done = "stored" if result.status == 201 else "already stored (a resend)"
        info = ("information", "informational", f"{done} as Observation/{result.fid}")
        return _answer(_outcome([info, *result.issues]), result.status, headers)
    meta = {**as_object(doc.get("meta")), "lastUpdated": result.at}
    echo = {**doc, "id": result.fid, "meta": meta}
    return fhir_response(Observation.model_validate(echo), result.status, headers)


def _entry_item(entry: Any, n: int) -> _Item:
    where = f"entry[{n}]"
    if not isinstance(entry, dict):
        return _Item(
            None,
            Fragment(entry, KEPT_CHARS),
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


def _read_bundle(
    rt: Runtime, content_type: str, body: bytes, actor: Actor
) -> tuple[str, list[Any]]:
    """(type, entries) of a batch or transaction Bundle; anything else is refused whole."""
    try:
        doc = _json_body(content_type, body)
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
    return str(kind), entries


def bundle(rt: Runtime, content_type: str, body: bytes, actor: Actor) -> Response:
    """A batch or transaction Bundle (``body``, sent as ``content_type``) in, answered entry
    by entry. Needs nothing of the HTTP request but those two, so an ingest worker process
    (:mod:`wardwatch.ingest.pool`) can run it as the server would."""
    kind, entries = _read_bundle(rt, content_type, body, actor)
    items = [_entry_item(e, n) for n, e in enumerate(entries)]
    del entries  # the parsed body: _process lets each resource go once it is translated
    results = _process(rt, items, actor)
    out: list[dict[str, Any]] = []
    for r in results:
        response: dict[str, Any] = {"status": _STATUS_TEXT[r.status]}
        if r.fid is not None and r.at is not None:
            response["location"] = f"Observation/{r.fid}"
            response["lastModified"] = _instant(r.at)
        if r.issues:
            response["outcome"] = _outcome(r.issues)
        out.append({"response": response})
    data: dict[str, Any] = {"resourceType": "Bundle", "type": f"{kind}-response"}
    if out:
        data["entry"] = out
    return _answer(data)
