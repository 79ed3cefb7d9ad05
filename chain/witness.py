"""The witness side of checkpoint cosigning (c2sp.org/tlog-witness semantics), pure.

A witness is another institution's node. It cosigns the sequencer's checkpoints
(c2sp.org/tlog-cosignature) only after checking that each new checkpoint extends the
last one it cosigned, so that every reader who sees its cosignature knows the log showed
the witness the same append-only history. Nothing here does I/O or reads a clock: the
caller loads the witness's :class:`WitnessRecord` for the log, calls :func:`cosign`
with the request and the time, and stores the returned record **atomically, with a
compare-and-swap on the old record** (e.g. ``UPDATE ... WHERE size = :old_size AND
root = :old_root`` in the same transaction), so that two concurrent requests cannot both
advance from the same record. Only after that write commits may the cosignature line be
returned to the sequencer; a witness that hands out a cosignature it has not durably
recorded can later be talked into cosigning a fork.

The checks of :func:`cosign`, in order (HTTP codes as in c2sp.org/tlog-witness)::

    note not signed by the log's key, or signed badly   CheckpointError         403
    origin is not the expected one                      CheckpointError         404
    old_size not a non-negative int, malformed proof    CheckpointError         400
    same size as the record, different root (a fork)    SplitView(kind="fork")  409
    old_size differs from the recorded size (0 if none) StaleCheckpoint         409
    new size below the recorded size (a rollback)       SplitView("rollback")   409
    proof not empty although the recorded size is 0     InconsistentCheckpoint  422
    consistency proof does not verify                   InconsistentCheckpoint  422

The fork check comes before the stale check on purpose: two validly signed checkpoints
of one size with different roots prove that the log equivocated whatever ``old_size``
the request claims, and that evidence must not be lost to a 409 the log could retry.
A *rollback* is weaker: an older signed checkpoint replayed by anyone looks the same,
so it is refused with its evidence, but only a ``"fork"`` is proof on its own.

The first checkpoint of a log is trusted on first use (TOFU): with no record,
``old_size`` must be 0, the proof empty, and any size is accepted. A record of size 0
is likewise a placeholder: the next checkpoint needs an empty proof.

Errors (all are :class:`chain.errors.CheckpointError`, hence ``ChainError``)::

    CheckpointError
    ├── StaleCheckpoint          old_size is not the recorded size (``recorded_size``)
    ├── InconsistentCheckpoint   the consistency proof does not verify (``old_size``,
    │                            ``new_size``); raised from the ``MerkleError``
    └── SplitView                two signed checkpoints the log cannot both have made
                                 honestly (``evidence``: both notes; ``kind``)

Around it: :func:`detect_split_view` searches every signed checkpoint a node has seen
for two roots at one size; :func:`merge_cosignatures` is the sequencer adding the
witnesses' lines to its note; :func:`verify_cosigned` is a reader requiring a quorum
of known witnesses.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from chain.checkpoint import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    CosignatureSigner,
    Verifier,
    add_signatures,
    open_checkpoint,
    open_note,
)
from chain.errors import CheckpointError, MerkleError
from chain.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency

__all__ = [
    "InconsistentCheckpoint",
    "SplitView",
    "StaleCheckpoint",
    "WitnessRecord",
    "cosign",
    "detect_split_view",
    "merge_cosignatures",
    "verify_cosigned",
]

SplitKind = Literal["fork", "rollback"]


# --------------------------------------------------------------------------- errors


class StaleCheckpoint(CheckpointError):
    """The request's ``old_size`` is not the size this witness last cosigned (HTTP 409).

    ``recorded_size`` is the witness's size (0 if it never cosigned this log), which the
    sequencer should use as ``old_size`` when it retries with a fresh proof.
    """

    def __init__(self, recorded_size: int, claimed_size: int) -> None:
        super().__init__(
            f"stale request: old size {claimed_size}, but the witness last cosigned "
            f"size {recorded_size}"
        )
        self.recorded_size = recorded_size
        self.claimed_size = claimed_size


class InconsistentCheckpoint(CheckpointError):
    """The consistency proof from ``old_size`` to ``new_size`` does not verify (HTTP 422)."""

    def __init__(self, old_size: int, new_size: int, why: str) -> None:
        super().__init__(f"checkpoint of size {new_size} is not proven to extend {old_size}: {why}")
        self.old_size = old_size
        self.new_size = new_size


class SplitView(CheckpointError):
    """Two checkpoints validly signed by the log that an honest log cannot both have made.

    ``evidence`` holds both signed notes, the earlier-seen first. ``kind`` is ``"fork"``
    for two roots at one size (proof of equivocation on its own) or ``"rollback"`` for a
    smaller size after a larger one was cosigned (possibly a replay of an old note).
    """

    def __init__(self, evidence: tuple[str, str], kind: SplitKind, what: str) -> None:
        super().__init__(f"split view ({kind}): {what}")
        self.evidence = evidence
        self.kind: SplitKind = kind


# --------------------------------------------------------------------------- record


@dataclass(frozen=True)
class WitnessRecord:
    """The last checkpoint this witness cosigned for one log, as the log signed it."""

    origin: str
    size: int
    root: bytes
    note: str

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("witness record origin must be a non-empty str")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise CheckpointError(f"witness record size {self.size!r} is not an int >= 0")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError(f"witness record root must be {HASH_SIZE} bytes")
        if not isinstance(self.note, str) or not self.note:
            raise CheckpointError("witness record note must be a non-empty str")


# --------------------------------------------------------------------------- cosign


def cosign(
    record: WitnessRecord | None,
    note: str,
    old_size: int,
    proof: Sequence[bytes],
    log_verifier: Verifier,
    origin: str,
    signer: CosignatureSigner,
    timestamp: int,
) -> tuple[WitnessRecord, str]:
    """Check ``note`` against this witness's ``record`` and cosign it at ``timestamp``.

    ``old_size`` and ``proof`` are the request's claimed previous size and the
    consistency proof from it to the note's size. Returns the record to store (the same
    record when the checkpoint was already cosigned) and the cosignature line. Raises
    as tabled in the module docstring; on any error nothing is to be stored.
    """
    _verify_log_key(log_verifier)
    checkpoint, text = _open_log_checkpoint(note, log_verifier, origin)
    _verify_request(old_size, proof)
    if record is None:
        _process_first(checkpoint, old_size, proof)
        new_record = WitnessRecord(origin, checkpoint.size, checkpoint.root, note)
    else:
        if record.origin != origin:
            raise CheckpointError(f"witness record is for origin {record.origin!r}, not {origin!r}")
        new_record = _process_next(record, checkpoint, note, old_size, proof)
    return new_record, signer.sign_line(text, timestamp)


def _verify_log_key(log_verifier: Verifier) -> None:
    """Refuse a log key that is not a plain Ed25519 note key (e.g. a cosigner key)."""
    if not isinstance(log_verifier, Verifier) or log_verifier.algorithm != ALG_ED25519:
        raise CheckpointError("the log's verifier must be an Ed25519 note key (type 0x01)")


def _open_log_checkpoint(note: str, log_verifier: Verifier, origin: str) -> tuple[Checkpoint, str]:
    """Open ``note`` with the log's key alone; returns the checkpoint and its signed text.

    Because the log's key is the only verifier, success means the log signed it. A size-0
    checkpoint must carry the empty tree's root.
    """
    checkpoint, opened = open_checkpoint(note, [log_verifier], origin)
    if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
        raise CheckpointError("checkpoint of size 0 does not carry the empty tree's root")
    return checkpoint, opened.text


def _verify_request(old_size: int, proof: Sequence[bytes]) -> None:
    """Refuse a malformed request: ``old_size`` an int >= 0, ``proof`` 32-byte hashes."""
    if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
        raise CheckpointError(f"old size {old_size!r} is not an int >= 0")
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        raise CheckpointError("proof must be a sequence of 32-byte hashes")
    for i, element in enumerate(proof):
        if not isinstance(element, bytes) or len(element) != HASH_SIZE:
            raise CheckpointError(f"proof element {i} is not a {HASH_SIZE}-byte hash")


def _process_first(checkpoint: Checkpoint, old_size: int, proof: Sequence[bytes]) -> None:
    """The first checkpoint of a log (TOFU): ``old_size`` 0 and an empty proof."""
    if old_size != 0:
        raise StaleCheckpoint(recorded_size=0, claimed_size=old_size)
    if proof:
        raise InconsistentCheckpoint(0, checkpoint.size, "a proof from size 0 must be empty")


def _process_next(
    record: WitnessRecord,
    checkpoint: Checkpoint,
    note: str,
    old_size: int,
    proof: Sequence[bytes],
) -> WitnessRecord:
    """Check ``checkpoint`` against the last cosigned ``record``; the record to store."""
    if checkpoint.size == record.size and checkpoint.root != record.root:
        raise SplitView(
            (record.note, note),
            "fork",
            f"two roots at size {record.size}: "
            f"{record.root.hex()} (cosigned) and {checkpoint.root.hex()}",
        )
    if old_size != record.size:
        raise StaleCheckpoint(recorded_size=record.size, claimed_size=old_size)
    if checkpoint.size < record.size:
        raise SplitView(
            (record.note, note),
            "rollback",
            f"size {checkpoint.size} after size {record.size} was cosigned",
        )
    _verify_extension(record, checkpoint, proof)
    if checkpoint.size == record.size:
        return record  # already cosigned: cosign again, keep the first note as evidence
    return WitnessRecord(record.origin, checkpoint.size, checkpoint.root, note)


def _verify_extension(
    record: WitnessRecord, checkpoint: Checkpoint, proof: Sequence[bytes]
) -> None:
    """Raise InconsistentCheckpoint unless ``proof`` shows ``checkpoint`` extends ``record``."""
    if record.size == 0:
        if proof:
            raise InconsistentCheckpoint(0, checkpoint.size, "a proof from size 0 must be empty")
        return
    try:
        verify_consistency(record.size, checkpoint.size, record.root, checkpoint.root, proof)
    except MerkleError as exc:
        raise InconsistentCheckpoint(record.size, checkpoint.size, str(exc)) from exc


# --------------------------------------------------------------------------- gossip


def detect_split_view(
    notes: Iterable[str], log_verifier: Verifier, origin: str
) -> SplitView | None:
    """Evidence of two roots at one size among ``notes``, or None.

    Only notes validly signed by the log for ``origin`` count; anything else (unsigned,
    forged, another log's, not a checkpoint) is skipped, since it proves nothing about
    this log. A rollback cannot be told from an old note in a set, so only forks are found.
    """
    _verify_log_key(log_verifier)
    seen: dict[int, tuple[bytes, str]] = {}
    for note in notes:
        try:
            checkpoint, _ = _open_log_checkpoint(note, log_verifier, origin)
        except CheckpointError:
            continue
        first = seen.setdefault(checkpoint.size, (checkpoint.root, note))
        if first[0] != checkpoint.root:
            return SplitView(
                (first[1], note),
                "fork",
                f"two roots at size {checkpoint.size}: "
                f"{first[0].hex()} and {checkpoint.root.hex()}",
            )
    return None


# --------------------------------------------------------------------------- sequencer


def _signature_slot(line: str) -> tuple[str, bytes] | None:
    """(key name, key id) of a signature line, or None if it does not parse."""
    if not line.startswith("\u2014 "):
        return None
    name, sep, b64 = line[2:].rstrip("\n").partition(" ")
    if not sep:
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return (name, raw[:4]) if len(raw) >= 4 else None


def merge_cosignatures(
    note: str,
    lines: Sequence[str],
    *,
    witness_verifiers: Sequence[Verifier] | None = None,
) -> str:
    """Add witnesses' cosignature ``lines`` to the sequencer's signed ``note``.

    Keeps the order; a line whose key (name and key id) already signed the note, or that
    came earlier in ``lines``, is dropped, so a witness that answers twice is harmless.
    Malformed lines are refused by :func:`chain.checkpoint.add_signatures`.

    A line that fails to verify under a key a reader trusts makes that reader refuse the
    whole note, so pass ``witness_verifiers`` whenever the lines did not come from this
    process's own :func:`cosign`: every line added must then verify under one of them.
    """
    if isinstance(lines, str):
        raise CheckpointError("lines must be a sequence of signature lines, not one str")
    split = note.rfind("\n\n") if isinstance(note, str) else -1
    if split < 0:
        raise CheckpointError("note has no blank line between its text and its signatures")
    text = note[: split + 1]
    seen = {_signature_slot(line) for line in note[split + 2 :].split("\n")}
    added: list[str] = []
    for line in lines:
        slot = _signature_slot(line) if isinstance(line, str) else None
        if slot is not None and slot in seen:
            continue
        seen.add(slot)
        added.append(line)
    merged = add_signatures(note, added)
    if witness_verifiers is not None:
        _verify_lines(text, added, witness_verifiers)
    return merged


def _verify_lines(text: str, lines: Sequence[str], witness_verifiers: Sequence[Verifier]) -> None:
    """Raise CheckpointError unless each line is a valid cosignature over ``text``."""
    witnesses = _verify_witness_keys(witness_verifiers)
    for i, line in enumerate(lines, start=1):
        try:
            open_note(text + "\n" + line, witnesses)
        except CheckpointError as exc:
            raise CheckpointError(
                f"cosignature line {i} is not from a known witness: {exc}"
            ) from exc


# --------------------------------------------------------------------------- reader


def _verify_witness_keys(witness_verifiers: Sequence[Verifier]) -> list[Verifier]:
    """Refuse an empty witness set or a witness key that is not a cosigner key."""
    witnesses = list(witness_verifiers)
    if not witnesses:
        raise CheckpointError("no witness keys: an empty witness set proves nothing")
    for v in witnesses:
        if not isinstance(v, Verifier) or v.algorithm != ALG_COSIGNATURE_V1:
            raise CheckpointError("witness keys must be cosignature/v1 keys (type 0x04)")
    return witnesses


def verify_cosigned(
    note: str,
    log_verifier: Verifier,
    witness_verifiers: Sequence[Verifier],
    origin: str,
    quorum: int,
) -> tuple[Checkpoint, tuple[str, ...]]:
    """Verify that the log signed ``note`` and at least ``quorum`` known witnesses cosigned.

    Witnesses are counted by name (a witness listed with two keys during a rotation
    counts once). Returns the checkpoint and the names of the witnesses that cosigned,
    in signature-line order. Fails closed: ``quorum`` < 1, no witness keys, a quorum
    larger than the witness set, a witness sharing the log's name.
    """
    _verify_log_key(log_verifier)
    witnesses = _verify_witness_keys(witness_verifiers)
    names = {v.name for v in witnesses}
    if log_verifier.name in names:
        raise CheckpointError(f"witness key named {log_verifier.name!r} like the log's key")
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        raise CheckpointError(f"quorum {quorum!r} must be an int >= 1")
    if quorum > len(names):
        raise CheckpointError(f"quorum {quorum} exceeds the {len(names)} known witnesses")
    checkpoint, opened = open_checkpoint(note, [log_verifier, *witnesses], origin)
    if log_verifier.name not in opened.verified:
        raise CheckpointError(f"checkpoint is not signed by the log's key {log_verifier.name!r}")
    if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
        raise CheckpointError("checkpoint of size 0 does not carry the empty tree's root")
    cosigners = tuple(name for name in opened.verified if name in names)
    if len(cosigners) < quorum:
        raise CheckpointError(
            f"checkpoint of size {checkpoint.size} has {len(cosigners)} witness "
            f"cosignature(s), needs {quorum}"
        )
    return checkpoint, cosigners
