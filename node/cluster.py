"""One node, several processes: the leader sequences, the others forward.

Every ``pfnode serve`` process on one database (or each uvicorn worker) opens the
ledger. The one that takes the writer lock (``Ledger.try_become_writer``: an
``fcntl`` lock for SQLite, an advisory lock for PostgreSQL) is the leader: it runs
the sequencer and listens on an internal TCP port whose address it records in the
``node_leader`` row. The others are standbys: they serve reads from the database,
sign their callers' entries with the institution key, forward writes and dry runs
to the leader, stream flags by polling the flags table, and try the lock twice a
second. When the leader dies its lock goes with it; a standby takes the lock,
replays the ledger into its state and becomes the leader. Two sequencers never
write one ledger: only the lock holder appends, and a block's height and indexes
are primary keys, so even a stale writer could not reuse one.

The wire: a 4-byte big-endian length, then JSON; one exchange at a time on a
persistent connection. Every request carries a token derived from the
consortium secret, so only processes of this node (sharing its data directory)
are heard. A forwarded write may be retried after a broken connection: entries are
idempotent by (org, nonce), so a retry returns the first receipt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from chain.errors import (
    ChainError,
    EntryError,
    SignatureError,
    StorageError,
)
from node.domain import Flag, Verdict
from node.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidBody,
    NodeError,
    NotFound,
    Overloaded,
    Unprocessable,
)

MAX_MESSAGE = 1 << 20
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class LeaderRow(SQLModel, table=True):
    __tablename__ = "node_leader"
    id: int = Field(primary_key=True)
    address: str = Field(max_length=128)
    holder: str = Field(max_length=128)
    since: str = Field(max_length=32)


T_LEADER = LeaderRow.__table__  # type: ignore[attr-defined]


def internal_token(secret: bytes) -> str:
    return hmac.new(secret, b"pfnode/internal/v1", hashlib.sha256).hexdigest()


def record_leader(engine: Engine, address: str) -> None:
    row = {
        "id": 1,
        "address": address,
        "holder": f"pid {os.getpid()} on {socket.gethostname()}",
        "since": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    with engine.begin() as conn:
        conn.execute(sa.delete(T_LEADER))
        conn.execute(sa.insert(T_LEADER), [row])


def read_leader(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(T_LEADER)).mappings().first()
    return dict(row) if row else None


# -- errors and values on the wire ----------------------------------------------------


def error_to_wire(exc: Exception) -> dict[str, Any]:
    kind = type(exc).__name__
    if isinstance(exc, Forbidden):
        return {"kind": kind, "org": exc.org, "role": exc.role, "entry_type": exc.entry_type}
    if isinstance(exc, NotFound):
        return {"kind": kind, "what": exc.kind, "key": exc.key}
    if isinstance(exc, Conflict):
        return {"kind": kind, "reason": exc.reason}
    if isinstance(exc, Unprocessable):
        return {"kind": kind, "problems": [[p.field, p.message] for p in exc.problems]}
    if isinstance(exc, Overloaded):
        return {"kind": kind, "queued": exc.queued, "retry_after": exc.retry_after}
    return {"kind": kind, "message": str(exc)}


def error_from_wire(data: dict[str, Any]) -> Exception:
    kind = data.get("kind")
    if kind == "Forbidden":
        return Forbidden(data["org"], data["role"], data["entry_type"])
    if kind == "NotFound":
        return NotFound(data["what"], data["key"])
    if kind == "Conflict":
        return Conflict(data["reason"])
    if kind in ("Unprocessable", "InvalidBody"):
        problems = [FieldProblem(f, m) for f, m in data["problems"]]
        return InvalidBody(problems) if kind == "InvalidBody" else Unprocessable(problems)
    if kind == "Overloaded":
        return Overloaded(data["queued"], data["retry_after"])
    if kind in ("SignatureError",):
        return SignatureError(data["message"])
    if kind in ("EntryError", "DuplicateNonce"):
        return EntryError(data["message"])
    return StorageError(f"the sequencer failed: {data.get('message', kind)}")


def verdict_to_wire(verdict: Verdict) -> dict[str, Any]:
    return {"status": verdict.status, "flags": [f.to_json() for f in verdict.flags]}


def verdict_from_wire(data: dict[str, Any]) -> Verdict:
    flags = tuple(
        Flag(f["code"], f["severity"], f["detail"], tuple(f["related"]), dict(f["data"]))
        for f in data["flags"]
    )
    return Verdict(data["status"], flags)


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    writer.write(len(data).to_bytes(4, "big") + data)
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> dict[str, Any]:
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > MAX_MESSAGE:
        raise ConnectionError(f"internal message of {size} bytes refused")
    message: dict[str, Any] = json.loads(await reader.readexactly(size))
    return message


# -- the leader's side ---------------------------------------------------------------


class InternalServer:
    """The leader's internal listener: authenticated requests in, answers out."""

    def __init__(self, token: str, handler: Handler, host: str = "127.0.0.1") -> None:
        self.token = token
        self.handler = handler
        self.host = host
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"{self.host}:{port}"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _receive(reader)
                if not hmac.compare_digest(str(request.get("token", "")), self.token):
                    await _send(
                        writer,
                        {
                            "error": {
                                "kind": "Forbidden",
                                "org": "?",
                                "role": "?",
                                "entry_type": "internal",
                            }
                        },
                    )
                    return
                try:
                    answer = await self.handler(request)
                except (NodeError, ChainError) as exc:
                    answer = {"error": error_to_wire(exc)}
                await _send(writer, answer)
        except (asyncio.IncompleteReadError, ConnectionError, json.JSONDecodeError):
            pass
        finally:
            writer.close()


# -- a standby's side ---------------------------------------------------------------


class Forwarder:
    """Sends requests to whichever process leads, reconnecting as leadership moves."""

    def __init__(self, engine: Engine, token: str, timeout: float = 30.0) -> None:
        self.engine = engine
        self.token = token
        self.timeout = timeout
        self._address: str | None = None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def _lookup(self) -> str | None:
        leader = read_leader(self.engine)
        return str(leader["address"]) if leader else None

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One exchange with the leader; a broken connection is retried once."""
        message = {**request, "token": self.token}
        for _attempt in range(2):
            if self._address is None:
                self._address = await asyncio.to_thread(self._lookup)
                self._close_idle()
            if self._address is None:
                break
            try:
                reader, writer = await self._connection(self._address)
                await _send(writer, message)
                answer = await asyncio.wait_for(_receive(reader), self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                self._address = None
                continue
            self._idle.append((reader, writer))
            if "error" in answer:
                raise error_from_wire(answer["error"])
            return answer
        raise Overloaded(0, retry_after=1)  # no leader reachable now: retry shortly

    async def _connection(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing():
                return reader, writer
        host, _, port = address.rpartition(":")
        return await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)

    def _close_idle(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()
