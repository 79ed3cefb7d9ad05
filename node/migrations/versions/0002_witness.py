"""Witnessing: the last checkpoint this node cosigned, and the split views it has seen.

``node_witness_state`` holds one row per log origin (a follower witnesses one log):
the checkpoint it last cosigned, compare-and-swapped by node.witnessing.WitnessStore.
``node_split_views`` keeps the evidence of each split view (two signed notes), never
deleted. Written out in full, not derived from the models (see 0001).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "node_witness_state",
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("origin"),
    )
    op.create_table(
        "node_split_views",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL on PostgreSQL, as create_all
        sa.Column("detected", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("note_a", sa.String(), nullable=False),
        sa.Column("note_b", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("node_split_views")
    op.drop_table("node_witness_state")
