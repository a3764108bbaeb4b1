"""FHIR R4 Observations: vital signs in (create, batch, transaction), NEWS2 scores out.

In. ``POST /fhir/Observation`` takes one vital-signs Observation; ``POST /fhir`` a Bundle of
type ``batch`` or ``transaction`` whose entries are ``POST Observation``. Each Observation
becomes one :class:`RawReading` (a panel, 85354-9 or 85353-1, one per component) and the
whole request is ONE call of the virtual-ward ingestor: one database transaction, answered
only once what it accepted is durable. What cannot be used is refused with its reason and kept
in ``vw_rejected`` (by the ingestor, in the same transaction), whether the door refused it
(unreadable, no LOINC code, not UCUM) or the core did (implausible, unknown device).

Transactions are not atomic here, on purpose. FHIR says a transaction succeeds or fails as a
whole; issue 5 says a valid vital sign must never be lost because a bad one arrived next to
it. For a patient watched at home the second rule wins: a ``transaction`` is processed entry
by entry exactly like a ``batch``, and its ``transaction-response`` says for each entry what
was stored (201), what was a resend (200) and what was refused and why (400 unreadable, 422
unusable). The CapabilityStatement says so too. A body that is not such a Bundle at all is
refused whole (400) and nothing is stored.

Ids. Idempotency is the sender's ``identifier[0]`` (system and value): a resend with the same
identifier is stored once and answered 200 with the first copy's id. A stored reading is
``Observation/vs-<reading id>``; a panel sent as one Observation is
``Observation/vp-<id of its first reading>`` (its components' keys share the identifier, so
the panel can be read back whole). The create answer echoes what was sent with our ``id`` and
``meta.lastUpdated``, not the stored form: a device's token must not learn who the device is
linked to. Reads need ``patients:read`` and return values as stored, in our units.

Out. Each NEWS2 score is ``Observation/news2-<score id>``: SNOMED CT 1104051000000101, the
total as ``valueInteger``, a component per chart parameter (the RCP NEWS2 SNOMED CT codes),
the SpO2 scale, and the risk as ``interpretation``. A partial set has no value: a
``dataAbsentReason``, a note saying it is partial, and the partial total as a component, so
that it can never be read as a low score. Searches (patient, date, code, category, paging)
run in SQL, as the Location and Encounter searches do.

Where. :mod:`.vitals_codes` holds the codes; :mod:`.vitals_translate` turns one Observation
into readings; :mod:`.vitals_in` takes creates and Bundles through the ingestor and answers
them; :mod:`.vitals_out` writes NEWS2 scores and readings as Observations. This module
searches and routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fhir.resources.R4B.observation import Observation
from sqlalchemy import ColumnElement, Select, String, false, func, literal, or_, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.concurrency import run_in_threadpool

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.capacity.models import Patient
from wardwatch.core.errors import NotFound
from wardwatch.ingest.fhir import resources as fr
from wardwatch.ingest.fhir.routes import (
    FhirResponse,
    NotSupported,
    PatientReader,
    Reader,
    SearchError,
    _base,
    _check_format,
    _form_items,
    _paging,
    _patient_condition,
    _token,
    _values,
    fhir_response,
)
from wardwatch.ingest.fhir.vitals_codes import (
    ACVPU_SNOMED_CODE,
    CATEGORY_SYSTEM,
    LOINC_SYSTEM,
    NEWS2_CODE,
    OUR_ID,
    SNOMED_SYSTEM,
)
from wardwatch.ingest.fhir.vitals_in import bundle, create
from wardwatch.ingest.fhir.vitals_out import (
    news2_observation,
    read_by_id,
    readings_query,
    vital_observation,
)
from wardwatch.ingest.pool import IngestPool
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Enrolment, Reading, Score
from wardwatch.virtualward.readings import CONSCIOUSNESS_LOINC
from wardwatch.virtualward.vitals import LOINC, PANELS

router = APIRouter(prefix="/fhir", tags=["fhir"])

Sender = Annotated[Principal, principal_for(P.VITALS_SEND)]

LONDON = ZoneInfo("Europe/London")


# --- search ---------------------------------------------------------------------------------

PATIENT_PARAMS = ("patient", "patient:identifier", "subject", "subject:identifier")
SEARCH_PARAMS = (*PATIENT_PARAMS, "_id", "code", "category", "date", "_count", "_offset")
_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?([0-9]{4}(-[0-9]{2}(-[0-9]{2}(T.+)?)?)?)$")


def _collect(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters, each once except ``date`` (twice makes a range); empty ones ignored."""
    known = {*SEARCH_PARAMS, "_format"}
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in items:
        if name not in known:
            supported = ", ".join(sorted(known))
            raise SearchError(f"unsupported search parameter {name!r} (supported: {supported})")
        if value == "":
            continue
        if "\x00" in value:
            raise SearchError(f"{name}: the value contains a NUL character")
        if name in seen and name != "date":
            raise SearchError(f"give {name} once: separate alternatives with commas")
        seen.add(name)
        if name == "_format":
            if value.replace(" ", "+") not in {"json", "application/json", "application/fhir+json"}:
                raise NotSupported("only JSON is supported (_format=json)", 406)
            continue
        out.append((name, value))
    return out


