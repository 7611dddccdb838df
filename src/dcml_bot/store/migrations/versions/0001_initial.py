"""Initial schema: members, progress, outbox, processed_events.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the four tables."""
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("enrolled", sa.Boolean(), server_default=sa.false(), nullable=False),
        _timestamp("opted_out_at", nullable=True),
        _timestamp("joined_at", nullable=False),
        _timestamp("onboarded_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
        sa.UniqueConstraint("platform", "user_id", name="uq_members_platform_user_id"),
    )
    op.create_table(
        "progress",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("snoozed_week", sa.String(), nullable=True),
        _timestamp("updated_at", nullable=False),
        sa.CheckConstraint(
            "state IN ('read', 'skipped', 'snoozed', 'sent')", name="ck_progress_state"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name="fk_progress_member_id_members",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "item_id", name="pk_progress"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("week", sa.String(), nullable=True),
        sa.Column("item_id", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        _timestamp("lease_until", nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("sent_at", nullable=True),
        sa.Column("platform_message_id", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("retry_at", nullable=True),
        sa.CheckConstraint("kind IN ('welcome', 'weekly')", name="ck_outbox_kind"),
        sa.CheckConstraint(
            "status IN ('claimed', 'sent', 'failed', 'dead')", name="ck_outbox_status"
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name="fk_outbox_member_id_members"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_member_id", "outbox", ["member_id"])
    op.create_index("ix_outbox_status_retry_at", "outbox", ["status", "retry_at"])
    op.create_index("ix_outbox_week_kind", "outbox", ["week", "kind"])
    op.create_table(
        "processed_events",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        _timestamp("received_at", nullable=False),
        sa.PrimaryKeyConstraint("platform", "event_id", name="pk_processed_events"),
    )
    op.create_index("ix_processed_events_received_at", "processed_events", ["received_at"])


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_index("ix_processed_events_received_at", table_name="processed_events")
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_week_kind", table_name="outbox")
    op.drop_index("ix_outbox_status_retry_at", table_name="outbox")
    op.drop_index("ix_outbox_member_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("progress")
    op.drop_table("members")
