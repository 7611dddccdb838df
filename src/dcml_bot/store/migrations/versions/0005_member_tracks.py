"""Tracks: the directions a member reads (members.tracks, NULL until chosen).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add members.tracks; existing members keep every row and their progress (NULL: common)."""
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("tracks", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop members.tracks."""
    with op.batch_alter_table("members") as batch:
        batch.drop_column("tracks")