def _date_range(value: str) -> tuple[str, datetime, datetime]:
    """(prefix, start, end): the instant range ``value`` covers at its precision; a value
    without a zone is London time."""
    match = _DATE.match(value)
    if match is None:
        raise SearchError(f"date {value!r} is not a FHIR date (e.g. ge2026-01-05T09:00:00Z)")
    prefix, when = match.group(1) or "eq", match.group(2)
    if prefix in ("ne", "sa", "eb", "ap"):
        raise SearchError(f"date prefix {prefix} is not supported (use eq, ge, gt, le or lt)")
    try:
        if "T" in when:
            start = datetime.fromisoformat(when.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=LONDON)
            clock = re.split(r"[+\-Z]", when.split("T", 1)[1], maxsplit=1)[0]
            if "." in clock:
                end = start + timedelta(microseconds=1)
            elif clock.count(":") == 1:  # to the minute
                end = start + timedelta(minutes=1)
            else:
                end = start + timedelta(seconds=1)
        else:
            parts = [int(p) for p in when.split("-")]
            year, month, day = [*parts, 1, 1][:3]
            start = datetime(year, month, day, tzinfo=LONDON)
            if len(parts) == 1:
                end = start.replace(year=year + 1)
            elif len(parts) == 2:
                end = start.replace(year=year + month // 12, month=month % 12 + 1)
            else:
                end = start + timedelta(days=1)  # local midnight to midnight, across DST too
    except ValueError:
        raise SearchError(f"date {value!r} is not a valid date") from None
    return prefix, start.astimezone(UTC), end.astimezone(UTC)


def _date_condition(raw: str, column: InstrumentedAttribute[datetime]) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    for value in _values(raw):
        prefix, start, end = _date_range(value)
        conds.append(
            {
                "eq": (column >= start) & (column < end),
                "ge": column >= start,
                "gt": column >= end,
                "le": column < end,
                "lt": column < start,
            }[prefix]
        )
    return or_(*conds) if conds else false()


@dataclass
class _Filter:
    scores: list[ColumnElement[bool]] | None = field(default_factory=list)
    readings: list[ColumnElement[bool]] | None = field(default_factory=list)
    by_patient: bool = False

    def add(self, scores: ColumnElement[bool] | None, readings: ColumnElement[bool] | None) -> None:
        """AND a condition to each kind; None for a kind drops that kind from the search."""
        self.scores = None if self.scores is None or scores is None else [*self.scores, scores]
        self.readings = (
            None if self.readings is None or readings is None else [*self.readings, readings]
        )


def _filter(params: list[tuple[str, str]]) -> _Filter:
    f = _Filter()
    for name, raw in params:
        if name in PATIENT_PARAMS:
            cond = _patient_condition(raw)
            f.add(cond, cond)
            f.by_patient = True
        elif name == "date":
            f.add(_date_condition(raw, Score.at), _date_condition(raw, Reading.at))
        elif name == "_id":
            ids: dict[str, list[int]] = {"news2": [], "vs": []}
            for value in _values(raw):
                match = OUR_ID.match(value)
                if match and match.group(1) in ids:
                    ids[match.group(1)].append(int(match.group(2)))
            f.add(
                Score.id.in_(ids["news2"]) if ids["news2"] else None,
                Reading.id.in_(ids["vs"]) if ids["vs"] else None,
            )
        elif name == "code":
            f.add(*_code_conditions(raw))
        elif name == "category":
            wanted = set()
            for value in _values(raw):
                system, code = _token(value)
                if system in (None, "", CATEGORY_SYSTEM):
                    wanted.add(code)
            f.add(
                Score.id.is_not(None) if "survey" in wanted else None,
                Reading.id.is_not(None) if "vital-signs" in wanted else None,
            )
    return f


def _code_conditions(raw: str) -> tuple[ColumnElement[bool] | None, ColumnElement[bool] | None]:
    news2 = False
    parameters: set[str] = set()
    for value in _values(raw):
        system, code = _token(value)
        if system in (None, "", SNOMED_SYSTEM) and code == NEWS2_CODE:
            news2 = True
        elif system in (None, "", SNOMED_SYSTEM) and code == ACVPU_SNOMED_CODE:
            parameters.add("consciousness")
        elif system in (None, "", LOINC_SYSTEM):
            parameter = "consciousness" if code == CONSCIOUSNESS_LOINC else LOINC.get(code)
            if parameter and parameter not in PANELS:
                parameters.add(parameter)
    return (
        Score.id.is_not(None) if news2 else None,
        Reading.parameter.in_(sorted(parameters)) if parameters else None,
    )


def _page(s: Session, f: _Filter, count: int, offset: int) -> tuple[list[Observation], int]:
    """Scores and readings together, newest first: counted and paged in SQL."""
    kind = literal("news2", String).label("kind")
    parts: list[Select[str, int, datetime]] = []
    if f.scores is not None:
        parts.append(
            select(kind, Score.id.label("id"), Score.at.label("at"))
            .join(Patient, Patient.id == Score.patient_id)
            .where(*f.scores)
        )
    if f.readings is not None:
        parts.append(
            select(literal("vs", String).label("kind"), Reading.id.label("id"), Reading.at)
            .join(Enrolment, Enrolment.id == Reading.enrolment_id)
            .join(Patient, Patient.id == Enrolment.patient_id)
            .where(*f.readings)
        )
    if not parts:
        return [], 0
    u = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    total = s.scalar(select(func.count()).select_from(u)) or 0
    if count == 0 or offset >= total:
        return [], total
    rows = s.execute(
        select(u.c.kind, u.c.id)
        .order_by(u.c.at.desc(), u.c.kind, u.c.id.desc())
        .offset(offset)
        .limit(count)
    ).all()
    score_ids = [int(i) for k, i in rows if k == "news2"]
    reading_ids = [int(i) for k, i in rows if k == "vs"]
    built: dict[str, Observation] = {}
    if score_ids:
        query = select(Score, Patient).join(Patient, Patient.id == Score.patient_id)
        for score, patient in s.execute(query.where(Score.id.in_(score_ids))):
            built[f"news2-{score.id}"] = news2_observation(score, patient)
    if reading_ids:
        for reading, patient in s.execute(readings_query().where(Reading.id.in_(reading_ids))):
            built[f"vs-{reading.id}"] = vital_observation(f"vs-{reading.id}", [reading], patient)
    return [built[f"{k}-{i}"] for k, i in rows if f"{k}-{i}" in built], total


def _links(
    base: str, params: list[tuple[str, str]], count: int, offset: int, total: int
) -> tuple[str, str | None, str | None]:
    plain = [(k, v) for k, v in params if k not in ("_count", "_offset")]

    def url(at: int) -> str:
        query = sorted([*plain, ("_count", str(count)), ("_offset", str(at))])
        return f"{base}/Observation?{urlencode(query)}"

    nxt = url(offset + count) if count and offset + count < total else None
    prev = url(max(0, offset - count)) if count and offset > 0 else None
    return url(offset), nxt, prev


def _search(
    rt: Runtime, who: Principal, request: Request, items: Iterable[tuple[str, str]]
) -> Response:
    params = _collect(items)
    count, offset = _paging({k: v for k, v in params if k in ("_count", "_offset")})
    f = _filter(params)
    with rt.db.read() as s:
        found, total = _page(s, f, count, offset)
    ids = [str(o.id) for o in found]
    if ids or f.by_patient:
        detail = "fhir search by patient" if f.by_patient else "fhir search"
        rt.auth.record_read(who, "observation", ids, detail=detail)
    base = _base(request)
    self_url, nxt, prev = _links(base, params, count, offset, total)
    return fhir_response(fr.searchset(fr.Page(found, total, self_url, nxt, prev), base))


# --- routes ---------------------------------------------------------------------------------


@router.post("/Observation", response_class=FhirResponse)
async def create_observation(request: Request, rt: RuntimeDep, who: Sender) -> Response:
    """One vital-signs Observation in: 201 stored, 200 a resend, 422 refused (with why)."""
    _check_format(request)
    body = await request.body()
    return await run_in_threadpool(create, rt, request, body, who.actor)


@router.post("", response_class=FhirResponse)
async def batch_or_transaction(request: Request, rt: RuntimeDep, who: Sender) -> Response:
    """A batch or transaction Bundle of POST Observation entries, answered entry by entry
    (in an ingest worker process when the server runs some: :mod:`wardwatch.ingest.pool`)."""
    _check_format(request)
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    pool: IngestPool | None = getattr(request.app.state, "ingest", None)
    if pool is not None:
        return await pool.bundle(content_type, body, who.actor)
    return await run_in_threadpool(bundle, rt, content_type, body, who.actor)


@router.get("/Observation", response_class=FhirResponse)
def search_observations(request: Request, rt: RuntimeDep, who: PatientReader) -> Response:
    """NEWS2 scores and vital-sign readings (patient data, audited)."""
    return _search(rt, who, request, request.query_params.multi_items())


@router.post("/Observation/_search", response_class=FhirResponse)
async def search_observations_post(
    request: Request, rt: RuntimeDep, who: PatientReader
) -> Response:
    """The same search, parameters in a form body (keeps NHS numbers out of URLs)."""
    items = await _form_items(request)
    return await run_in_threadpool(_search, rt, who, request, items)


@router.get("/Observation/{observation_id}", response_class=FhirResponse)
def read_observation(
    observation_id: str, request: Request, rt: RuntimeDep, who: PatientReader
) -> Response:
    _check_format(request)
    with rt.db.read() as s:
        found = read_by_id(s, observation_id)
    if found is None:
        raise NotFound("no Observation with that id")
    rt.auth.record_read(who, "observation", [observation_id], detail="fhir read")
    return fhir_response(found)


@router.api_route(
    "/Observation/{rest:path}",
    methods=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_class=FhirResponse,
)
@router.api_route(
    "/Observation",
    methods=["PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_class=FhirResponse,
)
@router.api_route(
    "",
    methods=["GET", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_class=FhirResponse,
)
def observation_not_supported(request: Request, _: Reader) -> Response:
    raise NotSupported(
        f"{request.method} {request.url.path}: Observations can only be created "
        "(POST /fhir/Observation, or POST /fhir with a batch or transaction), read and searched",
        405,
    )
