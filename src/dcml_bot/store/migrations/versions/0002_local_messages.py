"""The built-in local platform's message store.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create local_messages."""
    op.create_table(
        "local_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_local_messages"),
        sa.UniqueConstraint("key", name="uq_local_messages_key"),
    )
    op.create_index("ix_local_messages_user_id", "local_messages", ["user_id"])


def downgrade() -> None:
    """Drop local_messages."""
    op.drop_index("ix_local_messages_user_id", table_name="local_messages")
    op.drop_table("local_messages")
