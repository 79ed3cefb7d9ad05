"""The writing side of the ledger: build, sign and commit blocks; cut checkpoints.

``LogWriter`` owns the sequencer's key and the ledger's writer lock. The caller
(the node's sequencer, or the ledger demo) decides the receipts; the writer
computes the roots, signs the header and commits the block in one transaction,
with the caller's state projection inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from chain.blocks import (
    Block,
    BlockHeader,
    compute_entries_root,
    compute_receipts_root,
    genesis_hash,
)
from chain.checkpoint import Checkpoint, NoteSigner, format_verifier_key, sign_note
from chain.entries import SignedEntry, format_ts
from chain.errors import StorageError
from chain.keys import SigningKey
from chain.merkle import (
    CompactRange,
    OverlayReader,
    inclusion_proof,
    new_nodes,
)
from chain.storage import Ledger


def make_genesis(
    *,
    origin: str,
    orgs: list[dict[str, Any]],
    sequencer: SigningKey,
    created: datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A genesis document: organisations with keys, the sequencer's keys, and `extra`."""
    return {
        "v": 1,
        "origin": origin,
        "created": format_ts(created),
        "orgs": orgs,
        "sequencer": {
            "key_id": sequencer.key_id,
            "public_key": sequencer.public.b64,
            "note_key": format_verifier_key(origin, sequencer.public.raw),
        },
        **(extra or {}),
    }


class LogWriter:
    """Appends blocks to a ledger held open for writing."""

    def __init__(self, ledger: Ledger, producer: SigningKey) -> None:
        if not ledger.writer:
            raise StorageError("LogWriter needs a ledger opened with writer=True")
        seq = ledger.genesis["sequencer"]
        if seq["key_id"] != producer.key_id or seq["public_key"] != producer.public.b64:
            raise StorageError(f"key {producer.key_id} is not this ledger's sequencer key")
        self.ledger = ledger
        self.producer = producer
        self.origin: str = ledger.genesis["origin"]
        self._genesis_hash = genesis_hash(ledger.genesis)
        self.edge = CompactRange.load(ledger.size, ledger)  # kept in memory from here on
        self._last: tuple[int, int, OverlayReader] | None = None

    def build(
        self, entries: Sequence[SignedEntry], receipts: Sequence[dict[str, Any]], now: datetime
    ) -> tuple[Block, dict[tuple[int, int], bytes]]:
        """Build and sign the next block (no write)."""
        if not entries or len(entries) != len(receipts):
            raise StorageError("a block needs entries, each with its receipt")
        head = self.ledger.head()
        size = head.log_size if head else 0
        if self.edge.size != size:
            raise StorageError(f"the writer's tree edge is at {self.edge.size}, the head at {size}")
        nodes, root = new_nodes(size, [e.hash for e in entries], self.edge)
        time = format_ts(now)
        if head is not None and time < head.time:
            time = head.time  # block time never goes backwards
        header = BlockHeader(
            height=head.height + 1 if head else 0,
            prev_hash=head.hash if head else self._genesis_hash,
            time=time,
            entries_root=compute_entries_root(entries),
            receipts_root=compute_receipts_root(receipts),
            log_size=size + len(entries),
            log_root=root,
            producer=self.producer.key_id,
        )
        block = Block(header, header.sign(self.producer), tuple(entries), tuple(receipts))
        return block, nodes

    def append(
        self,
        entries: Sequence[SignedEntry],
        receipts: Sequence[dict[str, Any]],
        now: datetime,
        extra: Callable[[Connection], None] | None = None,
    ) -> Block:
        """Build, sign and commit the next block; durable when this returns."""
        block, nodes = self.build(entries, receipts, now)
        self.ledger.append_block(block, nodes, extra)
        self._last = (
            block.first_index,
            block.header.log_size,
            OverlayReader(nodes, dict(self.edge.nodes)),
        )
        self.edge.advance(len(entries), nodes)
        return block

    def prove_in_last_block(self, index: int) -> list[bytes]:
        """Inclusion proof of an entry of the last appended block against its log_root,
        from memory: that block's nodes over the edge before it (see CompactRange)."""
        if self._last is None or not self._last[0] <= index < self._last[1]:
            raise StorageError(f"entry {index} is not in the last appended block")
        return inclusion_proof(index, self._last[1], self._last[2])

    def checkpoint(self) -> str | None:
        """Sign and store a checkpoint of the current head; returns the note."""
        head = self.ledger.head()
        if head is None:
            return None
        latest = self.ledger.latest_checkpoint()
        if latest is not None and latest[0] >= head.log_size:
            return latest[1]
        text = Checkpoint(self.origin, head.log_size, head.log_root).to_text()
        note = sign_note(text, [NoteSigner(self.origin, self.producer.private)])
        self.ledger.add_checkpoint(head.log_size, note)
        return note
