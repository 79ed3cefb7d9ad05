"""Ed25519 keys and domain-separated signatures.

A key is known on the ledger by a key id ``"<ORG>/<label>"`` (``"BANK-A/1"``).
Every signature covers ``prefix + canonical bytes``: entries, block headers and
checkpoints each have their own prefix (see ``chain.canonical``), so a signature
made for one kind of message never verifies as another.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from chain.errors import SignatureError

KeyId = NewType("KeyId", str)

KEY_ID_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,31}/[A-Za-z0-9_.-]{1,32}$")


def is_key_id(text: str) -> bool:
    """True when text has the form ORG/label."""
    return bool(KEY_ID_RE.match(text))


def org_of(key_id: str) -> str:
    """The organisation part of a key id."""
    return key_id.split("/", 1)[0]


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (padded, canonical); raises SignatureError naming `what`."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{what}: not base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise SignatureError(f"{what}: non-canonical base64")
    return data


@dataclass(frozen=True)
class PublicKey:
    """A verifying key with its ledger key id."""

    key_id: str
    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise SignatureError(f"key {self.key_id}: an Ed25519 public key is 32 bytes")

    @classmethod
    def from_b64(cls, key_id: str, text: str) -> PublicKey:
        return cls(key_id, b64decode(text, f"key {key_id}"))

    @property
    def b64(self) -> str:
        return b64encode(self.raw)

    def verify(self, prefix: bytes, message: bytes, signature: bytes) -> None:
        """Raise SignatureError unless signature is valid over prefix + message."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, prefix + message)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(f"signature by {self.key_id} does not verify") from exc


@dataclass(frozen=True)
class SigningKey:
    """A private key with its ledger key id."""

    key_id: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        return cls(key_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, key_id: str, seed: bytes) -> SigningKey:
        return cls(key_id, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public(self) -> PublicKey:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublicKey(self.key_id, raw)

    def sign(self, prefix: bytes, message: bytes) -> bytes:
        return self.private.sign(prefix + message)

    def save(self, path: Path) -> None:
        """Write the key as JSON {key_id, seed} with mode 0600, created that way."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = f'{{"key_id":"{self.key_id}","seed":"{b64encode(self.seed)}"}}\n'
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        import json

        data = json.loads(path.read_text())
        return cls.from_seed(data["key_id"], b64decode(data["seed"], f"key file {path}"))
