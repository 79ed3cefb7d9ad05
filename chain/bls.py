"""BLS signatures for anchoring: the IETF BLS12-381 proof-of-possession ciphersuite.

    BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_   (draft-irtf-cfrg-bls-signature-05)

Public keys are G1 points (48 bytes compressed), signatures G2 points (96 bytes), the
"minimal-pubkey-size" variant Ethereum's consensus layer uses. The functions keep the
draft's names::

    KeyGen(ikm) -> sk            SkToPk(sk) -> pk
    Sign(sk, msg) -> sig         Verify(pk, msg, sig) -> bool
    Aggregate([sig]) -> sig      FastAggregateVerify([pk], msg, sig) -> bool
    PopProve(sk) -> proof        PopVerify(pk, proof) -> bool

py-ecc is the reference and always present. A native backend (blspy, the Chia BLS library)
is used when installed and PFNODE_BLS_BACKEND does not say ``py-ecc``: tests prove its keys,
signatures, aggregates and proofs byte-identical to py-ecc's, and that each refuses what the
other refuses. A signature check with py-ecc costs about a second, so BLS is per checkpoint,
never per entry.

FastAggregateVerify is safe only over keys whose possession was proved: PopVerify runs
when a validator key is registered (genesis, the anchor contract), never skipped.

``anchor_message`` is the byte string every validator signs for a checkpoint and the anchor
contract rebuilds on-chain (contracts/CheckpointAnchor.sol).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from py_ecc.bls import G2ProofOfPossession

from chain.errors import SignatureError

SECRET_KEY_SIZE: Final = 32
PUBLIC_KEY_SIZE: Final = 48
SIGNATURE_SIZE: Final = 96
ANCHOR_DOMAIN: Final = b"pfnode/anchor/v1"
BACKEND_ENV: Final = "PFNODE_BLS_BACKEND"
_PyEcc: Any = G2ProofOfPossession  # its NewType arguments (BLSPubkey...) are plain bytes here
CURVE_ORDER: Final = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


def anchor_message(log_id: bytes, size: int, root: bytes) -> bytes:
    """What validators BLS-sign for checkpoint (size, root) of log `log_id` (its genesis hash).

    ``"pfnode/anchor/v1" || log_id (32) || size (8, big-endian) || root (32)``: 88 bytes,
    Solidity's ``abi.encodePacked(DOMAIN, logId, uint64(size), root)``.
    """
    if len(log_id) != 32 or len(root) != 32:
        raise ValueError("log_id and root are 32-byte hashes")
    if not 0 <= size < 2**64:
        raise ValueError(f"size {size} does not fit in 64 bits")
    return ANCHOR_DOMAIN + log_id + size.to_bytes(8, "big") + root


class Backend(Protocol):
    """One implementation of the ciphersuite (secret keys are ints in [1, r))."""

    name: str

    def SkToPk(self, sk: int) -> bytes: ...
    def Sign(self, sk: int, message: bytes) -> bytes: ...
    def Verify(self, pk: bytes, message: bytes, signature: bytes) -> bool: ...
    def Aggregate(self, signatures: Sequence[bytes]) -> bytes: ...
    def FastAggregateVerify(
        self, pks: Sequence[bytes], message: bytes, signature: bytes
    ) -> bool: ...
    def PopProve(self, sk: int) -> bytes: ...
    def PopVerify(self, pk: bytes, proof: bytes) -> bool: ...


class PyEccBackend:
    """The reference: py-ecc, pure Python."""

    name = "py-ecc"

    def SkToPk(self, sk: int) -> bytes:
        return bytes(_PyEcc.SkToPk(sk))

    def Sign(self, sk: int, message: bytes) -> bytes:
        return bytes(_PyEcc.Sign(sk, message))

    def Verify(self, pk: bytes, message: bytes, signature: bytes) -> bool:
        return bool(_PyEcc.Verify(pk, message, signature))

    def Aggregate(self, signatures: Sequence[bytes]) -> bytes:
        return bytes(_PyEcc.Aggregate(list(signatures)))

    def FastAggregateVerify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bool(_PyEcc.FastAggregateVerify(list(pks), message, signature))

    def PopProve(self, sk: int) -> bytes:
        return bytes(_PyEcc.PopProve(sk))

    def PopVerify(self, pk: bytes, proof: bytes) -> bool:
        return bool(_PyEcc.PopVerify(pk, proof))


class BlspyBackend:
    """blspy's PopSchemeMPL (C++, relic/blst), the same ciphersuite and DSTs."""

    name = "blspy"

    def __init__(self) -> None:
        import blspy

        self._b = blspy
        self._scheme = blspy.PopSchemeMPL

    def _sk(self, sk: int) -> object:
        return self._b.PrivateKey.from_bytes(sk.to_bytes(SECRET_KEY_SIZE, "big"))

    def _g1(self, pk: bytes) -> object | None:
        """A public key, or None where the draft's KeyValidate refuses it."""
        if len(pk) != PUBLIC_KEY_SIZE:
            return None
        try:
            point = self._b.G1Element.from_bytes(bytes(pk))
        except (RuntimeError, ValueError):
            return None
        return None if point == self._b.G1Element() else point  # identity: KeyValidate fails

    def _g2(self, signature: bytes) -> object | None:
        if len(signature) != SIGNATURE_SIZE:
            return None
        try:
            return self._b.G2Element.from_bytes(bytes(signature))
        except (RuntimeError, ValueError):
            return None

    def SkToPk(self, sk: int) -> bytes:
        return bytes(self._sk(sk).get_g1())  # type: ignore[attr-defined]

    def Sign(self, sk: int, message: bytes) -> bytes:
        return bytes(self._scheme.sign(self._sk(sk), message))

    def Verify(self, pk: bytes, message: bytes, signature: bytes) -> bool:
        point, sig = self._g1(pk), self._g2(signature)
        return point is not None and sig is not None and self._scheme.verify(point, message, sig)

    def Aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise ValueError("Aggregate needs at least one signature")
        points = [self._g2(s) for s in signatures]
        if any(p is None for p in points):
            raise ValueError("Aggregate was given a signature that is not a G2 point")
        return bytes(self._scheme.aggregate(points))

    def FastAggregateVerify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        points, sig = [self._g1(pk) for pk in pks], self._g2(signature)
        if not points or sig is None or any(p is None for p in points):
            return False
        return bool(self._scheme.fast_aggregate_verify(points, message, sig))

    def PopProve(self, sk: int) -> bytes:
        return bytes(self._scheme.pop_prove(self._sk(sk)))

    def PopVerify(self, pk: bytes, proof: bytes) -> bool:
        point, sig = self._g1(pk), self._g2(proof)
        return point is not None and sig is not None and self._scheme.pop_verify(point, sig)


