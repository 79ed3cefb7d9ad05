"""Witnessing in consortium mode: a follower cosigns checkpoints, the sequencer collects them.

The regulator's node sequences; every other institution's node (a follower) is a C2SP
witness (https://c2sp.org/tlog-witness) of its log. The checks themselves are pure and
live in :mod:`chain.witness`; this module is the adapter around them:

    the witness (a follower)
      WitnessStore               the last cosigned checkpoint (``node_witness_state``),
                                 compare-and-swapped in one transaction, and the split
                                 views seen (``node_split_views``, evidence kept forever)
      parse_add_checkpoint       the C2SP request body -> (old size, proof, note)
      handle_add_checkpoint      one request -> (HTTP status, body, content type)
      WitnessContext             what the API route needs (``app.state.witness``)
      load_witness_signer        ``<data>/keys/witness.json`` -> CosignatureSigner
      make_witness_key           writes that file (0600) for ``pfnode init``; its vkey

    the sequencer
      CosignCollector.push       send a checkpoint to every witness, collect and verify
                                 their cosignature lines, return the merged note
      publish                    store the merged note over the checkpoint's row

Answers of ``POST /v1/witness/add-checkpoint`` (checked in the order of the C2SP spec)::

    200  text/plain            the cosignature line (after the new record committed)
    400  problem+json          malformed body; old size above the checkpoint's size;
                               a log-signed note that is not a valid checkpoint
    403  problem+json          no valid signature by the log's key
    404  problem+json          another log's origin (C2SP: "origin unknown"), or this
                               node is not a witness (answered by the route)
    409  text/x.tlog.size      stale: the body is the size this witness last cosigned
    409  problem+json          split view: the evidence is stored first, then
                               ``on_alarm`` is called, then this is answered
    422  problem+json          the consistency proof does not verify
    503  problem+json          the witness's database failed; nothing was cosigned

Decisions. A split view answers 409 (not 422 or 403) as C2SP answers a second root at
the cosigned size, with a problem body whose title is "Split view", so that a client
can tell it from the stale 409 by its content type. A wrong origin answers 404 as C2SP
says (the witness does not know that log), not 403. A rollback (a smaller size after a
larger one, with ``old`` = the recorded size) is a request C2SP would answer 400
(old size above the checkpoint's); it is kept as split-view evidence instead, as
:mod:`chain.witness` classifies it.

Atomicity. ``handle_add_checkpoint`` reads the record, lets :func:`chain.witness.cosign`
decide, and swaps the record only if it is still the one read (``SELECT ... FOR UPDATE``
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). A request that loses the race is judged
once more against the record that won, so that a fork of the winner becomes evidence
rather than a retryable 409. The cosignature is returned only after the swap commits.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from chain.bls import BlsKey, anchor_message
from chain.checkpoint import (
    ALG_COSIGNATURE_V1,
    MAX_NOTE_SIZE,
    Checkpoint,
    CosignatureSigner,
    Verifier,
    format_cosigner_key,
    open_checkpoint,
    parse_verifier_key,
)
from chain.entries import format_ts
from chain.errors import ChainError, CheckpointError, StorageError
from chain.merkle import HASH_SIZE, NodeReader, consistency_proof
from chain.storage import T_CHECKPOINT, Ledger
from chain.witness import (
    InconsistentCheckpoint,
    SplitView,
    StaleCheckpoint,
    WitnessRecord,
    cosign,
    merge_cosignatures,
)
from node.anchoring import Validator, format_bls_line, parse_bls_lines
from node.clock import Clock, SystemClock
from node.genesis import write_private

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "SIZE_MEDIA_TYPE",
    "CosignCollector",
    "SplitViewRow",
    "WitnessContext",
    "WitnessEndpoint",
    "WitnessStateRow",
    "WitnessStore",
    "format_add_checkpoint",
    "handle_add_checkpoint",
    "load_witness_signer",
    "make_witness_key",
    "parse_add_checkpoint",
    "parse_size_body",
    "publish",
    "witness_verifiers",
]

ADD_CHECKPOINT_PATH: Final = "/v1/witness/add-checkpoint"
"""Where a witness takes checkpoints: ``<submission prefix>/add-checkpoint``, prefix /v1/witness."""

SIZE_MEDIA_TYPE: Final = "text/x.tlog.size"
"""Content type of a stale 409: the witness's size in decimal and a newline (C2SP)."""

