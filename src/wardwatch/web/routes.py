"""Pages (HTML, not API): each is a static template whose script reads the JSON API with the
token from the page's ``#token=…`` fragment, so a page itself needs no token."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
#: The pages hold no data, but the scripts they load change: always revalidate them.
HEADERS = {"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((TEMPLATES / name).read_text(encoding="utf-8"), headers=HEADERS)


@router.get("/tasks", response_class=HTMLResponse)
def tasks_page() -> HTMLResponse:
    """A team's task queue for a cleaner or porter on a phone: ``/tasks?team=CODE#token=…``
    (without ``team``, the page offers a team picker)."""
    return _page("tasks.html")


@router.get("/virtual-ward", response_class=HTMLResponse)
def caseload_page() -> HTMLResponse:
    """The virtual-ward team's caseload, most at risk first, with trends and alert triage:
    ``/virtual-ward?ward=CODE&team=CODE#token=…`` (both filters optional)."""
    return _page("caseload.html")


@router.get("/handovers", response_class=HTMLResponse)
def handover_board() -> HTMLResponse:
    """The live ambulance handover board, for the control centre's wall screen and a bed
    manager's laptop: ``/handovers#token=…`` (a read-only token is enough)."""
    return _page("handovers.html")


@router.get("/report", response_class=HTMLResponse)
def daily_report_page() -> HTMLResponse:
    """The daily report to read and print: ``/report?day=YYYY-MM-DD#token=…`` (today
    without ``day``). The page fetches ``/api/reports/daily?format=html`` with the token."""
    return _page("report.html")
