"""Signed notes, checkpoints and witness cosignatures (C2SP), with Ed25519.

Implements three C2SP specifications:

* https://c2sp.org/signed-note -- a UTF-8 text ending in a newline, a blank line, then one
  or more signature lines ``— <key name> <base64(4-byte key id || signature)>``.  Ed25519
  keys have signature type ``0x01``; key id = ``SHA-256(name || "\\n" || 0x01 || pubkey)[:4]``.
  Verifier keys are written as in Go's ``golang.org/x/mod/sumdb/note``:
  ``<name>+<hex8 key id>+<base64(type byte || 32-byte public key)>``.
* https://c2sp.org/tlog-checkpoint -- the note text is ``origin``, ``tree size`` (decimal, no
  leading zeros), ``base64(32-byte root hash)``, then optional non-empty extension lines.
* https://c2sp.org/tlog-cosignature (Ed25519, v1) -- signature type ``0x04``; the signature
  is ``key id || u64 big-endian timestamp || Ed25519(message)`` where the message is
  ``"cosignature/v1\\ntime <timestamp>\\n" + checkpoint text``.

A checkpoint signed by its log and cosigned by a witness (test keys: seeds of all 0x00 and
all 0x01 bytes; the log's key is ``log.example/pfnode+58913117+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop``,
the witness's ``witness.example/w1+0ad7d35e+BIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c``)::

    log.example/pfnode
    2
    ud3oXJXP8/27NhTfOSvho+SUDJqVGVRcctxiaCwSYRA=

    — log.example/pfnode WJExF3bzz44J90TjGeHAcWUP+3IkbGdEvDXqMarLJ4Hlhn6+Q91gV6Tc+zBjC6Lv4onLHLtgmpS5EDo2VqVA/vyKZgk=
    — witness.example/w1 CtfTXgAAAABlU/EA+QUpv6I+cjEdVhokDnpixe4gpN8CUkMRYrWNN+XyxH6xO/Z7LnFcmgp+sG4TmOVEfqEpMb5omYXHUkkZixJeDw==

Producing and reading it::

    log = NoteSigner("log.example/pfnode", log_private_key)
    witness = CosignatureSigner("witness.example/w1", witness_private_key)
    text = Checkpoint("log.example/pfnode", 2, root).to_text()
    note = sign_note(text, [log])
    note = add_signatures(note, [witness.sign_line(text, 1700000000)])
    checkpoint, opened = open_checkpoint(note, [log.verifier, witness.verifier],
                                         "log.example/pfnode")
    opened.verified == ("log.example/pfnode", "witness.example/w1")
    opened.timestamps == {"witness.example/w1": 1700000000}

Verification rules (fail closed): signature lines from keys not in the verifier list are
ignored; a line whose name and key id match a known key must verify; a line with a known key
name but an unknown key id is refused; a note with no verified signature is refused.  Every
problem raises :class:`chain.errors.CheckpointError` naming the line or key at fault.
"""  # noqa: E501

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chain.errors import CheckpointError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CosignatureSigner",
    "NoteSigner",
    "VerifiedNote",
    "Verifier",
    "add_signatures",
    "format_cosigner_key",
    "format_verifier_key",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_verifier_key",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type of plain Ed25519 note signatures (c2sp.org/signed-note)."""

