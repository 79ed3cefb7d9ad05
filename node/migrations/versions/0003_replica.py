"""A follower's replica (chain.replica): blocks as its institution may see them, the
entries it may read in full (the others by leaf hash only), and the Merkle nodes it
proves from. Written out in full, not derived from the models (see 0001).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "replica_blocks",
        sa.Column("height", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("height"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "replica_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("receipt", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "replica_nodes",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in ("replica_nodes", "replica_entries", "replica_blocks"):
        op.drop_table(table)
