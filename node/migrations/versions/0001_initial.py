"""The initial pfnode schema: ledger tables (chain.storage) and node tables (node/).

Written out in full, not derived from the models: a revision is frozen once
released, whatever the models become. ``String()`` without a length is what
SQLModel makes of an unbounded ``str`` (VARCHAR on both backends). Integer keys
that the ledger assigns itself are ``autoincrement=False`` (no SERIAL on
PostgreSQL). Unique constraints keep the names ``create_all`` gave them (none
in the model: PostgreSQL names them ``<table>_<column>_key``), so databases
created before migrations existed are adopted at this revision unchanged.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

INDEXES = (  # (name, table, column), as SQLModel's ``index=True`` names them
    ("ix_node_loans_idx", "node_loans", "idx"),
    ("ix_node_loans_insurer", "node_loans", "insurer"),
    ("ix_node_loans_notice_fp", "node_loans", "notice_fp"),
    ("ix_node_loans_ts", "node_loans", "ts"),
    ("ix_node_flags_bank", "node_flags", "bank"),
    ("ix_node_flags_entry_hash", "node_flags", "entry_hash"),
    ("ix_node_flags_idx", "node_flags", "idx"),
    ("ix_node_flags_insurer", "node_flags", "insurer"),
    ("ix_node_flags_ts", "node_flags", "ts"),
    ("ix_node_notices_beneficiary", "node_notices", "beneficiary"),
    ("ix_node_notices_insurer", "node_notices", "insurer"),
    ("ix_node_tokens_org", "node_tokens", "org"),
)
TABLES = (  # every table upgrade() creates; downgrade() drops them (and their indexes)
    "ledger_meta",
    "ledger_blocks",
    "ledger_entries",
    "ledger_receipts",
    "ledger_nodes",
    "ledger_checkpoints",
    "node_loans",
    "node_flags",
    "node_receivable_events",
    "node_notices",
    "node_entry_parties",
    "node_tokens",
    "node_leader",
)


def upgrade() -> None:
    _create_ledger_tables()
    _create_node_tables()
    for name, table, column in INDEXES:
        op.create_index(name, table, [column], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)


def _key(name: str) -> sa.Column[int]:
    """A BIGINT primary key the ledger assigns (height, index, node id, size)."""
    return sa.Column(name, sa.BigInteger(), autoincrement=False, nullable=False)


def _create_ledger_tables() -> None:
    op.create_table(
        "ledger_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "ledger_blocks",
        _key("height"),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("height"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "ledger_entries",
        _key("idx"),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("org", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("hash"),
        sa.UniqueConstraint("nonce", "org", name="uq_entry_nonce_org"),
    )
    op.create_table(
        "ledger_receipts",
        _key("idx"),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_table(
        "ledger_nodes",
        _key("id"),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ledger_checkpoints",
        _key("size"),
        sa.Column("note", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )


def _create_node_tables() -> None:
    op.create_table(
        "node_loans",
        sa.Column("bank", sa.String(length=64), nullable=False),
        sa.Column("loan_key", sa.String(length=256), nullable=False),
        sa.Column("loan_id", sa.String(length=256), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("notice_fp", sa.String(length=64), nullable=False),
        sa.Column("notice_no", sa.String(length=256), nullable=False),
        sa.Column("policy_no", sa.String(length=256), nullable=False),
        sa.Column("insurer", sa.String(length=64), nullable=False),
        sa.Column("buyer_code", sa.String(length=256), nullable=False),
        sa.Column("buyer_country", sa.String(length=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("outstanding", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("drawdown_date", sa.String(length=10), nullable=False),
        sa.Column("maturity_date", sa.String(length=10), nullable=False),
        sa.Column("tranche_of", sa.String(length=256), nullable=True),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("bank", "loan_key"),
    )
    op.create_table(
        "node_flags",
        sa.Column("flag_id", sa.String(length=20), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("entry_type", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("bank", sa.String(length=64), nullable=True),
        sa.Column("insurer", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("related", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("ts", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("flag_id"),
    )
    op.create_table(
        "node_receivable_events",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "entry_hash"),
    )
    op.create_table(
        "node_notices",
        sa.Column("notice_fp", sa.String(length=64), nullable=False),
        sa.Column("notice_no", sa.String(length=256), nullable=False),
        sa.Column("policy_no", sa.String(length=256), nullable=False),
        sa.Column("insurer", sa.String(length=64), nullable=False),
        sa.Column("beneficiary", sa.String(length=64), nullable=False),
        sa.Column("exporter_id", sa.String(length=32), nullable=False),
        sa.Column("buyer_code", sa.String(length=256), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("valid_to", sa.String(length=10), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("notice_fp"),
    )
    op.create_table(
        "node_entry_parties",
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("entry_hash", "org"),
    )
    op.create_table(
        "node_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("created", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_table(
        "node_leader",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL on PostgreSQL, as create_all
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("since", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
