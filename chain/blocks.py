"""Blocks: a signed header committing to a batch of entries and their receipts.

The header::

    {"v": 1, "height": 7, "prev_hash": hex, "time": ts,
     "entries_root": hex, "receipts_root": hex, "log_size": 1234, "log_root": hex,
     "producer": "REGULATOR/seq-1"}

is signed by the sequencer (Ed25519 over ``HEADER_PREFIX + canonical(header)``);
the block hash is SHA-256(canonical(header)). ``prev_hash`` of height 0 is the
genesis hash. ``entries_root`` and ``receipts_root`` are RFC 9162 roots over the
block's entry hashes and over the leaf hashes of its canonical receipts; the log
root covers every entry since genesis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.canonical import GENESIS_PREFIX, HEADER_PREFIX, canonical
from chain.entries import SignedEntry
from chain.errors import EncodingError
from chain.keys import PublicKey, SigningKey, b64decode, b64encode
from chain.merkle import leaf_hash, root_from_leaf_hashes

BLOCK_VERSION = 1
HEADER_FIELDS = (
    "v",
    "height",
    "prev_hash",
    "time",
    "entries_root",
    "receipts_root",
    "log_size",
    "log_root",
    "producer",
)


def genesis_hash(genesis: dict[str, Any]) -> bytes:
    return hashlib.sha256(GENESIS_PREFIX + canonical(genesis)).digest()


def receipt_leaf(receipt: dict[str, Any]) -> bytes:
    return leaf_hash(canonical(receipt))


def compute_entries_root(entries: Sequence[SignedEntry]) -> bytes:
    return root_from_leaf_hashes([e.hash for e in entries])


def compute_receipts_root(receipts: Sequence[dict[str, Any]]) -> bytes:
    return root_from_leaf_hashes([receipt_leaf(r) for r in receipts])


@dataclass(frozen=True)
class BlockHeader:
    height: int
    prev_hash: bytes
    time: str
    entries_root: bytes
    receipts_root: bytes
    log_size: int
    log_root: bytes
    producer: str

    def to_json(self) -> dict[str, Any]:
        return {
            "v": BLOCK_VERSION,
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "time": self.time,
            "entries_root": self.entries_root.hex(),
            "receipts_root": self.receipts_root.hex(),
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
            "producer": self.producer,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockHeader:
        if not isinstance(data, dict) or tuple(sorted(data)) != tuple(sorted(HEADER_FIELDS)):
            raise EncodingError(f"block header fields must be exactly {list(HEADER_FIELDS)}")
        if data["v"] != BLOCK_VERSION:
            raise EncodingError(f"block header version {data['v']!r} is unknown")
        try:
            return cls(
                height=_int(data["height"], "height"),
                prev_hash=_hash(data["prev_hash"], "prev_hash"),
                time=str(data["time"]),
                entries_root=_hash(data["entries_root"], "entries_root"),
                receipts_root=_hash(data["receipts_root"], "receipts_root"),
                log_size=_int(data["log_size"], "log_size"),
                log_root=_hash(data["log_root"], "log_root"),
                producer=str(data["producer"]),
            )
        except (TypeError, ValueError) as exc:
            raise EncodingError(f"block header: {exc}") from exc

    @property
    def canonical(self) -> bytes:
        return canonical(self.to_json())

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.canonical).digest()

    def sign(self, key: SigningKey) -> bytes:
        return key.sign(HEADER_PREFIX, self.canonical)

    def verify_signature(self, key: PublicKey, signature: bytes) -> None:
        key.verify(HEADER_PREFIX, self.canonical, signature)


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _hash(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise ValueError(f"{name} must be 64 lower-case hex digits")
    return bytes.fromhex(value)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    signature: bytes
    entries: tuple[SignedEntry, ...]
    receipts: tuple[dict[str, Any], ...]

    @property
    def first_index(self) -> int:
        return self.header.log_size - len(self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header.to_json(),
            "signature": b64encode(self.signature),
            "entries": [e.to_json() for e in self.entries],
            "receipts": list(self.receipts),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Block:
        from chain.entries import decode_signed_entry

        return cls(
            header=BlockHeader.from_json(data["header"]),
            signature=b64decode(data["signature"], "block signature"),
            entries=tuple(decode_signed_entry(e) for e in data["entries"]),
            receipts=tuple(data["receipts"]),
        )