TEXT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_BASE: Final = "https://pfnode.dev/problems/"

MAX_PROOF_LINES: Final = 63
"""C2SP: a client MUST NOT send more than 63 consistency proof lines."""

MAX_REQUEST_BYTES: Final = 64 * 1024
"""Largest add-checkpoint body accepted: a checkpoint with 100 signatures is ~15 KiB."""

WITNESS_KEY_FILE: Final = Path("keys") / "witness.json"
_MAX_TREE_SIZE: Final = (1 << 64) - 1
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]*)", re.ASCII)
_SIZE_BODY = re.compile(r"(0|[1-9][0-9]*)\n", re.ASCII)

log = logging.getLogger("pfnode.witness")

Post = Callable[[str, str], tuple[int, str]]
"""``post(url, body) -> (status, body)``: one HTTP POST of a text/plain body."""

Alarm = Callable[[SplitView], None]


# --------------------------------------------------------------------------- tables


class WitnessStateRow(SQLModel, table=True):
    """The last checkpoint this node cosigned, per log origin (one row: one log)."""

    __tablename__ = "node_witness_state"
    origin: str = Field(primary_key=True, max_length=255)
    size: int = Field(sa_type=sa.BigInteger)
    root: bytes = Field(sa_type=sa.LargeBinary)
    note: str


class SplitViewRow(SQLModel, table=True):
    """Two checkpoints the log signed that an honest log cannot both have made."""

    __tablename__ = "node_split_views"
    id: int | None = Field(default=None, primary_key=True)
    detected: str = Field(max_length=32)
    kind: str = Field(max_length=8)  # "fork" | "rollback"
    note_a: str  # the checkpoint cosigned before
    note_b: str  # the one that contradicts it


T_WITNESS_STATE: sa.Table = WitnessStateRow.__table__  # type: ignore[attr-defined]
T_SPLIT_VIEW: sa.Table = SplitViewRow.__table__  # type: ignore[attr-defined]
WITNESS_TABLES: Final = (T_WITNESS_STATE, T_SPLIT_VIEW)


# --------------------------------------------------------------------------- the store


