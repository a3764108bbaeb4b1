"""hl7 v2 feeds: each sending system and when it was last heard

A PAS feed that stops leaves the bed board stale while it looks live (hazard HAZ-035): the
server reports a feed not heard for a while. Feeds fill in as they send; one silent since
before this revision is reported once it has sent again and stops.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wardwatch.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hl7_feeds",
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("last_heard_at", wardwatch.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("silent_since", wardwatch.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_hl7_feeds")),
    )


def downgrade() -> None:
    op.drop_table("hl7_feeds")
