"""Settings from the environment (prefix ``WARDWATCH_``). No I/O at import time."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDWATCH_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; PostgreSQL when set, else SQLite in data_dir.",
    )
    data_dir: Path = Field(default=Path("./wardwatch-data"))
    occupancy_target: float = Field(default=0.92, gt=0, le=1)
    timezone: str = "Europe/London"
    sitrep_hour: int = Field(default=8, ge=0, le=23)
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    hl7_retention_days: int = Field(default=90, ge=1, description="keep raw HL7 this long")
    hl7_application: str = Field(default="WARDWATCH", description="MSH-3 of our ACKs")
    hl7_silence_minutes: float = Field(
        default=60.0,
        ge=0,
        le=7 * 24 * 60,
        description="report an HL7 sender (MSH-3|MSH-4) not heard for this long to the "
        "integration engineer and the control centre (0: never)",
    )
    hl7_quarantine_reminder_hours: float = Field(
        default=4.0,
        gt=0,
        le=168,
        description="while HL7 messages wait in quarantine, remind the integration engineer "
        "and the control centre this often",
    )
    escalation_interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often overdue tasks are looked for"
    )
    mllp_allowed_peers: str | None = Field(
        default=None,
        description="comma-separated IP addresses allowed to connect to the MLLP listener "
        "(unset: any peer that can reach the port)",
    )
    mllp_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the MLLP listener: with mllp_tls_key, the "
        "listener speaks MLLP over TLS only (unset: plain TCP)",
    )
    mllp_tls_key: Path | None = Field(default=None, description="PEM private key of it")
    mllp_tls_client_ca: Path | None = Field(
        default=None,
        description="PEM CA certificate(s): with TLS on, every sender must present a client "
        "certificate signed by one of them (mutual TLS); unset: any TLS client",
    )

    # --- notifications (notify/): rules file and SMTP ------------------------------------
    notify_file: Path | None = Field(
        default=None,
        description="YAML file of notification channels and rules (unset: built-in defaults)",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server (unset: no email)")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="wardwatch@localhost", description="envelope and From:")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=False, description="upgrade with STARTTLS first")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # --- virtual wards (virtualward/) ---------------------------------------------------
    vw_set_window_minutes: float = Field(
        default=15.0,
        gt=0,
        le=240,
        description="readings taken within this many minutes of the newest form one "
        "observation set for NEWS2",
    )
    vw_respond_emergency_minutes: int = Field(
        default=30, ge=1, le=1440, description="response target for NEWS2 7+ alerts"
    )
    vw_respond_urgent_minutes: int = Field(
        default=60,
        ge=1,
        le=1440,
        description="response target for NEWS2 5-6, a single 3, thresholds and trends",
    )
    vw_respond_routine_minutes: int = Field(
        default=240,
        ge=1,
        le=2880,
        description="response target for missed readings, stale data and low batteries",
    )
    vw_battery_low_pct: int = Field(default=20, ge=1, le=99)
    vw_stale_minutes: float = Field(
        default=30.0,
        gt=0,
        description="readings that arrive this much later than they were taken are stale",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT broker for device readings, e.g. mqtt://127.0.0.1:1883 (unset: off)",
    )
    mqtt_topic: str = Field(
        default="wardwatch/vitals/#", description="topic filter WardWatch subscribes to"
    )
    mqtt_client_id: str = Field(
        default="wardwatch",
        min_length=1,
        max_length=64,
        description="MQTT client identifier: the broker keeps this client's session (and "
        "the readings sent while WardWatch is down) under it; unique per running instance",
    )

    ingest_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="worker processes for FHIR Bundles of readings and HL7 v2 batches "
        "(PostgreSQL only; 0: handled in the server process). One server process uses one "
        "core; set this to the number of cores when readings arrive faster than ~10,000/s "
        "or ADT messages faster than ~130/s over several connections",
    )

    def mllp_tls(self) -> ssl.SSLContext | None:
        """The MLLP listener's TLS context, or None for plain TCP. A half or unreadable
        configuration is an error (ValueError naming the setting), never plain TCP."""
        if self.mllp_tls_cert is None and self.mllp_tls_key is None:
            if self.mllp_tls_client_ca is not None:
                raise ValueError("WARDWATCH_MLLP_TLS_CLIENT_CA needs _TLS_CERT and _TLS_KEY")
            return None
        if self.mllp_tls_cert is None or self.mllp_tls_key is None:
            raise ValueError("MLLP over TLS needs both WARDWATCH_MLLP_TLS_CERT and _TLS_KEY")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.mllp_tls_cert, self.mllp_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"MLLP TLS certificate or key not usable: {exc}") from None
        if self.mllp_tls_client_ca is not None:
            try:
                ctx.load_verify_locations(cafile=self.mllp_tls_client_ca)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"MLLP TLS client CA not usable: {exc}") from None
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def mllp_peers(self) -> frozenset[str] | None:
        if not self.mllp_allowed_peers:
            return None
        return frozenset(p.strip() for p in self.mllp_allowed_peers.split(",") if p.strip())

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'wardwatch.db').resolve()}"
