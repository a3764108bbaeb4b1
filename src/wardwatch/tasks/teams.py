"""Teams: found (or made with defaults) for a site and a kind; loaded from a teams file."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Site
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.tasks.models import Team
from wardwatch.tasks.rules import DEFAULT_LIMITS, limits_for
from wardwatch.tasks.schemas import TeamRead, TeamsFile, TeamSpec

#: ``Session.info`` key: the teams this transaction has found, by (site id, kind).
TEAMS_SEEN = "wardwatch.teams"
DEFAULT_NAMES = {
    "housekeeping": "Housekeeping",
    "porters": "Porters",
    "other": "Site team",
    "virtual_ward": "Virtual-ward clinical team",
}


def team_for_site(s: Session, site_id: str, kind: str) -> Team:
    """The site's team of ``kind``: a configured one (the first by code) before one WardWatch
    made; if there is none, a default team is made, so that a discharge never lacks
    someone to clean the bed. Remembered for the transaction (a batch of HL7 messages asks
    for the same few teams many times)."""
    memo: dict[tuple[str, str], Team] = s.info.setdefault(TEAMS_SEEN, {})
    team = memo.get((site_id, kind))
    if team is None:
        team = memo[(site_id, kind)] = _find_or_make(s, site_id, kind)
    return team


def _find_or_make(s: Session, site_id: str, kind: str) -> Team:
    team = _find(s, site_id, kind)
    if team is not None:
        return team
    site = s.get_one(Site, site_id)
    try:
        with s.begin_nested():  # another transaction may be making the same team right now
            s.add(
                Team(
                    id=new_id("team"),
                    code=f"{site.code}-{kind.replace('_', '-')}",
                    name=f"{site.name} {DEFAULT_NAMES[kind].lower()}",
                    kind=kind,
                    site_id=site.id,
                    supervisor_minutes=15,
                    auto=True,
                )
            )
    except IntegrityError:
        pass  # it did: use theirs
    team = _find(s, site_id, kind)
    if team is None:
        raise Conflict(f"could not find or make a {kind} team for site {site.code}")
    return team


def _find(s: Session, site_id: str, kind: str) -> Team | None:
    query = (
        select(Team)
        .where(Team.site_id == site_id, Team.kind == kind)
        .order_by(Team.auto, Team.code)
    )
    if any(isinstance(o, Team) for o in (*s.new, *s.dirty)):
        return s.scalars(query).first()  # a team changed here: written first (autoflush)
    # Otherwise without a flush: nothing pending can change the answer (a team made above
    # is flushed by its savepoint), and a batch's rows then go together at its end.
    with s.no_autoflush:
        return s.scalars(query).first()


def team_by_code(s: Session, code: str) -> Team:
    team = s.scalars(select(Team).where(Team.code == code)).first()
    if team is None:
        raise NotFound(f"no team with code {code!r}")
    return team


def upsert(s: Session, spec: TeamSpec) -> Team:
    site_id = None
    if spec.site is not None:
        site_id = s.scalars(select(Site.id).where(Site.code == spec.site)).first()
        if site_id is None:
            raise ValidationFailed(f"team {spec.code}: no site with code {spec.site!r}")
    team = s.scalars(select(Team).where(Team.code == spec.code)).first()
    if team is None:
        team = Team(id=new_id("team"), code=spec.code)
        s.add(team)
    team.name = spec.name
    team.kind = spec.kind
    team.site_id = site_id
    team.supervisor_email = spec.supervisor_email
    team.supervisor_minutes = spec.supervisor_minutes
    team.limits = {
        key: limit.model_dump(exclude_none=True) for key, limit in spec.limits.items()
    } or None
    team.auto = False
    for key in DEFAULT_LIMITS:
        kind, type_ = key.split("/", 1)
        got = limits_for(kind, type_, team.limits)
        if got["finish"] < got["accept"]:
            raise ValidationFailed(
                f"team {spec.code}: {key} must be finished no sooner than accepted "
                f"(accept {got['accept']} min, finish {got['finish']} min)"
            )
    return team


def parse_file(path: Path) -> TeamsFile:
    """Read and check a teams file; every problem is named with where it is."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"{path}: cannot read the teams file: {exc}") from exc
    try:
        return TeamsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationFailed(f"{path}: {problems}") from exc


def read(team: Team, site_code: str | None) -> TeamRead:
    return TeamRead(
        id=team.id,
        code=team.code,
        name=team.name,
        kind=team.kind,
        site=site_code,
        supervisor_email=team.supervisor_email,
        supervisor_minutes=team.supervisor_minutes,
        limits={
            f"{kind}/{type_}": limits_for(kind, type_, team.limits)
            for kind, type_ in (key.split("/", 1) for key in DEFAULT_LIMITS)
            if kind in KINDS_FOR_TEAM.get(team.kind, ())
        },
    )


KINDS_FOR_TEAM = {
    "housekeeping": ("cleaning",),
    "porters": ("transfer",),
    "other": ("other",),
    "virtual_ward": ("other",),
}
