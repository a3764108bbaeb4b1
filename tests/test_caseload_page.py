"""The virtual-ward caseload page at ``/virtual-ward`` on a desktop (1440 x 900) in a real
browser (Debian's Chromium, driven by Playwright).

A real uvicorn server runs in a background thread over a fresh SQLite database with the
small test system loaded, on a manual clock that starts at the wall clock's now. Patients
are enrolled and readings sent through the REST API (a device token posts the compact JSON
payload, as a gateway would) while the page is open; the tests press the buttons a
virtual-ward nurse would press and check the server.

Set ``WARDWATCH_SCREENSHOTS=1`` to (re)write ``docs/img/caseload.png``.
"""

from __future__ import annotations

import json
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
from wardwatch.capacity.schemas import PatientIn, WardCreate
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime
from wardwatch.virtualward.schemas import (
    AlertActionIn,
    DeviceIn,
    EnrolRequest,
    PlanIn,
    ScaleUpdate,
)

pytestmark = pytest.mark.browser

playwright_sync = require_chromium()
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "img" / "caseload.png"
DESKTOP = {"width": 1440, "height": 900}
WARD = "VW1-FRA"

Vitals = dict[str, tuple[float | str, str | None]]


def vitals(
    rr: float, spo2: float, sbp: float, pulse: float, temp: float, acvpu: str = "A"
) -> Vitals:
    return {
        "respiration_rate": (rr, "/min"),
        "spo2": (spo2, "%"),
        "systolic_bp": (sbp, "mm[Hg]"),
        "pulse": (pulse, "/min"),
        "consciousness": (acvpu, None),
        "temperature": (temp, "Cel"),
    }


#: NEWS2 0.
CALM = vitals(16, 97, 125, 72, 36.8)
#: RR 22 (2), SpO2 95 (1), pulse 95 (1), temp 38.2 (1): 5, medium, urgent.
UNWELL = vitals(22, 95, 125, 95, 38.2)
#: RR 25 (3), SpO2 91 (3), SBP 100 (2), pulse 115 (2), temp 38.5 (1): 11, high, emergency.
SICK = vitals(25, 91, 100, 115, 38.5)


def without(values: Vitals, *names: str) -> Vitals:
    return {k: v for k, v in values.items() if k not in names}


#: CALM without a blood pressure: partial, never low.
NO_BP = without(CALM, "systolic_bp")


def nhs_number(stem: str) -> str:
    """A valid NHS number: ``stem`` (9 digits) and its modulus-11 check digit."""
    check = 11 - sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True)) % 11
    if check == 10:
        raise ValueError(f"{stem} has no valid check digit")
    return stem + str(0 if check == 11 else check)


def spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class Served:
    rt: Runtime
    clock: ManualClock
    base: str
    admin: str = field(init=False)
    nurse: str = field(init=False)
    device: str = field(init=False)
    sent: int = 0

    def __post_init__(self) -> None:
        _, self.admin = self.rt.auth.create_token(role="admin", name="page-admin")
        _, self.nurse = self.rt.auth.create_token(role="clinician", name="ann")
        _, self.device = self.rt.auth.create_token(role="device", name="gateway")

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def get(self, path: str) -> Any:
        r = self.call("GET", path)
        r.raise_for_status()
        return r.json()

    def enrol(
        self, number: str, serial: str, ward: str = WARD, team: str | None = None
    ) -> dict[str, Any]:
        r = self.call("POST", "/api/virtual-ward/devices", self.nurse, json={"serial": serial})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = {
            "patient": {"nhs_number": number},
            "ward": ward,
            "plan": {"mode": "spot", "times_per_day": 4},
            "devices": [serial],
        }
        if team:
            body["team"] = team
        r = self.call("POST", "/api/virtual-ward/enrolments", self.nurse, json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def send(self, serial: str, values: Vitals, battery: int | None = None) -> dict[str, Any]:
        """One set from a device at the server's now, through ``POST /api/readings``."""
        self.sent += 1
        body: dict[str, Any] = {
            "device": serial,
            "at": iso(self.clock.now()),
            "readings": [
                {"id": f"{serial}-{self.sent}-{name}", "code": name, "value": v}
                | ({"unit": unit} if unit else {})
                for name, (v, unit) in values.items()
            ],
        }
        if battery is not None:
            body["battery"] = battery
        r = self.call("POST", "/api/readings", self.device, json=body)
        assert r.status_code == 200, r.text
        out = dict(r.json())
        assert not out["refused"] and not out["refused_in_message"], out
        return out

    def caseload_ids(self) -> list[str]:
        return [e["id"] for e in self.get("/api/virtual-ward/caseload")]

    def url(self, query: str = "", token: str | None = None) -> str:
        return f"{self.base}/virtual-ward{query}#token={token or self.nurse}"


def _runtime(tmp_path: Path, clock: ManualClock) -> Runtime:
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=clock)
    rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    return rt


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    rt = _runtime(tmp_path, clock)
    try:
        with serving(create_app(rt)) as base:
            yield Served(rt=rt, clock=clock, base=base)
    finally:
        rt.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch(playwright_sync)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from checked_page(browser, viewport=DESKTOP)


def open_live(page: Any, url: str) -> None:
    browser_open_live(page, url, expect, "#summary")


def row(page: Any, enrolment_id: str) -> Any:
    return page.locator(f'tr.patient-row[data-enrolment-id="{enrolment_id}"]')


def shown_ids(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            "#caseload-body > tr", "els => els.map(e => e.dataset.enrolmentId)"
        )
    )


