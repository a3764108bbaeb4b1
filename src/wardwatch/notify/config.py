"""The notification rules file: channels and rules, validated strictly when it is loaded.

```yaml
channels:
  housekeeping-pager: {type: webhook, url: "https://...", secret_env: HK_HOOK_SECRET}
  bed-managers: {type: email, to: [bed.managers@example.nhs.uk]}
rules:
  - name: cleaning needed
    on: [task.created]
    when: {kind: cleaning}
    notify: ["feed:team:{team}", housekeeping-pager]
```

A target is ``feed:<audience>``, ``email:<address>`` or the name of a channel. Audiences and
addresses are templates filled from the event (see :mod:`wardwatch.notify.rules`). Every
problem is reported with the file, line and field it was found at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

from wardwatch.core.errors import ValidationFailed

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
AUDIENCE_KINDS = ("team", "role", "supervisor", "site", "ward")
AUDIENCE = re.compile(r"^(team|role|supervisor|site|ward):[A-Za-z0-9 ._@+-]{1,200}$")
EMAIL = re.compile(r"^[^@\s<>,;]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")
CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESERVED_CHANNELS = ("feed", "email")
Scalar = str | int | float | bool


class RulesError(ValidationFailed):
    """A rules file that cannot be used; ``problems`` name the line and field of each."""


def template_problem(template: str, what: str) -> None:
    """Raise ValueError unless ``template`` uses only ``{name}`` placeholders."""
    rest = PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise ValueError(f"{what} {template!r}: use {{name}} placeholders only")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    url: HttpUrl
    #: The environment variable holding the HMAC secret (never stored in the database).
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(default=3600.0, gt=0, le=86400)


class EmailChannel(_Strict):
    type: Literal["email"]
    to: list[str] = Field(min_length=1, max_length=50)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(default=3600.0, gt=0, le=86400)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            template_problem(address, "address")
            if not PLACEHOLDER.search(address) and not EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value


Channel = Annotated[WebhookChannel | EmailChannel, Field(discriminator="type")]

#: Ad-hoc ``email:<address>`` targets use these delivery settings.
DEFAULT_EMAIL = EmailChannel(type="email", to=["{address}"])


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=120)
    #: Event types; ``task.*`` matches every type starting ``task.``; ``*`` matches all.
    on: list[str] = Field(min_length=1)
    #: Equality filters on the event's fields (data, site, ward, type); a list means any of.
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    notify: list[str] = Field(min_length=1)
    #: The subject line (a template); default: the event's summary.
    subject: str | None = Field(default=None, max_length=300)

    @field_validator("on")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for t in value:
            if not re.fullmatch(r"\*|[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?", t):
                raise ValueError(f"{t!r} is not an event type (like task.created or task.*)")
        return value

    def matches_type(self, event_type: str) -> bool:
        for t in self.on:
            if t == "*" or t == event_type:
                return True
            if t.endswith(".*") and event_type.startswith(t[:-1]):
                return True
        return False


class NotifyConfig(_Strict):
    channels: dict[str, Channel] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)


def target_problem(target: str, channels: dict[str, Any]) -> str | None:
    """Why ``target`` cannot be used, or None."""
    kind, sep, rest = target.partition(":")
    try:
        if sep and kind == "feed":
            template_problem(rest, "audience")
            if not AUDIENCE.match(PLACEHOLDER.sub("x", rest)):
                kinds = ", ".join(AUDIENCE_KINDS)
                return f"feed audience {rest!r} must be <kind>:<name> with kind one of {kinds}"
            return None
        if sep and kind == "email":
            template_problem(rest, "address")
            if not PLACEHOLDER.search(rest) and not EMAIL.match(rest):
                return f"{rest!r} is not an email address"
            return None
    except ValueError as exc:
        return str(exc)
    if target in channels:
        return None
    known = ", ".join(sorted(channels)) or "none defined"
    return f"unknown channel {target!r} (channels: {known}; or feed:..., email:...)"


# --- loading, with line numbers ------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: ``on:`` is a key, not ``True``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_rules(path: Path) -> NotifyConfig:
    """Read and check a rules file; :class:`RulesError` says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read the notification rules {path}: {exc}") from None
    return parse_rules(text, source=str(path))


