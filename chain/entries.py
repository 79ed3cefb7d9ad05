"""Signed entries: what an institution signs, and its hash on the log.

An entry::

    {"v": 1, "type": "loan.drawdown", "org": "BANK-A", "key": "BANK-A/1",
     "ts": "2026-11-21T12:00:00.123Z", "nonce": "<32 hex>", "body": {...}}

is signed as Ed25519 over ``ENTRY_PREFIX + canonical(entry)``; the signed entry
is ``{"entry": ..., "sig": base64}`` and its hash is the RFC 9162 leaf hash of
its canonical bytes. Nothing here knows what a body means.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NewType

from chain.canonical import ENTRY_PREFIX, canonical, parse
from chain.errors import EncodingError, EntryError, SignatureError
from chain.keys import PublicKey, SigningKey, b64decode, b64encode, is_key_id, org_of
from chain.merkle import leaf_hash

EntryHash = NewType("EntryHash", bytes)

MAX_ENTRY_BYTES = 64 * 1024
ENTRY_VERSION = 1
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
TYPE_RE = re.compile(r"^[a-z]+(\.[a-z_]+)+$")
ORG_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,31}$")
ENTRY_FIELDS = frozenset({"v", "type", "org", "key", "ts", "nonce", "body"})


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, the only timestamp form on the ledger."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    if not isinstance(text, str) or not TS_RE.match(text):
        raise EntryError(f"ts {text!r} is not of the form 2026-11-21T12:00:00.123Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise EntryError(f"ts {text!r} is not a valid time") from exc


_NONCE_PREFIX = os.urandom(8)
_NONCE_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _reseed_nonces() -> None:  # a forked child must not repeat its parent's nonces
    global _NONCE_PREFIX, _NONCE_COUNTER
    _NONCE_PREFIX = os.urandom(8)
    _NONCE_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_reseed_nonces)


def new_nonce() -> str:
    """128 bits, unique per signer: 64 random bits per process, then a counter.

    A nonce needs uniqueness, not secrecy; reading the kernel's random source for
    every entry costs more than signing it on some machines.
    """
    return (_NONCE_PREFIX + next(_NONCE_COUNTER).to_bytes(8, "big")).hex()


@dataclass(frozen=True)
class SignedEntry:
    """A signed entry with its canonical bytes and hash computed once."""

    entry: dict[str, Any]
    sig: bytes
    raw: bytes  # canonical({"entry": entry, "sig": b64})
    hash: EntryHash

    @property
    def org(self) -> str:
        return str(self.entry["org"])

    @property
    def key_id(self) -> str:
        return str(self.entry["key"])

    @property
    def type(self) -> str:
        return str(self.entry["type"])

    @property
    def nonce(self) -> str:
        return str(self.entry["nonce"])

    @property
    def ts(self) -> datetime:
        return parse_ts(self.entry["ts"])

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.entry["body"]
        return body

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry, "sig": b64encode(self.sig)}

    def verify_signature(self, key: PublicKey) -> None:
        """Raise SignatureError unless key signed this entry."""
        if key.key_id != self.key_id:
            raise SignatureError(f"entry names key {self.key_id}, not {key.key_id}")
        key.verify(ENTRY_PREFIX, canonical(self.entry), self.sig)


def make_entry(
    key: SigningKey,
    entry_type: str,
    body: dict[str, Any],
    ts: datetime,
    nonce: str | None = None,
) -> SignedEntry:
    """Build and sign an entry with `key` on behalf of the key's organisation."""
    entry = {
        "v": ENTRY_VERSION,
        "type": entry_type,
        "org": org_of(key.key_id),
        "key": key.key_id,
        "ts": format_ts(ts),
        "nonce": nonce or new_nonce(),
        "body": body,
    }
    check_entry_shape(entry)
    message = canonical(entry)
    sig = key.sign(ENTRY_PREFIX, message)
    return _sealed(entry, sig, message)


def _sealed(entry: dict[str, Any], sig: bytes, message: bytes | None = None) -> SignedEntry:
    if message is None:
        message = canonical(entry)
    # JCS of {"entry": ..., "sig": ...}: the keys sort as written, base64 needs no escape.
    raw = b'{"entry":' + message + b',"sig":"' + b64encode(sig).encode("ascii") + b'"}'
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryError(f"entry is {len(raw)} bytes; the cap is {MAX_ENTRY_BYTES}")
    return SignedEntry(entry, sig, raw, EntryHash(leaf_hash(raw)))


def check_entry_shape(entry: Any) -> None:
    """Raise EntryError unless entry has exactly the envelope fields, well formed."""
    if not isinstance(entry, dict):
        raise EntryError("entry must be an object")
    missing = ENTRY_FIELDS - entry.keys()
    extra = entry.keys() - ENTRY_FIELDS
    if missing or extra:
        raise EntryError(f"entry fields: missing {sorted(missing)}, unexpected {sorted(extra)}")
    if entry["v"] != ENTRY_VERSION or isinstance(entry["v"], bool):
        raise EntryError(f"entry.v: unknown version {entry['v']!r}")
    checks = (
        ("type", TYPE_RE),
        ("org", ORG_RE),
        ("nonce", NONCE_RE),
    )
    for field, pattern in checks:
        if not isinstance(entry[field], str) or not pattern.match(entry[field]):
            raise EntryError(f"entry.{field}: {entry[field]!r} is malformed")
    if not isinstance(entry["key"], str) or not is_key_id(entry["key"]):
        raise EntryError(f"entry.key: {entry['key']!r} is not a key id ORG/label")
    if org_of(entry["key"]) != entry["org"]:
        raise EntryError(f"entry.key {entry['key']} does not belong to org {entry['org']}")
    parse_ts(entry["ts"])
    if not isinstance(entry["body"], dict):
        raise EntryError("entry.body must be an object")


def decode_signed_entry(data: bytes | dict[str, Any]) -> SignedEntry:
    """Read a signed entry from JSON bytes (strictly) or a parsed object."""
    if isinstance(data, bytes | bytearray):
        if len(data) > 2 * MAX_ENTRY_BYTES:
            raise EntryError(f"entry is {len(data)} bytes; the cap is {MAX_ENTRY_BYTES}")
        try:
            data = parse(bytes(data))
        except EncodingError as exc:
            raise EntryError(f"signed entry: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"entry", "sig"}:
        raise EntryError('a signed entry is exactly {"entry": ..., "sig": ...}')
    check_entry_shape(data["entry"])
    if not isinstance(data["sig"], str):
        raise EntryError("sig must be a base64 string")
    try:
        sig = b64decode(data["sig"], "sig")
    except SignatureError as exc:
        raise EntryError(str(exc)) from exc
    if len(sig) != 64:
        raise EntryError("sig: an Ed25519 signature is 64 bytes")
    try:
        return _sealed(data["entry"], sig)
    except EncodingError as exc:
        raise EntryError(f"entry: {exc}") from exc


def verify_timestamp(entry: SignedEntry, now: datetime, window: timedelta) -> None:
    """Raise EntryError when the entry's ts is outside now +- window (replay window)."""
    skew = entry.ts - now
    if abs(skew) > window:
        raise EntryError(
            f"entry ts {entry.entry['ts']} is {skew.total_seconds():+.3f}s from the node's "
            f"clock {format_ts(now)}; the window is +-{window.total_seconds():.0f}s"
        )
