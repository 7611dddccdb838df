"""Outbox rows of kind "notice" (once-only messages to admins, e.g. a refused catalog).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Allow kind 'notice'."""
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("ck_outbox_kind", type_="check")
        batch.create_check_constraint("ck_outbox_kind", "kind IN ('welcome', 'weekly', 'notice')")


def downgrade() -> None:
    """Back to welcome and weekly only."""
    op.execute("DELETE FROM outbox WHERE kind = 'notice'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("ck_outbox_kind", type_="check")
        batch.create_check_constraint("ck_outbox_kind", "kind IN ('welcome', 'weekly')")