def parse_rules(text: str, *, source: str = "<rules>") -> NotifyConfig:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a mapping with 'channels' and 'rules'")
    try:
        config = NotifyConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(source, node, err["loc"], err["msg"]) for err in exc.errors()]
        raise RulesError(f"{source}: invalid notification rules", problems) from None
    problems = []
    for name in config.channels:
        if not CHANNEL_NAME.match(name) or name in RESERVED_CHANNELS:
            problems.append(
                _problem(
                    source,
                    node,
                    ("channels", name),
                    "a channel name is lower-case "
                    "letters, digits, - and _, and not 'feed' or 'email'",
                )
            )
    for i, rule in enumerate(config.rules):
        for j, target in enumerate(rule.notify):
            if (why := target_problem(target, config.channels)) is not None:
                problems.append(_problem(source, node, ("rules", i, "notify", j), why))
        if rule.subject is not None:
            try:
                template_problem(rule.subject, "subject")
            except ValueError as exc:
                problems.append(_problem(source, node, ("rules", i, "subject"), str(exc)))
    if problems:
        raise RulesError(f"{source}: invalid notification rules", problems)
    return config


def _problem(source: str, root: yaml.Node | None, loc: tuple[Any, ...], msg: str) -> str:
    where = ".".join(str(p) for p in loc)
    msg = msg.removeprefix("Value error, ")
    line = _line_of(root, loc)
    return f"{source}:{line}: {where}: {msg}" if line else f"{source}: {where}: {msg}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest node ``loc`` reaches (parts naming no node are skipped)."""
    if node is None:
        return None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    child = value
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is not None:
            node = child
    return int(node.start_mark.line) + 1


# --- the defaults --------------------------------------------------------------------------

DEFAULT_RULES_YAML = """\
# WardWatch's built-in notification rules (used when WARDWATCH_NOTIFY_FILE is unset).
rules:
  - name: task for the team
    on: [task.created, task.priority_changed, task.cancelled]
    notify: ["feed:team:{team}"]
  - name: bed is clean
    on: [task.done]
    when: {kind: cleaning}
    notify: ["feed:role:control-centre", "feed:team:{site}-porters"]
  - name: escalation to the supervisor
    on: [task.escalated]
    when: {level: 1}
    notify: ["feed:team:{team}", "feed:supervisor:{team}"]
  - name: escalation to the control centre
    on: [task.escalated]
    when: {level: 2}
    notify: ["feed:role:control-centre"]
  - name: escalation email
    on: [task.escalated]
    notify: ["email:{supervisor_email}"]
  - name: virtual-ward alert for the team
    on: [alert.raised, alert.upgraded]
    notify: ["feed:team:{team}"]
  - name: virtual-ward alert to the senior clinician
    on: [alert.escalated]
    when: {level: 1}
    notify: ["feed:team:{team}", "feed:supervisor:{team}", "email:{supervisor_email}"]
  - name: virtual-ward alert to the control centre
    on: [alert.escalated]
    when: {level: 2}
    notify: ["feed:role:control-centre"]
  - name: ambulance crew waiting (30 min, 45 min release)
    on: [handover.delayed]
    notify: ["feed:role:control-centre", "feed:site:{site}"]
  - name: OPEL level changed
    on: [opel.changed]
    notify: ["feed:role:control-centre"]
  - name: HL7 message quarantined (the first while the queue was empty)
    on: [hl7.quarantined]
    when: {first: "yes"}
    notify: ["feed:role:integration", "feed:role:control-centre"]
  - name: HL7 messages still waiting in quarantine
    on: [hl7.quarantine_waiting]
    notify: ["feed:role:integration", "feed:role:control-centre"]
  - name: HL7 feed silent, or heard again
    on: [hl7.feed_silent, hl7.feed_resumed]
    notify: ["feed:role:integration", "feed:role:control-centre"]
"""


def default_rules() -> NotifyConfig:
    return parse_rules(DEFAULT_RULES_YAML, source="<built-in rules>")
