"""Credit information (node.credit): consents, buyer lights, exporter indicators, and the
log of indicator reads. Projections of the ledger, rebuilt by replay. Written out in full.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "node_consents",
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("exporter_id", sa.String(length=32), nullable=False),
        sa.Column("bank", sa.String(length=64), nullable=False),
        sa.Column("insurer", sa.String(length=64), nullable=False),
        sa.Column("valid_until", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("granted_hash", sa.String(length=64), nullable=False),
        sa.Column("revoked_hash", sa.String(length=64), nullable=True),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    with op.batch_alter_table("node_consents") as batch:
        batch.create_index("ix_node_consents_exporter_id", ["exporter_id"], unique=False)
        batch.create_index("ix_node_consents_bank", ["bank"], unique=False)
    op.create_table(
        "node_buyer_lights",
        sa.Column("buyer_key", sa.String(length=256), nullable=False),
        sa.Column("buyer_code", sa.String(length=256), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("light", sa.String(length=8), nullable=False),
        sa.Column("since", sa.String(length=24), nullable=True),
        sa.Column("why", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_key"),
    )
    op.create_table(
        "node_exporter_indicators",
        sa.Column("exporter_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("exporter_id"),
    )
    op.create_table(
        "node_indicator_reads",
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("bank", sa.String(length=64), nullable=False),
        sa.Column("exporter_id", sa.String(length=32), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("entry_hash"),
    )
    with op.batch_alter_table("node_indicator_reads") as batch:
        batch.create_index("ix_node_indicator_reads_exporter_id", ["exporter_id"], unique=False)

    op.create_table(
        "node_alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("buyer_key", sa.String(length=256), nullable=False),
        sa.Column("buyer_code", sa.String(length=256), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("exporter_id", sa.String(length=32), nullable=True),
        sa.Column("visible_to", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("ts", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("node_alert_events") as batch:
        batch.create_index("ix_node_alert_events_idx", ["idx"], unique=False)
        batch.create_index("ix_node_alert_events_buyer_key", ["buyer_key"], unique=False)


def downgrade() -> None:
    for table in (
        "node_alert_events",
        "node_indicator_reads",
        "node_exporter_indicators",
        "node_buyer_lights",
        "node_consents",
    ):
        op.drop_table(table)