class WitnessStore:
    """The witness's durable state: its last cosigned checkpoint and the split views seen.

    The tables are made by the migrations (``node.migrations.upgrade``), not here.
    Database errors are raised as :class:`chain.errors.StorageError`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, origin: str | None = None) -> WitnessRecord | None:
        """The last checkpoint cosigned for ``origin`` (None: the only log witnessed)."""
        query = sa.select(T_WITNESS_STATE)
        if origin is not None:
            query = query.where(T_WITNESS_STATE.c.origin == origin)
        with self._storage("reading the witness record"), self.engine.connect() as conn:
            rows = conn.execute(query.limit(2)).all()
        if len(rows) > 1:
            raise StorageError("this node witnesses several logs: name the origin")
        return _record_of(rows[0]) if rows else None

    def swap(self, old: WitnessRecord | None, new: WitnessRecord) -> None:
        """Store ``new`` if the stored record is still ``old`` (None: none yet), atomically.

        Raises StaleCheckpoint (``recorded_size``: the size stored now) when another
        request moved the record since ``old`` was read: of two concurrent swaps from one
        record, exactly one wins. Swapping a record for itself stores nothing.
        """
        if old is not None and old.origin != new.origin:
            raise CheckpointError(
                f"cannot swap a record of {old.origin!r} for one of {new.origin!r}"
            )
        try:
            with self._write() as conn:
                stored = _locked_record(conn, new.origin)
                if stored != old:
                    raise _lost(stored, old)
                if old is None:
                    conn.execute(sa.insert(T_WITNESS_STATE), [_row_of(new)])
                elif new != old:
                    conn.execute(
                        sa.update(T_WITNESS_STATE)
                        .where(T_WITNESS_STATE.c.origin == new.origin)
                        .values(_row_of(new))
                    )
        except IntegrityError:  # PostgreSQL: two first inserts, the other committed first
            raise _lost(self.record(new.origin), old) from None
        except SQLAlchemyError as exc:
            raise _storage_error("storing the witness record", exc) from exc

    def add_split_view(self, sv: SplitView, now: str) -> None:
        """Keep the evidence of a split view, detected at ``now`` (RFC 3339)."""
        row = {"detected": now, "kind": sv.kind, "note_a": sv.evidence[0], "note_b": sv.evidence[1]}
        with self._storage("storing split-view evidence"), self.engine.begin() as conn:
            conn.execute(sa.insert(T_SPLIT_VIEW), [row])

    def split_views(self) -> list[dict[str, Any]]:
        """Every split view seen, oldest first: id, detected, kind, note_a, note_b."""
        query = sa.select(T_SPLIT_VIEW).order_by(T_SPLIT_VIEW.c.id)
        with self._storage("reading split views"), self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction; SQLite takes its write lock before the first read.

        Leaving it by an exception rolls back (the connection is returned unfinished).
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()

    @contextmanager
    def _storage(self, doing: str) -> Iterator[None]:
        """Translate the driver's errors into StorageError, once, here."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise _storage_error(doing, exc) from exc


def _storage_error(doing: str, exc: SQLAlchemyError) -> StorageError:
    return StorageError(f"witness database failed {doing}: {getattr(exc, 'orig', None) or exc}")


def _lost(stored: WitnessRecord | None, old: WitnessRecord | None) -> StaleCheckpoint:
    return StaleCheckpoint(
        recorded_size=stored.size if stored else 0, claimed_size=old.size if old else 0
    )


def _locked_record(conn: Connection, origin: str) -> WitnessRecord | None:
    query = sa.select(T_WITNESS_STATE).where(T_WITNESS_STATE.c.origin == origin)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _record_of(row) if row else None


def _record_of(row: Any) -> WitnessRecord:
    return WitnessRecord(row.origin, int(row.size), bytes(row.root), row.note)


def _row_of(record: WitnessRecord) -> dict[str, Any]:
    return {"origin": record.origin, "size": record.size, "root": record.root, "note": record.note}


# --------------------------------------------------------------------------- key file


def load_witness_signer(data_dir: Path | str) -> CosignatureSigner | None:
    """This node's cosigner from ``<data>/keys/witness.json``; None when it has none."""
    path = Path(data_dir) / WITNESS_KEY_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        name, seed_text = data["name"], data["seed"]
        if not isinstance(seed_text, str):
            raise TypeError("seed is not a string")
        seed = base64.b64decode(seed_text, validate=True)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise CheckpointError(f"witness key file {path}: not {{name, seed}} ({exc})") from exc
    if len(seed) != 32 or base64.b64encode(seed).decode("ascii") != seed_text:
        raise CheckpointError(f"witness key file {path}: seed is not canonical base64 of 32 bytes")
    return CosignatureSigner(name, Ed25519PrivateKey.from_private_bytes(seed))


