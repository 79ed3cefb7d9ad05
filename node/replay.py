"""Replay: rebuild the domain state from the ledger and check every receipt.

``DomainReplayer`` plugs into ``chain.verify`` so that ``pfnode verify`` also
recomputes every receipt by replay (it needs the consortium's fingerprint secret,
which a node keeps under <data>/keys). ``rebuild_state`` drops the state
projections and writes them again from the ledger, block by block.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from chain.blocks import Block
from chain.storage import Ledger
from node import projection
from node.genesis import NodeFiles
from node.sequencer import Replay
from node.visibility import T_PARTY, party_rows, state_oracle


class DomainReplayer:
    """chain.verify.Replayer over the domain rules."""

    def __init__(self, genesis: dict[str, Any], secret: bytes) -> None:
        self._replay = Replay(genesis, secret)

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> DomainReplayer | None:
        files = NodeFiles(Path(getattr(args, "data", "data")))
        secret_path = files.keys / "consortium.secret"
        if not secret_path.exists():
            print(
                f"note: receipts not replayed ({secret_path} not found: replay needs the "
                "consortium's fingerprint secret)",
                file=sys.stderr,
            )
            return None
        if getattr(args, "bundle", None):
            from chain.bundle import BundleSource

            genesis = BundleSource(Path(args.bundle)).genesis
        else:
            from node.cli import db_url

            with Ledger.open(db_url(args)) as ledger:
                genesis = ledger.genesis
        return cls(genesis, files.consortium_secret())

    def replay(self, block: Block) -> Sequence[dict[str, Any]]:
        receipts = self._replay.apply(block)
        self._replay.state.drain_changes()
        return receipts


def rebuild_state(url: str, data_dir: Path) -> tuple[int, int]:
    """Drop and rebuild every state projection from the ledger; returns (blocks, entries)."""
    with Ledger.open(url, writer=True) as ledger:
        tables = [*projection.NODE_TABLES, T_PARTY]
        SQLModel.metadata.drop_all(ledger.engine, tables=tables)
        SQLModel.metadata.create_all(ledger.engine, tables=tables)
        replay = Replay(ledger.genesis, NodeFiles(data_dir).consortium_secret())
        blocks = entries = 0
        for block in ledger.iter_blocks():
            receipts = replay.apply(block)
            for offset, (stored, got) in enumerate(zip(block.receipts, receipts, strict=True)):
                if stored != got:
                    from chain.errors import VerificationError

                    raise VerificationError(
                        block.header.height, f"receipt {offset} differs on replay"
                    )
            changes = replay.state.drain_changes()
            oracle = state_oracle(replay.state)
            rows = [r for e in block.entries for r in party_rows(e, oracle)]
            with ledger.engine.begin() as conn:
                projection.write_changes(conn, changes)
                if rows:
                    conn.execute(sa.insert(T_PARTY), rows)
            blocks += 1
            entries += len(block.entries)
        return blocks, entries
