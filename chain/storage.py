"""Ledger storage: SQLModel tables over SQLite (embedded, WAL) or PostgreSQL.

Ledger rows are append-only. Appending a block writes its header, entries,
receipts and the Merkle nodes it completes in ONE transaction (and whatever
state projection the caller adds through ``extra``), so a crash at any instant
leaves the last committed block whole and nothing after it.

Merkle nodes are stored for every complete subtree, keyed by
``node_id = level << 48 | index`` (see ``chain.merkle``), so an inclusion or
consistency proof is one query of O(log n) rows.

Exactly one process writes a ledger: ``Ledger.open(url, writer=True)`` takes a
lock (an ``fcntl`` lock on ``<db>.lock`` for SQLite, a session advisory lock for
PostgreSQL) and fails at once with ``WriterLocked`` naming the holder.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from chain.blocks import Block, BlockHeader
from chain.canonical import canonical, parse
from chain.entries import SignedEntry, decode_signed_entry
from chain.errors import DuplicateNonce, StorageError, WriterLocked
from chain.merkle import NodeKey

SCHEMA_VERSION = "1"
ADVISORY_LOCK_KEY = 0x7066_6E6F_6465  # "pfnode"
LEVEL_SHIFT = 48
NO_AUTOINC = {"autoincrement": False}


def node_id(key: NodeKey) -> int:
    level, index = key
    return (level << LEVEL_SHIFT) | index


def node_key(ident: int) -> NodeKey:
    return ident >> LEVEL_SHIFT, ident & ((1 << LEVEL_SHIFT) - 1)


class MetaRow(SQLModel, table=True):
    __tablename__ = "ledger_meta"
    key: str = Field(primary_key=True, max_length=64)
    value: str


class BlockRow(SQLModel, table=True):
    __tablename__ = "ledger_blocks"
    height: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    hash: bytes = Field(sa_type=sa.LargeBinary, unique=True)
    header: bytes = Field(sa_type=sa.LargeBinary)  # canonical JSON of the header
    signature: bytes = Field(sa_type=sa.LargeBinary)
    first_index: int = Field(sa_type=sa.BigInteger)
    entry_count: int


class EntryRow(SQLModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (sa.UniqueConstraint("nonce", "org", name="uq_entry_nonce_org"),)
    idx: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    hash: bytes = Field(sa_type=sa.LargeBinary, unique=True)
    height: int = Field(sa_type=sa.BigInteger)
    org: str = Field(max_length=32)
    nonce: str = Field(max_length=32)
    type: str = Field(max_length=64)
    raw: bytes = Field(sa_type=sa.LargeBinary)  # canonical signed entry


class ReceiptRow(SQLModel, table=True):
    __tablename__ = "ledger_receipts"
    idx: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    raw: bytes = Field(sa_type=sa.LargeBinary)  # canonical receipt


class NodeRow(SQLModel, table=True):
    __tablename__ = "ledger_nodes"
    id: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    hash: bytes = Field(sa_type=sa.LargeBinary)


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "ledger_checkpoints"
    size: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs=NO_AUTOINC)
    note: str


LEDGER_TABLES = [
    t.__table__  # type: ignore[attr-defined,union-attr]
    for t in (MetaRow, BlockRow, EntryRow, ReceiptRow, NodeRow, CheckpointRow)
]
T_META, T_BLOCK, T_ENTRY, T_RECEIPT, T_NODE, T_CHECKPOINT = LEDGER_TABLES


@dataclass(frozen=True)
class StoredEntry:
    index: int
    height: int
    entry: SignedEntry
    receipt: dict[str, Any]


def normalise_url(url: str) -> str:
    """Accept a plain path, sqlite:///path or postgresql://...; pick the psycopg 3 driver."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=sa.pool.QueuePool,
            pool_size=8,
            max_overflow=16,
            hide_parameters=True,  # an error must not quote entries (receivable data) into logs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=4, max_overflow=4, hide_parameters=True
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Per connection: durable commits, waiting (not failing) on a busy database.

    WAL is a property of the database file, set once when the ledger is created:
    asking for it on every connection would take a lock each time.
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """executemany straight to the driver: the block append is the hot path, and SQLAlchemy's
    per-row parameter processing costs more than the insert itself."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    conn.exec_driver_sql(sql, rows)


class _WriterLock:
    """The single-writer lock: a file lock for SQLite, an advisory lock for PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: Any = None
        self._conn: Connection | None = None
        self.holder = f"pid {os.getpid()} on {socket.gethostname()}"

    def acquire(self) -> None:
        if self.engine.dialect.name == "sqlite":
            self._acquire_file()
        else:
            self._acquire_advisory()

    def _acquire_file(self) -> None:
        db = self.engine.url.database
        if not db or db == ":memory:":
            return
        path = Path(db + ".lock")
        handle = open(path, "a+")  # noqa: SIM115 - held for the writer's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise WriterLocked(f"ledger {db} is locked by its writer: {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(self.holder + "\n")
        handle.flush()
        self._file = handle

    def _acquire_advisory(self) -> None:
        conn = self.engine.connect()
        conn.execute(
            sa.text("SELECT set_config('application_name', :n, false)"),
            {"n": f"pfnode-writer {self.holder}"[:63]},
        )
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        if not got.scalar():
            holder = conn.execute(
                sa.text(
                    "SELECT a.application_name, a.pid, a.client_addr FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"
                ),
                {"k": ADVISORY_LOCK_KEY},
            ).first()
            conn.close()
            who = f"{holder[0]} (backend pid {holder[1]})" if holder else "another session"
            raise WriterLocked(f"ledger {self.engine.url.database} is locked by its writer: {who}")
        conn.commit()
        self._conn = conn

    def is_held(self) -> bool:
        if self._file is not None:
            return True
        if self._conn is None:
            return self.engine.url.database in (None, "", ":memory:")
        try:
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
            return True
        except SQLAlchemyError:
            return False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            try:
                self._conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY}
                )
                self._conn.commit()
            except SQLAlchemyError:
                pass  # the session is gone, and its lock went with it
            finally:
                self._conn.close()
                self._conn = None


