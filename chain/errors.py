"""Errors of the ledger core.

Every error raised by chain/ derives from ``ChainError``; leaf errors carry the
evidence (which height, which key, which field)::

    ChainError
    ├── EncodingError            not canonical JSON: float, NaN, lone surrogate, duplicate key
    ├── SignatureError           a signature does not verify, or the key is unknown/revoked
    ├── EntryError               malformed entry, over the size cap, outside the clock window
    │   └── DuplicateNonce       (org, nonce) already on the ledger
    ├── MerkleError              a proof or root does not verify, or a size/index is out of range
    ├── CheckpointError          a note or checkpoint that does not parse or verify
    ├── StorageError             the database refused or is unusable
    │   └── WriterLocked         another process holds the ledger's writer lock
    └── VerificationError        the offline verifier found a break (``height``, ``what``)
"""

from __future__ import annotations


class ChainError(Exception):
    """Root of every error raised by chain/."""


class EncodingError(ChainError):
    """A value cannot be canonically encoded or decoded (RFC 8785 / I-JSON)."""


class SignatureError(ChainError):
    """A signature does not verify, or its key is unknown or not valid here."""


class EntryError(ChainError):
    """A signed entry is malformed, too large, or outside the clock window."""


class DuplicateNonce(EntryError):
    """(org, nonce) is already on the ledger; carries the first entry's hash."""

    def __init__(self, org: str, nonce: str, first_hash: bytes) -> None:
        super().__init__(f"entry ({org}, {nonce}) is already on the ledger as {first_hash.hex()}")
        self.org = org
        self.nonce = nonce
        self.first_hash = first_hash


class MerkleError(ChainError):
    """A Merkle proof or root does not verify, or its sizes/indices are out of range."""


class CheckpointError(ChainError):
    """A signed note or checkpoint that does not parse or does not verify."""


class StorageError(ChainError):
    """The database refused an operation or is in a state the ledger cannot use."""


class WriterLocked(StorageError):
    """Another process holds this ledger's single-writer lock."""


class VerificationError(ChainError):
    """The offline verifier found a break; ``height`` is where, ``what`` says what."""

    def __init__(self, height: int | None, what: str) -> None:
        where = f"height {height}" if height is not None else "ledger"
        super().__init__(f"{where}: {what}")
        self.height = height
        self.what = what
