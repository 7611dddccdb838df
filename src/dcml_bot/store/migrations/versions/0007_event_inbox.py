"""Join events kept until handled (processed_events.kind/payload/handled_at): a restart
replays what a shutdown left queued, so no welcome is lost.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add kind, payload and handled_at (NULL for the ids recorded before: nothing to replay)."""
    with op.batch_alter_table("processed_events") as batch:
        batch.add_column(sa.Column("kind", sa.String(), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch.add_column(sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop them (events still pending are forgotten)."""
    with op.batch_alter_table("processed_events") as batch:
        batch.drop_column("handled_at")
        batch.drop_column("payload")
        batch.drop_column("kind")