ALG_COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature)."""

MAX_NOTE_SIZE = 1 << 20
"""Largest accepted signed note, in UTF-8 bytes (1 MiB)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec requires at least 16; Go uses 100)."""

_EM_DASH_PREFIX = "\u2014 "
_ED25519_SIG_SIZE = 64
_TIMESTAMP_SIZE = 8
_MAX_TIMESTAMP = (1 << 63) - 1
_MAX_TREE_SIZE = (1 << 64) - 1
_ROOT_SIZE = 32
_COSIGNATURE_HEADER = "cosignature/v1\n"
_ALGORITHMS = {ALG_ED25519: "Ed25519", ALG_COSIGNATURE_V1: "Ed25519 cosignature/v1"}
_SIZE_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_ID_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)


# --------------------------------------------------------------------------- helpers


def _control_char(text: str) -> int | None:
    """Index of the first character below U+0020 other than newline, or None."""
    for i, ch in enumerate(text):
        if ch < " " and ch != "\n":
            return i
    return None


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError(f"{what} is not valid UTF-8 ({exc.reason})") from None


def _check_name(name: object, what: str = "key name") -> str:
    if not isinstance(name, str):
        raise CheckpointError(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise CheckpointError(f"{what} is empty")
    if "+" in name:
        raise CheckpointError(f"{what} {name!r} contains '+'")
    if any(ch.isspace() for ch in name):
        raise CheckpointError(f"{what} {name!r} contains whitespace")
    if _control_char(name) is not None or "\n" in name:
        raise CheckpointError(f"{what} {name!r} contains a control character")
    _utf8(name, what)
    return name


def _check_text(text: object, what: str = "note text") -> bytes:
    """Validate a note text (the signed part) and return its UTF-8 bytes."""
    if not isinstance(text, str):
        raise CheckpointError(f"{what} must be a str, not {type(text).__name__}")
    if not text:
        raise CheckpointError(f"{what} is empty")
    if "\r" in text:
        raise CheckpointError(f"{what} contains a carriage return (CR/CRLF line endings)")
    bad = _control_char(text)
    if bad is not None:
        raise CheckpointError(f"{what} contains control character {ord(text[bad]):#04x}")
    if not text.endswith("\n"):
        raise CheckpointError(f"{what} does not end with a newline")
    data = _utf8(text, what)
    if len(data) > MAX_NOTE_SIZE:
        raise CheckpointError(f"{what} is {len(data)} bytes, over the {MAX_NOTE_SIZE}-byte limit")
    return data


def _b64decode_canonical(value: str, what: str) -> bytes:
    """Decode standard padded base64, refusing anything that does not re-encode identically."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, algorithm: int, public_key: bytes) -> bytes:
    """The 4-byte key id: ``SHA-256(name || "\\n" || algorithm || public_key)[:4]``."""
    _check_name(name)
    if algorithm not in _ALGORITHMS:
        raise CheckpointError(f"unknown signature type {algorithm:#04x} for key {name!r}")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key)
    return digest.digest()[:4]


def _cosignature_message(text: str, timestamp: int) -> bytes:
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def _check_timestamp(timestamp: object) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise CheckpointError(
            f"cosignature timestamp must be an int, not {type(timestamp).__name__}"
        )
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    return timestamp


def _signature_line(name: str, kid: bytes, payload: bytes) -> str:
    return f"{_EM_DASH_PREFIX}{name} {base64.b64encode(kid + payload).decode('ascii')}\n"


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: a note key (type 0x01) or a cosigner key (type 0x04)."""

    name: str
    algorithm: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.algorithm not in _ALGORITHMS:
            raise CheckpointError(
                f"key {self.name!r}: unknown signature type {self.algorithm:#04x}"
            )
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise CheckpointError(f"key {self.name!r}: an Ed25519 public key is 32 bytes")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise CheckpointError(f"key {self.name!r}: not an Ed25519 public key") from None

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id of this key."""
        return key_id(self.name, self.algorithm, self.public_key)

    @property
    def vkey(self) -> str:
        """This key in verifier-key form, ``<name>+<hex8>+<base64>``."""
        data = bytes([self.algorithm]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(data).decode('ascii')}"

    def _check(self, text: str, payload: bytes) -> int | None:
        """Verify ``payload`` (the signature after the key id) over ``text``.

        Returns the cosignature timestamp for type 0x04, None for type 0x01; raises
        CheckpointError if the signature does not verify.
        """
        key = Ed25519PublicKey.from_public_bytes(self.public_key)
        timestamp: int | None = None
        if self.algorithm == ALG_COSIGNATURE_V1:
            if len(payload) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
                raise CheckpointError(
                    f"cosignature by {self.name!r} is {len(payload)} bytes after the key id, "
                    f"want {_TIMESTAMP_SIZE + _ED25519_SIG_SIZE}"
                )
            timestamp = int.from_bytes(payload[:_TIMESTAMP_SIZE], "big")
            if timestamp > _MAX_TIMESTAMP:
                raise CheckpointError(
                    f"cosignature by {self.name!r} has timestamp {timestamp} over 2^63-1"
                )
            message = _cosignature_message(text, timestamp)
            signature = payload[_TIMESTAMP_SIZE:]
        else:
            if len(payload) != _ED25519_SIG_SIZE:
                raise CheckpointError(
                    f"signature by {self.name!r} is {len(payload)} bytes after the key id, "
                    f"want {_ED25519_SIG_SIZE}"
                )
            message = text.encode("utf-8")
            signature = payload
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise CheckpointError(
                f"signature by key {self.name}+{self.key_id.hex()} does not verify"
            ) from None
        return timestamp


