"""The task page at ``/tasks`` on a phone (390 x 844) in a real browser (Debian's Chromium,
driven by Playwright).

A real uvicorn server runs in a background thread over a fresh SQLite database with the
small test system loaded. Beds are discharged through the service or the API while the page
is open; the tests tap the buttons a cleaner or porter would tap and check the server.

Set ``WARDWATCH_SCREENSHOTS=1`` to (re)write ``docs/img/task-page.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import WAIT_MS, checked_page, launch, require_chromium
from tests.browser import open_live as browser_open_live
from tests.conftest import SMALL_SYSTEM
from tests.serving import serving
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import Clock, ManualClock
from wardwatch.flow.schemas import BedRequestCreate
from wardwatch.runtime import Runtime
from wardwatch.tasks.rules import Action
from wardwatch.tasks.schemas import TaskUpdate

pytestmark = pytest.mark.browser

playwright_sync = require_chromium()
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "img" / "task-page.png"
PHONE = {"width": 390, "height": 844}
HOUSEKEEPING = "ACU1-housekeeping"
PORTERS = "ACU1-porters"


@dataclass
class Served:
    rt: Runtime
    base: str
    admin: str = field(init=False)
    cleaner: str = field(init=False)

    def __post_init__(self) -> None:
        _, self.admin = self.rt.auth.create_token(role="admin", name="page-admin")
        _, self.cleaner = self.rt.auth.create_token(role="housekeeping", name="ann")

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def get(self, path: str) -> Any:
        r = self.call("GET", path)
        r.raise_for_status()
        return r.json()

    def queue(self, team: str = HOUSEKEEPING) -> list[dict[str, Any]]:
        return list(self.get(f"/api/tasks?team={team}"))

    def bed_state(self, code: str) -> str:
        return str(self.get(f"/api/beds?code={code}")[0]["state"])

    def discharge(self, bed_code: str, cleaning: str = "standard") -> str:
        """Admit a patient to the bed and discharge them (through the service): the bed's
        cleaning task's id."""
        [bed] = self.rt.capacity.list_beds(BedFilter(code=bed_code))
        stay = self.rt.capacity.admit(
            AdmitRequest(bed_id=bed.id, patient=PatientIn(local_id=f"P-{bed_code}")), SYSTEM
        )
        self.rt.capacity.discharge(
            stay.id, DischargeRequest(destination="home", pathway=0, cleaning=cleaning), SYSTEM
        )
        [task] = [t for t in self.rt.tasks.list_tasks(team=HOUSEKEEPING) if t.bed == bed_code]
        return task.id

    def page_url(self, team: str | None = HOUSEKEEPING, token: str | None = None) -> str:
        query = f"?team={team}" if team else ""
        return f"{self.base}/tasks{query}#token={token or self.cleaner}"


def _runtime(tmp_path: Path, clock: Clock | None = None) -> Runtime:
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=clock)
    rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    return rt


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    rt = _runtime(tmp_path)
    try:
        with serving(create_app(rt)) as base:
            yield Served(rt=rt, base=base)
    finally:
        rt.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch(playwright_sync)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # A fresh phone per test: its own sessionStorage and localStorage.
    yield from checked_page(
        browser, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )


def open_live(page: Any, url: str) -> None:
    browser_open_live(page, url, expect, "#queue-count")


def card(page: Any, task_id: str) -> Any:
    return page.locator(f'li.task[data-task-id="{task_id}"]')


def shown_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#queue > li", "els => els.map(e => e.dataset.taskId)"))


def primary(page: Any, task_id: str, label: str) -> Any:
    return card(page, task_id).get_by_role("button", name=re.compile(f"^{label}\\b"))


def assert_no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px wide"


def assert_big_tap_targets(page: Any) -> None:
    for button in page.locator("button:visible").all():
        box = button.bounding_box()
        name = button.inner_text().strip()
        assert box["height"] >= 48 and box["width"] >= 48, f"small tap target {name!r}: {box}"