def make_witness_key(data_dir: Path | str, name: str) -> str:
    """Write a new cosigner key to ``<data>/keys/witness.json`` (0600); its C2SP vkey.

    An existing key file under the same name is kept (``pfnode init`` run again returns
    the same vkey); one under another name is refused, since genesis names the key.
    """
    existing = load_witness_signer(data_dir)
    if existing is not None:
        if existing.name != name:
            raise CheckpointError(
                f"{Path(data_dir) / WITNESS_KEY_FILE} holds the witness key {existing.name!r}, "
                f"not {name!r}; move it away to make a new one"
            )
        return existing.verifier.vkey
    key = Ed25519PrivateKey.generate()
    signer = CosignatureSigner(name, key)  # refuses a bad key name before anything is written
    seed = key.private_bytes_raw()
    text = json.dumps({"name": name, "seed": base64.b64encode(seed).decode("ascii")})
    write_private(Path(data_dir) / WITNESS_KEY_FILE, text + "\n")
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return format_cosigner_key(signer.name, public)


# --------------------------------------------------------------------------- the wire


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> str:
    """The body of an add-checkpoint request: ``old <n>``, proof lines, empty line, note."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return "\n".join(lines) + "\n\n" + note


def parse_add_checkpoint(body: str | bytes) -> tuple[int, list[bytes], str]:
    """(old size, consistency proof, signed note) of an add-checkpoint body.

    Refuses (CheckpointError) a body over MAX_REQUEST_BYTES, not UTF-8, with a CR, with
    no empty line after the proof, an old size line that is not ``old <decimal without
    leading zeros>``, a proof line that is not canonical base64 of 32 bytes, more than
    63 proof lines, or nothing (or an empty line) where the checkpoint should start.
    """
    text = _decode_body(body)
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise CheckpointError("no empty line between the old size and proof lines and the note")
    old_line, *proof_lines = head.split("\n")
    old_size = _parse_old_line(old_line)
    if len(proof_lines) > MAX_PROOF_LINES:
        raise CheckpointError(f"{len(proof_lines)} proof lines, at most {MAX_PROOF_LINES}")
    proof = [_parse_proof_line(line, number) for number, line in enumerate(proof_lines, 2)]
    if not note or note.startswith("\n"):
        raise CheckpointError("no checkpoint after the empty line")
    return old_size, proof, note


def _decode_body(body: str | bytes) -> str:
    if isinstance(body, str):
        data = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, bytes):
        data = body
    else:
        raise CheckpointError(f"request body must be str or bytes, not {type(body).__name__}")
    if len(data) > MAX_REQUEST_BYTES:
        raise CheckpointError(f"request body is {len(data)} bytes, at most {MAX_REQUEST_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"request body is not UTF-8 (byte {exc.start})") from None
    if "\r" in text:
        raise CheckpointError("request body contains a carriage return (CRLF line endings)")
    return text


def _parse_old_line(line: str) -> int:
    match = _OLD_LINE.fullmatch(line)
    if match is None:
        raise CheckpointError(f"line 1 {line[:40]!r} is not 'old <size>' (decimal, no leading 0)")
    size = int(match.group(1))
    if size > _MAX_TREE_SIZE:
        raise CheckpointError(f"old size {size} is over 2^64-1")
    return size


def _parse_proof_line(line: str, number: int) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"line {number}: proof hash is not base64") from None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
        raise CheckpointError(f"line {number}: proof hash is not canonical base64 of 32 bytes")
    return raw


def parse_size_body(body: str) -> int | None:
    """The size in a stale 409's ``text/x.tlog.size`` body (``"<decimal>\\n"``), else None."""
    match = _SIZE_BODY.fullmatch(body)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- the witness


