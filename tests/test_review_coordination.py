"""Bugs found in review of the care-coordination code (tasks, bed requests, escalation, KPIs),
kept as regression tests: each is a sequence a user can reach through the API or the
services, and each failed on the code as first written. Runs on SQLite and, with
WARDWATCH_TEST_POSTGRES_URL, on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import auth
from tests.test_bed_requests import request
from tests.test_tasks import admit, bed_id, bed_state, discharge, tasks
from wardwatch.capacity.lookups import lock_stay
from wardwatch.capacity.models import Site
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.core.errors import Conflict
from wardwatch.runtime import Runtime
from wardwatch.tasks.models import Team
from wardwatch.tasks.rules import Action
from wardwatch.tasks.schemas import TeamSpec
from wardwatch.tasks.teams import team_for_site, upsert

Headers = dict[str, str]


def _get(client: TestClient, h: Headers, url: str) -> dict[str, Any]:
    r = client.get(url, headers=h)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- bed requests ---------------------------------------------------------------------------


def test_patient_admitted_into_their_own_reserved_bed_is_not_put_back_in_the_queue(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    """The ward admits the patient into the bed reserved for them through the bed board /
    the PAS (A01) instead of pressing 'arrive': the request must not go back to 'waiting'
    (it would mark dirty beds 'clean next' for a patient already in a bed)."""
    req = request(client, admin)  # ED1, male, general medicine
    m1 = bed_id(client, admin, "ACU1-M1-01")
    r = client.post(f"/api/bed-requests/{req['id']}/allocate", headers=admin, json={"bed_id": m1})
    assert r.status_code == 200, r.text
    admit(client, admin, "ACU1-M1-01", "ED1", sex="male")  # the same patient
    got = _get(client, admin, f"/api/bed-requests/{req['id']}")
    assert got["status"] != "waiting", "the patient is in the bed yet back in the bed queue"
    lost = client.get("/api/events", params={"type": "bed_request.bed_lost"}, headers=admin)
    assert lost.json() == []


def test_discharging_a_patient_closes_their_bed_request(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    """A move between beds is allocated, then the patient is discharged (went home from
    the old bed): the reserved bed must not stay held for them, and the porter must be able
    to close the transfer task (it now fails with 409 for ever and escalates)."""
    stay = admit(client, admin, "ACU1-AMU-01", "MOVER", sex="male")
    r = client.post(
        "/api/bed-requests",
        headers=admin,
        json={"stay_id": stay, "site": "ACU1", "specialty": "general medicine"},
    )
    assert r.status_code == 201, r.text
    req = r.json()
    m1 = bed_id(client, admin, "ACU1-M1-01")
    r = client.post(f"/api/bed-requests/{req['id']}/allocate", headers=admin, json={"bed_id": m1})
    assert r.status_code == 200, r.text
    discharge(client, admin, stay)
    got = _get(client, admin, f"/api/bed-requests/{req['id']}")
    porter_task = _get(client, admin, f"/api/tasks/{got['task_id']}") if got["task_id"] else None
    if porter_task is not None and porter_task["status"] in ("requested", "accepted"):
        r = client.post(f"/api/tasks/{porter_task['id']}/done", headers=auth(small, "porter"))
        assert r.status_code == 200, f"the porter cannot finish the task: {r.text}"
    got = _get(client, admin, f"/api/bed-requests/{req['id']}")
    assert got["status"] not in ("waiting", "allocated"), got
    assert bed_state(client, admin, "ACU1-M1-01") != "reserved"


# --- clean next -----------------------------------------------------------------------------


def test_clean_next_moves_to_another_bed_when_the_marked_one_is_blocked(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    """Two dirty beds could take the waiting man; the one marked 'clean next' is blocked
    (its task is cancelled): the other must become 'clean next'."""
    men = [admit(client, admin, f"ACU1-M1-0{i}", f"M{i}", sex="male") for i in (1, 2)]
    request(client, admin)
    discharge(client, admin, men[0])
    discharge(client, admin, men[1])
    queue = {t["bed"]: t["priority"] for t in tasks(client, admin)}
    assert queue == {"ACU1-M1-01": "clean_next", "ACU1-M1-02": "routine"}
    r = client.post(
        f"/api/beds/{bed_id(client, admin, 'ACU1-M1-01')}/state",
        headers=admin,
        json={"state": "blocked", "reason": "broken bed frame"},
    )
    assert r.status_code == 200, r.text
    queue = {t["bed"]: t["priority"] for t in tasks(client, admin)}
    assert queue == {"ACU1-M1-02": "clean_next"}


def test_a_priority_set_by_hand_survives_the_clean_next_matching(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    """A manager marks a cleaning task 'clean next' by hand; another discharge elsewhere on
    the site must not silently put it back to 'routine'."""
    a = admit(client, admin, "ACU1-AMU-01", "A1")
    b = admit(client, admin, "ACU1-AMU-02", "B1")
    discharge(client, admin, a)
    [task] = tasks(client, admin)
    r = client.patch(f"/api/tasks/{task['id']}", headers=admin, json={"priority": "clean_next"})
    assert r.status_code == 200 and r.json()["priority"] == "clean_next"
    discharge(client, admin, b)
    got = _get(client, admin, f"/api/tasks/{task['id']}")
    assert got["priority"] == "clean_next", "the hand-set priority was overwritten"


# --- the task page's version check ----------------------------------------------------------


def test_the_escalation_check_does_not_make_a_cleaners_screen_stale(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    """The phone sends the version it saw (tasks.js). After 'accept', the background
    escalation check (every 15 s) re-plans escalate_at, which bumps the row version without
    any task.* event, so the cleaner's next tap is refused 'task changed since you saw it'."""
    stay = admit(client, admin, "ACU1-AMU-03", "V1")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    cleaner = auth(small, "housekeeping", "ann")
    r = client.post(
        f"/api/tasks/{task['id']}/accept", headers=cleaner, json={"version": task["version"]}
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    clock.advance(timedelta(seconds=15))
    assert small.tasks.escalate_due() == []  # nothing raised, nothing for the page to hear
    clock.advance(timedelta(minutes=2))
    r = client.post(
        f"/api/tasks/{task['id']}/start", headers=cleaner, json={"version": seen["version"]}
    )
    assert r.status_code == 200, r.text


# --- escalation -----------------------------------------------------------------------------


def test_limits_that_finish_before_they_accept_are_refused(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    """Found in review: limits where 'finish' is shorter than 'accept' were accepted, and a
    finish escalation raised before accept_by then stayed open for ever. Both are fixed:
    such limits are refused, and escalations resolve when the first limit has passed."""
    r = client.put(
        "/api/teams",
        headers=admin,
        json={
            "teams": [
                {
                    "code": "ACU1-HK",
                    "name": "HK",
                    "kind": "housekeeping",
                    "site": "ACU1",
                    "limits": {"cleaning/standard": {"accept": 30, "finish": 10}},
                }
            ]
        },
    )
    assert r.status_code == 422 and "finished no sooner than accepted" in r.json()["message"]
    assert client.get("/api/teams", headers=admin).json() == []  # nothing half-loaded


def test_a_retyped_task_gets_a_new_first_level_before_the_control_centre(
    small: Runtime, client: TestClient, admin: Headers, clock: ManualClock
) -> None:
    """A standard clean runs past its 60 min finish limit (supervisor told), then is found to
    need an infection clean (150 min). At the new limit the control centre is told at once,
    with no supervisor escalation for it; meanwhile the old escalation stays open although
    the task is within its (new) time."""
    stay = admit(client, admin, "ACU1-AMU-05", "R1")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    client.post(f"/api/tasks/{task['id']}/accept", headers=admin)
    clock.advance(timedelta(minutes=60))
    small.tasks.escalate_due()
    [first] = [e for e in small.tasks.list_escalations() if e.breach == "finish"]
    assert first.level == 1
    r = client.patch(f"/api/tasks/{task['id']}", headers=admin, json={"type": "infection"})
    assert r.status_code == 200, r.text
    small.tasks.escalate_due()
    still_open = [e for e in small.tasks.list_escalations() if e.task_id == task["id"]]
    assert still_open == [], "an escalation for a limit the task no longer misses stays open"


# --- odd input to the new routes ------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"},
        {"to": "0001-01-02T00:00:00Z"},
    ],
)
def test_kpi_periods_at_the_edges_of_time_are_refused_not_500(
    small: Runtime, client: TestClient, admin: Headers, params: dict[str, str]
) -> None:
    for report in ("turnaround", "tasks", "bed-waits"):
        r = client.get(f"/api/kpi/{report}", params=params, headers=admin)
        assert r.status_code == 422, (report, r.status_code, r.text)


