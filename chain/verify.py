"""Offline verification: check a ledger with no trust in the node that kept it.

``verify_ledger(source)`` streams the blocks of a database or an exported bundle
and checks, in order, for every block: the header parses, its height and
``prev_hash`` continue the chain, its time does not go backwards, the producer's
signature, every entry's canonical form and signature (against the key valid at
that entry's log index, membership changes applied as they were accepted), the
uniqueness of every (org, nonce), ``entries_root``, every receipt's entry hash
and ``receipts_root``, the log size and the RFC 9162 ``log_root`` over every entry
so far. Then every checkpoint's signature and root, and (for a database) every
stored Merkle node. A domain ``Replayer`` may also recompute every receipt.

The first break raises ``VerificationError(height, what)``. Memory stays bounded:
the Merkle log is carried as its O(log n) right edge, not as a tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain.blocks import Block, BlockHeader, compute_receipts_root, genesis_hash
from chain.canonical import ENTRY_PREFIX, canonical, parse
from chain.checkpoint import Verifier, open_checkpoint, parse_verifier_key
from chain.entries import SignedEntry, decode_signed_entry, parse_ts
from chain.errors import ChainError, VerificationError
from chain.keyring import MEMBERSHIP_TYPES, KeyRing
from chain.keys import PublicKey
from chain.merkle import CompactRange, node_hash, root_from_leaf_hashes


@dataclass(frozen=True)
class RawBlock:
    """A block as stored: bytes, not yet trusted."""

    height: int
    header: bytes
    signature: bytes
    entries: list[bytes]
    receipts: list[bytes]


class LedgerSource(Protocol):
    """What the verifier reads: a database or a bundle."""

    @property
    def genesis(self) -> dict[str, Any]: ...

    def raw_blocks(self) -> Iterator[RawBlock]: ...

    def checkpoints(self) -> list[tuple[int, str]]: ...


class Replayer(Protocol):
    """Recomputes a block's receipts from its entries (the domain's rules)."""

    def replay(self, block: Block) -> Sequence[dict[str, Any]]: ...


@dataclass
class VerifyReport:
    blocks: int = 0
    entries: int = 0
    log_root: bytes = b""
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    nodes_checked: int = 0
    roots_by_size: dict[int, bytes] = field(default_factory=dict)


def sequencer_key(genesis: dict[str, Any]) -> PublicKey:
    seq = genesis["sequencer"]
    return PublicKey.from_b64(seq["key_id"], seq["public_key"])


def checkpoint_verifier(genesis: dict[str, Any]) -> Verifier:
    return parse_verifier_key(genesis["sequencer"]["note_key"])


def verify_ledger(
    source: LedgerSource, replayer: Replayer | None = None, pool: Executor | None = None
) -> VerifyReport:
    """Verify everything; raise VerificationError at the first break.

    With a process pool, the Ed25519 checks of large blocks run in its workers (the
    keys are still chosen here, by log index); everything else stays in order here.
    """
    try:
        genesis = source.genesis
        keyring = KeyRing.from_genesis(genesis)
        producer = sequencer_key(genesis)
        prev_hash = genesis_hash(genesis)
    except (ChainError, KeyError, TypeError, ValueError) as exc:
        raise VerificationError(None, f"genesis is unusable: {exc}") from exc
    checker = _BlockChecker(keyring, producer, prev_hash, replayer, pool)
    for raw in source.raw_blocks():
        checker.check(raw)
    report = checker.report
    _verify_checkpoints(source.checkpoints(), genesis, report)
    return report


class _BlockChecker:
    def __init__(
        self,
        keyring: KeyRing,
        producer: PublicKey,
        prev_hash: bytes,
        replayer: Replayer | None,
        pool: Executor | None = None,
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        self.producer = producer
        self.prev_hash = prev_hash
        self.prev_time = ""
        self.replayer = replayer
        self.tree = CompactRange()
        self.nonces: set[int] = set()
        self.report = VerifyReport()

    def check(self, raw: RawBlock) -> None:
        height = self.report.blocks
        try:
            header = self._check_header(raw, height)
            entries = self._check_entries(raw, height)
            receipts = self._check_receipts(raw, header, entries, height)
            self._check_log(header, entries, height)
        except VerificationError:
            raise
        except (ChainError, KeyError, TypeError, ValueError) as exc:
            raise VerificationError(height, str(exc)) from exc
        block = Block(header, raw.signature, tuple(entries), tuple(receipts))
        self._apply_membership(block, height)
        if self.replayer is not None:
            self._check_replay(block, height)
        self.prev_hash = header.hash
        self.prev_time = header.time
        self.report.blocks += 1
        self.report.entries += len(entries)
        self.report.log_root = header.log_root
        self.report.roots_by_size[header.log_size] = header.log_root

    def _check_header(self, raw: RawBlock, height: int) -> BlockHeader:
        try:
            header = BlockHeader.from_json(parse(raw.header))
        except ChainError as exc:
            raise VerificationError(height, f"header does not parse: {exc}") from exc
        if header.canonical != raw.header:
            raise VerificationError(height, "header is not in canonical form")
        if header.height != height or raw.height != height:
            raise VerificationError(height, f"header says height {header.height}")
        if header.prev_hash != self.prev_hash:
            raise VerificationError(height, "prev_hash does not link to the previous block")
        parse_ts(header.time)
        if header.time < self.prev_time:
            raise VerificationError(height, f"time {header.time} is before {self.prev_time}")
        if header.producer != self.producer.key_id:
            raise VerificationError(height, f"producer {header.producer} is not the sequencer")
        try:
            header.verify_signature(self.producer, raw.signature)
        except ChainError as exc:
            raise VerificationError(height, f"header signature: {exc}") from exc
        return header

    def _check_entries(self, raw: RawBlock, height: int) -> list[SignedEntry]:
        entries = []
        first = self.tree.size
        parallel = self.pool is not None and len(raw.entries) >= PARALLEL_MIN_ENTRIES
        jobs: list[tuple[int, bytes, bytes, bytes]] = []
        for offset, data in enumerate(raw.entries):
            index = first + offset
            try:
                entry = decode_signed_entry(data)
                if entry.raw != data:
                    raise VerificationError(height, f"entry {index} is not in canonical form")
                key = self.keyring.key_for(entry.key_id, index)
                if parallel:
                    jobs.append((index, key.raw, canonical(entry.entry), entry.sig))
                else:
                    entry.verify_signature(key)
            except VerificationError:
                raise
            except ChainError as exc:
                raise VerificationError(height, f"entry {index}: {exc}") from exc
            digest = hashlib.sha256(f"{entry.org}\n{entry.nonce}".encode()).digest()
            nonce = int.from_bytes(digest[:8], "big")  # 64 bits: compact for 1M+ entries
            if nonce in self.nonces:
                raise VerificationError(height, f"entry {index}: ({entry.org}, nonce) repeats")
            self.nonces.add(nonce)
            entries.append(entry)
        if jobs:
            assert self.pool is not None  # noqa: S101 - parallel implies a pool
            bad = [i for i in self.pool.map(_bad_signature, jobs, chunksize=128) if i >= 0]
            if bad:
                entry = entries[bad[0] - first]
                raise VerificationError(
                    height, f"entry {bad[0]}: signature by {entry.key_id} does not verify"
                )
        return entries

    def _check_receipts(
        self, raw: RawBlock, header: BlockHeader, entries: list[SignedEntry], height: int
    ) -> list[dict[str, Any]]:
        if root_from_leaf_hashes([e.hash for e in entries]) != header.entries_root:
            raise VerificationError(height, "entries_root does not match the entries")
        if len(raw.receipts) != len(entries):
            raise VerificationError(height, "receipts and entries differ in number")
        receipts = []
        for offset, (entry, data) in enumerate(zip(entries, raw.receipts, strict=True)):
            try:
                receipt = parse(data)
            except ChainError as exc:
                raise VerificationError(height, f"receipt {offset}: {exc}") from exc
            if not isinstance(receipt, dict) or receipt.get("entry_hash") != entry.hash.hex():
                raise VerificationError(height, f"receipt {offset} is not for entry {offset}")
            if receipt.get("status") not in ("accepted", "rejected"):
                raise VerificationError(height, f"receipt {offset}: unknown status")
            receipts.append(receipt)
        if compute_receipts_root(receipts) != header.receipts_root:
            raise VerificationError(height, "receipts_root does not match the receipts")
        return receipts

    def _check_log(self, header: BlockHeader, entries: list[SignedEntry], height: int) -> None:
        if header.log_size != self.tree.size + len(entries):
            raise VerificationError(height, f"log_size {header.log_size} is wrong")
        _, root = self.tree.extend([e.hash for e in entries])
        if root != header.log_root:
            raise VerificationError(height, "log_root does not match the Merkle log")

    def _apply_membership(self, block: Block, height: int) -> None:
        for offset, (entry, receipt) in enumerate(zip(block.entries, block.receipts, strict=True)):
            if entry.type in MEMBERSHIP_TYPES and receipt["status"] == "accepted":
                try:
                    self.keyring.apply_membership(
                        entry.type, entry.org, entry.body, block.first_index + offset
                    )
                except (ChainError, KeyError, TypeError) as exc:
                    raise VerificationError(height, f"membership entry {offset}: {exc}") from exc

    def _check_replay(self, block: Block, height: int) -> None:
        assert self.replayer is not None  # noqa: S101 - narrowed by the caller
        replayed = list(self.replayer.replay(block))
        for offset, (want, got) in enumerate(zip(block.receipts, replayed, strict=True)):
            if want != got:
                raise VerificationError(
                    height, f"receipt {offset} differs on replay: stored {want}, replayed {got}"
                )


def _verify_checkpoints(
    checkpoints: list[tuple[int, str]], genesis: dict[str, Any], report: VerifyReport
) -> None:
    if not checkpoints:
        return
    try:
        verifier = checkpoint_verifier(genesis)
    except (ChainError, KeyError) as exc:
        raise VerificationError(None, f"genesis names no usable checkpoint key: {exc}") from exc
    for size, note in checkpoints:
        where = _height_at(report, size)
        try:
            cp, _ = open_checkpoint(note, [verifier], genesis["origin"])
        except ChainError as exc:
            raise VerificationError(where, f"checkpoint at size {size}: {exc}") from exc
        if cp.size != size:
            raise VerificationError(where, f"checkpoint filed at size {size} says {cp.size}")
        root = report.roots_by_size.get(size)
        if root is None:
            raise VerificationError(where, f"checkpoint size {size} is not a block boundary")
        if root != cp.root:
            raise VerificationError(where, f"checkpoint at size {size}: root differs from the log")
        report.checkpoints += 1
        report.latest_checkpoint = size


PARALLEL_MIN_ENTRIES = 64


def _bad_signature(job: tuple[int, bytes, bytes, bytes]) -> int:
    """In a worker: the job's index if its Ed25519 signature fails, else -1."""
    index, key, message, sig = job
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, ENTRY_PREFIX + message)
    except (InvalidSignature, ValueError):
        return index
    return -1