PY_ECC: Final[Backend] = PyEccBackend()


def native_backend() -> Backend | None:
    """blspy's backend when it is installed, else None."""
    try:
        return BlspyBackend()
    except ImportError:
        return None


def get_backend(name: str | None = None) -> Backend:
    """``py-ecc``, ``native`` or ``auto`` (native when installed); default from PFNODE_BLS_BACKEND."""
    choice = (name or os.environ.get(BACKEND_ENV) or "auto").lower()
    if choice == "py-ecc":
        return PY_ECC
    native = native_backend()
    if choice == "native":
        if native is None:
            raise RuntimeError("the native BLS backend (blspy) is not installed")
        return native
    if choice != "auto":
        raise ValueError(f"{BACKEND_ENV} is py-ecc, native or auto, not {choice!r}")
    return native or PY_ECC


def KeyGen(ikm: bytes, key_info: bytes = b"") -> int:
    """The draft's KeyGen (HKDF-SHA256); needs at least 32 bytes of key material."""
    if len(ikm) < 32:
        raise ValueError("KeyGen needs at least 32 bytes of key material")
    return int(_PyEcc.KeyGen(ikm, key_info))


@dataclass(frozen=True)
class BlsKey:
    """A validator's BLS secret key with its name (the org it signs for)."""

    name: str
    sk: int

    def __post_init__(self) -> None:
        if not 0 < self.sk < CURVE_ORDER:
            raise ValueError("a BLS secret key is in [1, r)")

    @classmethod
    def generate(cls, name: str) -> BlsKey:
        return cls(name, KeyGen(os.urandom(32)))

    def public(self, backend: Backend | None = None) -> bytes:
        return (backend or get_backend()).SkToPk(self.sk)

    def sign(self, message: bytes, backend: Backend | None = None) -> bytes:
        return (backend or get_backend()).Sign(self.sk, message)

    def pop(self, backend: Backend | None = None) -> bytes:
        return (backend or get_backend()).PopProve(self.sk)

    def save(self, path: Path) -> None:
        """JSON {name, sk (hex, 32 bytes)} with mode 0600, created that way."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"name": self.name, "sk": self.sk.to_bytes(32, "big").hex()}) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path) -> BlsKey:
        data = json.loads(path.read_text())
        raw = bytes.fromhex(data["sk"])
        if len(raw) != SECRET_KEY_SIZE:
            raise ValueError(f"BLS key file {path}: sk is not 32 bytes")
        return cls(str(data["name"]), int.from_bytes(raw, "big"))


def require_pop(pk: bytes, proof: bytes, who: str, backend: Backend | None = None) -> None:
    """Raise SignatureError unless `proof` proves possession of `pk` (rogue-key defence)."""
    if not (backend or get_backend()).PopVerify(pk, proof):
        raise SignatureError(f"BLS proof of possession for {who} does not verify")