def _format_key(name: str, algorithm: int, public_key: bytes) -> str:
    if not isinstance(public_key, bytes):
        raise CheckpointError(f"key {name!r}: public key must be bytes")
    return Verifier(name, algorithm, public_key).vkey


def format_verifier_key(name: str, public_key_bytes: bytes) -> str:
    """Verifier key for plain Ed25519 note signatures (type 0x01)."""
    return _format_key(name, ALG_ED25519, public_key_bytes)


def format_cosigner_key(name: str, public_key_bytes: bytes) -> str:
    """Verifier key for Ed25519 cosignature/v1 signatures (type 0x04)."""
    return _format_key(name, ALG_COSIGNATURE_V1, public_key_bytes)


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse ``<name>+<hex8 key id>+<base64(type || public key)>`` (type 0x01 or 0x04).

    Refuses a key id that does not match the name, type and key.
    """
    if not isinstance(vkey, str):
        raise CheckpointError(f"verifier key must be a str, not {type(vkey).__name__}")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise CheckpointError(f"verifier key {vkey!r} is not <name>+<key id>+<key>")
    name, kid_hex, material = parts
    _check_name(name, "verifier key name")
    if not _KEY_ID_RE.fullmatch(kid_hex):
        raise CheckpointError(f"verifier key {name!r}: key id {kid_hex!r} is not 8 lowercase hex")
    raw = _b64decode_canonical(material, f"verifier key {name!r}")
    if len(raw) != 33:
        raise CheckpointError(
            f"verifier key {name!r}: {len(raw)} bytes of key data, want 33 (type + 32-byte key)"
        )
    verifier = Verifier(name, raw[0], raw[1:])
    if verifier.key_id.hex() != kid_hex:
        raise CheckpointError(
            f"verifier key {name!r}: key id {kid_hex} does not match the key "
            f"(computed {verifier.key_id.hex()})"
        )
    return verifier


class NoteSigner:
    """Signs note texts with Ed25519 (signature type 0x01)."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        _check_name(name)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"signer {name!r}: key must be an Ed25519PrivateKey")
        self.name = name
        self._key = key
        self.verifier = Verifier(name, ALG_ED25519, _raw_public_key(key.public_key()))
        self.key_id = self.verifier.key_id

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, key_id={self.key_id.hex()})"

    def sign_line(self, text: str) -> str:
        """The signature line ``— <name> <base64>\\n`` over ``text``."""
        data = _check_text(text)
        return _signature_line(self.name, self.key_id, self._key.sign(data))