def wait_for(page: Any, condition: Any, timeout_ms: int = WAIT_MS) -> None:
    """Poll ``condition`` while letting the page (and its route handlers) run."""
    for _ in range(timeout_ms // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("timed out")


# ------------------------------------------------------------------------------ tests ----


def test_queue_is_in_priority_order_with_clean_next_and_urgent_first(
    served: Served, page: Any
) -> None:
    amu = served.discharge("ACU1-AMU-01")
    m1 = served.discharge("ACU1-M1-01", cleaning="infection")
    f1 = served.discharge("ACU1-F1-01")
    paed = served.discharge("ACU1-PAED-01")
    r = served.call("PATCH", f"/api/tasks/{f1}", json={"priority": "urgent"})
    assert r.status_code == 200, r.text
    # A child waiting for a bed: the only bed that could take them is to be cleaned next.
    served.rt.flow.create(
        BedRequestCreate(
            patient=PatientIn(local_id="CHILD1"),
            site="ACU1",
            specialty="paediatrics",
            age_group="paediatric",
        ),
        SYSTEM,
    )
    assert [t["id"] for t in served.queue()] == [paed, f1, amu, m1]

    open_live(page, served.page_url())
    assert shown_ids(page) == [paed, f1, amu, m1]
    expect(page.locator("#team-name")).to_have_text("Acute One housekeeping")
    expect(page.locator("#queue-count")).to_have_text("4 tasks")
    expect(card(page, paed).locator(".tag").first).to_have_text("Clean next")
    expect(card(page, f1).locator(".tag").first).to_have_text("Urgent")
    expect(card(page, amu).locator(".tag").first).to_have_text("Routine")
    expect(card(page, m1).locator(".tag-infection")).to_have_text("☣ Infection clean")
    assert card(page, amu).locator(".tag-infection").count() == 0
    # Bed and ward (by name), how long it has waited, the time left to accept.
    amu_card = card(page, amu)
    expect(amu_card.locator(".task-title")).to_have_text("Bed ACU1-AMU-01")
    expect(amu_card.locator(".task-where")).to_have_text("Acute Medical Unit · ACU1-AMU")
    expect(amu_card.locator(".task-what")).to_have_text("Standard clean · about 30 min")
    expect(amu_card.locator(".task-waited")).to_have_text("Waiting under a minute")
    expect(amu_card.locator(".task-deadline")).to_have_text(
        re.compile(r"^Accept within 1[45] min$")
    )
    expect(card(page, m1).locator(".task-what")).to_have_text("Infection clean · about 1 h 30 min")
    expect(primary(page, amu, "Accept")).to_be_visible()
    # The list is an ordered list of cards; the buttons are real, labelled buttons.
    assert page.locator("ol#queue > li").count() == 4
    expect(amu_card.get_by_role("button", name="Accept: bed ACU1-AMU-01")).to_be_visible()

    # The priorities change while the page is open (the child's request is cancelled):
    # the queue re-sorts itself.
    [req] = served.get("/api/bed-requests")
    served.call("POST", f"/api/bed-requests/{req['id']}/cancel", json={"reason": "went home"})
    expect(card(page, paed).locator(".tag").first).to_have_text("Routine", timeout=WAIT_MS)
    wait_for(page, lambda: shown_ids(page) == [f1, amu, m1, paed])
    assert_no_sideways_scroll(page)
    assert_big_tap_targets(page)


def test_accept_start_done_each_take_one_tap_and_the_bed_becomes_available(
    served: Served, page: Any
) -> None:
    task_id = served.discharge("ACU1-AMU-03")
    assert served.bed_state("ACU1-AMU-03") == "awaiting_clean"
    open_live(page, served.page_url())
    page.evaluate("window.__marker = 1")
    status = card(page, task_id).locator(".task-status")
    expect(status).to_be_hidden()  # new: the Accept button says it all

    primary(page, task_id, "Accept").click()
    expect(status).to_have_text("Accepted by ann")  # at once, from the POST's answer
    task = served.rt.tasks.get(task_id)
    assert task.status == "accepted" and task.accepted_by == "housekeeping:ann"
    expect(page.locator("#toast")).to_have_text("Accepted: bed ACU1-AMU-03")

    primary(page, task_id, "Start").click()
    expect(status).to_have_text(re.compile(r"^Started by ann at \d\d:\d\d$"))
    assert served.rt.tasks.get(task_id).status == "in_progress"
    assert served.bed_state("ACU1-AMU-03") == "cleaning"
    expect(card(page, task_id).locator(".task-deadline")).to_have_text(
        re.compile(r"^Finish within (59 min|1 h)$")
    )
    # Once started there is one button only: Done.
    expect(card(page, task_id).get_by_role("button")).to_have_count(1)

    primary(page, task_id, "Done").click()
    expect(card(page, task_id)).to_have_count(0)
    expect(page.locator("#toast")).to_have_text(
        "Done: bed ACU1-AMU-03 is ready for the next patient"
    )
    task = served.rt.tasks.get(task_id)
    assert task.status == "done" and task.done_by == "housekeeping:ann"
    assert served.bed_state("ACU1-AMU-03") == "available"
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("No tasks — well done")
    expect(page.locator("#queue-count")).to_have_text("0 tasks")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_mark_done_shortcut_needs_a_second_tap(served: Served, page: Any) -> None:
    task_id = served.discharge("ACU1-AMU-04")
    open_live(page, served.page_url())
    shortcut = card(page, task_id).locator('button[data-role="secondary"]')
    expect(shortcut).to_have_accessible_name("Already clean? Mark done: bed ACU1-AMU-04")
    shortcut.click()
    expect(shortcut).to_have_text("Tap again: the bed is clean")
    page.wait_for_timeout(300)
    assert served.rt.tasks.get(task_id).status == "requested", "one tap must not finish it"
    shortcut.click()
    expect(card(page, task_id)).to_have_count(0)
    done = served.rt.tasks.get(task_id)
    assert done.status == "done" and done.accepted_at == done.started_at == done.done_at
    assert served.bed_state("ACU1-AMU-04") == "available"


def test_a_discharge_appears_without_reloading(served: Served, page: Any) -> None:
    open_live(page, served.page_url())
    expect(page.locator("#empty")).to_contain_text("No tasks — well done")
    # The site's housekeeping team is made with its first task: the page says so.
    expect(page.locator("#unknown-team")).to_contain_text(f"There is no team {HOUSEKEEPING} yet")
    expect(page.locator("#team-name")).to_have_text(HOUSEKEEPING)
    page.evaluate("window.__marker = 1")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    task_id = served.discharge("ACU1-M1-02")
    expect(card(page, task_id)).to_be_visible(timeout=WAIT_MS)
    expect(card(page, task_id).locator(".task-title")).to_have_text("Bed ACU1-M1-02")
    expect(page.locator("#empty")).to_be_hidden()
    expect(page.locator("#queue-count")).to_have_text("1 task")
    expect(page.locator("#team-name")).to_have_text("Acute One housekeeping")

    # A change by someone else (made infection by the ward) shows too.
    served.call("PATCH", f"/api/tasks/{task_id}", json={"type": "infection"})
    expect(card(page, task_id).locator(".tag-infection")).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == []


def test_a_task_finished_by_someone_else_is_refused_with_the_servers_message(
    served: Served, page: Any
) -> None:
    task_id = served.discharge("ACU1-F1-03")
    open_live(page, served.page_url())
    seen_version = int(card(page, task_id).get_attribute("data-version"))

    # Hold the page's refetches back, so the card is still shown when the cleaner taps it
    # (as when the other cleaner's change has not reached this phone yet).
    held: list[Any] = []
    holding = [True]

    def hold(route: Any) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*/api/tasks\?team=.*"), hold)
    _, bob = served.rt.auth.create_token(role="housekeeping", name="bob")
    r = served.call("POST", f"/api/tasks/{task_id}/done", token=bob)
    assert r.status_code == 200, r.text
    wait_for(page, lambda: bool(held))  # the live event asked for a refetch
    expect(card(page, task_id)).to_be_visible()

    primary(page, task_id, "Accept").click()
    toast = page.locator("#toast")
    expect(toast).to_have_attribute("data-kind", "error")
    # The page sent the version it saw: the server's refusal for exactly that request.
    refused = served.call(
        "POST", f"/api/tasks/{task_id}/accept", token=served.cleaner, json={"version": seen_version}
    )
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert "done" in message
    expect(toast.locator(".toast-title")).to_have_text("Not accepted: bed ACU1-F1-03")
    expect(toast.locator(".toast-text")).to_have_text(message)

    holding[0] = False
    for route in held:
        route.continue_()
    expect(card(page, task_id)).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#empty")).to_be_visible()
    assert served.rt.tasks.get(task_id).done_by == "housekeeping:bob"


def test_a_porters_page_shows_their_moves_and_no_cleaning(served: Served, page: Any) -> None:
    served.discharge("ACU1-AMU-05")
    served.discharge("ACU1-M1-03")
    req = served.rt.flow.create(
        BedRequestCreate(
            patient=PatientIn(local_id="ED7", sex="male"),
            site="ACU1",
            specialty="general medicine",
            from_location="ED majors 4",
            priority="emergency",
        ),
        SYSTEM,
    )
    [bed] = served.rt.capacity.list_beds(BedFilter(code="ACU1-M1-04"))
    served.rt.flow.allocate(req.id, bed.id, SYSTEM)
    [move] = served.queue(PORTERS)
    assert move["kind"] == "transfer"
    assert len(served.queue(HOUSEKEEPING)) == 2

    _, porter = served.rt.auth.create_token(role="porter", name="pat")
    open_live(page, served.page_url(PORTERS, porter))
    expect(page.locator("#team-name")).to_have_text("Acute One porters")
    assert shown_ids(page) == [move["id"]]
    assert page.locator('li.task[data-kind="cleaning"]').count() == 0
    moving = card(page, move["id"])
    expect(moving.locator(".task-title")).to_have_text(
        "Take patient from ED majors 4 to bed ACU1-M1-04"
    )
    expect(moving.locator(".task-where")).to_have_text("Male Medical · ACU1-M1")
    expect(moving.locator(".tag").first).to_have_text("Urgent")
    # No shortcut to done for a patient move: accept, start, done.
    expect(moving.get_by_role("button")).to_have_count(1)
    primary(page, move["id"], "Accept").click()
    expect(moving.locator(".task-status")).to_have_text("Accepted by pat")
    primary(page, move["id"], "Start").click()
    primary(page, move["id"], "Done").click()
    expect(moving).to_have_count(0)
    expect(page.locator("#toast")).to_have_text("Done: patient taken to bed ACU1-M1-04")
    assert served.bed_state("ACU1-M1-04") == "occupied"
    # A cleaning task opened by hand on the porter's phone is refused by the server (403):
    # the page shows why.
    cleaning = served.queue(HOUSEKEEPING)[0]
    open_live(page, served.page_url(HOUSEKEEPING, porter))
    primary(page, cleaning["id"], "Accept").click()
    expect(page.locator("#toast .toast-text")).to_have_text(
        "your role (porter) works transfer tasks; this is a cleaning task"
    )
    assert served.rt.tasks.get(cleaning["id"]).status == "requested"
    assert_no_sideways_scroll(page)


def test_team_picker_remembers_the_choice(served: Served, page: Any) -> None:
    served.discharge("ACU1-AMU-06")  # the default housekeeping team exists from now on
    page.goto(f"{served.base}/tasks#token={served.cleaner}")
    picker = page.locator("#team-picker")
    expect(picker).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#queue-view")).to_be_hidden()
    assert "token" not in page.url
    assert_no_sideways_scroll(page)
    assert_big_tap_targets(page)
    picker.get_by_role("button", name=re.compile("Acute One housekeeping")).click()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#queue > li")).to_have_count(1)
    assert page.url == f"{served.base}/tasks?team={HOUSEKEEPING}"
    assert page.evaluate("localStorage.getItem('wardwatch-team')") == HOUSEKEEPING

    # The same phone, later, without the team in the address: straight to the queue.
    page.goto(f"{served.base}/tasks")
    expect(page.locator("#queue > li")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#team-name")).to_have_text("Acute One housekeeping")
    page.get_by_role("button", name="Change team").click()
    expect(picker).to_be_visible()
    expect(picker.locator(f'button[data-team="{HOUSEKEEPING}"]')).to_have_attribute(
        "aria-current", "true"
    )


def test_without_a_token_it_asks_for_the_link_and_refuses_a_bad_one(
    served: Served, page: Any
) -> None:
    page.goto(f"{served.base}/tasks?team={HOUSEKEEPING}")
    expect(page.locator("#auth-panel")).to_be_visible()
    expect(page.locator("#queue-view")).to_be_hidden()
    page.goto(f"{served.base}/tasks?team={HOUSEKEEPING}#token=ww_not-a-real-token")
    expect(page.locator("#auth-message")).to_contain_text("Not authorised", timeout=WAIT_MS)
    assert page.evaluate("sessionStorage.getItem('wardwatch-token')") is None
    page.fill("#token-input", served.cleaner)
    page.get_by_role("button", name="Show my tasks").click()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#empty")).to_contain_text("No tasks — well done")


def test_stale_banner_while_the_stream_is_down(served: Served, page: Any) -> None:
    page.add_init_script("window.WardWatchConfig = {staleAfterMs: 2000}")
    page.route("**/api/stream", lambda route: route.abort())
    task_id = served.discharge("ACU1-AMU-02")
    page.goto(served.page_url())
    expect(card(page, task_id)).to_be_visible(timeout=WAIT_MS)  # the queue loads anyway
    banner = page.locator("#stale-banner")
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text("this list may be out of date")
    expect(page.locator("#live-status")).to_have_text("Not live")

    page.unroute("**/api/stream")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=15_000)
    expect(banner).to_be_hidden()


@pytest.mark.skipif(
    os.environ.get("WARDWATCH_SCREENSHOTS") != "1",
    reason="set WARDWATCH_SCREENSHOTS=1 to rewrite docs/img/task-page.png",
)
def test_screenshot_of_a_housekeeping_queue(tmp_path: Path, page: Any) -> None:
    # A morning's queue, built on a manual clock that ends at the wall clock's now.
    now = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(now - timedelta(minutes=80))
    rt = _runtime(tmp_path, clock)
    ann = Actor(name="ann", role="housekeeping")
    joe = Actor(name="joe", role="housekeeping")

    def at(minutes_ago: int) -> None:
        clock.set(now - timedelta(minutes=minutes_ago))

    try:
        served = Served(rt=rt, base="")
        slow = served.discharge("ACU1-M1-02")  # 80 min ago: started, now overdue
        at(70)
        rt.tasks.act(slow, Action.START, joe)
        at(44)
        infection = served.discharge("ACU1-AMU-04", cleaning="infection")
        at(40)
        rt.tasks.update(infection, TaskUpdate(priority="urgent"), SYSTEM)
        rt.tasks.act(infection, Action.ACCEPT, ann)
        at(31)
        served.discharge("ACU1-F1-03")  # nobody has accepted it: overdue, escalated
        at(12)
        served.discharge("ACU1-PAED-02")
        at(9)
        rt.flow.create(  # a child waits for a bed: the children's bed is cleaned next
            BedRequestCreate(
                patient=PatientIn(local_id="CHILD2"),
                site="ACU1",
                specialty="paediatrics",
                age_group="paediatric",
                from_location="Paediatric ED",
            ),
            SYSTEM,
        )
        at(3)
        served.discharge("ACU1-AMU-02")
        at(0)
        rt.tasks.escalate_due()
        with serving(create_app(rt)) as base:
            served.base = base
            open_live(page, served.page_url())
            expect(page.locator("#queue > li")).to_have_count(5)
            page.evaluate("window.scrollTo(0, 0)")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.context.close()  # end the page's stream before the server stops
    finally:
        rt.close()
    assert SCREENSHOT.stat().st_size > 10_000
