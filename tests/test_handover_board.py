"""The ambulance handover board at ``/handovers`` on a control-centre wall (1920 x 1080) and a
bed manager's laptop (1366 x 768), in a real browser (Debian's Chromium, driven by
Playwright), on SQLite and PostgreSQL.

A real uvicorn server runs in a background thread over the front-door test system (three
acute sites: BUSY, NEAR, FAR). Crews are recorded through the REST API with an ambulance
service's token while the page is open, as the ambulance service's feed would send them; the
board is read with a read-only token, as a wall screen would. The server's clock is a manual
clock kept at the browser's time (``Served.now``) unless a test moves it on.

Set ``WARDWATCH_SCREENSHOTS=1`` to (re)write ``docs/img/handover-board.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.browser import WAIT_MS, checked_page, launch, require_chromium
from tests.browser import open_live as browser_open_live
from tests.conftest import PAYLOADS
from tests.serving import serving
from wardwatch.app import create_app
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime

pytestmark = pytest.mark.browser

playwright_sync = require_chromium()
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "img" / "handover-board.png"
FRONT_DOOR = PAYLOADS / "front-door-system.yaml"
WALL = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}
LONDON = ZoneInfo("Europe/London")


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def hhmm(when: datetime) -> str:
    return when.astimezone(LONDON).strftime("%H:%M")


def next_local_noon(after: datetime) -> datetime:
    """The first 12:00 in London after ``after``: a time with today's crews all on one day."""
    local = after.astimezone(LONDON)
    noon = datetime.combine(local.date(), time(12), tzinfo=LONDON)
    if noon <= local:
        noon = datetime.combine(local.date() + timedelta(days=1), time(12), tzinfo=LONDON)
    return noon.astimezone(UTC)


