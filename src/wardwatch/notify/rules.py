"""Rules applied to one event: which notifications it makes, to whom, saying what (pure code).

An event's *fields* are its data (scalars only), its ``from_state``, ``to_state`` and
``reason``, then ``site`` and ``ward`` (codes) and ``type`` (the event type, which wins over
a data field of that name). ``when`` filters compare those fields as text; targets and
subjects are filled from them. A target whose template names a missing field is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wardwatch.notify.config import (
    AUDIENCE,
    DEFAULT_EMAIL,
    EMAIL,
    PLACEHOLDER,
    Channel,
    EmailChannel,
    NotifyConfig,
    Rule,
)

#: The only event fields a notification body carries: codes and ids, never patient data.
BODY_FIELDS = (
    "task",
    "kind",
    "team",
    "priority",
    "status",
    "bed",
    "cleaning",
    "summary",
    "level",
    "escalate_to",
    "request",
    "alert",
    "severity",
    "due_at",
    "from_state",
    "to_state",
    "handover",
    "incident",
    "vehicle",
    "minutes",
    "waited",
    "release",
    "scope",
    "previous",
    "score",
    "message",
    "message_type",
    "ack",
)
FEED = "feed"
EMAIL_CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class Planned:
    """One notification a rule asks for."""

    rule: str
    channel: str  # "feed", "email" or a configured channel's name
    kind: str  # feed | webhook | email
    audience: str  # feed audience, email address, or the webhook channel's name
    subject: str


@dataclass(frozen=True, slots=True)
class Skipped:
    rule: str
    target: str
    missing: str  # the field the template needed, or why the value was refused


def event_fields(
    type: str,
    data: dict[str, Any] | None,
    *,
    site: str | None,
    ward: str | None,
    states: dict[str, str | None],
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in (data or {}).items():
        if isinstance(value, bool):
            fields[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            fields[key] = str(value)
    for key, state in states.items():
        if state is not None:
            fields[key] = state
    if site:
        fields["site"] = site
    if ward:
        fields["ward"] = ward
    fields["type"] = type
    return fields


def render(template: str, fields: dict[str, str]) -> str | None:
    """``template`` filled from ``fields``; None if it names a field that is missing."""
    missing = [m for m in PLACEHOLDER.findall(template) if not fields.get(m)]
    if missing:
        return None
    return PLACEHOLDER.sub(lambda m: fields[m.group(1)], template)


def first_missing(template: str, fields: dict[str, str]) -> str:
    return next((m for m in PLACEHOLDER.findall(template) if not fields.get(m)), "?")


def matches(rule: Rule, fields: dict[str, str]) -> bool:
    if not rule.matches_type(fields["type"]):
        return False
    for key, expected in rule.when.items():
        allowed = expected if isinstance(expected, list) else [expected]
        if fields.get(key) not in {_text(v) for v in allowed}:
            return False
    return True


def plan(config: NotifyConfig, fields: dict[str, str]) -> tuple[list[Planned], list[Skipped]]:
    """The notifications ``config`` makes for an event; one per channel and audience."""
    planned: list[Planned] = []
    skipped: list[Skipped] = []
    seen: set[tuple[str, str]] = set()
    for rule in config.rules:
        if not matches(rule, fields):
            continue
        subject = _subject(rule, fields)
        for target in rule.notify:
            for item in _expand(rule, target, config, fields, subject, skipped):
                if (item.channel, item.audience) not in seen:
                    seen.add((item.channel, item.audience))
                    planned.append(item)
    return planned, skipped


def _expand(
    rule: Rule,
    target: str,
    config: NotifyConfig,
    fields: dict[str, str],
    subject: str,
    skipped: list[Skipped],
) -> list[Planned]:
    kind, _, rest = target.partition(":")
    if kind == FEED:
        audience = render(rest, fields)
        if audience is None or not AUDIENCE.match(audience):
            why = first_missing(rest, fields) if audience is None else "bad audience"
            skipped.append(Skipped(rule.name, target, why))
            return []
        return [Planned(rule.name, FEED, FEED, audience, subject)]
    channel: Channel
    if kind == EMAIL_CHANNEL and rest:
        channel, name, addresses = DEFAULT_EMAIL, EMAIL_CHANNEL, [rest]
    else:
        channel, name = config.channels[target], target
        addresses = channel.to if isinstance(channel, EmailChannel) else [name]
    if not isinstance(channel, EmailChannel):
        return [Planned(rule.name, name, "webhook", name, subject)]
    out = []
    for template in addresses:
        address = render(template, fields)
        if address is None or not EMAIL.match(address):
            why = first_missing(template, fields) if address is None else "bad address"
            skipped.append(Skipped(rule.name, target, why))
            continue
        out.append(Planned(rule.name, name, EMAIL_CHANNEL, address, subject))
    return out


def _subject(rule: Rule, fields: dict[str, str]) -> str:
    if rule.subject:
        text = render(rule.subject, fields)
        if text:
            return text[:300]
    summary = fields.get("summary")
    if summary:
        return summary[:300]
    where = " ".join(fields[k] for k in ("site", "ward", "bed") if k in fields)
    return f"{fields['type']} {where}".strip()[:300]


def body(fields: dict[str, str], data: dict[str, Any] | None) -> dict[str, Any]:
    """What a notification says about its event: the listed fields only, typed as logged."""
    raw = dict(data or {})
    out: dict[str, Any] = {"event": fields["type"]}
    for key in ("site", "ward"):
        if key in fields:
            out[key] = fields[key]
    for key in BODY_FIELDS:
        value = raw.get(key, fields.get(key))
        if isinstance(value, str | int | float | bool):
            out[key] = value
    return out


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
