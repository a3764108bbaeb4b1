"""The people of the coordination loop, simulated: cleaners and porters who answer their
tasks with realistic delays (a few answer late, so escalations happen), a bed manager who
allocates waiting patients, and a control centre that acknowledges escalations.

Everything goes through the real services, with each simulated person as the actor, so the
event log, KPIs and live pages see exactly what real people would produce. Used by the demo
and by the test that replays a day of a 500-bed hospital.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import WardWatchError
from wardwatch.flow.service import FlowService
from wardwatch.tasks.rules import Action
from wardwatch.tasks.schemas import TaskRead
from wardwatch.tasks.service import TaskService

log = logging.getLogger(__name__)

#: Mean minutes to accept a task, by kind; 'clean next' is picked up faster.
ACCEPT_MEAN_MIN = {"cleaning": 8.0, "transfer": 4.0, "other": 10.0}
CLEAN_NEXT_ACCEPT_MEAN_MIN = 3.0
START_MEAN_MIN = {"cleaning": 4.0, "transfer": 3.0, "other": 5.0}
PORTER_TRIP_MIN = 12.0
#: The share of tasks nobody picks up for a long while (they escalate).
LATE_SHARE = 0.04
LATE_ACCEPT_MIN = (20.0, 55.0)
CONTROL_CENTRE_ACK_MIN = (3.0, 12.0)


@dataclass(slots=True)
class _Plan:
    accept_at: datetime
    start_at: datetime
    done_at: datetime
    who: Actor


class Crew:
    """Cleaners and porters answering their teams' tasks."""

    def __init__(self, tasks: TaskService, clock: Clock, rng: random.Random) -> None:
        self.tasks = tasks
        self.clock = clock
        self.rng = rng
        self._plans: dict[str, _Plan] = {}
        self.counts = {"accepted": 0, "started": 0, "done": 0}

    def step(self) -> None:
        now = self.clock.now()
        open_tasks = self.tasks.list_tasks(open_only=True, limit=1_000_000)
        seen = set()
        for task in open_tasks:
            seen.add(task.id)
            plan = self._plans.get(task.id)
            if plan is None:
                plan = self._plans[task.id] = self._plan(task)
            if task.status == "requested" and now >= plan.accept_at:
                self._act(task, Action.ACCEPT, plan.who, "accepted")
            elif task.status == "accepted" and now >= plan.start_at:
                self._act(task, Action.START, plan.who, "started")
            elif task.status == "in_progress" and now >= plan.done_at:
                self._act(task, Action.DONE, plan.who, "done")
        for gone in set(self._plans) - seen:
            del self._plans[gone]

    def _plan(self, task: TaskRead) -> _Plan:
        rng = self.rng
        if rng.random() < LATE_SHARE:
            accept = rng.uniform(*LATE_ACCEPT_MIN)
        elif task.priority == "clean_next":
            accept = rng.expovariate(1 / CLEAN_NEXT_ACCEPT_MEAN_MIN)
        else:
            accept = rng.expovariate(1 / ACCEPT_MEAN_MIN.get(task.kind, 8.0))
        start = accept + rng.expovariate(1 / START_MEAN_MIN.get(task.kind, 4.0))
        if task.kind == "transfer":
            work = PORTER_TRIP_MIN * rng.lognormvariate(0, 0.35)
        else:
            work = task.expected_minutes * rng.lognormvariate(0, 0.25)
        base = task.created_at
        role = {"cleaning": "housekeeping", "transfer": "porter"}.get(task.kind, "ward")
        who = Actor(name=f"{role}-{rng.randint(1, 12)}", role=role)
        return _Plan(
            accept_at=base + timedelta(minutes=accept),
            start_at=base + timedelta(minutes=start),
            done_at=base + timedelta(minutes=start + work),
            who=who,
        )

    def _act(self, task: TaskRead, action: Action, who: Actor, counter: str) -> None:
        try:
            self.tasks.act(task.id, action, who, version=task.version)
        except WardWatchError as exc:  # someone else got there first: as a person would
            log.debug("crew: %s %s skipped: %s", action.value, task.id, exc.message)
            return
        self.counts[counter] += 1


class BedManager:
    """Allocates each waiting patient the best bed available now; acknowledges escalations
    after a few minutes, as a control centre would."""

    ACTOR = Actor(name="bed-manager", role="control-centre")

    def __init__(
        self, flow: FlowService, tasks: TaskService, clock: Clock, rng: random.Random
    ) -> None:
        self.flow = flow
        self.tasks = tasks
        self.clock = clock
        self.rng = rng
        self._ack_at: dict[str, datetime] = {}
        self.counts = {"allocated": 0, "acknowledged": 0}

    def step(self) -> None:
        for req in self.flow.list_requests(open_only=True, limit=1_000_000):
            if req.status != "waiting":
                continue
            best = self.flow.suggestions(req.id, limit=1)
            if best and best[0].ready_in_minutes == 0:
                try:
                    self.flow.allocate(req.id, best[0].bed_id, self.ACTOR)
                except WardWatchError as exc:
                    log.debug("bed manager: allocation skipped: %s", exc.message)
                    continue
                self.counts["allocated"] += 1
        self._acknowledge()

    def _acknowledge(self) -> None:
        now = self.clock.now()
        for esc in self.tasks.list_escalations(open_only=True):
            due = self._ack_at.setdefault(
                esc.id, esc.raised_at + timedelta(minutes=self.rng.uniform(*CONTROL_CENTRE_ACK_MIN))
            )
            if now >= due:
                try:
                    self.tasks.acknowledge(esc.id, self.ACTOR, "chased the team")
                except WardWatchError:
                    continue
                self.counts["acknowledged"] += 1
