"""HTTP routes for tasks, teams and escalations: thin wrappers over the task service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.roles import Role
from wardwatch.auth.service import Principal
from wardwatch.core.errors import Forbidden
from wardwatch.runtime import Runtime
from wardwatch.tasks.rules import Action
from wardwatch.tasks.schemas import (
    AcknowledgeIn,
    EscalationRead,
    TaskActionIn,
    TaskCreate,
    TaskRead,
    TaskUpdate,
    TeamRead,
    TeamsFile,
)

router = APIRouter(prefix="/api", tags=["tasks"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
Worker = Annotated[Principal, principal_for(P.TASKS_WORK)]
Manager = Annotated[Principal, principal_for(P.TASKS_MANAGE)]

#: Roles that work only their own kind of task (others with tasks:manage may do any).
ROLE_TASK_KINDS: dict[Role, str] = {Role.HOUSEKEEPING: "cleaning", Role.PORTER: "transfer"}


@router.get("/tasks")
def list_tasks(
    rt: RuntimeDep,
    _: Reader,
    team: str | None = None,
    site: str | None = None,
    kind: str | None = None,
    bed_id: str | None = None,
    status: Annotated[str, Query(pattern="^(open|all)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[TaskRead]:
    """Tasks, open ones in queue order (clean next first, then oldest); ``status=all``
    lists every task, newest first."""
    return rt.tasks.list_tasks(
        team=team, site=site, kind=kind, bed_id=bed_id, open_only=status == "open", limit=limit
    )


@router.get("/tasks/{task_id}")
def get_task(task_id: str, rt: RuntimeDep, _: Reader) -> TaskRead:
    return rt.tasks.get(task_id)


@router.post("/tasks", status_code=201)
def create_task(req: TaskCreate, rt: RuntimeDep, who: Manager) -> TaskRead:
    """A task for any team (cleaning and porter transfers are made automatically)."""
    return rt.tasks.create_other(req, who.actor)


@router.patch("/tasks/{task_id}")
def update_task(task_id: str, req: TaskUpdate, rt: RuntimeDep, who: Manager) -> TaskRead:
    """Change an open task's priority, or a cleaning task's type (standard/infection)."""
    return rt.tasks.update(task_id, req, who.actor)


def _act(rt: Runtime, task_id: str, action: Action, who: Principal, body: TaskActionIn) -> TaskRead:
    kind = ROLE_TASK_KINDS.get(who.role)
    if kind is not None and not who.can(P.TASKS_MANAGE):
        task = rt.tasks.get(task_id)
        if task.kind != kind:
            raise Forbidden(
                f"your role ({who.role.value}) works {kind} tasks; this is a {task.kind} task"
            )
    return rt.tasks.act(task_id, action, who.actor, version=body.version, reason=body.reason)


@router.post("/tasks/{task_id}/accept")
def accept(task_id: str, rt: RuntimeDep, who: Worker, body: TaskActionIn | None = None) -> TaskRead:
    return _act(rt, task_id, Action.ACCEPT, who, body or TaskActionIn())


@router.post("/tasks/{task_id}/start")
def start(task_id: str, rt: RuntimeDep, who: Worker, body: TaskActionIn | None = None) -> TaskRead:
    """Start (accepting it too if nobody had); a cleaning task's bed becomes 'cleaning'."""
    return _act(rt, task_id, Action.START, who, body or TaskActionIn())


@router.post("/tasks/{task_id}/done")
def done(task_id: str, rt: RuntimeDep, who: Worker, body: TaskActionIn | None = None) -> TaskRead:
    """Finish; a cleaning task's bed becomes available, a porter transfer's patient arrives."""
    return _act(rt, task_id, Action.DONE, who, body or TaskActionIn())


@router.post("/tasks/{task_id}/cancel")
def cancel(task_id: str, body: TaskActionIn, rt: RuntimeDep, who: Manager) -> TaskRead:
    return rt.tasks.act(task_id, Action.CANCEL, who.actor, version=body.version, reason=body.reason)


@router.get("/teams")
def teams(rt: RuntimeDep, _: Reader) -> list[TeamRead]:
    return rt.tasks.teams()


@router.put("/teams")
def load_teams(spec: TeamsFile, rt: RuntimeDep, who: Manager) -> list[TeamRead]:
    """Create or update teams (time limits, supervisor); teams not named are kept."""
    return rt.tasks.load_teams(spec, who.actor)


@router.get("/escalations")
def escalations(
    rt: RuntimeDep, _: Reader, status: Annotated[str, Query(pattern="^(open|all)$")] = "open"
) -> list[EscalationRead]:
    return rt.tasks.list_escalations(open_only=status == "open")


@router.post("/escalations/{escalation_id}/acknowledge")
def acknowledge(
    escalation_id: str, rt: RuntimeDep, who: Manager, body: AcknowledgeIn | None = None
) -> EscalationRead:
    return rt.tasks.acknowledge(escalation_id, who.actor, (body or AcknowledgeIn()).note)