def _height_at(report: VerifyReport, size: int) -> int | None:
    for height, s in enumerate(sorted(report.roots_by_size)):
        if s >= size:
            return height
    return None


@dataclass(frozen=True)
class NodeBreak:
    level: int
    index: int


def audit_nodes(
    read_level: Callable[[int], Iterator[tuple[int, bytes]]],
    leaves: Iterator[tuple[int, bytes]],
    size: int,
) -> tuple[int, NodeBreak | None]:
    """Check every stored complete-subtree node, streaming level by level.

    ``read_level(l)`` streams the stored (index, hash) of level l in order and
    ``leaves`` the (index, entry hash) of the log. Level 0 must equal the entry
    hashes; node i of level l+1 must be the hash of nodes 2i, 2i+1 of level l (as
    stored, and level l was checked before it). Returns (nodes checked, first break).
    """
    checked = 0
    level = 0
    below: Iterator[tuple[int, bytes]] = leaves
    while size >> level:
        stored = read_level(level)
        for want_index in range(size >> level):
            want = next(below, None)
            got = next(stored, None)
            if want is None or got is None or got != (want_index, want[1]):
                return checked, NodeBreak(level, want_index)
            checked += 1
        if next(stored, None) is not None:
            return checked, NodeBreak(level, size >> level)
        level += 1
        below = _parents(read_level(level - 1))
    return checked, None


