"""The FastAPI application: ``create_app(runtime)`` wires routes, errors and the web page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from wardwatch import __version__
from wardwatch.auth.routes import router as auth_router
from wardwatch.capacity.routes import router as capacity_router
from wardwatch.core.errors import Unauthorized, WardWatchError
from wardwatch.live.routes import router as live_router
from wardwatch.runtime import Runtime

WEB = Path(__file__).parent / "web"


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="WardWatch",
        version=__version__,
        description="Live capacity, flow and coordination for a health system's control "
        "centre. Every route but /health needs `Authorization: Bearer <token>`.",
    )
    app.state.runtime = runtime
    app.include_router(capacity_router)
    app.include_router(live_router)
    app.include_router(auth_router)
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

    @app.exception_handler(WardWatchError)
    async def _domain_error(_: Request, exc: WardWatchError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        problems = getattr(exc, "problems", None)
        if problems:
            body["problems"] = problems
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if p != "body")
            problems.append(f"{loc}: {str(err['msg']).removeprefix('Value error, ')}")
        return JSONResponse(
            {"error": "invalid", "message": "; ".join(problems), "problems": problems},
            status_code=422,
        )

    return app