@dataclass
class Served:
    rt: Runtime
    clock: ManualClock
    base: str
    screen: str = field(init=False)
    crew: str = field(init=False)
    jobs: int = 0

    def __post_init__(self) -> None:
        _, self.screen = self.rt.auth.create_token(role="read-only", name="ED wall screen")
        _, self.crew = self.rt.auth.create_token(role="ambulance", name="SECAMB feed")

    def now(self) -> datetime:
        """The server's now, first brought up to the browser's (never back)."""
        wall = datetime.now(UTC).replace(microsecond=0)
        if wall > self.clock.now():
            self.clock.set(wall)
        return self.clock.now()

    def get(self, path: str) -> Any:
        r = httpx.get(
            self.base + path, headers={"Authorization": f"Bearer {self.screen}"}, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def send(self, type: str, incident: str, at: datetime, **fields: Any) -> dict[str, Any]:
        """One feed message through ``POST /api/handovers``, as the ambulance service."""
        body = {"type": type, "service": "SECAMB", "incident": incident, "at": iso(at)}
        body |= {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        r = httpx.post(
            self.base + "/api/handovers",
            headers={"Authorization": f"Bearer {self.crew}"},
            json=body,
            timeout=10,
        )
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def arrive(
        self, site: str, waited: timedelta, vehicle: str | None = None, category: str = "C2"
    ) -> dict[str, Any]:
        """A crew that arrived at ``site`` ``waited`` ago and is still waiting."""
        self.jobs += 1
        incident = f"INC{self.jobs:04d}"
        return self.send(
            "arrival",
            incident,
            self.now() - waited,
            site=site,
            vehicle=vehicle or f"DA{self.jobs:03d}",
            category=category,
        )

    def hand_over(self, job: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
        return self.send("handover", job["incident"], at or self.now())

    def url(self, token: str | None = None) -> str:
        return f"{self.base}/handovers#token={token or self.screen}"


@pytest.fixture
def backend() -> str:
    """The board's browser tests run on SQLite only, as the other pages' do: the services
    behind them are tested on both backends in tests/test_handovers.py and test_opel.py."""
    return "sqlite"


@pytest.fixture
def clock() -> ManualClock:
    """The server's clock starts at the browser's now (the page counts on from it)."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def served(rt: Runtime, clock: ManualClock) -> Iterator[Served]:
    rt.system.load(load_system_file(FRONT_DOOR), SYSTEM)
    with serving(create_app(rt)) as base:
        yield Served(rt=rt, clock=clock, base=base)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch(playwright_sync)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from checked_page(browser, viewport=WALL)


def open_live(page: Any, url: str) -> None:
    browser_open_live(page, url, expect, "#system-figures")


def site(page: Any, code: str) -> Any:
    return page.locator(f'article.site[data-site="{code}"]')


def crew(page: Any, handover_id: str) -> Any:
    return page.locator(f'li.crew[data-handover-id="{handover_id}"]')


def shown_crews(page: Any, code: str) -> list[str]:
    return list(
        page.eval_on_selector_all(
            f'article.site[data-site="{code}"] li.crew', "els => els.map(e => e.dataset.handoverId)"
        )
    )


def counter_seconds(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


def assert_ticks(page: Any, counter: Any, seconds: int = 2) -> None:
    """The counter moves on by ``seconds`` by itself. Polled, not a fixed sleep: the page
    redraws it every 250 ms from the time now, but a busy machine (parallel test workers)
    runs the page's timers late, and a 2.1 s sleep left only ~0.1 s of slack."""
    first = counter_seconds(counter.inner_text())
    for _ in range(WAIT_MS // 50):
        if counter_seconds(counter.inner_text()) >= first + seconds:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"the counter does not tick: {first} s, then {counter.inner_text()}")


def figures(page: Any, scope: Any) -> dict[str, str]:
    return dict(
        scope.locator(".figure").evaluate_all(
            "els => els.map(e => [e.dataset.figure, e.querySelector('dd').textContent])"
        )
    )


def api_figures(f: dict[str, Any]) -> dict[str, str]:
    """The API's figures as the board writes them (hours lost to two decimals)."""
    out = {k: str(f[k]) for k in ("arrivals", "over_15", "over_30", "over_45", "over_60")}
    out["hours_lost"] = f"{f['hours_lost']:.2f}"
    return out


# ------------------------------------------------------------------------------ tests ----


def test_the_page_is_served_and_linked_from_the_first_page(served: Served) -> None:
    r = httpx.get(served.base + "/handovers", timeout=10)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-cache"
    assert "/static/handovers.js" in r.text and "/static/handovers-view.js" in r.text
    first = httpx.get(served.base + "/", timeout=10).text
    assert 'href="/handovers"' in first


def test_band_edges_counter_and_due_text(served: Served, page: Any) -> None:
    """The band of a wait is decided to the second: *over* 15, 30, 45 and 60 minutes."""
    page.goto(served.url())
    view = "window.WardWatchHandoverView"
    edges = page.evaluate(
        f"s => s.map(x => [x, {view}.band(x), {view}.BAND_LABEL[{view}.band(x)]])",
        [0, 900, 901, 1800, 1801, 2700, 2701, 3600, 3601, 7200],
    )
    assert edges == [
        [0, "ok", "Within 15"],
        [900, "ok", "Within 15"],
        [901, "over15", "Over 15"],
        [1800, "over15", "Over 15"],
        [1801, "over30", "Over 30"],
        [2700, "over30", "Over 30"],
        [2701, "release", "RELEASE"],
        [3600, "release", "RELEASE"],
        [3601, "severe", "Over 60"],
        [7200, "severe", "Over 60"],
    ]
    assert page.evaluate(f"[0, 59, 905, 4000].map({view}.counterText)") == [
        "0:00",
        "0:59",
        "15:05",
        "66:40",
    ]
    due = page.evaluate(
        f"""m => m.map(x => {view}.dueText(x * 60000, 0))""", [10, 1, 0.5, -0.5, -1, -4.5]
    )
    assert due == [
        {"text": "due in 10 min", "overdue": False},
        {"text": "due in 1 min", "overdue": False},
        {"text": "due now", "overdue": False},
        {"text": "due now", "overdue": False},
        {"text": "overdue 1 min", "overdue": True},
        {"text": "overdue 4 min", "overdue": True},
    ]


def test_waiting_crews_longest_first_with_the_band_either_side_of_each_standard(
    served: Served, page: Any
) -> None:
    waits = [(14, 15), (15, 45), (29, 15), (30, 45), (44, 15), (45, 45), (59, 15), (60, 45)]
    jobs = [served.arrive("BUSY", timedelta(minutes=m, seconds=s)) for m, s in waits]
    # The API agrees on each crew's breaches.
    listed = {x["id"]: x for x in served.get("/api/handovers?site=BUSY")}
    assert [listed[j["id"]]["breaches"] for j in jobs] == [
        [],
        [15],
        [15],
        [15, 30],
        [15, 30],
        [15, 30, 45],
        [15, 30, 45],
        [15, 30, 45, 60],
    ]

    open_live(page, served.url())
    longest_first = [j["id"] for j in reversed(jobs)]
    assert shown_crews(page, "BUSY") == longest_first
    labels = ["Over 60", "RELEASE", "RELEASE", "Over 30", "Over 30", "Over 15", "Over 15"]
    expect(site(page, "BUSY").locator("li.crew .band")).to_have_text([*labels, "Within 15"])
    bands = ["severe", "release", "release", "over30", "over30", "over15", "over15", "ok"]
    assert [crew(page, i).get_attribute("data-band") for i in longest_first] == bands
    expect(site(page, "BUSY").get_by_test_id("site-counts")).to_have_text("8 waiting · 0 expected")
    expect(site(page, "NEAR").get_by_test_id("site-counts")).to_have_text("0 waiting · 0 expected")
    expect(site(page, "NEAR").locator(".none").first).to_have_text("No crew waiting.")

    # Each counter shows the wait so far (minutes:seconds), in step with the server.
    for job, (m, s) in zip(jobs, waits, strict=True):
        shown = counter_seconds(crew(page, job["id"]).get_by_test_id("counter").inner_text())
        # (The page takes the server's now from a crew's minutes, rounded to 6 seconds.)
        assert m * 60 + s - 4 <= shown <= m * 60 + s + 30, (job["incident"], shown)

    # The 45-minute rule: when release is due, then a flag once it has passed.
    under, over = jobs[4], jobs[5]
    due_under = datetime.fromisoformat(under["release_due_at"])
    expect(crew(page, under["id"]).get_by_test_id("release")).to_have_text(
        f"release due {hhmm(due_under)}"
    )
    release = crew(page, over["id"]).get_by_test_id("release")
    due_over = datetime.fromisoformat(over["release_due_at"])
    expect(release).to_have_text(f"⚑ Release now · due {hhmm(due_over)}")
    expect(release).to_have_class(re.compile(r"\bis-due\b"))
    first = crew(page, jobs[-1]["id"])
    expect(first.get_by_test_id("callsign")).to_have_text(jobs[-1]["vehicle"])
    expect(first.locator(".category")).to_have_text("C2")
    arrived = datetime.fromisoformat(jobs[-1]["arrived_at"])
    expect(first.locator(".crew-meta")).to_have_text(
        f"SECAMB incident {jobs[-1]['incident']} · arrived {hhmm(arrived)}"
    )


def test_the_counter_ticks_and_the_band_changes_at_15_minutes_without_a_reload(
    served: Served, page: Any
) -> None:
    job = served.arrive("NEAR", timedelta(minutes=14, seconds=53))
    open_live(page, served.url())
    page.evaluate("window.__marker = 1")
    card = crew(page, job["id"])
    expect(card).to_have_attribute("data-band", "ok")
    counter = card.get_by_test_id("counter")
    assert_ticks(page, counter)
    expect(card).to_have_attribute("data-band", "over15", timeout=30_000)
    expect(card.get_by_test_id("band")).to_have_text("Over 15")
    assert counter_seconds(counter.inner_text()) > 900
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_an_arrival_appears_and_a_handover_removes_the_crew_live(served: Served, page: Any) -> None:
    served.clock.set(next_local_noon(served.now()))  # both crews arrive today
    waiting = served.arrive("BUSY", timedelta(minutes=20), vehicle="DA101")
    open_live(page, served.url())
    page.evaluate("window.__marker = 1")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    expect(site(page, "FAR").get_by_test_id("figure-arrivals")).to_have_text("0")

    new = served.arrive("FAR", timedelta(0), vehicle="DA202", category="C1")
    card = crew(page, new["id"])
    expect(card).to_be_visible(timeout=WAIT_MS)
    expect(card.get_by_test_id("callsign")).to_have_text("DA202")
    expect(card.get_by_test_id("band")).to_have_text("Within 15")
    expect(card.get_by_test_id("counter")).to_have_text(re.compile(r"^0:[0-5]\d$"))
    expect(site(page, "FAR").get_by_test_id("figure-arrivals")).to_have_text("1")
    expect(site(page, "FAR").get_by_test_id("site-counts")).to_have_text("1 waiting · 0 expected")
    expect(page.locator("#system-figures").get_by_test_id("figure-waiting_now")).to_have_text("2")

    served.hand_over(waiting)
    expect(crew(page, waiting["id"])).to_have_count(0, timeout=WAIT_MS)
    expect(site(page, "BUSY").get_by_test_id("site-counts")).to_have_text("0 waiting · 0 expected")
    expect(page.locator("#system-figures").get_by_test_id("figure-waiting_now")).to_have_text("1")
    # Handed over at 20 minutes: one crew over 15 at BUSY today, still counted.
    expect(site(page, "BUSY").get_by_test_id("figure-over_15")).to_have_text("1")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == []


def test_expected_arrivals_due_in_and_overdue_then_arriving(served: Served, page: Any) -> None:
    now = served.now()
    soon = served.send(
        "pre_alert",
        "INC-SOON",
        now,
        site="NEAR",
        vehicle="DA301",
        category="C2",
        expected_at=now + timedelta(minutes=10),
    )
    late = served.send(
        "pre_alert",
        "INC-LATE",
        now - timedelta(minutes=30),
        site="NEAR",
        vehicle="DA302",
        category="C1",
        expected_at=now - timedelta(minutes=5, seconds=20),
    )
    vague = served.send("pre_alert", "INC-VAGUE", now, site="NEAR", vehicle="DA303")
    open_live(page, served.url())
    near = site(page, "NEAR")
    expect(near.get_by_test_id("site-counts")).to_have_text("0 waiting · 3 expected")
    ids = near.locator("li.expected").evaluate_all("els => els.map(e => e.dataset.handoverId)")
    assert ids == [late["id"], soon["id"], vague["id"]]

    def expected(job: dict[str, Any]) -> Any:
        return page.locator(f'li.expected[data-handover-id="{job["id"]}"]')

    expect(expected(soon).get_by_test_id("due")).to_have_text(re.compile(r"^due in (10|9) min$"))
    expect(expected(soon)).to_have_attribute("data-overdue", "false")
    expect(expected(soon).locator(".expected-at")).to_have_text(
        f"expected {hhmm(now + timedelta(minutes=10))}"
    )
    expect(expected(late).get_by_test_id("due")).to_have_text(re.compile(r"^overdue 5 min$"))
    expect(expected(late)).to_have_attribute("data-overdue", "true")
    expect(expected(vague).locator(".expected-at")).to_have_text("no time given")
    expect(expected(vague).get_by_test_id("due")).to_be_hidden()
    expect(expected(vague).locator(".crew-meta")).to_have_text(
        f"SECAMB incident INC-VAGUE · pre-alert {hhmm(now)}"
    )

    # The late crew arrives: it leaves the expected list and waits, live.
    arrived = served.send("arrival", "INC-LATE", served.now(), site="NEAR", vehicle="DA302")
    expect(crew(page, arrived["id"])).to_be_visible(timeout=WAIT_MS)
    expect(expected(late)).to_have_count(0)
    expect(near.get_by_test_id("site-counts")).to_have_text("1 waiting · 2 expected")


def test_todays_figures_and_hours_lost_equal_the_apis(served: Served, page: Any) -> None:
    # At noon (London) so that every crew below arrived today.
    noon = next_local_noon(served.now())
    served.clock.set(noon)
    m = timedelta(minutes=1)
    history = [  # (site, arrived minutes before noon, handed over after minutes or None)
        ("BUSY", 180, 10),  # within 15
        ("BUSY", 150, 25),  # over 15: 10 min lost
        ("BUSY", 120, 50),  # over 15, 30, 45: 35 min lost
        ("BUSY", 90, 75),  # over 60: 60 min lost
        ("BUSY", 40, None),  # waiting 40 min: 25 min lost so far
        ("NEAR", 100, 16),  # over 15: 1 min lost
        ("NEAR", 60, 14),  # within 15
    ]
    for i, (code, before, took) in enumerate(history):
        arrived = noon - before * m
        served.send("arrival", f"HIST{i}", arrived, site=code, vehicle=f"DH{i}")
        if took is not None:
            served.send("handover", f"HIST{i}", arrived + took * m)
    summary = served.get("/api/handovers/summary")
    by_site = {s["site"]: s for s in summary["sites"]}
    busy, near, far = by_site["BUSY"], by_site["NEAR"], by_site["FAR"]
    assert busy["hours_lost"] == round((10 + 35 + 60 + 25) / 60, 2) == 2.17
    assert (busy["arrivals"], busy["over_15"], busy["over_30"], busy["over_45"]) == (5, 4, 3, 2)
    assert busy["over_60"] == 1
    assert near["hours_lost"] == round(1 / 60, 2) and far["arrivals"] == 0

    open_live(page, served.url())
    for s in summary["sites"]:
        assert figures(page, site(page, s["site"])) == api_figures(s), s["site"]
    system = figures(page, page.locator("#system-figures"))
    assert system == {**api_figures(summary["system"]), "waiting_now": "1", "expected_now": "0"}
    assert system["hours_lost"] == "2.18"
    expect(page.get_by_test_id("day")).to_have_text(
        "Today, " + noon.astimezone(LONDON).strftime("%a %-d %b")
    )
    # Breaches are picked out; a site without any is not.
    expect(site(page, "BUSY").locator('.figure[data-figure="over_60"]')).to_have_attribute(
        "data-alert", "true"
    )
    expect(site(page, "FAR").locator('.figure[data-figure="over_15"]')).to_have_attribute(
        "data-alert", "false"
    )


def test_fits_a_laptop_without_sideways_scrolling_and_a_wall_in_three_columns(
    served: Served, page: Any
) -> None:
    for i, code in enumerate(("BUSY", "NEAR", "FAR") * 3):
        served.arrive(code, timedelta(minutes=5 + 9 * i), vehicle=f"LONGCALLSIGN-{i}-HEMS-RRV")
    served.send(
        "pre_alert",
        "PRE1",
        served.now(),
        site="FAR",
        vehicle="DA900",
        expected_at=served.now() + timedelta(minutes=25),
    )
    for viewport in (LAPTOP, WALL):
        page.set_viewport_size(viewport)
        open_live(page, served.url())
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (viewport, widths)
        tops = [site(page, c).bounding_box()["y"] for c in ("BUSY", "NEAR", "FAR")]
        assert tops[0] == tops[1] == tops[2], (viewport, tops)
        for c in ("BUSY", "NEAR", "FAR"):
            box = site(page, c).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]


def test_without_opel_endpoints_the_board_shows_no_opel(served: Served, page: Any) -> None:
    """A server without ``/api/opel`` (404): the board works and shows no OPEL at all."""
    page.route(
        re.compile(r".*/api/opel(/divert)?(\?.*)?$"),
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"message": "Not Found"}'
        ),
    )
    job = served.arrive("BUSY", timedelta(minutes=50))
    open_live(page, served.url())
    expect(crew(page, job["id"]).get_by_test_id("band")).to_have_text("RELEASE")
    expect(page.get_by_test_id("opel")).to_have_count(3)
    for badge in page.get_by_test_id("opel").all():
        expect(badge).to_be_hidden()
    expect(page.get_by_test_id("system-opel")).to_be_hidden()
    for panel in page.get_by_test_id("divert").all():
        expect(panel).to_be_hidden()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