class Ledger:
    """The stored ledger. Readers open it freely; one writer holds its lock."""

    def __init__(self, engine: Engine, writer: bool) -> None:
        self.engine = engine
        self.writer = writer
        self._lock = _WriterLock(engine) if writer else None
        self._lock_guard = threading.Lock()  # the lock's session is not shared between threads
        self._head: BlockHeader | None = None
        self._genesis: dict[str, Any] | None = None

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, writer: bool = False, create: bool = False) -> Ledger:
        engine = make_engine(url)
        ledger = cls(engine, writer)
        try:
            if ledger._lock is not None:
                ledger._lock.acquire()
            if create:
                if engine.dialect.name == "sqlite":
                    with engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                SQLModel.metadata.create_all(engine, tables=LEDGER_TABLES)
            ledger._check_schema()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _check_schema(self) -> None:
        try:
            with self.engine.connect() as conn:
                version = conn.execute(
                    sa.select(T_META.c.value).where(T_META.c.key == "schema_version")
                ).scalar()
        except (OperationalError, SQLAlchemyError) as exc:
            raise StorageError(
                f"{self.engine.url.render_as_string(hide_password=True)} holds no pfnode ledger "
                "(run `pfnode init` first)"
            ) from exc
        if version is None:
            return  # created, not yet initialised
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"ledger schema version {version} is not {SCHEMA_VERSION}, the one this node knows"
            )

    def try_become_writer(self) -> bool:
        """Take the writer lock on this open handle; False when another process holds it."""
        if self.writer:
            return True
        lock = _WriterLock(self.engine)
        try:
            lock.acquire()
        except WriterLocked:
            return False
        self._lock = lock
        self.writer = True
        self._head = None
        return True

    def is_writer_alive(self) -> bool:
        """True while this handle still holds its lock (a PostgreSQL session can drop)."""
        with self._lock_guard:
            return self._lock is not None and self._lock.is_held()

    def retake_writer(self) -> bool:
        """The writer whose lock's session dropped takes the lock again on a new session;
        False while another process holds it (or the database cannot be reached)."""
        with self._lock_guard:
            if self._lock is not None:
                self._lock.release()
            lock = _WriterLock(self.engine)
            try:
                lock.acquire()
            except (WriterLocked, SQLAlchemyError):
                self._lock = None
                return False
            self._lock = lock
            self._head = None
            return True

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- genesis -----------------------------------------------------------------

    def init(self, genesis: dict[str, Any]) -> None:
        """Write genesis into an empty ledger."""
        self._require_writer()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_META.c.key).where(T_META.c.key == "genesis")).first():
                raise StorageError("this ledger already has a genesis")
            conn.execute(
                sa.insert(T_META),
                [
                    {"key": "schema_version", "value": SCHEMA_VERSION},
                    {"key": "genesis", "value": canonical(genesis).decode()},
                ],
            )
        self._genesis = genesis

    @property
    def genesis(self) -> dict[str, Any]:
        if self._genesis is None:
            with self.engine.connect() as conn:
                raw = conn.execute(
                    sa.select(T_META.c.value).where(T_META.c.key == "genesis")
                ).scalar()
            if raw is None:
                raise StorageError("this ledger has no genesis (run `pfnode init`)")
            self._genesis = parse(raw)
        return self._genesis

    # -- head --------------------------------------------------------------------

    def head(self, *, fresh: bool = False) -> BlockHeader | None:
        """The last committed block header (cached for the writer).

        A fresh read leaves the writer's cache alone: read from another thread (a health
        probe) it may finish after the writer appended, and would put the head back."""
        if self._head is not None and self.writer and not fresh:
            return self._head
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_BLOCK.c.header).order_by(T_BLOCK.c.height.desc()).limit(1)
            ).first()
        head = BlockHeader.from_json(parse(row[0])) if row else None
        if not (fresh and self.writer):
            self._head = head
        return head

    @property
    def size(self) -> int:
        head = self.head()
        return head.log_size if head else 0

    # -- appending ---------------------------------------------------------------

    def append_block(
        self,
        block: Block,
        nodes: Mapping[NodeKey, bytes],
        extra: Callable[[Connection], None] | None = None,
    ) -> None:
        """Commit one block, its entries, receipts and Merkle nodes in one transaction."""
        self._require_writer()
        header = block.header
        first = header.log_size - len(block.entries)
        try:
            with self.engine.begin() as conn:
                self._check_next(conn, header)
                conn.execute(
                    sa.insert(T_BLOCK),
                    [
                        {
                            "height": header.height,
                            "hash": header.hash,
                            "header": header.canonical,
                            "signature": block.signature,
                            "first_index": first,
                            "entry_count": len(block.entries),
                        }
                    ],
                )
                if block.entries:
                    _bulk_insert(
                        conn,
                        T_ENTRY,
                        ("idx", "hash", "height", "org", "nonce", "type", "raw"),
                        [
                            (first + i, e.hash, header.height, e.org, e.nonce, e.type, e.raw)
                            for i, e in enumerate(block.entries)
                        ],
                    )
                    _bulk_insert(
                        conn,
                        T_RECEIPT,
                        ("idx", "raw"),
                        [(first + i, canonical(r)) for i, r in enumerate(block.receipts)],
                    )
                if nodes:
                    _bulk_insert(
                        conn, T_NODE, ("id", "hash"), [(node_id(k), h) for k, h in nodes.items()]
                    )
                if extra is not None:
                    extra(conn)
        except IntegrityError as exc:
            self._head = None
            raise StorageError(
                f"block {header.height} violates a ledger constraint: {exc.orig}"
            ) from exc
        except SQLAlchemyError as exc:
            self._head = None
            raise StorageError(f"block {header.height} was not committed: {exc}") from exc
        self._head = header

    def _check_next(self, conn: Connection, header: BlockHeader) -> None:
        row = conn.execute(
            sa.select(T_BLOCK.c.height, T_BLOCK.c.hash).order_by(T_BLOCK.c.height.desc()).limit(1)
        ).first()
        want = 0 if row is None else row[0] + 1
        if header.height != want:
            raise StorageError(f"block {header.height} does not follow the head; expected {want}")
        if row is not None and header.prev_hash != row[1]:
            raise StorageError(f"block {header.height} prev_hash does not match block {row[0]}")

    def add_checkpoint(self, size: int, note: str) -> None:
        self._require_writer()
        with self.engine.begin() as conn:
            conn.execute(sa.insert(T_CHECKPOINT), [{"size": size, "note": note}])

    def _require_writer(self) -> None:
        if not self.writer:
            raise StorageError("this ledger handle is read-only; open it with writer=True")

    # -- reading -----------------------------------------------------------------

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """Batch read of stored Merkle nodes (one query); the NodeReader protocol."""
        if not keys:
            return {}
        ids = [node_id(k) for k in keys]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T_NODE.c.id, T_NODE.c.hash).where(T_NODE.c.id.in_(ids)))
            return {node_key(r[0]): bytes(r[1]) for r in rows}

    def find_nonce(self, org: str, nonce: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_ENTRY.c.hash).where(T_ENTRY.c.org == org, T_ENTRY.c.nonce == nonce)
            ).first()
        return bytes(row[0]) if row else None

    def known_nonces(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (org, nonce) pairs are already on the ledger (one query)."""
        if not pairs:
            return set()
        wanted = set(pairs)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_ENTRY.c.org, T_ENTRY.c.nonce).where(
                    T_ENTRY.c.nonce.in_(sorted({n for _o, n in pairs}))
                )
            ).all()
        return {(r[0], r[1]) for r in rows} & wanted

    def check_nonce(self, org: str, nonce: str) -> None:
        """Raise DuplicateNonce when (org, nonce) is already on the ledger."""
        first = self.find_nonce(org, nonce)
        if first is not None:
            raise DuplicateNonce(org, nonce, first)

    def get_entry(self, entry_hash: bytes) -> StoredEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_ENTRY.c.idx, T_ENTRY.c.height, T_ENTRY.c.raw, T_RECEIPT.c.raw)
                .join(T_RECEIPT, T_RECEIPT.c.idx == T_ENTRY.c.idx)
                .where(T_ENTRY.c.hash == entry_hash)
            ).first()
        if row is None:
            return None
        return StoredEntry(row[0], row[1], decode_signed_entry(bytes(row[2])), parse(bytes(row[3])))

    def get_block(self, height: int) -> Block | None:
        blocks = list(self.iter_blocks(height, height + 1))
        return blocks[0] if blocks else None

    def iter_block_rows(
        self, start: int = 0, stop: int | None = None, page: int = 64
    ) -> Iterator[tuple[int, bytes, bytes, list[bytes], list[bytes]]]:
        """Stream raw (height, header, signature, entries, receipts) without parsing them.

        The verifier reads this, so that a tampered row is reported, not crashed on.
        """
        height = start
        while stop is None or height < stop:
            upper = height + page if stop is None else min(height + page, stop)
            with self.engine.connect() as conn:
                blocks = conn.execute(
                    sa.select(
                        T_BLOCK.c.height,
                        T_BLOCK.c.header,
                        T_BLOCK.c.signature,
                        T_BLOCK.c.first_index,
                        T_BLOCK.c.entry_count,
                    )
                    .where(T_BLOCK.c.height >= height, T_BLOCK.c.height < upper)
                    .order_by(T_BLOCK.c.height)
                ).all()
                if not blocks:
                    return
                lo = blocks[0][3]
                hi = blocks[-1][3] + blocks[-1][4]
                entries = conn.execute(
                    sa.select(T_ENTRY.c.idx, T_ENTRY.c.raw)
                    .where(T_ENTRY.c.idx >= lo, T_ENTRY.c.idx < hi)
                    .order_by(T_ENTRY.c.idx)
                ).all()
                receipts = conn.execute(
                    sa.select(T_RECEIPT.c.idx, T_RECEIPT.c.raw)
                    .where(T_RECEIPT.c.idx >= lo, T_RECEIPT.c.idx < hi)
                    .order_by(T_RECEIPT.c.idx)
                ).all()
            by_idx = {r[0]: bytes(r[1]) for r in entries}
            rec_by_idx = {r[0]: bytes(r[1]) for r in receipts}
            for h, header, sig, first, count in blocks:
                span = range(first, first + count)
                yield (
                    h,
                    bytes(header),
                    bytes(sig),
                    [by_idx.get(i, b"") for i in span],
                    [rec_by_idx.get(i, b"") for i in span],
                )
            height = blocks[-1][0] + 1
            if len(blocks) < page and stop is None:
                return

    def iter_blocks(self, start: int = 0, stop: int | None = None) -> Iterator[Block]:
        for _h, header, sig, entries, receipts in self.iter_block_rows(start, stop):
            yield Block(
                header=BlockHeader.from_json(parse(header)),
                signature=sig,
                entries=tuple(decode_signed_entry(e) for e in entries),
                receipts=tuple(parse(r) for r in receipts),
            )

    def iter_node_level(self, level: int, page: int = 50_000) -> Iterator[tuple[int, bytes]]:
        """Stream (index, hash) of the stored nodes of one level, in order."""
        lo = level << LEVEL_SHIFT
        hi = (level + 1) << LEVEL_SHIFT
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(T_NODE.c.id, T_NODE.c.hash)
                    .where(T_NODE.c.id >= lo, T_NODE.c.id < hi)
                    .order_by(T_NODE.c.id)
                    .limit(page)
                ).all()
            for ident, value in rows:
                yield node_key(ident)[1], bytes(value)
            if len(rows) < page:
                return
            lo = rows[-1][0] + 1

    def height_of_index(self, index: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(T_BLOCK.c.height)
                .where(T_BLOCK.c.first_index <= index)
                .order_by(T_BLOCK.c.height.desc())
                .limit(1)
            ).scalar()

    def checkpoints(self) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_CHECKPOINT.c.size, T_CHECKPOINT.c.note).order_by(T_CHECKPOINT.c.size)
            ).all()
        return [(r[0], r[1]) for r in rows]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_CHECKPOINT.c.size, T_CHECKPOINT.c.note)
                .order_by(T_CHECKPOINT.c.size.desc())
                .limit(1)
            ).first()
        return (row[0], row[1]) if row else None


def iter_entry_hashes(ledger: Ledger, page: int = 20_000) -> Iterator[tuple[int, bytes, bytes]]:
    """Stream (index, stored hash, raw signed entry) in log order."""
    lo = 0
    while True:
        with ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_ENTRY.c.idx, T_ENTRY.c.hash, T_ENTRY.c.raw)
                .where(T_ENTRY.c.idx >= lo)
                .order_by(T_ENTRY.c.idx)
                .limit(page)
            ).all()
        for idx, h, raw in rows:
            yield idx, bytes(h), bytes(raw)
        if len(rows) < page:
            return
        lo = rows[-1][0] + 1