def wait_for(page: Any, condition: Any, timeout_ms: int = WAIT_MS) -> None:
    """Poll ``condition`` while letting the page (and its route handlers) run."""
    for _ in range(timeout_ms // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("timed out")


# ------------------------------------------------------------------------------ tests ----


def test_patients_worst_first_with_news2_partial_sets_and_the_age_of_each_score(
    served: Served, page: Any
) -> None:
    calm, unwell, partial = (
        nhs_number("943476591"),
        nhs_number("401023213"),
        nhs_number("485777345"),
    )
    a = served.enrol(calm, "OX-A")
    b = served.enrol(unwell, "OX-B")
    c = served.enrol(partial, "OX-C")
    served.send("OX-A", CALM, battery=80)
    served.send("OX-B", UNWELL, battery=15)
    served.send("OX-C", NO_BP)
    # The server's order: the unanswered alert, then the unknown (partial), then the low.
    assert served.caseload_ids() == [b["id"], c["id"], a["id"]]

    open_live(page, served.url())
    assert shown_ids(page) == [b["id"], c["id"], a["id"]]
    # B's battery at 15% raised an alert of its own.
    expect(page.locator("#summary")).to_have_text("3 patients · 2 open alerts")
    expect(row(page, b["id"]).get_by_test_id("alert-chip").locator(".sev")).to_have_text(
        ["Urgent", "Routine"]
    )

    expect(row(page, b["id"]).locator(".patient-button")).to_have_text(spaced(unwell))
    expect(row(page, b["id"]).locator(".place")).to_have_text(
        re.compile(r"^Frailty Virtual Ward · VW1-FRA-0\d$")
    )
    expect(row(page, b["id"]).get_by_test_id("news2")).to_have_text("5")
    expect(row(page, b["id"])).to_have_attribute("data-risk", "medium")
    expect(row(page, b["id"]).locator(".news2-note")).to_have_text("Medium risk")
    expect(row(page, a["id"]).get_by_test_id("news2")).to_have_text("0")
    expect(row(page, a["id"])).to_have_attribute("data-risk", "low")

    # A partial set says so, with what is missing, and is not coloured as low.
    c_badge = row(page, c["id"]).get_by_test_id("news2")
    expect(c_badge).to_have_text("partial ≥0")
    expect(c_badge).to_have_class(re.compile(r"\bis-partial\b"))
    expect(row(page, c["id"]).get_by_test_id("news2-missing")).to_have_text("missing BP")
    expect(row(page, c["id"])).to_have_attribute("data-risk", "partial")
    assert page.eval_on_selector(
        f'tr[data-enrolment-id="{c["id"]}"] .news2', "e => getComputedStyle(e).backgroundImage"
    ).startswith("repeating-linear-gradient")

    # The age of every score, and the device's battery (a low one flagged).
    for e in (a, b, c):
        expect(row(page, e["id"]).get_by_test_id("score-age")).to_have_text("just now")
    expect(row(page, a["id"]).locator(".battery")).to_have_text("80%")
    expect(row(page, b["id"]).locator(".battery")).to_have_class(re.compile(r"\bis-low\b"))
    expect(row(page, b["id"]).get_by_test_id("device")).to_contain_text("seen just now")

    # Six and a half hours on (the plan expects a set every 6 h), B sends again: the others'
    # scores are now stale, and flagged.
    served.clock.advance(timedelta(hours=6, minutes=30))
    served.send("OX-B", CALM)
    a_age = row(page, a["id"]).get_by_test_id("score-age")
    expect(a_age).to_have_text("⚠ 6 h 30 min ago · stale", timeout=WAIT_MS)
    expect(a_age).to_have_class(re.compile(r"\bis-stale\b"))
    expect(row(page, c["id"]).get_by_test_id("score-age")).to_have_text("⚠ 6 h 30 min ago · stale")
    expect(row(page, b["id"]).get_by_test_id("score-age")).to_have_text("just now")
    expect(row(page, b["id"]).get_by_test_id("news2")).to_have_text("0")
    # Nobody answered B's alerts: both are overdue.
    expect(row(page, b["id"]).get_by_test_id("countdown")).to_have_text(
        [re.compile(r"^Overdue 5 h 30 min$"), re.compile(r"^Overdue 2 h 30 min$")]
    )
    expect(page.locator("#summary")).to_have_text(
        "3 patients · 2 open alerts · 2 overdue · 2 stale scores"
    )


def test_a_reading_reorders_the_caseload_live_and_its_alert_counts_down(
    served: Served, page: Any
) -> None:
    ids = [
        served.enrol(nhs_number(stem), f"OX-{i}")["id"]
        for i, stem in enumerate(("943476591", "401023213", "485777345"))
    ]
    for i in range(3):
        served.send(f"OX-{i}", CALM)
    open_live(page, served.url())
    before = shown_ids(page)
    assert before == served.caseload_ids() and sorted(before) == sorted(ids)
    expect(page.get_by_test_id("alert-chip")).to_have_count(0)
    page.evaluate("window.__marker = 1")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    last = before[-1]
    served.send(f"OX-{ids.index(last)}", SICK)
    wait_for(page, lambda: shown_ids(page)[0] == last)
    assert shown_ids(page) == [last, *before[:-1]]
    expect(row(page, last).get_by_test_id("news2")).to_have_text("11")
    expect(row(page, last)).to_have_attribute("data-risk", "high")
    chip = row(page, last).get_by_test_id("alert-chip")
    expect(chip).to_have_attribute("data-severity", "emergency")
    expect(chip.locator(".sev")).to_have_text("Emergency")
    countdown = chip.get_by_test_id("countdown")
    expect(countdown).to_have_text(re.compile(r"^(30:00|29:[0-5]\d) left$"))
    # It ticks: polled rather than a fixed sleep, as a busy machine runs the page's timers late.
    expect(countdown).not_to_have_text(countdown.inner_text(), timeout=WAIT_MS)
    expect(countdown).not_to_have_class(re.compile(r"\bis-overdue\b"))

    # Nobody answers: 31 minutes on, the alert is escalated and the countdown turns overdue.
    served.clock.advance(timedelta(minutes=31))
    served.rt.virtualward.check_due()  # (the server's own loop may get there first)
    [alert] = served.get("/api/virtual-ward/alerts")
    assert alert["level"] == 1 and alert["minutes_left"] == -1.0
    expect(countdown).to_have_text(re.compile(r"^Overdue 1:[0-5]\d$"), timeout=WAIT_MS)
    expect(countdown).to_have_class(re.compile(r"\bis-overdue\b"))
    expect(chip.locator(".escalated")).to_have_text("▲ supervisor told")
    expect(page.locator("#summary")).to_contain_text("1 overdue")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == []


def test_triage_acknowledge_action_resolve_through_the_buttons(served: Served, page: Any) -> None:
    e = served.enrol(nhs_number("943476591"), "OX-T")
    served.send("OX-T", UNWELL)
    [alert] = served.get("/api/virtual-ward/alerts")
    open_live(page, served.url())
    row(page, e["id"]).click()
    panel = page.get_by_test_id("detail")
    expect(panel).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text(f"NHS {spaced(e['nhs_number'])}")
    card = panel.locator(f'[data-alert-id="{alert["id"]}"]')
    expect(card.get_by_test_id("alert-status")).to_have_text("New", timeout=WAIT_MS)
    expect(card.get_by_test_id("countdown")).to_have_text(re.compile(r"^(60:00|59:\d\d) left$"))
    expect(card.get_by_role("button", name="Record action")).to_be_hidden()

    # Someone else acknowledges it before this page hears of it: the server's refusal (409)
    # is shown on the card, then the card catches up.
    held: list[Any] = []
    holding = [True]

    def hold(route: Any) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*/api/virtual-ward/alerts/[^/?]+$"), hold)
    _, bob = served.rt.auth.create_token(role="clinician", name="bob")
    r = served.call("POST", f"/api/virtual-ward/alerts/{alert['id']}/acknowledge", bob)
    assert r.status_code == 200, r.text
    wait_for(page, lambda: bool(held))  # the live event asked for the alert again
    card.get_by_role("button", name="Acknowledge").click()
    error = card.get_by_test_id("triage-error")
    expect(error).to_have_text(
        "Not acknowledged: the alert changed since you saw it (acknowledged by clinician:bob):"
        " reload and check"
    )
    holding[0] = False
    for route in held:
        route.continue_()
    expect(card.get_by_test_id("alert-status")).to_have_text("Acknowledged", timeout=WAIT_MS)
    expect(card.get_by_test_id("alert-outcome")).to_have_text("Acknowledged by bob")
    page.unroute(re.compile(r".*/api/virtual-ward/alerts/[^/?]+$"))

    # No action needs a reason: the server says so, and nothing is recorded.
    card.get_by_label("No action (reason required)").check()
    card.get_by_role("button", name="Record action").click()
    expect(error).to_have_text("Not recorded: 'no action' needs a reason")
    assert served.get(f"/api/virtual-ward/alerts/{alert['id']}")["status"] == "acknowledged"
    card.get_by_label("Reason or details").fill("spoke to daughter: readings taken after a walk")
    card.get_by_role("button", name="Record action").click()
    expect(card.get_by_test_id("alert-status")).to_have_text("Actioned")
    expect(error).to_be_hidden()
    expect(card.get_by_test_id("alert-outcome")).to_have_text(
        "Acknowledged by bob · Action: no action (spoke to daughter: readings taken after a walk)"
    )

    card.get_by_label("Note").fill("repeat set in an hour")
    card.get_by_role("button", name="Add note").click()
    expect(card.get_by_test_id("history").locator("li")).to_have_count(4)
    card.get_by_label("Note").fill("repeat set normal")
    card.get_by_role("button", name="Resolve").click()
    expect(card.get_by_test_id("alert-status")).to_have_text("Resolved")
    expect(card.get_by_role("button")).to_have_count(1)  # only "Add note" is left
    history = [
        re.sub(r"^\d\d:\d\d ", "", t)
        for t in card.get_by_test_id("history").locator("li").all_inner_texts()
    ]
    assert history == [
        "gateway raised: NEWS2 5: urgent response",
        "bob acknowledged",
        "ann action recorded: no action: spoke to daughter: readings taken after a walk",
        "ann note: repeat set in an hour",
        "ann resolved: repeat set normal",
    ]
    got = served.get(f"/api/virtual-ward/alerts/{alert['id']}")
    assert got["status"] == "resolved" and got["action"] == "no_action"
    assert [(n["by"], n["what"]) for n in got["notes"]][1:] == [
        ("clinician:bob", "acknowledged"),
        ("clinician:ann", "actioned"),
        ("clinician:ann", "note"),
        ("clinician:ann", "resolved"),
    ]
    # The caseload row no longer lists it; the panel keeps the resolved card.
    expect(row(page, e["id"]).get_by_test_id("alert-chip")).to_have_count(0, timeout=WAIT_MS)
    expect(page.get_by_test_id("no-alerts")).to_be_visible()


def test_trend_charts_show_every_parameter_and_the_news2_total(served: Served, page: Any) -> None:
    e = served.enrol(nhs_number("943476591"), "OX-C")
    served.send("OX-C", CALM)
    served.clock.advance(timedelta(hours=1))
    served.send("OX-C", NO_BP)  # a partial set: a hollow point on the NEWS2 chart
    served.clock.advance(timedelta(hours=1))
    served.send("OX-C", UNWELL | {"diastolic_bp": (78, "mm[Hg]")})
    served.clock.advance(timedelta(hours=1))
    served.send("OX-C", SICK | {"consciousness": ("C", None)})
    open_live(page, served.url())
    row(page, e["id"]).get_by_role("button").click()
    charts = page.get_by_test_id("charts")
    expect(charts.get_by_test_id("chart")).to_have_count(8, timeout=WAIT_MS)
    assert charts.get_by_test_id("chart").evaluate_all(
        "els => els.map(e => e.dataset.parameter)"
    ) == [
        "news2",
        "respiration_rate",
        "spo2",
        "systolic_bp",
        "pulse",
        "temperature",
        "diastolic_bp",
        "consciousness",
    ]

    def points(parameter: str) -> Any:
        return charts.locator(f'figure[data-parameter="{parameter}"] svg .pt')

    for parameter in ("respiration_rate", "spo2", "pulse", "temperature", "consciousness"):
        expect(points(parameter)).to_have_count(4)
    expect(points("systolic_bp")).to_have_count(3)
    expect(points("diastolic_bp")).to_have_count(1)
    expect(points("news2")).to_have_count(4)
    assert points("pulse").evaluate_all("els => els.map(e => Number(e.dataset.value))") == [
        72,
        72,
        95,
        115,
    ]
    # Points carry their NEWS2 points: pulse 115 scores 2, RR 25 scores 3; bands are shaded.
    expect(points("pulse").last).to_have_class(re.compile(r"\bp2\b"))
    expect(points("respiration_rate").last).to_have_class(re.compile(r"\bp3\b"))
    assert charts.locator('figure[data-parameter="respiration_rate"] .band-p3').count() >= 1
    expect(points("consciousness").last).to_have_attribute("data-value", "C")
    expect(points("news2").nth(1)).to_have_class(re.compile(r"\bpartial\b"))
    expect(points("news2").last).to_have_attribute("data-value", "14")
    expect(charts.locator('figure[data-parameter="news2"] .chart-latest')).to_have_text("14")
    expect(page.get_by_test_id("detail-score").get_by_test_id("news2")).to_have_text("14")
    expect(page.get_by_test_id("detail-facts")).to_contain_text(
        "Spot checks 4 times a day (every 6 h)"
    )
    expect(page.locator('[data-fact="SpO₂ scale"]')).to_have_text("Scale 1 (default)")

    # A new set while the panel is open is added to the charts without reloading.
    served.clock.advance(timedelta(minutes=20))
    served.send("OX-C", CALM)
    expect(points("pulse")).to_have_count(5, timeout=WAIT_MS)
    expect(points("news2")).to_have_count(5)
    # The range buttons: 24 h shows all; a patient's scale change shows in the panel.
    r = served.call(
        "PUT",
        f"/api/virtual-ward/enrolments/{e['id']}/scale",
        served.nurse,
        json={"scale": 2, "reason": "COPD with hypercapnic failure, target 88-92%"},
    )
    assert r.status_code == 200, r.text
    expect(page.locator('[data-fact="SpO₂ scale"]')).to_have_text(
        re.compile(r"^Scale 2 \(target 88\u201392%\), set by ann \d\d:\d\d$"), timeout=WAIT_MS
    )
    page.get_by_role("button", name="7 days").click()
    expect(page.get_by_role("button", name="7 days")).to_have_attribute("aria-pressed", "true")
    expect(points("pulse")).to_have_count(5)


def test_filters_by_ward_and_team(served: Served, page: Any) -> None:
    # The frailty patient gets the site's default team; then a respiratory ward and team.
    frailty = served.enrol(nhs_number("943476591"), "OX-F")
    default_team = frailty["team"]
    r = served.call(
        "POST",
        "/api/wards",
        json={
            "site": "VW1",
            "code": "VW1-RES",
            "name": "Respiratory Virtual Ward",
            "specialty": "respiratory medicine",
            "general_acute": False,
            "beds": 3,
        },
    )
    assert r.status_code == 201, r.text
    team = {"code": "VW1-resp", "name": "Respiratory team", "kind": "virtual_ward", "site": "VW1"}
    r = served.call("PUT", "/api/teams", json={"teams": [team]})
    assert r.status_code == 200, r.text
    resp = served.enrol(nhs_number("401023213"), "OX-R", ward="VW1-RES", team="VW1-resp")
    open_live(page, served.url())
    both = sorted([frailty["id"], resp["id"]])
    assert sorted(shown_ids(page)) == both

    page.get_by_test_id("ward-filter").select_option("VW1-RES")
    wait_for(page, lambda: shown_ids(page) == [resp["id"]])
    expect(row(page, resp["id"]).locator(".place")).to_have_text(
        "Respiratory Virtual Ward · VW1-RES-01"
    )
    assert page.url.endswith("/virtual-ward?ward=VW1-RES")
    page.get_by_test_id("ward-filter").select_option("")
    wait_for(page, lambda: sorted(shown_ids(page)) == both)
    page.get_by_test_id("team-filter").select_option("VW1-resp")
    wait_for(page, lambda: shown_ids(page) == [resp["id"]])
    page.get_by_test_id("team-filter").select_option(default_team)
    wait_for(page, lambda: shown_ids(page) == [frailty["id"]])
    assert page.url.endswith(f"/virtual-ward?team={default_team}")
    # A link with the filters opens filtered; an empty result says so.
    page.goto(served.url(f"?ward=VW1-RES&team={default_team}"))
    expect(page.get_by_test_id("empty")).to_have_text(
        "No patients on the virtual ward for this filter.", timeout=WAIT_MS
    )
    expect(page.get_by_test_id("ward-filter")).to_have_value("VW1-RES")
    expect(page.get_by_test_id("team-filter")).to_have_value(default_team)


def test_without_a_clinician_token_it_asks_for_one(served: Served, page: Any) -> None:
    page.goto(f"{served.base}/virtual-ward")
    expect(page.get_by_test_id("auth-panel")).to_be_visible()
    _, screen = served.rt.auth.create_token(role="read-only", name="wall screen")
    page.goto(served.url(token=screen))
    expect(page.get_by_test_id("auth-message")).to_contain_text("Not authorised", timeout=WAIT_MS)
    expect(page.get_by_test_id("main")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('wardwatch-token')") is None
    assert "token" not in page.url
    page.fill("#token-input", served.nurse)
    page.get_by_role("button", name="Show caseload").click()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.get_by_test_id("empty")).to_have_text("No patients on the virtual ward.")


# ------------------------------------------------------------------------- screenshot ----


@dataclass(frozen=True)
class Story:
    """One patient of the screenshot: a place, a plan and what their readings did."""

    stem: str
    ward: str
    every_hours: float
    sets: list[tuple[float, Vitals]]  # (hours before now, the set)
    battery: int = 70
    scale_2: bool = False


def _stories() -> list[Story]:
    """Nine patients on two virtual wards; sets are (hours before now, vitals)."""
    steady = [vitals(19, 94, 122, 88, 38.2), vitals(18, 95, 124, 84, 37.2)]  # NEWS2 2, 1
    worsening = [(24.0 - 2 * k, steady[k % 2]) for k in range(12)] + [
        (0.75, vitals(22, 94, 112, 96, 38.3)),  # 5: urgent; called, asked to repeat the set
        (0.2, vitals(25, 93, 104, 112, 38.9)),  # 9: upgraded to an emergency, unanswered
    ]
    return [
        Story("943476591", "VW1-RES", 2, worsening, battery=62),
        Story(
            "401023213",
            WARD,
            6,
            [
                (18.5, vitals(18, 95, 132, 84, 37.4)),
                (12.5, vitals(18, 96, 130, 86, 37.6)),
                (6.5, vitals(19, 95, 128, 88, 37.9)),
                (0.7, vitals(22, 95, 126, 96, 38.2)),
            ],
        ),
        Story(
            "485777345",
            WARD,
            6,
            [
                (13.0, vitals(18, 95, 118, 80, 37.0)),
                (7.0, vitals(22, 94, 116, 84, 37.2)),
                (1.25, vitals(25, 95, 118, 86, 37.1)),
            ],
        ),
        Story(
            "450557710",
            "VW1-RES",
            6,
            [
                (12.0, vitals(18, 90, 134, 82, 36.9)),
                (6.0, vitals(19, 89, 130, 84, 36.8)),
                (0.6, vitals(19, 89, 132, 86, 37.0)),
            ],
            scale_2=True,
        ),
        Story(
            "412345678",
            WARD,
            6,
            [
                (12.0, vitals(18, 96, 126, 76, 36.6)),
                (6.0, vitals(17, 96, 124, 78, 36.7)),
                (0.4, without(vitals(19, 95, 120, 92, 37.9), "systolic_bp")),  # cuff failed
            ],
        ),
        Story(
            "987654321",
            "VW1-RES",
            6,
            [
                (12.0, vitals(17, 96, 122, 74, 36.8)),
                (6.0, vitals(18, 96, 124, 76, 36.9)),
                (1.5, vitals(17, 95, 120, 72, 36.8)),
            ],
            battery=14,
        ),
        Story(
            "111222333",
            WARD,
            6,
            [
                (19.5, vitals(16, 97, 128, 70, 36.6)),
                (13.5, vitals(16, 97, 126, 68, 36.7)),
                (7.5, vitals(15, 97, 130, 70, 36.6)),
            ],
        ),
        Story(
            "412345679",
            "VW1-RES",
            6,
            [
                (12.0, vitals(16, 97, 122, 70, 36.7)),
                (6.0, vitals(15, 97, 120, 68, 36.6)),
                (0.9, vitals(16, 98, 124, 66, 36.7)),
            ],
        ),
        Story(
            "434765919",
            WARD,
            6,
            [
                (12.0, vitals(18, 96, 140, 88, 37.3)),
                (6.0, vitals(18, 96, 138, 92, 37.4)),
                (2.5, vitals(18, 96, 136, 92, 37.2)),
            ],
        ),
    ]


def a_day_on_two_virtual_wards(rt: Runtime, clock: ManualClock, now: datetime) -> list[str]:
    """Nine patients' last day, through the services, on ``clock`` (set back a day or more),
    ending at ``now``: the enrolment ids, in :func:`_stories` order."""
    vw = rt.virtualward
    sam = Actor(name="sam", role="clinician")
    gateway = Actor(name="gateway", role="device")
    rt.system.create_ward(
        WardCreate(
            site="VW1",
            code="VW1-RES",
            name="Respiratory Virtual Ward",
            specialty="respiratory medicine",
            general_acute=False,
            beds=6,
        ),
        SYSTEM,
    )
    stories = _stories()
    events: list[tuple[float, int, Vitals]] = []
    enrolled: list[str] = []
    for i, story in enumerate(stories):
        serial = f"WW-OX-{40 + i:04d}"
        vw.register_device(DeviceIn(serial=serial, model="pulse oximeter + cuff"), sam)
        e = vw.enrol(
            EnrolRequest(
                patient=PatientIn(nhs_number=nhs_number(story.stem)),
                ward=story.ward,
                plan=PlanIn(mode="spot", times_per_day=round(24 / story.every_hours)),
                devices=[serial],
            ),
            sam,
        )
        enrolled.append(e.id)
        if story.scale_2:
            vw.set_scale(e.id, ScaleUpdate(scale=2, reason="COPD, type 2 respiratory failure"), sam)
        events += [(hours, i, values) for hours, values in story.sets]
    answered = False
    for n, (hours, i, values) in enumerate(sorted(events, key=lambda ev: -ev[0])):
        clock.set(now - timedelta(hours=hours))
        last = hours == stories[i].sets[-1][0]
        body = {
            "device": f"WW-OX-{40 + i:04d}",
            "at": iso(clock.now()),
            "battery": stories[i].battery if last else 90,  # as it is now on the last set
            "readings": [
                {"id": f"s{n}-{name}", "code": name, "value": v} | ({"unit": u} if u else {})
                for name, (v, u) in values.items()
            ],
        }
        out = vw.receive_compact(json.dumps(body), "api", gateway)
        assert not out.get("error") and not out["refused"], out
        # The team answers the worsening patient's first alert.
        if i == 0 and out["alerts"] and not answered:
            answered = True
            clock.set(clock.now() + timedelta(minutes=2))
            for alert_id in out["alerts"]:
                vw.acknowledge(alert_id, sam)
                vw.act(alert_id, AlertActionIn(action="called_patient"), sam)
                vw.note(alert_id, "more breathless since lunch; asked to repeat the set now", sam)
    clock.set(now)
    vw.check_due(SYSTEM)
    return enrolled


@pytest.mark.skipif(
    os.environ.get("WARDWATCH_SCREENSHOTS") != "1",
    reason="set WARDWATCH_SCREENSHOTS=1 to rewrite docs/img/caseload.png",
)
def test_screenshot_of_a_virtual_ward_caseload(tmp_path: Path, page: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(now - timedelta(hours=25))
    rt = _runtime(tmp_path, clock)
    try:
        enrolled = a_day_on_two_virtual_wards(rt, clock, now)
        with serving(create_app(rt)) as base:
            served = Served(rt=rt, clock=clock, base=base)
            open_live(page, served.url())
            expect(page.locator("#caseload-body > tr")).to_have_count(len(enrolled))
            row(page, enrolled[0]).click()
            expect(page.get_by_test_id("chart")).to_have_count(7, timeout=WAIT_MS)
            # Scroll the panel (its header stays) so the alert and the trends are both in view.
            page.locator("#detail").evaluate(
                """el => { el.scrollTop += document.getElementById('alerts-title')
                    .getBoundingClientRect().top - el.getBoundingClientRect().top - 80; }"""
            )
            page.wait_for_timeout(500)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
            page.context.close()  # end the page's stream before the server stops
    finally:
        rt.close()
    assert SCREENSHOT.stat().st_size > 10_000