def handle_add_checkpoint(
    store: WitnessStore,
    body: str | bytes,
    log_verifier: Verifier,
    origin: str,
    signer: CosignatureSigner,
    now_seconds: int,
    *,
    on_alarm: Alarm | None = None,
) -> tuple[int, str, str]:
    """Answer one add-checkpoint request: (HTTP status, body, content type).

    ``now_seconds`` is the cosignature's timestamp (POSIX seconds). See the module
    docstring for the answers; a split view is stored, then ``on_alarm`` is called (from
    the caller's thread), then answered.
    """
    try:
        old_size, proof, note = parse_add_checkpoint(body)
    except CheckpointError as exc:
        return _problem(400, "malformed-add-checkpoint", "Malformed add-checkpoint request", exc)
    if not is_checkpoint_of(note, origin):
        return _problem(404, "unknown-log", "Unknown log", f"this node witnesses only {origin!r}")
    try:
        checkpoint = verify_log_note(note, log_verifier, origin)
    except CheckpointError as exc:
        return _problem(403, "not-signed-by-the-log", "Not signed by the log", exc)
    try:
        line = process_add_checkpoint(
            store, note, old_size, proof, log_verifier, origin, signer, now_seconds
        )
    except SplitView as sv:
        process_split_view(store, sv, now_seconds, on_alarm)
        return _problem(
            409, "split-view", "Split view", sv, kind=sv.kind, evidence=list(sv.evidence)
        )
    except StaleCheckpoint as exc:
        if exc.claimed_size > checkpoint.size:
            detail = f"old size {exc.claimed_size} is above the checkpoint's size {checkpoint.size}"
            return _problem(
                400, "malformed-add-checkpoint", "Malformed add-checkpoint request", detail
            )
        return 409, f"{exc.recorded_size}\n", SIZE_MEDIA_TYPE
    except InconsistentCheckpoint as exc:
        return _problem(422, "inconsistent-checkpoint", "Inconsistent checkpoint", exc)
    except CheckpointError as exc:
        return _problem(400, "malformed-add-checkpoint", "Malformed add-checkpoint request", exc)
    except StorageError as exc:
        log.error("add-checkpoint of size %d: %s", checkpoint.size, exc)
        return _problem(503, "storage-unavailable", "Storage unavailable", exc)
    return 200, line, TEXT_MEDIA_TYPE


def is_checkpoint_of(note: str, origin: str) -> bool:
    """True when the note's first line (a checkpoint's origin line) is ``origin``."""
    return note.split("\n", 1)[0] == origin


def verify_log_note(note: str, log_verifier: Verifier, origin: str) -> Checkpoint:
    """Raise CheckpointError unless the log's key signed ``note``; its checkpoint."""
    checkpoint, _ = open_checkpoint(note, [log_verifier], origin)
    return checkpoint


def process_add_checkpoint(
    store: WitnessStore,
    note: str,
    old_size: int,
    proof: Sequence[bytes],
    log_verifier: Verifier,
    origin: str,
    signer: CosignatureSigner,
    now_seconds: int,
) -> str:
    """Cosign ``note`` against the stored record, store the new record; the cosignature line.

    Raises what :func:`chain.witness.cosign` raises, and StaleCheckpoint when the record
    moved twice under this request.
    """
    record = store.record(origin)
    new, line = cosign(record, note, old_size, proof, log_verifier, origin, signer, now_seconds)
    try:
        store.swap(record, new)
    except StaleCheckpoint:
        # Another request moved the record between the read and the swap: judge this one
        # again against the winner, so that a fork of it is caught as one.
        record = store.record(origin)
        new, line = cosign(record, note, old_size, proof, log_verifier, origin, signer, now_seconds)
        store.swap(record, new)
    return line


def process_split_view(
    store: WitnessStore, sv: SplitView, now_seconds: int, on_alarm: Alarm | None
) -> None:
    """Keep the evidence, then raise the alarm; neither failing stops the other."""
    log.critical("the log showed a split view (%s): %s", sv.kind, sv)
    try:
        store.add_split_view(sv, format_ts(datetime.fromtimestamp(now_seconds, UTC)))
    except StorageError as exc:
        log.error(
            "split-view evidence was NOT stored: %s; evidence follows\n%s\n%s", exc, *sv.evidence
        )
    if on_alarm is not None:
        try:
            on_alarm(sv)
        except Exception:  # the evidence is kept and the answer must still go out
            log.exception("the split-view alarm callback failed")


