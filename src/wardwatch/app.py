"""The FastAPI application: ``create_app(runtime)`` wires routes, errors and the web page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from wardwatch import __version__
from wardwatch.auth.routes import router as auth_router
from wardwatch.capacity.routes import router as capacity_router
from wardwatch.core import collector
from wardwatch.core.errors import Unauthorized, Unavailable, WardWatchError
from wardwatch.flow.routes import router as flow_router
from wardwatch.frontdoor.opel_routes import router as opel_router
from wardwatch.frontdoor.report_routes import router as report_router
from wardwatch.frontdoor.routes import router as frontdoor_router
from wardwatch.ingest.fhir.observations import router as fhir_observations_router
from wardwatch.ingest.fhir.routes import error_response as fhir_error
from wardwatch.ingest.fhir.routes import is_fhir_path
from wardwatch.ingest.fhir.routes import outcome_response as fhir_outcome
from wardwatch.ingest.fhir.routes import router as fhir_router
from wardwatch.ingest.hl7v2.mllp import MllpServer
from wardwatch.ingest.hl7v2.routes import router as hl7_router
from wardwatch.ingest.pool import IngestPool
from wardwatch.kpi.routes import router as kpi_router
from wardwatch.live.routes import router as live_router
from wardwatch.notify.dispatcher import Dispatcher
from wardwatch.notify.routes import router as notify_router
from wardwatch.runtime import Runtime
from wardwatch.tasks.routes import router as tasks_router
from wardwatch.virtualward.mqtt import start_mqtt
from wardwatch.virtualward.routes import router as vw_router
from wardwatch.web.routes import router as pages_router

WEB = Path(__file__).parent / "web"
log = logging.getLogger(__name__)
PURGE_EVERY_SECONDS = 3600


async def _purge_hl7(runtime: Runtime) -> None:
    """Forget raw HL7 text past its retention period, hourly."""
    while True:
        try:
            purged = await asyncio.to_thread(runtime.hl7.purge)
            if purged:
                log.info("forgot the text of %d HL7 messages past retention", purged)
        except Exception:
            log.exception("HL7 retention purge failed")
        await asyncio.sleep(PURGE_EVERY_SECONDS)


async def periodic_checks(runtime: Runtime) -> None:
    """Raise due task escalations, virtual-ward alert escalations and missed readings,
    ambulance delay alerts, OPEL level changes, HL7 feeds gone silent and reminders of HL7
    messages waiting in quarantine, every ``escalation_interval_seconds``."""
    while True:
        try:
            raised = await asyncio.to_thread(runtime.tasks.escalate_due)
            for esc in raised:
                log.info("escalated task %s to %s (level %d)", esc.task_id, esc.target, esc.level)
        except Exception:
            log.exception("task escalation check failed")
        try:
            alerts = await asyncio.to_thread(runtime.virtualward.check_due)
            if alerts:
                log.info("virtual-ward alerts raised or escalated: %d", len(alerts))
        except Exception:
            log.exception("virtual-ward alert check failed")
        try:
            delayed = await asyncio.to_thread(runtime.frontdoor.check_delays)
            for h in delayed:
                log.info("ambulance %s at %s waiting %s min", h.incident, h.site, h.minutes)
        except Exception:
            log.exception("ambulance handover delay check failed")
        try:
            for change in await asyncio.to_thread(runtime.opel.check):
                log.info("OPEL %s", change.summary)
        except Exception:
            log.exception("OPEL check failed")
        try:
            for said in await asyncio.to_thread(runtime.hl7.feeds.check):
                log.warning("%s", said["summary"])
        except Exception:
            log.exception("HL7 feed silence check failed")
        try:
            reminder = await asyncio.to_thread(runtime.hl7.remind)
            if reminder:
                log.warning("%s", reminder["summary"])
        except Exception:
            log.exception("HL7 quarantine reminder failed")
        await asyncio.sleep(runtime.settings.escalation_interval_seconds)


class RefuseNul:
    """A NUL in a path or query can never name anything (PostgreSQL cannot store it): 400.
    (/fhir answers such requests itself, as OperationOutcomes.) Plain ASGI, not
    ``@app.middleware``: that wraps every request in an extra task and stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            query: bytes = scope.get("query_string", b"")
            if not path.startswith("/fhir") and ("\x00" in path or b"%00" in query):
                response = JSONResponse(
                    {"error": "invalid", "message": "the address contains a NUL character"},
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    runtime: Runtime, *, mllp_port: int | None = None, mllp_host: str = "127.0.0.1"
) -> FastAPI:
    """The web app; with ``mllp_port`` (0 = off) it also runs the HL7 MLLP listener."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server: MllpServer | None = None
        app.state.mllp = None
        purge = asyncio.create_task(_purge_hl7(runtime))
        escalate = asyncio.create_task(periodic_checks(runtime))
        # --- notifications: the delivery worker, woken after each commit (notify/) ---
        app.state.dispatcher = Dispatcher(runtime.notify)
        deliveries = asyncio.create_task(app.state.dispatcher.run())
        # --- end notifications ---
        mqtt = None
        ingest: IngestPool | None = None
        thresholds: tuple[int, ...] | None = None
        try:
            if runtime.settings.ingest_workers:  # FHIR Bundles and HL7 batches in workers
                ingest = IngestPool(runtime, runtime.settings.ingest_workers)
                await ingest.start()
                app.state.ingest = ingest
            if mllp_port:
                server = MllpServer(
                    runtime.hl7,
                    host=mllp_host,
                    port=mllp_port,
                    allowed_peers=runtime.settings.mllp_peers(),
                    tls=runtime.settings.mllp_tls(),
                    apply_batch=ingest.hl7_batch if ingest is not None else None,
                    lanes=ingest.workers if ingest is not None else 1,
                )
                await server.start()
                app.state.mllp = server
            mqtt = start_mqtt(runtime)  # device readings from the broker, if mqtt_url is set
            # Everything built so far lives as long as the app; and larger young
            # generations for the Bundles to come (see wardwatch.core.collector).
            thresholds = collector.settle()
            yield
        finally:
            if thresholds is not None:
                collector.restore(thresholds)
            if server is not None:  # no new messages for the workers
                await server.stop()
            app.state.ingest = None
            if ingest is not None:
                await asyncio.to_thread(ingest.close)
            if mqtt is not None:
                await mqtt.close()
            deliveries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliveries
            purge.cancel()
            escalate.cancel()

    app = FastAPI(
        title="WardWatch",
        version=__version__,
        description="Live capacity, flow and coordination for a health system's control "
        "centre. Every route but /health needs `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.ingest = None  # an IngestPool while the lifespan runs with ingest_workers set
    app.include_router(capacity_router)
    app.include_router(live_router)
    app.include_router(notify_router)
    app.include_router(auth_router)
    app.include_router(hl7_router)
    app.include_router(fhir_observations_router)  # before fhir_router's catch-all
    app.include_router(fhir_router)
    app.include_router(tasks_router)
    app.include_router(flow_router)
    app.include_router(kpi_router)
    app.include_router(vw_router)
    app.include_router(frontdoor_router)
    app.include_router(opel_router)
    app.include_router(report_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness and database reachability. Needs no token."""
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "database": runtime.db.dialect}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((WEB / "templates" / "index.html").read_text(encoding="utf-8"))

    app.add_middleware(RefuseNul)

    @app.exception_handler(WardWatchError)
    async def _domain_error(request: Request, exc: WardWatchError) -> Response:
        headers: dict[str, str] | None = None
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, Unavailable):  # nothing was kept: the client may send it again
            headers = {"Retry-After": "1"}
        if is_fhir_path(request.url.path):  # FHIR clients get an OperationOutcome
            return fhir_error(exc, headers)
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        problems = getattr(exc, "problems", None)
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if p != "body")
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{loc}: {message}" if loc else message)
        if is_fhir_path(request.url.path):  # FHIR: a request it cannot process is 400
            return fhir_outcome(400, "invalid", problems)
        return JSONResponse(
            {"error": "invalid", "message": "; ".join(problems), "problems": problems},
            status_code=422,
        )

    return app
