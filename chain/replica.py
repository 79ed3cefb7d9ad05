"""A follower's replica: blocks as an institution may see them, verified, stored.

A follower receives every block header, the full entries its institution may read
and, for the others, only their leaf hashes; likewise receipts (or their leaves).
That is enough to check everything that binds the ledger: the sequencer's header
signature, the prev_hash link, entries_root (over the entry hashes, each full
entry hashed here), receipts_root (over the receipt leaves, each full receipt
matching its leaf where it is shown unmodified), the log size and the RFC 9162
log root (the replica keeps the tree's right edge and stores every node, so it
serves inclusion and consistency proofs of its own).

``verify_partial_block`` is pure: it raises ``VerificationError(height, what)`` or
returns what to store. ``ReplicaStore`` keeps blocks, visible entries and nodes,
appending a block in one transaction; the follower resumes from its head.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from chain.blocks import BlockHeader
from chain.entries import SignedEntry, decode_signed_entry
from chain.errors import ChainError, StorageError, VerificationError
from chain.keys import PublicKey, b64decode
from chain.merkle import CompactRange, NodeKey, root_from_leaf_hashes
from chain.storage import NO_AUTOINC, make_engine, node_id, node_key

HEX64 = 64


class ReplicaBlockRow(SQLModel, table=True):
    __tablename__ = "replica_blocks"
    height: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    hash: bytes = Field(sa_type=sa.LargeBinary, unique=True)
    header: bytes = Field(sa_type=sa.LargeBinary)
    signature: bytes = Field(sa_type=sa.LargeBinary)
    first_index: int = Field(sa_type=sa.BigInteger)
    entry_count: int
    body: str  # the block's entries and receipts as received (JSON), withheld ones as hashes


class ReplicaEntryRow(SQLModel, table=True):
    __tablename__ = "replica_entries"
    idx: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    hash: bytes = Field(sa_type=sa.LargeBinary, unique=True)
    height: int = Field(sa_type=sa.BigInteger)
    raw: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    receipt: str | None = Field(default=None, nullable=True)


class ReplicaNodeRow(SQLModel, table=True):
    __tablename__ = "replica_nodes"
    id: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    hash: bytes = Field(sa_type=sa.LargeBinary)


REPLICA_TABLES = [
    t.__table__  # type: ignore[attr-defined,union-attr]
    for t in (ReplicaBlockRow, ReplicaEntryRow, ReplicaNodeRow)
]
T_RBLOCK, T_RENTRY, T_RNODE = REPLICA_TABLES


@dataclass(frozen=True)
class VerifiedBlock:
    """A partial block that checked out, and what the replica stores of it."""

    header: BlockHeader
    signature: bytes
    hashes: tuple[bytes, ...]
    entries: tuple[SignedEntry | None, ...]  # None where withheld
    receipts: tuple[dict[str, Any] | None, ...]
    nodes: Mapping[NodeKey, bytes]
    body: dict[str, Any]


def _hex(value: Any, what: str, height: int) -> bytes:
    if not isinstance(value, str) or len(value) != HEX64:
        raise VerificationError(height, f"{what} is not 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise VerificationError(height, f"{what} is not hex") from exc


def verify_partial_block(
    data: Mapping[str, Any],
    expected_height: int,
    prev_hash: bytes,
    producer: PublicKey,
    edge: CompactRange,
) -> VerifiedBlock:
    """Check one block as a follower receives it; raise VerificationError at the first break."""
    height = expected_height
    try:
        header = BlockHeader.from_json(data["header"])
        signature = b64decode(data["signature"], "block signature")
        header.verify_signature(producer, signature)
    except (ChainError, KeyError, TypeError) as exc:
        raise VerificationError(height, f"header: {exc}") from exc
    if header.height != height:
        raise VerificationError(height, f"header says height {header.height}")
    if header.prev_hash != prev_hash:
        raise VerificationError(height, "prev_hash does not link to the previous block")
    raw_entries, raw_receipts = data.get("entries"), data.get("receipts")
    if not isinstance(raw_entries, list) or not isinstance(raw_receipts, list):
        raise VerificationError(height, "entries and receipts must be lists")
    if len(raw_entries) != len(raw_receipts):
        raise VerificationError(height, "entries and receipts differ in number")
    hashes: list[bytes] = []
    entries: list[SignedEntry | None] = []
    for offset, item in enumerate(raw_entries):
        if isinstance(item, dict) and item.get("withheld") is True:
            hashes.append(_hex(item.get("entry_hash"), f"entry {offset} hash", height))
            entries.append(None)
            continue
        try:
            entry = decode_signed_entry(item)
        except ChainError as exc:
            raise VerificationError(height, f"entry {offset}: {exc}") from exc
        hashes.append(entry.hash)
        entries.append(entry)
    if root_from_leaf_hashes(hashes) != header.entries_root:
        raise VerificationError(height, "entries_root does not match the entries")
    leaves: list[bytes] = []
    receipts: list[dict[str, Any] | None] = []
    for offset, (item, entry_hash) in enumerate(zip(raw_receipts, hashes, strict=True)):
        if not isinstance(item, dict) or item.get("entry_hash") != entry_hash.hex():
            raise VerificationError(height, f"receipt {offset} is not for entry {offset}")
        leaves.append(_hex(item.get("receipt_leaf"), f"receipt {offset} leaf", height))
        receipts.append(
            {k: v for k, v in item.items() if k != "receipt_leaf"} if "status" in item else None
        )
    if root_from_leaf_hashes(leaves) != header.receipts_root:
        raise VerificationError(height, "receipts_root does not match the receipt leaves")
    if header.log_size != edge.size + len(hashes):
        raise VerificationError(height, f"log_size {header.log_size} is wrong")
    nodes, root = _extend(edge, hashes)
    if root != header.log_root:
        raise VerificationError(height, "log_root does not match the Merkle log")
    return VerifiedBlock(
        header, signature, tuple(hashes), tuple(entries), tuple(receipts), nodes, dict(data)
    )


def _extend(edge: CompactRange, hashes: Sequence[bytes]) -> tuple[dict[NodeKey, bytes], bytes]:
    from chain.merkle import new_nodes

    return new_nodes(edge.size, hashes, edge)


class ReplicaStore:
    """The follower's copy: append verified blocks; read blocks, entries and nodes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> ReplicaStore:
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def head(self) -> tuple[int, bytes, int] | None:
        """(height, block hash, log size) of the last stored block."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_RBLOCK.c.height, T_RBLOCK.c.hash, T_RBLOCK.c.header)
                .order_by(T_RBLOCK.c.height.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        header = json.loads(bytes(row[2]))
        return int(row[0]), bytes(row[1]), int(header["log_size"])

    def edge(self) -> CompactRange:
        head = self.head()
        return CompactRange.load(head[2] if head else 0, self)

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_RNODE.c.id, T_RNODE.c.hash).where(
                    T_RNODE.c.id.in_([node_id(k) for k in keys])
                )
            )
            return {node_key(r[0]): bytes(r[1]) for r in rows}

    def append(self, block: VerifiedBlock) -> None:
        header = block.header
        first = header.log_size - len(block.hashes)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(T_RBLOCK),
                    [
                        {
                            "height": header.height,
                            "hash": header.hash,
                            "header": header.canonical,
                            "signature": block.signature,
                            "first_index": first,
                            "entry_count": len(block.hashes),
                            "body": json.dumps(
                                {
                                    "entries": block.body["entries"],
                                    "receipts": block.body["receipts"],
                                }
                            ),
                        }
                    ],
                )
                if block.hashes:
                    conn.execute(
                        sa.insert(T_RENTRY),
                        [
                            {
                                "idx": first + i,
                                "hash": h,
                                "height": header.height,
                                "raw": e.raw if e is not None else None,
                                "receipt": json.dumps(r) if r is not None else None,
                            }
                            for i, (h, e, r) in enumerate(
                                zip(block.hashes, block.entries, block.receipts, strict=True)
                            )
                        ],
                    )
                if block.nodes:
                    conn.execute(
                        sa.insert(T_RNODE),
                        [{"id": node_id(k), "hash": v} for k, v in block.nodes.items()],
                    )
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"replica block {header.height} not stored: {exc}") from exc

    def block(self, height: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_RBLOCK.c.header, T_RBLOCK.c.signature, T_RBLOCK.c.body).where(
                    T_RBLOCK.c.height == height
                )
            ).first()
        if row is None:
            return None
        from chain.keys import b64encode

        body = json.loads(row[2])
        return {"header": json.loads(bytes(row[0])), "signature": b64encode(bytes(row[1])), **body}

    def entry(self, entry_hash: bytes) -> dict[str, Any] | None:
        """A visible entry with its receipt: (index, height, signed json, receipt)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    T_RENTRY.c.idx, T_RENTRY.c.height, T_RENTRY.c.raw, T_RENTRY.c.receipt
                ).where(T_RENTRY.c.hash == entry_hash)
            ).first()
        if row is None or row[2] is None:
            return None
        return {
            "index": row[0],
            "height": row[1],
            "entry": json.loads(bytes(row[2])),
            "receipt": json.loads(row[3]) if row[3] else None,
        }

    def visible_receipts_since(self, index: int) -> list[dict[str, Any]]:
        """Receipts of visible entries after a log index (for the follower's flag stream)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    T_RENTRY.c.idx,
                    T_RENTRY.c.hash,
                    T_RENTRY.c.height,
                    T_RENTRY.c.raw,
                    T_RENTRY.c.receipt,
                )
                .where(T_RENTRY.c.idx > index, T_RENTRY.c.receipt.is_not(None))
                .order_by(T_RENTRY.c.idx)
            ).all()
        return [
            {
                "index": r[0],
                "entry_hash": bytes(r[1]).hex(),
                "height": r[2],
                "entry": json.loads(bytes(r[3])) if r[3] else None,
                "receipt": json.loads(r[4]),
            }
            for r in rows
        ]


def verify_replica(store: ReplicaStore, genesis: Mapping[str, Any]) -> tuple[int, int]:
    """Re-verify every stored block of a replica from its own bytes; (blocks, log size)."""
    from chain.blocks import genesis_hash

    seq = genesis["sequencer"]
    producer = PublicKey.from_b64(seq["key_id"], seq["public_key"])
    edge = CompactRange()
    prev = genesis_hash(dict(genesis))
    height = 0
    while True:
        data = store.block(height)
        if data is None:
            return height, edge.size
        block = verify_partial_block(data, height, prev, producer, edge)
        stored = store.get_nodes(list(block.nodes))
        if stored != dict(block.nodes):
            raise VerificationError(height, "a stored Merkle node differs from the block's")
        edge.advance(len(block.hashes), block.nodes)
        prev = block.header.hash
        height += 1
