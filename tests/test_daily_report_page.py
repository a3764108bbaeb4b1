"""The daily report's HTML page in a real browser (Debian's Chromium, driven by Playwright).

A real uvicorn server serves ``GET /api/reports/daily?format=html`` over a SQLite database
holding the hand-checked Monday of tests/test_daily_report.py; the browser sends a bearer
token as a person's client would. The tests check the tables and charts render, that the
print layout (A4 width, print media) has no horizontal overflow and breaks pages between
sections, and that Chromium prints it to a PDF.

Set ``WARDWATCH_SCREENSHOTS=1`` to (re)write ``docs/img/daily-report.png`` from a busy day
generated here from events.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser import checked_page, launch, require_chromium
from tests.serving import serving
from tests.test_daily_report import DAY, START, Day, a_monday
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.frontdoor.schemas import AttendanceIn, DecisionIn, DepartureIn
from wardwatch.runtime import Runtime

pytestmark = pytest.mark.browser

playwright_sync = require_chromium()
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "img" / "daily-report.png"
DESKTOP = {"width": 1280, "height": 900}
#: A4 (210 mm) less the page's 12 mm side margins, at 96 px to the inch.
A4_PRINTABLE = {"width": round((210 - 24) / 25.4 * 96), "height": 1000}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, token) of a server over the hand-checked Monday."""
    path = tmp_path_factory.mktemp("daily")
    clock = ManualClock(START)
    rt = Runtime.build(Settings(data_dir=path), clock=clock)
    try:
        a_monday(rt, clock)
        _, token = rt.auth.create_token(role="read-only", name="report-reader")
        with serving(create_app(rt)) as base:
            yield base, token
    finally:
        rt.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch(playwright_sync)


def report_url(base: str, day: date = DAY) -> str:
    return f"{base}/api/reports/daily?day={day.isoformat()}&format=html"


def open_report(browser: Any, served: tuple[str, str], viewport: dict[str, int]) -> Iterator[Any]:
    base, token = served
    for page in checked_page(
        browser, viewport=viewport, extra_http_headers={"Authorization": f"Bearer {token}"}
    ):
        response = page.goto(report_url(base))
        assert response is not None and response.status == 200
        yield page


@pytest.fixture
def page(browser: Any, served: tuple[str, str]) -> Iterator[Any]:
    yield from open_report(browser, served, DESKTOP)


@pytest.fixture
def a4_page(browser: Any, served: tuple[str, str]) -> Iterator[Any]:
    yield from open_report(browser, served, A4_PRINTABLE)


def test_tables_and_charts_render(page: Any) -> None:
    expect(page).to_have_title("Daily report 2026-01-05: Front Door Test System")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Daily report: Front Door Test System"
    )
    expect(page.locator("section")).to_have_count(6)
    beds = page.locator("#beds table tbody tr")
    expect(beds).to_have_count(5)  # four sites and the system
    expect(beds.last).to_contain_text("Whole system")
    expect(beds.first).to_contain_text("95.5%")
    expect(page.locator("#handovers table tbody tr")).to_have_count(4)  # acute + system
    expect(page.locator("#handovers table tbody tr").last).to_contain_text("2.33 h")
    expect(page.locator("#ed table tbody tr").first).to_contain_text("40.0%")
    expect(page.locator("#opel .badge").first).to_contain_text("OPEL 4")
    charts = page.get_by_role("img")
    expect(charts).to_have_count(4)
    for i in range(4):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, box
        assert chart.locator("rect, polyline").count() > 0
    # The accessible name of a chart is its <title>.
    expect(
        page.get_by_role("img", name="G&A bed occupancy at 08:00 against the target")
    ).to_be_visible()
    # Arrival bars with a height: the hours 00, 08, 13, 17 and 23.
    bars = page.locator("#handovers svg rect.arrivals")
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(bars.count())]
    assert sum(h > 0 for h in heights) == 5


