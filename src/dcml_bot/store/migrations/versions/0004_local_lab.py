"""The local web lab: a channel on local messages (DM or typed command) and a small state table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add local_messages.channel and local_state."""
    with op.batch_alter_table("local_messages") as batch:
        batch.add_column(sa.Column("channel", sa.String(), nullable=False, server_default="dm"))
    op.create_table(
        "local_state",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_local_state"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("local_state")
    with op.batch_alter_table("local_messages") as batch:
        batch.drop_column("channel")
