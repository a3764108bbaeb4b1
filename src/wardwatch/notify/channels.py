"""Where notifications go out: webhooks (signed JSON over HTTP) and email (SMTP).

Each channel sends one notification or raises :class:`DeliveryError` with a message that is
safe to store and show (it never contains the webhook URL or the secret). The dispatcher
owns retries; a channel only says how long to wait before the next attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from wardwatch.config import Settings
from wardwatch.notify.config import EmailChannel, WebhookChannel

SIGNATURE_HEADER = "X-WardWatch-Signature"
TIMESTAMP_HEADER = "X-WardWatch-Timestamp"
DELIVERY_HEADER = "X-WardWatch-Delivery"


class DeliveryError(Exception):
    """One attempt failed; ``str()`` is what is stored as ``last_error``."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed notification, as a channel needs it."""

    id: str
    channel: str
    kind: str
    audience: str
    subject: str
    message: dict[str, Any]  # the JSON a webhook receives; what an email says


class Channel(Protocol):
    max_attempts: int

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after ``attempts`` failed attempts."""
        ...

    async def send(self, item: Outgoing) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 over ``<timestamp>.<body>`` with the shared secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    *,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    expected = sign(secret, timestamp, body)
    return age <= tolerance_seconds and hmac.compare_digest(expected, signature)


def _backoff(base: float, cap: float, attempts: int) -> timedelta:
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


class WebhookSender:
    """POSTs the notification as JSON, signed; a hanging receiver costs at most the timeout."""

    def __init__(
        self,
        config: WebhookChannel,
        client: httpx.AsyncClient,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.env = os.environ if env is None else env
        self.max_attempts = config.max_attempts

    def backoff(self, attempts: int) -> timedelta:
        return _backoff(self.config.backoff_seconds, self.config.max_backoff_seconds, attempts)

    async def send(self, item: Outgoing) -> None:
        cfg = self.config
        secret = self.env.get(cfg.secret_env)
        if not secret:
            raise DeliveryError(
                f"the secret variable {cfg.secret_env} is not set, so nothing was sent"
            )
        body = json.dumps(item.message, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))  # transport time for replay checks, not domain time
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WardWatch-Webhook/1",
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: item.id,
        }
        try:
            async with asyncio.timeout(cfg.timeout_seconds):
                response = await self.client.post(
                    str(cfg.url),
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(cfg.timeout_seconds),
                )
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryError(f"no answer within {cfg.timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"could not reach the receiver ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"the receiver answered HTTP {response.status_code}")


class EmailSender:
    """Sends a plain-text email over SMTP (STARTTLS and login when configured)."""

    def __init__(self, config: EmailChannel, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.max_attempts = config.max_attempts

    def backoff(self, attempts: int) -> timedelta:
        return _backoff(self.config.backoff_seconds, self.config.max_backoff_seconds, attempts)

    async def send(self, item: Outgoing) -> None:
        await asyncio.to_thread(self._send, item)

    def _send(self, item: Outgoing) -> None:
        s = self.settings
        if not s.smtp_host:
            raise DeliveryError("email is not configured: set WARDWATCH_SMTP_HOST")
        msg = EmailMessage()
        msg["From"] = s.smtp_from
        msg["To"] = item.audience
        msg["Subject"] = f"[WardWatch] {item.subject}"
        msg[DELIVERY_HEADER] = item.id
        msg.set_content(email_text(item))
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_username:
                    password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                    smtp.login(s.smtp_username, password)
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            detail = str(exc)
            if s.smtp_password and s.smtp_password.get_secret_value():
                detail = detail.replace(s.smtp_password.get_secret_value(), "***")
            raise DeliveryError(f"SMTP {type(exc).__name__}: {detail}"[:500]) from None


def email_text(item: Outgoing) -> str:
    data = item.message.get("data", {})
    lines = [item.subject, ""]
    lines += [f"{key}: {value}" for key, value in data.items()]
    lines += ["", f"Notification {item.id} ({item.message.get('rule')}), sent by WardWatch."]
    return "\n".join(lines) + "\n"
