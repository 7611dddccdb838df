"""DM channels kept with members (members.dm_channel), so no process opens one twice.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add members.dm_channel (NULL until the bot first opens a DM with the member)."""
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("dm_channel", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop members.dm_channel."""
    with op.batch_alter_table("members") as batch:
        batch.drop_column("dm_channel")