def _problem(
    status: int, slug: str, title: str, detail: object, **extensions: Any
) -> tuple[int, str, str]:
    content = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": str(detail),
        "instance": ADD_CHECKPOINT_PATH,
        **extensions,
    }
    return status, json.dumps(content), PROBLEM_MEDIA_TYPE


@dataclass(frozen=True)
class WitnessContext:
    """What ``POST /v1/witness/add-checkpoint`` needs; a follower sets ``app.state.witness``.

    ``on_alarm`` is called with each split view after its evidence is stored, from a
    worker thread (not the event loop).
    """

    store: WitnessStore
    signer: CosignatureSigner
    log_verifier: Verifier
    origin: str
    on_alarm: Alarm | None = None
    clock: Clock = field(default_factory=SystemClock)
    bls: BlsSigner | None = None

    def handle(self, body: str | bytes) -> tuple[int, str, str]:
        """handle_add_checkpoint at this moment (blocking: database and signing).

        With a BLS key, a cosigned checkpoint's answer carries one more line: this
        institution's BLS signature of it for anchoring (:mod:`node.anchoring`).
        """
        now_seconds = int(self.clock.now().timestamp())
        status, answer, media_type = handle_add_checkpoint(
            self.store,
            body,
            self.log_verifier,
            self.origin,
            self.signer,
            now_seconds,
            on_alarm=self.on_alarm,
        )
        if status == 200 and self.bls is not None:
            checkpoint = Checkpoint.parse(_note_parts(parse_add_checkpoint(body)[2])[0])
            answer += self.bls.line(checkpoint.size, checkpoint.root)
        return status, answer, media_type


@dataclass(frozen=True)
class BlsSigner:
    """A witness's anchoring key: it signs what it has just cosigned, nothing else."""

    validator: Validator
    key: BlsKey
    log_id: bytes

    def line(self, size: int, root: bytes) -> str:
        signature = self.key.sign(anchor_message(self.log_id, size, root))
        return format_bls_line(self.validator, signature)


# --------------------------------------------------------------------------- the sequencer


class WitnessEndpoint(NamedTuple):
    """A witness as the sequencer reaches it: key name, URL, cosigner key.

    ``url`` is the add-checkpoint URL when it ends in ``/add-checkpoint`` (any C2SP
    witness), otherwise the base URL of a pfnode follower, to which
    ``/v1/witness/add-checkpoint`` is appended.
    """

    name: str
    url: str
    verifier: Verifier

    @property
    def add_checkpoint_url(self) -> str:
        if self.url.rstrip("/").endswith("/add-checkpoint"):
            return self.url
        return self.url.rstrip("/") + ADD_CHECKPOINT_PATH


def witness_verifiers(genesis: Mapping[str, Any]) -> list[Verifier]:
    """The cosigner keys genesis names (``witnesses[].vkey``, type 0x04), for readers."""
    out: list[Verifier] = []
    for i, witness in enumerate(genesis.get("witnesses") or []):
        entry: Mapping[str, Any] = witness if isinstance(witness, Mapping) else {}
        name, vkey = entry.get("name"), entry.get("vkey")
        if not isinstance(vkey, str):
            raise CheckpointError(f"genesis witnesses[{i}] has no vkey")
        verifier = parse_verifier_key(vkey)
        if verifier.algorithm != ALG_COSIGNATURE_V1 or verifier.name != name:
            raise CheckpointError(f"genesis witnesses[{i}] is not a cosigner key named {name!r}")
        out.append(verifier)
    return out