def test_a_decided_at_that_cannot_be_stored_is_refused_not_500(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    r = client.post(
        "/api/bed-requests",
        headers=admin,
        json={
            "patient": {"local_id": "OLD1"},
            "site": "ACU1",
            "specialty": "general medicine",
            "decided_at": "0001-01-01T00:00:00+01:00",
        },
    )
    assert r.status_code == 422, r.text


# --- PostgreSQL: lock order between a task action and a bed move -----------------------------


def test_a_task_tap_and_an_undone_discharge_do_not_deadlock(
    small: Runtime, client: TestClient, admin: Headers, backend: str
) -> None:
    """TaskService.act locks the task, then the bed (_move_bed); a bed move (here HL7 A13,
    discharge cancelled) locks the bed, then its reactor locks the task
    (open_task_for_bed ... FOR UPDATE). Interleaved, PostgreSQL finds a deadlock and one of
    the two is refused with 'a deadlock ... try again' after a second's stall."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE")
    stay = admit(client, admin, "ACU1-AMU-06", "DL1")
    discharge(client, admin, stay)
    [task] = tasks(client, admin)
    moves = small.tasks.moves
    real_change_state = moves.change_state
    a_has_task, b_has_bed = threading.Event(), threading.Event()
    errors: dict[str, str] = {}

    def change_state(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is tapper_thread[0]:
            a_has_task.set()
            b_has_bed.wait(5)
        return real_change_state(*args, **kwargs)

    def tap() -> None:
        try:
            small.tasks.act(task["id"], Action.START, SYSTEM)
        except Conflict as exc:
            errors["tap"] = exc.message

    def undo_discharge() -> None:
        a_has_task.wait(5)
        try:
            with small.db.transaction() as tx:  # as HL7 A13 does
                locked = lock_stay(tx.session, stay)
                assert locked is not None
                small.capacity.moves.cancel_discharge(tx, locked, SYSTEM)
                b_has_bed.set()
        except Conflict as exc:
            errors["undo"] = exc.message

    tapper_thread: list[threading.Thread] = []
    a = threading.Thread(target=tap)
    b = threading.Thread(target=undo_discharge)
    tapper_thread.append(a)
    moves.change_state = change_state  # type: ignore[method-assign]
    try:
        a.start()
        b.start()
        a.join(30)
        b.join(30)
    finally:
        del moves.change_state
    assert not any("deadlock" in m for m in errors.values()), errors


def test_a_team_configured_after_the_first_discharge_gets_the_cleaning(
    small: Runtime, client: TestClient, admin: Headers
) -> None:
    """The feeds run before the trust loads its teams file: the first discharge makes the
    default 'ACU1-housekeeping'. The trust then configures its real team; team_for_site picks
    'the first by code', so a team whose code sorts after the default never gets a task."""
    first = admit(client, admin, "ACU1-AMU-01", "T1")
    discharge(client, admin, first)
    r = client.put(
        "/api/teams",
        headers=admin,
        json={
            "teams": [
                {"code": "ACU1-wards-hk", "name": "HK", "kind": "housekeeping", "site": "ACU1"}
            ]
        },
    )
    assert r.status_code == 200, r.text
    second = admit(client, admin, "ACU1-AMU-02", "T2")
    discharge(client, admin, second)
    newest = [t for t in tasks(client, admin) if t["bed"] == "ACU1-AMU-02"]
    assert [t["team"] for t in newest] == ["ACU1-wards-hk"]


def test_a_team_configured_earlier_in_the_same_transaction_is_the_one_found(
    small: Runtime,
) -> None:
    """team_for_site reads without flushing what is pending (so a batch's rows go together),
    except a team changed in the same transaction, which it must see."""
    with small.db.transaction() as tx:
        s = tx.session
        site = s.scalars(select(Site).where(Site.code == "ACU1")).one()
        made = upsert(s, TeamSpec(code="ACU1-hk", name="HK", kind="housekeeping", site="ACU1"))
        assert team_for_site(s, site.id, "housekeeping") is made
        assert not s.scalars(select(Team).where(Team.auto)).all()  # no default team made
