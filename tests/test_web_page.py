"""The first page at ``/`` in a real browser (Debian's Chromium, driven by Playwright).

A real uvicorn server runs in a background thread over a fresh SQLite database with the
Kent and Medway example loaded; the tests change beds through the service while the page is
open and check that the page follows without a reload.

Set ``WARDWATCH_SCREENSHOTS=1`` to (re)write ``docs/img/first-page.png``.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.browser import WAIT_MS, launch, require_chromium
from tests.serving import free_port
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.ingest.hl7v2.feeds import FeedWatch
from wardwatch.runtime import Runtime

pytestmark = pytest.mark.browser

playwright_sync = require_chromium()
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "kent-medway.yaml"
SCREENSHOT = ROOT / "docs" / "img" / "first-page.png"


class ServerThread:
    """uvicorn in a background thread; can be stopped and started again on the same port
    (one from ``free_port``: reserved for this process, so nothing takes it meanwhile)."""

    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "the server thread died while starting"
            assert time.monotonic() < deadline, "the server did not start in 10 s"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
            assert not self.thread.is_alive(), "the server did not stop in 10 s"
        self.server = self.thread = None


@dataclass
class Served:
    rt: Runtime
    server: ServerThread
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def api(self, path: str) -> Any:
        r = httpx.get(
            self.base + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def admit(self, beds: list[Any], prefix: str) -> None:
        for i, bed in enumerate(beds):
            self.rt.capacity.admit(
                AdmitRequest(bed_id=bed.id, patient=PatientIn(local_id=f"{prefix}{i}")), SYSTEM
            )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    rt = Runtime.build(Settings(data_dir=tmp_path))
    rt.system.load(load_system_file(EXAMPLE), SYSTEM)
    _, token = rt.auth.create_token(role="read-only", name="browser-test")
    server = ServerThread(create_app(rt), free_port())
    server.start()
    try:
        yield Served(rt=rt, server=server, token=token)
    finally:
        server.stop()
        rt.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch(playwright_sync)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # A fresh context per test: its own sessionStorage, so no token leaks between tests.
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()  # closes the page's event stream before the server stops
    assert not errors, f"JavaScript errors on the page: {errors}"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def site_occupancy(page: Any, code: str) -> Any:
    return page.locator(f'[data-site="{code}"] .site-occupancy')


def open_live(page: Any, served: Served) -> None:
    page.goto(f"{served.base}/#token={served.token}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#system-available")).not_to_have_text("—")
    # The page fetches once on load and once more when the stream opens (throttled, so up
    # to a second later). Let that settle, so that later changes can reach the page only
    # through the event stream.
    page.wait_for_timeout(1_500)


# ------------------------------------------------------------------------------ tests ----


def test_page_with_token_in_url_shows_live_figures_matching_the_api(
    served: Served, page: Any
) -> None:
    # Some occupied beds first, so the figures are not all trivially equal.
    served.admit(
        served.rt.capacity.list_beds(BedFilter(site="XMW01", state=BedState.AVAILABLE, limit=7)),
        "A",
    )
    open_live(page, served)

    system = served.api("/api/system")
    expect(page.locator("#system-name")).to_have_text(system["name"])
    # The token was taken out of the address bar but kept for this tab.
    assert "token" not in page.url
    assert page.url == f"{served.base}/"
    assert page.evaluate("sessionStorage.getItem('wardwatch-token')") == served.token

    occ = served.api("/api/occupancy")
    expect(page.locator("#system-available")).to_have_text(str(occ["system"]["available"]))
    expect(page.locator("#system-ga-occupancy")).to_have_text(
        pct(occ["system"]["general_acute"]["occupancy"])
    )
    for site in occ["sites"]:
        expect(site_occupancy(page, site["code"])).to_have_text(pct(site["occupancy"]))
    assert page.locator("[data-site]").count() == len(occ["sites"])

    # Acute first, then community, care homes, virtual wards; by name within a kind.
    order = ["acute", "community", "care_home", "virtual_ward"]
    expected = [
        s["code"] for s in sorted(occ["sites"], key=lambda s: (order.index(s["kind"]), s["name"]))
    ]
    shown = page.eval_on_selector_all("[data-site]", "rows => rows.map(r => r.dataset.site)")
    assert shown == expected
    expect(page.locator("#kind-grid")).to_contain_text("Acute hospitals")
    expect(page.locator("#kind-grid")).to_contain_text("Virtual wards")
    expect(page.locator("#stale-banner")).to_be_hidden()


def test_a_silent_hospital_feed_gets_a_banner_until_it_is_heard(served: Served, page: Any) -> None:
    """HAZ-035: "Live" says the page hears WardWatch, not that WardWatch hears the PAS: a
    feed reported silent gets a banner of its own, gone once the feed is heard again."""
    feeds = served.rt.hl7.feeds
    feeds.silence = timedelta(seconds=1)
    feeds.heard(["PAS|XMW01"])
    open_live(page, served)
    banner = page.locator("#feed-banner")
    expect(banner).to_be_hidden()
    time.sleep(1.1)
    assert [s["sender"] for s in feeds.check()] == ["PAS|XMW01"]
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text("No HL7 messages from PAS|XMW01 since")
    expect(banner).to_contain_text("the board may be missing its admissions")
    expect(page.locator("#live-status")).to_have_text("Live")  # the page's own stream is fine
    FeedWatch(served.rt.db, served.rt.clock, silence=None).heard(["PAS|XMW01"])  # a worker
    assert feeds.check()[0]["summary"].startswith("HL7 feed PAS|XMW01 heard again")
    expect(banner).to_be_hidden(timeout=WAIT_MS)


def test_page_follows_changes_live_without_reloading(served: Served, page: Any) -> None:
    open_live(page, served)
    available = page.locator("#system-available")
    before = int(available.inner_text())
    xmt_before = site_occupancy(page, "XMT01").inner_text()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__marker = 1")
    beds = served.rt.capacity.list_beds(BedFilter(site="XMT01", state=BedState.AVAILABLE, limit=5))
    assert len(beds) == 5

    # Hold the first refresh's answer back while four more patients arrive, then deliver
    # it (now out of date): the changes that came in meanwhile must still reach the screen.
    held: list[int] = []

    def hold_first(route: Any) -> None:
        response = route.fetch()  # the snapshot as it is now: one admission
        if not held:
            held.append(1)
            served.admit(beds[1:], "U")  # four more, whose events arrive mid-fetch
            time.sleep(0.5)
        route.fulfill(response=response)

    page.route("**/api/occupancy", hold_first)
    served.admit(beds[:1], "T")

    expect(available).to_have_text(str(before - 5), timeout=WAIT_MS)
    assert held == [1], "the page did not refetch /api/occupancy after the change"
    expect(site_occupancy(page, "XMT01")).not_to_have_text(xmt_before)
    xmt = next(s for s in served.api("/api/occupancy")["sites"] if s["code"] == "XMT01")
    expect(site_occupancy(page, "XMT01")).to_have_text(pct(xmt["occupancy"]))
    expect(page.locator('[data-site="XMT01"] .site-available')).to_have_text(str(xmt["available"]))

    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == []
    expect(page.locator("#live-status")).to_have_text("Live")


def test_without_a_token_the_form_is_shown_and_a_wrong_token_is_refused(
    served: Served, page: Any
) -> None:
    page.goto(served.base + "/")
    form = page.locator("#token-form")
    expect(form).to_be_visible()
    expect(form).to_contain_text("Paste your access token")
    expect(page.locator("#dashboard")).to_be_hidden()

    page.fill("#token-input", "ww_not-a-real-token")
    page.click("#token-form button[type=submit]")
    message = page.locator("#auth-message")
    expect(message).to_be_visible(timeout=WAIT_MS)
    expect(message).to_contain_text(re.compile("not authori[sz]ed", re.IGNORECASE))
    expect(form).to_be_visible()
    expect(page.locator("#dashboard")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('wardwatch-token')") is None

    # The right token, pasted into the same form, starts the page.
    page.fill("#token-input", served.token)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#dashboard")).to_be_visible()
    expect(form).to_be_hidden()


def test_a_refusal_of_the_old_token_arriving_late_does_not_sign_out_the_new_one(
    served: Served, page: Any
) -> None:
    """A wrong token's figures request answered after the right token was pasted (a slow
    network, a busy server) is ignored: it once signed the new session out again."""
    wrong = "ww_not-a-real-token"
    held: list[Any] = []

    def hold_wrong(route: Any) -> None:
        if route.request.headers.get("authorization") == f"Bearer {wrong}":
            held.append(route)  # answered later, below
        else:
            route.continue_()

    page.route("**/api/system", hold_wrong)
    page.goto(served.base + "/")
    page.fill("#token-input", wrong)
    page.click("#token-form button[type=submit]")
    # The live stream refuses the wrong token first; its figures request is still pending.
    expect(page.locator("#auth-message")).to_be_visible(timeout=WAIT_MS)
    assert len(held) == 1
    page.fill("#token-input", served.token)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    held[0].continue_()  # now the server refuses the old token (401)
    page.wait_for_timeout(500)
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator("#token-form")).to_be_hidden()


def test_token_link_opened_in_a_tab_already_on_the_page_is_used(served: Served, page: Any) -> None:
    page.goto(served.base + "/")
    expect(page.locator("#token-form")).to_be_visible()
    page.evaluate("window.__marker = 1")
    # Only the fragment changes, so the browser does not reload the page.
    page.goto(f"{served.base}/#token={served.token}")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#token-form")).to_be_hidden()
    assert page.evaluate("window.__marker") == 1
    assert page.url == f"{served.base}/"


def test_page_reconnects_and_catches_up_after_the_server_restarts(
    served: Served, page: Any
) -> None:
    open_live(page, served)
    available = page.locator("#system-available")
    status = page.locator("#live-status")
    before = int(available.inner_text())
    page.evaluate("window.__marker = 1")
    resumed_from: list[str | None] = []
    page.on(
        "request",
        lambda req: (
            resumed_from.append(req.headers.get("last-event-id"))
            if req.url.endswith("/api/stream")
            else None
        ),
    )
    beds = iter(
        served.rt.capacity.list_beds(BedFilter(site="XEK01", state=BedState.AVAILABLE, limit=4))
    )

    # 1. Down before the page has seen any event: it has no id to resume from, so it must
    #    catch up by refetching when the stream comes back.
    served.server.stop()
    expect(status).to_have_text("Reconnecting…", timeout=WAIT_MS)
    served.admit([next(beds), next(beds)], "Q")
    served.server.start()
    expect(status).to_have_text("Live", timeout=15_000)  # backoff 1, 2, 4 s...
    expect(available).to_have_text(str(before - 2), timeout=WAIT_MS)
    assert resumed_from and all(x is None for x in resumed_from), resumed_from

    # 2. After a change seen live, a reconnection resumes from that event's id.
    served.admit([next(beds)], "R")
    expect(available).to_have_text(str(before - 3), timeout=WAIT_MS)
    last_seq = served.api("/api/events?limit=5000")[-1]["seq"]
    resumed_from.clear()
    served.server.stop()
    expect(status).to_have_text("Reconnecting…", timeout=WAIT_MS)
    served.admit([next(beds)], "S")
    served.server.start()
    expect(status).to_have_text("Live", timeout=15_000)
    expect(available).to_have_text(str(before - 4), timeout=WAIT_MS)
    assert resumed_from and all(x == str(last_seq) for x in resumed_from), resumed_from

    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    expect(page.locator("#stale-banner")).to_be_hidden()


def test_stale_banner_when_disconnected_too_long(served: Served, page: Any) -> None:
    # The threshold is 30 s; the page lets a test shorten it.
    page.add_init_script("window.WardWatchConfig = {staleAfterMs: 2000}")
    open_live(page, served)
    banner = page.locator("#stale-banner")
    expect(banner).to_be_hidden()
    updated = page.locator("#updated").inner_text()
    assert re.fullmatch(r"Updated \d\d:\d\d:\d\d", updated), updated

    served.server.stop()
    expect(page.locator("#live-status")).to_have_text("Reconnecting…", timeout=WAIT_MS)
    expect(page.locator("#live-status")).to_have_text("Disconnected", timeout=WAIT_MS)
    expect(banner).to_be_visible()
    expect(banner).to_have_text(
        f"Data may be out of date: last update {updated.removeprefix('Updated ')}"
    )

    served.server.start()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=15_000)
    expect(banner).to_be_hidden()


def test_sse_parser_handles_frames_split_anywhere(served: Served, page: Any) -> None:
    page.goto(served.base + "/")
    stream = (
        "retry: 2000\r\n\r\n: keep-alive\n\nid: 41\nevent: change\n"
        'data: {"seq": 41, "type": "bed.admitted"}\n\n'
        'id: 42\r\nevent: change\r\ndata: {"seq": 42}\r\n\r\n'
        'event: resync\rdata: {"reason": "x"}\r\r'
        # A lone CR at the end of the text might be half a CRLF: only what follows
        # settles it, so the stream goes on (as a live one would).
        ": keep-alive\n\n"
    )
    frames = page.evaluate(
        """(text) => {
            const out = [];
            for (const size of [1, 2, 3, 7, text.length]) {
                const got = [];
                const p = new window.WardWatch.SseParser(f => got.push(f));
                for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size));
                out.push(got);
            }
            return out;
        }""",
        stream,
    )
    expected = [
        {"type": "change", "data": '{"seq": 41, "type": "bed.admitted"}', "id": "41"},
        {"type": "change", "data": '{"seq": 42}', "id": "42"},
        {"type": "resync", "data": '{"reason": "x"}', "id": None},
    ]
    for got in frames:
        assert got == expected


@pytest.mark.skipif(
    os.environ.get("WARDWATCH_SCREENSHOTS") != "1",
    reason="set WARDWATCH_SCREENSHOTS=1 to rewrite docs/img/first-page.png",
)
def test_screenshot_of_a_busy_system(served: Served, page: Any) -> None:
    rt = served.rt
    rng = random.Random(20261124)
    beds = rt.capacity.list_beds(BedFilter(state=BedState.AVAILABLE, limit=5000))
    # About 93% overall (~2,600 patients), but each site a little different, as in life.
    by_site: dict[str, list[Any]] = {}
    for bed in beds:
        by_site.setdefault(bed.site, []).append(bed)
    admit: list[Any] = []
    rest: list[Any] = []
    for site_beds in by_site.values():
        rng.shuffle(site_beds)
        n = round(len(site_beds) * rng.uniform(0.895, 0.99))
        admit += site_beds[:n]
        rest += site_beds[n:]
    served.admit(admit, "P")
    # A realistic sprinkle of beds waiting for a clean, being cleaned, reserved, blocked.
    rng.shuffle(rest)
    for bed in rest[:45]:
        rt.capacity.change_bed_state(bed.id, BedState.AWAITING_CLEAN, None, SYSTEM)
    for bed in rest[:15]:
        rt.capacity.change_bed_state(bed.id, BedState.CLEANING, None, SYSTEM)
    for bed in rest[45:60]:
        rt.capacity.change_bed_state(bed.id, BedState.RESERVED, None, SYSTEM)
    for bed in rest[60:72]:
        rt.capacity.change_bed_state(bed.id, BedState.BLOCKED, "infection control", SYSTEM)

    open_live(page, served)
    occ = served.api("/api/occupancy")
    expect(page.locator("#system-available")).to_have_text(str(occ["system"]["available"]))
    page.wait_for_timeout(800)  # let the bars finish their transition
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