def overflow(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => {
                const width = document.documentElement.clientWidth;
                const wide = [...document.querySelectorAll('table, svg, section, header, dl')]
                    .filter(el => el.getBoundingClientRect().right > width + 0.5)
                    .map(el => el.tagName + '#' + (el.id || el.closest('section')?.id || ''));
                return {width, scroll: document.documentElement.scrollWidth, wide};
            }"""
        )
    )


def test_the_report_page_shows_it_from_a_token_in_the_address(
    browser: Any, served: tuple[str, str]
) -> None:
    """/report is what a control-centre manager opens from the first page's nav: it fetches
    the report with the token (the API needs it) and shows the report itself."""
    base, token = served
    for page in checked_page(browser, viewport=DESKTOP):
        page.goto(f"{base}/report?day={DAY.isoformat()}#token={token}")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Daily report: Front Door Test System"
        )
        expect(page.locator("#handovers table tbody tr").last).to_contain_text("2.33 h")
        assert "token" not in page.url  # taken out of the address bar at once


def test_the_report_page_says_why_without_a_good_token(
    browser: Any, served: tuple[str, str]
) -> None:
    base, _ = served
    for page in checked_page(browser, viewport=DESKTOP):
        page.goto(f"{base}/report#token=not-a-token")
        expect(page.get_by_test_id("report-message")).to_contain_text(
            "The report could not be shown"
        )
        expect(page.get_by_label("Token")).to_be_visible()


def test_the_print_layout_fits_a4_and_breaks_between_sections(a4_page: Any) -> None:
    a4_page.emulate_media(media="print")
    fit = overflow(a4_page)
    assert fit["scroll"] <= fit["width"] and fit["wide"] == [], fit
    breaks = a4_page.evaluate(
        """() => [...document.querySelectorAll('section')].map(
            s => getComputedStyle(s).breakBefore)"""
    )
    assert breaks == ["auto"] + ["page"] * 5
    inside = a4_page.evaluate(
        "() => getComputedStyle(document.querySelector('figure')).breakInside"
    )
    assert inside == "avoid"
    # On screen the page does not break anything.
    a4_page.emulate_media(media="screen")
    assert a4_page.evaluate(
        "() => getComputedStyle(document.querySelectorAll('section')[1]).breakBefore"
    ) in ("auto", "")


def test_chromium_prints_it_to_pdf(a4_page: Any, tmp_path: Path) -> None:
    a4_page.emulate_media(media="print")
    pdf = a4_page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert pages >= 6, pages  # one section a page at least


# ------------------------------------------------------------------------- screenshot ----


BUSY_DAY = date(2026, 1, 12)  # a Monday in January


def a_busy_day(rt: Runtime, clock: ManualClock, seed: int = 12) -> None:
    """A realistic winter Monday on the front-door test system, from events: nearly full
    hospitals, long stays, ambulance queues late morning at BUSY, trolley waits, OPEL 4."""
    rng = random.Random(seed)
    d = Day(rt, clock)
    rt.system.load(load_system_file(ROOT / "tests" / "payloads" / "front-door-system.yaml"), SYSTEM)
    beds = {
        ward: [b.id for b in rt.capacity.list_beds(BedFilter(ward=ward))]
        for ward in (
            "BUSY-AMU",
            "BUSY-MED",
            "BUSY-ESC",
            "NEAR-AMU",
            "NEAR-MED",
            "FAR-AMU",
            "FAR-MED",
            "COMM-REH",
        )
    }
    full = {
        "BUSY-AMU": 10,
        "BUSY-MED": 10,
        "BUSY-ESC": 3,
        "NEAR-AMU": 8,
        "NEAR-MED": 9,
        "FAR-AMU": 10,
        "FAR-MED": 9,
        "COMM-REH": 7,
    }
    day0 = datetime(BUSY_DAY.year, BUSY_DAY.month, BUSY_DAY.day, tzinfo=UTC)
    admissions = sorted(
        (day0 - timedelta(days=min(40, rng.expovariate(1 / 7)) + 0.3), ward, i)
        for ward, n in full.items()
        for i in range(n)
    )
    for when, ward, i in admissions:
        d.at(when)
        req = AdmitRequest(bed_id=beds[ward][i], patient=PatientIn(local_id=f"{ward}-{i}"))
        d.stays[f"{ward}-{i}"] = rt.capacity.admit(req, SYSTEM).id
    d.at(day0 - timedelta(hours=2))
    for patient in rng.sample(sorted(d.stays), 9):
        d.ready(patient, BUSY_DAY - timedelta(days=rng.randint(0, 4)))
    # Through the day: discharges every other hour, a few admissions into the free beds.
    in_bed = sorted(d.stays)
    free = iter([beds["NEAR-AMU"][8], beds["FAR-MED"][9], beds["BUSY-ESC"][3]])
    for hour in range(9, 21):
        d.at(day0 + timedelta(hours=hour, minutes=rng.randint(0, 50)))
        if hour % 2:
            d.discharge(in_bed.pop(rng.randrange(len(in_bed))))
        elif hour in (12, 16, 20):
            req = AdmitRequest(bed_id=next(free), patient=PatientIn(local_id=f"new-{hour}"))
            rt.capacity.admit(req, SYSTEM)
    d.at(day0 + timedelta(days=1, hours=7))
    _front_door(d, rng, day0)
    for scope, hours, level, prev in (
        ("BUSY", -30, 3, None),
        ("BUSY", 10.5, 4, 3),
        ("BUSY", 21, 3, 4),
        ("NEAR", -50, 2, None),
        ("NEAR", 14, 3, 2),
        ("FAR", -20, 3, None),
        ("system", -40, 3, None),
        ("system", 11, 4, 3),
    ):
        d.opel(scope, day0 + timedelta(hours=hours), level, prev)


def _front_door(d: Day, rng: random.Random, day0: datetime) -> None:
    """Ambulances and ED attendances of the day, sent after it (messages may be late)."""
    profile = [1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 5, 5, 5, 4, 4, 4, 4, 3, 3, 2, 2, 1]
    delay = {"BUSY": 42, "NEAR": 18, "FAR": 26}  # typical handover minutes
    n = 0
    for site, weight in (("BUSY", 1.0), ("NEAR", 0.6), ("FAR", 0.5)):
        for hour, rate in enumerate(profile):
            for _ in range(sum(rng.random() < rate * weight / 3 for _ in range(3))):
                n += 1
                arrived = day0 + timedelta(hours=hour, minutes=rng.randint(0, 59))
                minutes = max(6, int(rng.gammavariate(2.5, delay[site] / 2.5)))
                d.ambulance("arrival", f"B{n}", arrived, site)
                d.ambulance("handover", f"B{n}", arrived + timedelta(minutes=minutes))
    for site, count in (("BUSY", 34), ("NEAR", 22), ("FAR", 18)):
        for i in range(count):
            ref = f"{site}-{i}"
            arrived = day0 + timedelta(hours=rng.uniform(-6, 22))
            stay = timedelta(hours=rng.gammavariate(2.2, 2.0))
            req = AttendanceIn(
                site=site, reference=ref, arrived_at=arrived, patient=PatientIn(local_id=ref)
            )
            att = d.rt.frontdoor.ed.arrive(req, SYSTEM).id
            if rng.random() < 0.3:
                dta = arrived + timedelta(hours=rng.uniform(1, 4))
                d.rt.frontdoor.ed.decide_to_admit(
                    att, DecisionIn(at=dta, specialty="general medicine"), SYSTEM
                )
                stay = dta - arrived + timedelta(hours=rng.uniform(1, 16))
            left = arrived + stay
            if left < d.clock.now():
                disposition = "admitted" if rng.random() < 0.3 else "discharged"
                d.rt.frontdoor.ed.depart(att, DepartureIn(at=left, disposition=disposition), SYSTEM)


@pytest.mark.skipif(
    os.environ.get("WARDWATCH_SCREENSHOTS") != "1",
    reason="set WARDWATCH_SCREENSHOTS=1 to rewrite docs/img/daily-report.png",
)
def test_screenshot_of_a_busy_day(tmp_path: Path, browser: Any) -> None:
    clock = ManualClock(datetime(2025, 12, 1, tzinfo=UTC))
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=clock)
    try:
        a_busy_day(rt, clock)
        _, token = rt.auth.create_token(role="read-only", name="report-reader")
        with serving(create_app(rt)) as base:
            for page in checked_page(
                browser,
                viewport={"width": 1100, "height": 900},
                extra_http_headers={"Authorization": f"Bearer {token}"},
            ):
                response = page.goto(report_url(base, BUSY_DAY))
                assert response is not None and response.status == 200
                expect(page.get_by_role("img")).to_have_count(4)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        rt.close()
    assert SCREENSHOT.stat().st_size > 50_000