def _parents(items: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    while True:
        left = next(items, None)
        right = next(items, None)
        if left is None or right is None:
            return
        yield left[0] // 2, node_hash(left[1], right[1])


def verify_database(
    ledger: Any, replayer: Replayer | None = None, pool: Executor | None = None
) -> VerifyReport:
    """verify_ledger over a database, then its entry-hash index and every stored node."""
    from chain.bundle import DatabaseSource
    from chain.merkle import leaf_hash
    from chain.storage import iter_entry_hashes

    report = verify_ledger(DatabaseSource(ledger), replayer, pool)

    def leaves() -> Iterator[tuple[int, bytes]]:
        for index, stored, raw in iter_entry_hashes(ledger):
            if stored != leaf_hash(raw):
                raise VerificationError(
                    ledger.height_of_index(index), f"entry {index}: stored hash is not its hash"
                )
            yield index, stored

    size = report.roots_by_size and max(report.roots_by_size) or 0
    checked, broken = audit_nodes(ledger.iter_node_level, leaves(), size)
    if broken is not None:
        first_leaf = broken.index << broken.level
        raise VerificationError(
            ledger.height_of_index(first_leaf),
            f"stored Merkle node (level {broken.level}, index {broken.index}) is wrong",
        )
    report.nodes_checked = checked
    return report
