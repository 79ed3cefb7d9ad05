"""The sequencer: orders entries into blocks with group commit.

One thread owns the ledger's writer and the domain state. Requests put a
``Pending`` on a bounded queue (full -> ``Overloaded``, 503) and wait on its
future. The thread takes what is queued, up to ``max_entries`` or ``max_ms``
after the first, runs each entry through the keyring and the domain's
``process_entry`` in order, commits the block with its state projection in one
transaction, and only then resolves the futures: an answered write is durable.

A refused entry (403/404/409/422) is answered at once and touches nothing; a
rejected drawdown (critical flags) is recorded like any other entry.
On start the state is rebuilt by replaying the ledger, and every stored receipt
must come out the same (replay determinism). Deciding a batch runs the state ahead of
the ledger until its block commits; a failed commit (disk full, database gone) marks
the state stale and rebuilds it, before the next batch if storage is still away then.
Storage trouble never stops the thread: a checkpoint that fails is tried again later.
Once a second the thread checks that it still holds the writer lock (a PostgreSQL
session can drop): it takes it again, or, while another process holds it, refuses
writes (503) rather than write beside it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from chain.blocks import Block
from chain.entries import SignedEntry, parse_ts
from chain.errors import ChainError, SignatureError, StorageError
from chain.keyring import MEMBERSHIP_TYPES, KeyRing
from chain.keys import SigningKey
from chain.log import LogWriter
from chain.merkle import CompactRange
from chain.storage import Ledger
from node import projection
from node.bodies import Body, parse_body
from node.clock import Clock
from node.domain import EntryContext, Params, Verdict, flag_id
from node.errors import NodeError, Overloaded
from node.state import State, check_entry, process_entry
from node.visibility import T_PARTY, insurer_of, party_rows, state_oracle

log = logging.getLogger("pfnode.sequencer")
CHECKPOINT_EVERY_S = 1.0
LOCK_CHECK_EVERY_S = 1.0


@dataclass(frozen=True)
class Receipt:
    """What the node decided for one entry, and where it sits on the ledger."""

    entry_hash: bytes
    entry_type: str
    org: str
    index: int
    height: int
    status: str
    flags: tuple[dict[str, Any], ...]
    log_size: int
    log_root: bytes
    ts: str = ""
    insurer: str | None = None  # of the notice the entry names, for flag visibility
    proof: tuple[bytes, ...] = ()
    duplicate: bool = False

    def with_proof(self, proof: list[bytes]) -> Receipt:
        return replace(self, proof=tuple(proof))

    def to_wire(self) -> dict[str, Any]:
        """Everything, for the internal channel between a node's processes."""
        return {**self.to_json(), "org": self.org, "ts": self.ts, "insurer": self.insurer}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Receipt:
        proof = data["inclusion_proof"]
        return cls(
            entry_hash=bytes.fromhex(data["entry_hash"]),
            entry_type=data["type"],
            org=data["org"],
            index=data["index"],
            height=data["height"],
            status=data["status"],
            flags=tuple(data["flags"]),
            log_size=proof["tree_size"],
            log_root=bytes.fromhex(proof["log_root"]),
            ts=data["ts"],
            insurer=data["insurer"],
            proof=tuple(bytes.fromhex(h) for h in proof["hashes"]),
            duplicate=data["duplicate"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_hash": self.entry_hash.hex(),
            "type": self.entry_type,
            "index": self.index,
            "height": self.height,
            "status": self.status,
            "flags": list(self.flags),
            "duplicate": self.duplicate,
            "inclusion_proof": {
                "leaf_index": self.index,
                "tree_size": self.log_size,
                "log_root": self.log_root.hex(),
                "hashes": [h.hex() for h in self.proof],
            },
        }


@dataclass
class Pending:
    signed: SignedEntry
    body: Body
    future: concurrent.futures.Future[Receipt]
    verified: bool  # signed by this node just now: no need to verify again


def receipt_json(entry: SignedEntry, verdict: Verdict) -> dict[str, Any]:
    """The receipt committed on the ledger (deterministic from the entry and state)."""
    flags = []
    for flag in verdict.flags:
        flags.append({"id": flag_id(entry.hash, flag.code), **flag.to_json()})
    return {"entry_hash": entry.hash.hex(), "status": verdict.status, "flags": flags}


def context_for(entry: SignedEntry, index: int, role: str) -> EntryContext:
    return EntryContext(
        entry_hash=entry.hash,
        index=index,
        org=entry.org,
        role=role,
        entry_type=entry.type,
        ts=parse_ts(entry.entry["ts"]),
    )


class Replay:
    """Domain state rebuilt from a ledger's blocks, checking every receipt."""

    def __init__(self, genesis: dict[str, Any], secret: bytes) -> None:
        self.params = Params.from_json(genesis.get("params", {}))
        self.state = State(self.params, secret)
        self.keyring = KeyRing.from_genesis(genesis)
        self.state.set_orgs(dict(self.keyring.roles))

    def apply(self, block: Block) -> list[dict[str, Any]]:
        """Process a committed block's entries; returns the receipts they give now."""
        block_time = parse_ts(block.header.time)
        out = []
        for offset, entry in enumerate(block.entries):
            index = block.first_index + offset
            role = self.keyring.role_of(entry.org) or ""
            verdict = process_entry(
                self.state,
                context_for(entry, index, role),
                parse_body(entry.type, entry.body),
                block_time,
            )
            if entry.type in MEMBERSHIP_TYPES and verdict.status == "accepted":
                self.keyring.apply_membership(entry.type, entry.org, entry.body, index)
            out.append(receipt_json(entry, verdict))
        return out

    def run(self, blocks: Iterator[Block]) -> int:
        count = 0
        for block in blocks:
            replayed = self.apply(block)
            for offset, (stored, got) in enumerate(zip(block.receipts, replayed, strict=True)):
                if stored != got:
                    raise StorageError(
                        f"block {block.header.height} receipt {offset} differs on replay: "
                        f"stored {stored}, replayed {got}"
                    )
            count += 1
        return count


class Sequencer:
    """The single writer of one ledger."""

    def __init__(
        self,
        ledger: Ledger,
        producer: SigningKey,
        secret: bytes,
        clock: Clock,
        max_entries: int = 512,
        max_ms: float = 5.0,
        max_queue: int = 20_000,
        on_commit: Callable[[list[Receipt]], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.writer = LogWriter(ledger, producer)
        self.secret = secret
        self.clock = clock
        self.max_entries = max_entries
        self.max_s = max_ms / 1000
        self.queue: queue.Queue[Pending] = queue.Queue(maxsize=max_queue)
        self.on_commit = on_commit
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = 0.0
        self._last_lock_check = time.monotonic()
        self._stale = False  # the state may hold entries no committed block has
        self._fenced = False  # the writer lock is lost and another process holds it
        self._rebuild()

    @property
    def params(self) -> Params:
        return self._replay.params

    @property
    def state(self) -> State:
        return self._replay.state

    @property
    def keyring(self) -> KeyRing:
        return self._replay.keyring

    def roles(self) -> dict[str, str]:
        return dict(self.keyring.roles)

    def _rebuild(self) -> None:
        replay = Replay(self.ledger.genesis, self.secret)
        replay.run(self.ledger.iter_blocks())
        replay.state.drain_changes()  # already projected when those blocks committed
        self._replay = replay

    # -- the API's side ----------------------------------------------------------

    def submit(
        self, signed: SignedEntry, body: Body, verified: bool = False
    ) -> concurrent.futures.Future[Receipt]:
        future: concurrent.futures.Future[Receipt] = concurrent.futures.Future()
        try:
            self.queue.put_nowait(Pending(signed, body, future, verified))
        except queue.Full:
            raise Overloaded(self.queue.qsize()) from None
        return future

    def dry_run(self, org: str, role: str, entry_type: str, body: Body) -> Verdict:
        """Run the rules against current state without recording anything."""
        with self._lock:
            if self._stale:
                raise StorageError("the state is being rebuilt after a storage failure")
            ctx = EntryContext(
                entry_hash=bytes(32),
                index=self.ledger.size,
                org=org,
                role=role,
                entry_type=entry_type,
                ts=self.clock.now(),
            )
            return check_entry(self.state, ctx, body, self.clock.now())

    def queue_depth(self) -> int:
        return self.queue.qsize()

    # -- the thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pfnode-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch:
                try:
                    self._process(batch)
                except Exception as exc:  # never let the thread die silently
                    log.exception("block failed")
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(StorageError(f"block failed: {exc}"))
            self._maybe_checkpoint()
            self._maybe_check_lock()

    def _take_batch(self) -> list[Pending]:
        try:
            first = self.queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_s
        while len(batch) < self.max_entries:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                )
            except queue.Empty:
                break
            batch.append(item)
        return batch

    def _maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_checkpoint < CHECKPOINT_EVERY_S:
            return
        self._last_checkpoint = time.monotonic()
        try:
            self.writer.checkpoint()
        except (ChainError, SQLAlchemyError) as exc:  # storage away: the next one will do
            log.error("checkpoint failed: %s", exc)

    def _maybe_check_lock(self) -> None:
        """Still the writer? Take the lock again if its session dropped (PostgreSQL)."""
        if time.monotonic() - self._last_lock_check < LOCK_CHECK_EVERY_S:
            return
        self._last_lock_check = time.monotonic()
        if self.ledger.is_writer_alive():
            return
        log.error("the writer lock was lost; taking it again")
        self._fenced = not self.ledger.retake_writer()
        if not self._fenced:
            log.warning("writer lock taken again")
            self._stale = True  # another writer may have appended meanwhile: replay first

    def _recover(self) -> None:
        """State and Merkle edge again from what is committed (after a failed commit)."""
        self._rebuild()
        self.writer.edge = CompactRange.load(self.ledger.size, self.ledger)
        self._stale = False

    def _process(self, batch: list[Pending]) -> None:
        if self._fenced:
            for p in batch:
                p.future.set_exception(StorageError("this process lost the writer lock"))
            return
        if self._stale:
            with self._lock:
                self._recover()  # raises while storage is still away: the batch gets 503
        block_time = self.clock.now()
        head = self.ledger.head()
        if head is not None and block_time < parse_ts(head.time):
            block_time = parse_ts(head.time)
        known = self._known_nonces(batch)
        entries: list[SignedEntry] = []
        receipts: list[dict[str, Any]] = []
        included: list[Pending] = []
        repeats: list[Pending] = []
        seen: set[tuple[str, str]] = set()
        size = head.log_size if head else 0
        with self._lock:
            self._stale = True  # until the block commits: deciding runs the state ahead
            for p in batch:
                key = (p.signed.org, p.signed.nonce)
                if key in known or key in seen:
                    repeats.append(p)
                    continue
                verdict = self._decide(p, size + len(entries), block_time)
                if verdict is None:
                    continue
                seen.add(key)
                entries.append(p.signed)
                receipts.append(receipt_json(p.signed, verdict))
                included.append(p)
            if not entries or self._commit(entries, receipts, included, block_time):
                self._stale = False
        self._answer_repeats(repeats)

    def _decide(self, p: Pending, index: int, block_time: datetime) -> Verdict | None:
        """Key, membership and rules for one entry; None when it is refused."""
        signed = p.signed
        try:
            key = self.keyring.key_for(signed.key_id, index)
            if not p.verified:
                signed.verify_signature(key)
            role = self.keyring.role_of(signed.org) or ""
            ctx = context_for(signed, index, role)
            trial = None
            if signed.type in MEMBERSHIP_TYPES:  # try the change on a copy first
                trial = copy.deepcopy(self.keyring)
                trial.apply_membership(signed.type, signed.org, signed.body, index)
            verdict = process_entry(self.state, ctx, p.body, block_time)  # refusals raise
            if trial is not None and verdict.status == "accepted":
                self._replay.keyring = trial
            return verdict
        except (NodeError, ChainError) as exc:
            p.future.set_exception(exc)
            return None

    def _commit(
        self,
        entries: list[SignedEntry],
        receipts: list[dict[str, Any]],
        included: list[Pending],
        block_time: datetime,
    ) -> bool:
        """Commit the block; answer its entries. False when it was not committed."""
        changes = self.state.drain_changes()
        oracle = state_oracle(self.state)
        parties = [row for e in entries for row in party_rows(e, oracle)]

        def project(conn: Connection) -> None:
            projection.write_changes(conn, changes)
            conn.execute(sa.insert(T_PARTY), parties)

        try:
            block = self.writer.append(entries, receipts, block_time, extra=project)
        except (ChainError, SQLAlchemyError) as exc:
            log.error("block not committed, rebuilding state: %s", exc)
            for p in included:
                p.future.set_exception(StorageError(f"not recorded: {exc}"))
            self._recover()  # if this fails too, the state stays stale until it succeeds
            return False
        header = block.header
        answered = []
        for offset, (p, receipt) in enumerate(zip(included, receipts, strict=True)):
            index = block.first_index + offset
            try:  # the proof against this block's root, read here: no thread hop per request
                proof = tuple(self.writer.prove_in_last_block(index))
            except ChainError:
                proof = ()
            r = Receipt(
                entry_hash=p.signed.hash,
                entry_type=p.signed.type,
                org=p.signed.org,
                index=index,
                height=header.height,
                status=receipt["status"],
                flags=tuple(receipt["flags"]),
                log_size=header.log_size,
                log_root=header.log_root,
                ts=p.signed.entry["ts"],
                insurer=insurer_of(p.signed, oracle),
                proof=proof,
            )
            answered.append(r)
            p.future.set_result(r)
        if self.on_commit is not None:
            self.on_commit(answered)
        return True

    def _known_nonces(self, batch: list[Pending]) -> set[tuple[str, str]]:
        return self.ledger.known_nonces([(p.signed.org, p.signed.nonce) for p in batch])

    def _answer_repeats(self, repeats: list[Pending]) -> None:
        """A resubmitted entry gets the first receipt and adds nothing."""
        for p in repeats:
            first = self.ledger.find_nonce(p.signed.org, p.signed.nonce)
            stored = self.ledger.get_entry(first) if first else None
            if stored is None:
                p.future.set_exception(StorageError("resubmitted entry's first copy not found"))
                continue
            if stored.entry.hash != p.signed.hash:
                p.future.set_exception(
                    SignatureError(
                        f"nonce {p.signed.nonce} of {p.signed.org} was already used by another entry"
                    )
                )
                continue
            head = self.ledger.head()
            p.future.set_result(
                Receipt(
                    entry_hash=stored.entry.hash,
                    entry_type=stored.entry.type,
                    org=stored.entry.org,
                    index=stored.index,
                    height=stored.height,
                    status=stored.receipt["status"],
                    flags=tuple(stored.receipt["flags"]),
                    log_size=head.log_size if head else 0,
                    log_root=head.log_root if head else b"",
                    duplicate=True,
                )
            )
