"""Reading together: members.share_progress, notes, digests, and channel posts in the outbox
(outbox.channel; member_id NULL for a post to the lab channel; kinds digest and note).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('welcome', 'weekly', 'notice')"
NEW_KINDS = "kind IN ('welcome', 'weekly', 'notice', 'digest', 'note')"


def upgrade() -> None:
    """Add the share switch, the notes and digests tables, and channel posts to the outbox."""
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("share_progress", sa.Boolean(), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("channel", sa.String(), nullable=True))
        batch.alter_column("member_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint("ck_outbox_kind", type_="check")
        batch.create_check_constraint("ck_outbox_kind", NEW_KINDS)
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_notes_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index(op.f("ix_notes_item_id_created_at"), "notes", ["item_id", "created_at"])
    op.create_table(
        "digests",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("week", sa.String(), nullable=False),
        sa.Column("pick_item_id", sa.String(), nullable=True),
        sa.Column("pick_by", sa.Integer(), nullable=True),
        sa.Column("item_id", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("platform", "channel", "week", name=op.f("pk_digests")),
    )


def downgrade() -> None:
    """Drop them (channel posts in the ledger go with the column)."""
    op.drop_table("digests")
    op.drop_index(op.f("ix_notes_item_id_created_at"), table_name="notes")
    op.drop_table("notes")
    op.execute("DELETE FROM outbox WHERE member_id IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("ck_outbox_kind", type_="check")
        batch.create_check_constraint("ck_outbox_kind", OLD_KINDS)
        batch.alter_column("member_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("channel")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("share_progress")
