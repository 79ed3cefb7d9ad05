"""Alert subscriptions (node.alerts): subscriptions, webhook deliveries and the dispatch
cursor. Operational tables, not projections (replay leaves them alone). Written out in full.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "node_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("node_subscriptions") as batch:
        batch.create_index("ix_node_subscriptions_org", ["org"], unique=False)
    op.create_table(
        "node_alert_deliveries",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.String(length=24), nullable=False),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("delivered_at", sa.String(length=24), nullable=True),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", "subscription_id"),
    )
    with op.batch_alter_table("node_alert_deliveries") as batch:
        batch.create_index("ix_node_alert_deliveries_due", ["status", "next_at"], unique=False)
    op.create_table(
        "node_alert_cursor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in ("node_alert_cursor", "node_alert_deliveries", "node_subscriptions"):
        op.drop_table(table)