class CosignCollector:
    """The sequencer's side: push each checkpoint to the witnesses, merge their lines.

    ``ledger`` is where consistency proofs come from (a Ledger, or any NodeReader).
    For each witness the collector remembers the size it believes that witness cosigned
    (0 at first: the first push of a restarted sequencer learns it from a 409). A witness
    that is unreachable, slow (``timeout`` seconds), or answers anything but a
    cosignature is skipped and logged; ``push`` never raises because of a witness. The
    witnesses are asked in parallel, so a push takes at most about two timeouts.
    ``post`` replaces HTTP (tests); otherwise ``client`` (or one the collector makes and
    ``close`` closes) posts.
    """

    def __init__(
        self,
        ledger: NodeReader,
        witnesses: Sequence[tuple[str, str, Verifier]],
        log_verifier: Verifier,
        origin: str,
        client: httpx.Client | None = None,
        *,
        post: Post | None = None,
        timeout: float = 2.0,
        validators: Sequence[Validator] = (),
    ) -> None:
        self.ledger = ledger
        self.validators = list(validators)
        self._bls_names = {v.name for v in self.validators}
        self.witnesses = [WitnessEndpoint(*w) for w in witnesses]
        _verify_endpoints(self.witnesses)
        self.log_verifier = log_verifier
        self.origin = origin
        self.timeout = timeout
        self._client = client
        self._own_client: httpx.Client | None = None
        self._post: Post = post or self._http_post
        self._sizes: dict[str, int] = {}

    @property
    def sizes(self) -> dict[str, int]:
        """The size each witness is believed to have cosigned last (by key name)."""
        return dict(self._sizes)

    def push(self, note: str) -> str:
        """``note`` (the log's signed checkpoint) with every valid witness cosignature added."""
        return self.collect(note)[0]

    def collect(self, note: str) -> tuple[str, dict[str, bytes]]:
        """``push``'s note, and the BLS signatures the witnesses sent ({org: sig}, unverified)."""
        checkpoint = verify_log_note(note, self.log_verifier, self.origin)
        with ThreadPoolExecutor(len(self.witnesses), thread_name_prefix="pfnode-cosign") as pool:
            answers = list(
                pool.map(lambda w: self._collect(w, note, checkpoint.size), self.witnesses)
            )
        got = [line for answer in answers for line in answer]
        bls_sigs = parse_bls_lines("".join(got), self.validators)
        lines = [line for line in got if not self._is_bls_line(line)]
        verifiers = [w.verifier for w in self.witnesses]
        merged = merge_cosignatures(note, lines, witness_verifiers=verifiers) if lines else note
        return merged, bls_sigs

    def _is_bls_line(self, line: str) -> bool:
        parts = line.split(" ")
        return len(parts) == 3 and parts[1] in self._bls_names

    def publish(self, ledger: Ledger, note: str) -> None:
        """:func:`publish` ``note`` (as ``push`` returned it), its lines checked again."""
        publish(ledger, note, witness_verifiers=[w.verifier for w in self.witnesses])

    def close(self) -> None:
        """Close the HTTP client the collector made (not one it was given)."""
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None

    def _collect(self, witness: WitnessEndpoint, note: str, size: int) -> list[str]:
        """The valid cosignature lines of one witness for ``note`` (size ``size``), or []."""
        try:
            return self._ask(witness, note, size)
        except (httpx.HTTPError, OSError, ChainError) as exc:
            log.warning("witness %s skipped for checkpoint %d: %s", witness.name, size, exc)
            return []

    def _ask(self, witness: WitnessEndpoint, note: str, size: int) -> list[str]:
        old = self._sizes.get(witness.name, 0)
        for _attempt in range(2):
            if old > size:
                log.warning(
                    "witness %s has cosigned size %d, beyond checkpoint %d: skipped",
                    witness.name,
                    old,
                    size,
                )
                return []
            proof = consistency_proof(old, size, self.ledger) if old else []
            request = format_add_checkpoint(old, proof, note)
            status, body = self._post(witness.add_checkpoint_url, request)
            if status == 200:
                self._sizes[witness.name] = size
                return self._valid_lines(witness, note, body)
            recorded = parse_size_body(body) if status == 409 else None
            if recorded is None:
                level = logging.CRITICAL if "split-view" in body else logging.WARNING
                log.log(
                    level,
                    "witness %s refused checkpoint %d: HTTP %d %s",
                    witness.name,
                    size,
                    status,
                    body[:500],
                )
                return []
            self._sizes[witness.name] = old = recorded
        log.warning("witness %s is still at another size than %d: skipped", witness.name, old)
        return []

    def _valid_lines(self, witness: WitnessEndpoint, note: str, body: str) -> list[str]:
        """The lines of ``body`` that are this witness's valid cosignatures of ``note``."""
        valid: list[str] = []
        for line in body.splitlines():
            if not line:
                continue
            if self._is_bls_line(line):  # checked by the aggregator, with the BLS key
                valid.append(line + "\n")
                continue
            try:
                merge_cosignatures(note, [line + "\n"], witness_verifiers=[witness.verifier])
            except CheckpointError as exc:
                log.warning(
                    "witness %s sent a line that is not its cosignature: %s", witness.name, exc
                )
                continue
            valid.append(line + "\n")
        return valid

    def _http_post(self, url: str, body: str) -> tuple[int, str]:
        client = self._client
        if client is None:
            if self._own_client is None:
                self._own_client = httpx.Client(timeout=self.timeout)
            client = self._own_client
        response = client.post(
            url,
            content=body.encode("utf-8"),
            headers={"Content-Type": TEXT_MEDIA_TYPE},
            timeout=self.timeout,
        )
        return response.status_code, response.text


