"""make the virtual ward's stored readings and NEWS2 scores append-only in the database

A reading, once acknowledged to its sender, and a score, once shown to a clinician, are
clinical records: correcting one is a new row, never an edit (hazard HAZ-V12). Until now
only the code kept them so; these triggers make the database refuse it too, as it already
does for the event and audit logs (revision 0002, whose PostgreSQL function this reuses).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 23:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("vw_readings", "vw_scores")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION wardwatch_append_only()"
            )
        return
    for table in TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows cannot be "
                f"changed or deleted'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        return
    for table in TABLES:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER {table}_no_{action}")