def test_opel_levels_and_divert_suggestions_from_the_server_live(served: Served, page: Any) -> None:
    """OPEL from ``GET /api/opel`` and, for a site under pressure, the nearby sites that
    could help from ``GET /api/opel/divert``: they appear as soon as crews wait long enough,
    without a reload."""
    served.arrive("NEAR", timedelta(minutes=5))
    open_live(page, served.url())
    busy = site(page, "BUSY")
    badge = busy.get_by_test_id("opel")
    expect(badge).to_have_text("OPEL 1 · meeting demand")
    expect(badge).to_have_attribute("data-level", "1")
    expect(page.get_by_test_id("system-opel")).to_have_text("OPEL 1 · meeting demand")
    expect(busy.get_by_test_id("divert")).to_be_hidden()
    page.evaluate("window.__marker = 1")

    # Two crews waiting close to an hour: BUSY's mean handover passes 30 minutes.
    served.arrive("BUSY", timedelta(minutes=58))
    served.arrive("BUSY", timedelta(minutes=52))
    opel = served.get("/api/opel")
    advice = served.get("/api/opel/divert?site=BUSY")
    [busy_level] = [s for s in opel["sites"] if s["site"] == "BUSY"]
    assert advice["under_pressure"] and busy_level["level"] >= 2
    [near] = advice["suggestions"]
    assert near["site"] == "NEAR"
    [far] = advice["rejected"]

    panel = busy.get_by_test_id("divert")
    expect(panel).to_be_visible(timeout=WAIT_MS)
    expect(badge).to_have_attribute("data-level", str(busy_level["level"]))
    expect(badge).to_have_attribute("title", busy_level["why"])
    expect(panel.locator(".divert-head")).to_have_text(
        "⚠ Under pressure: " + "; ".join(advice["reasons"])
    )
    suggestion = panel.get_by_test_id("suggestion")
    expect(suggestion).to_have_attribute("data-site", "NEAR")
    expect(suggestion.locator(".suggestion-facts")).to_have_text(
        re.compile(
            "^"
            + re.escape(
                f"{near['distance_km']} km · OPEL {near['level']} · "
                f"{near['available_beds']} beds available"
            )
        )
    )
    expect(suggestion.locator(".suggestion-why")).to_have_text("; ".join(near["reasons"]))
    panel.locator(".rejected summary").click()
    expect(panel.locator(".rejected li")).to_have_text(f"Far Royal: {far['reason']}")
    expect(site(page, "NEAR").get_by_test_id("divert")).to_be_hidden()
    expect(site(page, "NEAR").get_by_test_id("opel")).to_have_text("OPEL 1 · meeting demand")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_stale_banner_while_the_stream_is_down_and_the_counters_still_tick(
    served: Served, page: Any
) -> None:
    page.add_init_script("window.WardWatchConfig = {staleAfterMs: 2000}")
    page.route("**/api/stream", lambda route: route.abort())
    job = served.arrive("FAR", timedelta(minutes=3))
    page.goto(served.url())
    counter = crew(page, job["id"]).get_by_test_id("counter")
    expect(counter).to_be_visible(timeout=WAIT_MS)  # the board loads anyway
    banner = page.get_by_test_id("stale-banner")
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text("this board may be out of date")
    expect(banner).to_contain_text("the counters still tick")
    expect(page.locator("#live-status")).to_have_text("Not live")
    assert_ticks(page, counter)

    page.unroute("**/api/stream")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=15_000)
    expect(banner).to_be_hidden()