def _verify_endpoints(witnesses: Sequence[WitnessEndpoint]) -> None:
    if not witnesses:
        raise CheckpointError("a cosign collector needs at least one witness")
    names = [w.name for w in witnesses]
    if len(set(names)) != len(names):
        raise CheckpointError(f"witness names repeat: {names}")
    for w in witnesses:
        if not isinstance(w.verifier, Verifier) or w.verifier.algorithm != ALG_COSIGNATURE_V1:
            raise CheckpointError(f"witness {w.name!r}: not a cosigner key (type 0x04)")
        if w.verifier.name != w.name:
            raise CheckpointError(f"witness {w.name!r}: its key is named {w.verifier.name!r}")


def publish(
    ledger: Ledger, note: str, *, witness_verifiers: Sequence[Verifier] | None = None
) -> None:
    """Store ``note`` (as ``push`` returned it) over the stored checkpoint of its size.

    The stored note must have the same text (same origin, size, root): only signature
    lines are added, none removed, so publishing twice or out of order loses nothing.
    ``witness_verifiers`` re-verifies the added lines (``push`` already did).
    """
    if not ledger.writer:
        raise StorageError("publishing a checkpoint needs the ledger opened with writer=True")
    text, lines = _note_parts(note)
    size = Checkpoint.parse(text).size
    try:
        with ledger.engine.begin() as conn:
            query = sa.select(T_CHECKPOINT.c.note).where(T_CHECKPOINT.c.size == size)
            stored = conn.execute(query.with_for_update()).scalar()
            if stored is None:
                raise StorageError(f"no checkpoint of size {size} is stored to publish over")
            if _note_parts(stored)[0] != text:
                raise CheckpointError(f"note is not the stored checkpoint of size {size}")
            merged = merge_cosignatures(stored, lines, witness_verifiers=witness_verifiers)
            if merged != stored:
                conn.execute(
                    sa.update(T_CHECKPOINT).where(T_CHECKPOINT.c.size == size).values(note=merged)
                )
    except SQLAlchemyError as exc:
        raise StorageError(f"checkpoint {size} was not published: {exc}") from exc


def _note_parts(note: str) -> tuple[str, list[str]]:
    """(text, signature lines each ending in a newline) of a signed note."""
    split = note.rfind("\n\n")
    if split < 0 or len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise CheckpointError("not a signed note (no blank line before its signatures)")
    return note[: split + 1], [line + "\n" for line in note[split + 2 :].split("\n") if line]