class CosignatureSigner:
    """Cosigns checkpoints with timestamped Ed25519 (c2sp.org/tlog-cosignature, type 0x04)."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        _check_name(name)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"cosigner {name!r}: key must be an Ed25519PrivateKey")
        self.name = name
        self._key = key
        self.verifier = Verifier(name, ALG_COSIGNATURE_V1, _raw_public_key(key.public_key()))
        self.key_id = self.verifier.key_id

    def __repr__(self) -> str:
        return f"CosignatureSigner({self.name!r}, key_id={self.key_id.hex()})"

    def sign_line(self, checkpoint_text: str, timestamp: int) -> str:
        """The cosignature line over ``checkpoint_text`` at POSIX time ``timestamp``."""
        Checkpoint.parse(checkpoint_text)
        ts = _check_timestamp(timestamp)
        signature = self._key.sign(_cosignature_message(checkpoint_text, ts))
        return _signature_line(self.name, self.key_id, ts.to_bytes(8, "big") + signature)


# --------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class VerifiedNote:
    """The text of a note whose signatures verified.

    ``verified`` lists the names of the keys that verified, in signature-line order;
    ``timestamps`` maps each verified cosigner's name to its cosignature timestamp.
    """

    text: str
    verified: tuple[str, ...]
    timestamps: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class _SigLine:
    number: int
    line: str
    name: str
    key_id: bytes
    payload: bytes


def _parse_signature_line(line: str, number: int) -> _SigLine:
    where = f"signature line {number}"
    if not line.startswith(_EM_DASH_PREFIX):
        raise CheckpointError(f"{where} does not start with an em dash and a space")
    rest = line[len(_EM_DASH_PREFIX) :]
    name, sep, b64 = rest.partition(" ")
    if not sep:
        raise CheckpointError(f"{where} is not '— <name> <base64>'")
    _check_name(name, f"{where}: key name")
    raw = _b64decode_canonical(b64, f"{where} ({name!r}): signature")
    if len(raw) < 5:
        raise CheckpointError(f"{where} ({name!r}): signature is {len(raw)} bytes, too short")
    return _SigLine(number, line, name, raw[:4], raw[4:])


def _split_note(note: str | bytes) -> tuple[str, list[_SigLine]]:
    """Split a signed note into its text and parsed signature lines, without verifying."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise CheckpointError(f"note is {len(note)} bytes, over the {MAX_NOTE_SIZE}-byte limit")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"note is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(note, str):
        raise CheckpointError(f"note must be str or bytes, not {type(note).__name__}")
    size = len(_utf8(note, "note"))
    if size > MAX_NOTE_SIZE:
        raise CheckpointError(f"note is {size} bytes, over the {MAX_NOTE_SIZE}-byte limit")
    if "\r" in note:
        raise CheckpointError("note contains a carriage return (CR/CRLF line endings)")
    bad = _control_char(note)
    if bad is not None:
        raise CheckpointError(f"note contains control character {ord(note[bad]):#04x}")
    if not note.endswith("\n"):
        raise CheckpointError("note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line between its text and its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise CheckpointError("note has no signature lines after the blank line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has {len(lines)} signature lines, over {MAX_SIGNATURES}")
    return text, [_parse_signature_line(line, i) for i, line in enumerate(lines, start=1)]


def _verifier_index(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    index: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if not isinstance(v, Verifier):
            raise CheckpointError(f"verifiers must be Verifier objects, not {type(v).__name__}")
        slot = (v.name, v.key_id)
        other = index.get(slot)
        if other is not None and other != v:
            raise CheckpointError(f"ambiguous verifiers: two keys are {v.name}+{v.key_id.hex()}")
        index[slot] = v
    return index


def sign_note(
    text: str,
    signers: Sequence[NoteSigner | CosignatureSigner],
    *,
    timestamp: int | None = None,
) -> str:
    """Sign ``text`` with every signer and return the signed note.

    Cosigners (if any) sign ``text`` as a checkpoint at ``timestamp``, which is then required.
    """
    _check_text(text)
    if not signers:
        raise CheckpointError("sign_note needs at least one signer")
    lines: list[str] = []
    for signer in signers:
        if isinstance(signer, NoteSigner):
            lines.append(signer.sign_line(text))
        elif isinstance(signer, CosignatureSigner):
            if timestamp is None:
                raise CheckpointError(f"cosigner {signer.name!r} needs a timestamp")
            lines.append(signer.sign_line(text, timestamp))
        else:
            raise CheckpointError(f"not a signer: {type(signer).__name__}")
    return add_signatures(text + "\n" + lines[0], lines[1:])


def add_signatures(note: str, lines: Sequence[str]) -> str:
    """Append further signature lines (e.g. witness cosignatures) to a signed note.

    Each line must be a whole signature line ending in one newline, as ``sign_line`` returns.
    Refuses a line from a key (name and key id) that already signed the note.
    """
    if isinstance(lines, str):
        raise CheckpointError("lines must be a sequence of signature lines, not one str")
    _, existing = _split_note(note)
    seen = {(s.name, s.key_id) for s in existing}
    added: list[str] = []
    for i, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            raise CheckpointError(f"added line {i} must be a str, not {type(line).__name__}")
        if not line.endswith("\n") or "\n" in line[:-1]:
            raise CheckpointError(f"added line {i} is not one line ending in a newline")
        if "\r" in line or _control_char(line) is not None:
            raise CheckpointError(f"added line {i} contains a control character")
        parsed = _parse_signature_line(line[:-1], len(existing) + i)
        slot = (parsed.name, parsed.key_id)
        if slot in seen:
            raise CheckpointError(
                f"added line {i}: key {parsed.name}+{parsed.key_id.hex()} already signed the note"
            )
        seen.add(slot)
        added.append(line)
    result = note + "".join(added)
    _split_note(result)  # size and count limits
    return result


def open_note(note: str | bytes, verifiers: Sequence[Verifier]) -> VerifiedNote:
    """Parse ``note`` and verify its signatures against the trusted ``verifiers``.

    Lines from unknown keys are ignored; a known key's line must verify; a known name with an
    unknown key id is refused; at least one signature must verify.
    """
    text, sigs = _split_note(note)
    index = _verifier_index(verifiers)
    known_names = {name for name, _ in index}
    verified: list[str] = []
    timestamps: dict[str, int] = {}
    done: dict[tuple[str, bytes], str] = {}
    for sig in sigs:
        slot = (sig.name, sig.key_id)
        verifier = index.get(slot)
        if verifier is None:
            if sig.name in known_names:
                raise CheckpointError(
                    f"signature line {sig.number}: known key name {sig.name!r} "
                    f"with unknown key id {sig.key_id.hex()}"
                )
            continue  # unknown key: ignored, per c2sp.org/signed-note
        previous = done.get(slot)
        if previous is not None:
            if previous == sig.line:
                continue  # the very same line twice: harmless
            raise CheckpointError(
                f"signature line {sig.number}: second, different signature by key "
                f"{sig.name}+{sig.key_id.hex()}"
            )
        try:
            ts = verifier._check(text, sig.payload)
        except CheckpointError as exc:
            raise CheckpointError(f"signature line {sig.number}: {exc}") from None
        done[slot] = sig.line
        if sig.name not in verified:
            verified.append(sig.name)
        if ts is not None:
            timestamps[sig.name] = ts
    if not verified:
        raise CheckpointError("note has no signature from a known key")
    return VerifiedNote(text, tuple(verified), MappingProxyType(timestamps))


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("checkpoint origin must be a non-empty str")
        if "\n" in self.origin or "\r" in self.origin or _control_char(self.origin) is not None:
            raise CheckpointError(f"checkpoint origin {self.origin!r} contains a control character")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"checkpoint size must be an int, not {type(self.size).__name__}")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is outside 0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != _ROOT_SIZE:
            got = len(self.root) if isinstance(self.root, bytes) else type(self.root).__name__
            raise CheckpointError(f"checkpoint root hash must be 32 bytes, got {got}")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple of str")
        for i, ext in enumerate(self.extensions, start=4):
            if not isinstance(ext, str) or not ext:
                raise CheckpointError(f"checkpoint line {i}: extension line is empty")
            if "\n" in ext or "\r" in ext or _control_char(ext) is not None:
                raise CheckpointError(f"checkpoint line {i}: extension has a control character")

    def to_text(self) -> str:
        """The note text of this checkpoint, ending in a newline."""
        root = base64.b64encode(self.root).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text (without signatures)."""
        _check_text(text, "checkpoint text")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"checkpoint has {len(lines)} line(s), needs origin, tree size and root hash"
            )
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("checkpoint line 1: origin is empty")
        if not _SIZE_RE.fullmatch(size_text):
            raise CheckpointError(
                f"checkpoint line 2: tree size {size_text!r} is not a decimal without "
                "sign or leading zeros"
            )
        size = int(size_text)
        if size > _MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint line 2: tree size {size_text} is over 2^64-1")
        root = _b64decode_canonical(root_text, "checkpoint line 3: root hash")
        if len(root) != _ROOT_SIZE:
            raise CheckpointError(f"checkpoint line 3: root hash is {len(root)} bytes, want 32")
        for i, ext in enumerate(extensions, start=4):
            if not ext:
                raise CheckpointError(f"checkpoint line {i}: extension line is empty")
        return cls(origin, size, root, tuple(extensions))


def open_checkpoint(
    note: str | bytes, verifiers: Sequence[Verifier], origin: str
) -> tuple[Checkpoint, VerifiedNote]:
    """Verify ``note`` as in :func:`open_note` and parse it as a checkpoint of ``origin``."""
    opened = open_note(note, verifiers)
    checkpoint = Checkpoint.parse(opened.text)
    if checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}"
        )
    return checkpoint, opened