def test_without_a_token_it_asks_for_one_and_refuses_a_device_token(
    served: Served, page: Any
) -> None:
    page.goto(f"{served.base}/handovers")
    expect(page.get_by_test_id("auth-panel")).to_be_visible()
    expect(page.get_by_test_id("main")).to_be_hidden()
    _, device = served.rt.auth.create_token(role="device", name="gateway")
    page.goto(served.url(token=device))
    expect(page.get_by_test_id("auth-message")).to_contain_text("Not authorised", timeout=WAIT_MS)
    assert page.evaluate("sessionStorage.getItem('wardwatch-token')") is None
    assert "token" not in page.url
    page.fill("#token-input", served.screen)
    page.get_by_role("button", name="Show handovers").click()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(site(page, "BUSY")).to_be_visible()


# ------------------------------------------------------------------------- screenshot ----


def a_busy_morning(served: Served) -> None:
    """A dozen crews waiting over three sites, more on their way, and the morning behind them
    (handed over and cleared), all through the API; ends at noon, London time."""
    noon = next_local_noon(served.now())
    served.clock.set(noon)
    m = timedelta(minutes=1)
    # The morning: (site, arrived minutes before noon, handover took minutes).
    morning = [
        ("BUSY", 230, 48), ("BUSY", 205, 62), ("BUSY", 170, 55), ("BUSY", 140, 71),
        ("BUSY", 120, 44), ("NEAR", 210, 9), ("NEAR", 160, 14), ("NEAR", 110, 19),
        ("NEAR", 95, 12), ("FAR", 190, 22), ("FAR", 150, 31), ("FAR", 125, 16),
    ]  # fmt: skip
    for i, (code, before, took) in enumerate(morning):
        arrived = noon - before * m
        served.send("arrival", f"AM{i:03d}", arrived, site=code, vehicle=f"KM{60 + i}")
        served.send("handover", f"AM{i:03d}", arrived + took * m)
        served.send("clear", f"AM{i:03d}", arrived + (took + 11) * m)
    # Waiting now: (site, call sign, category, minutes seconds waited).
    waiting = [
        ("BUSY", "KM21", "C2", 68, 12), ("BUSY", "KM07", "C2", 52, 40),
        ("BUSY", "RRV3", "C3", 41, 5), ("BUSY", "KM33", "C2", 33, 18),
        ("BUSY", "KM14", "C1", 19, 51), ("BUSY", "KM40", "C3", 6, 2),
        ("NEAR", "KM02", "C2", 31, 44), ("NEAR", "KM18", "C2", 16, 9),
        ("NEAR", "KM25", "C4", 8, 30), ("FAR", "KM11", "C2", 47, 3),
        ("FAR", "KM29", "C3", 24, 36), ("FAR", "KM36", "C2", 3, 15),
    ]  # fmt: skip
    for i, (code, vehicle, cat, mins, secs) in enumerate(waiting):
        arrived = noon - timedelta(minutes=mins, seconds=secs)
        served.send(
            "pre_alert",
            f"NOW{i:03d}",
            arrived - 12 * m,
            site=code,
            vehicle=vehicle,
            category=cat,
            expected_at=arrived - 2 * m,
        )
        served.send("arrival", f"NOW{i:03d}", arrived, site=code, vehicle=vehicle, category=cat)
    coming = [("BUSY", "KM45", "C2", 7), ("BUSY", "KM47", "C1", -3), ("NEAR", "KM50", "C3", 18)]
    for i, (code, vehicle, cat, due) in enumerate(coming):
        served.send(
            "pre_alert",
            f"PRE{i:03d}",
            noon - 6 * m,
            site=code,
            vehicle=vehicle,
            category=cat,
            expected_at=noon + due * m,
        )


@pytest.mark.skipif(
    os.environ.get("WARDWATCH_SCREENSHOTS") != "1",
    reason="set WARDWATCH_SCREENSHOTS=1 to rewrite docs/img/handover-board.png",
)
def test_screenshot_of_a_busy_handover_board(tmp_path: Path, page: Any) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=clock)
    rt.system.load(load_system_file(FRONT_DOOR), SYSTEM)
    try:
        with serving(create_app(rt)) as base:
            served = Served(rt=rt, clock=clock, base=base)
            a_busy_morning(served)
            page.clock.install(time=clock.now())  # the browser's clock at the server's noon
            open_live(page, served.url())
            expect(page.locator("li.crew")).to_have_count(12)
            page.wait_for_timeout(500)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
            page.context.close()  # end the page's stream before the server stops
    finally:
        rt.close()
    assert SCREENSHOT.stat().st_size > 10_000
