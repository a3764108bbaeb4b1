"""Settings from the environment (prefix ``WARDWATCH_``). No I/O at import time."""

from __future__ import annotations

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
    escalation_interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often overdue tasks are looked for"
    )
    mllp_allowed_peers: str | None = Field(
        default=None,
        description="comma-separated IP addresses allowed to connect to the MLLP listener "
        "(unset: any peer that can reach the port)",
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
