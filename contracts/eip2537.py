"""BLS12-381 points in the encoding of the EIP-2537 precompiles, from and to ZCash compression.

chain/bls.py speaks the IETF ciphersuite's compressed bytes (48-byte G1 public keys, 96-byte
G2 signatures); the EVM's BLS12-381 precompiles, and so contracts/CheckpointAnchor.sol, take
uncompressed points:

    Fp  64 bytes: 16 zero bytes || the element, 48 bytes big-endian
    G1  128 bytes: x || y
    G2  256 bytes: x.c0 || x.c1 || y.c0 || y.c1   (an Fp2 element c0 + c1*u, c0 first)
    the point at infinity: all zero bytes

Compressed G2 bytes list x.c1 before x.c0 (ZCash format); the EIP-2537 encoding lists c0
first. Decompression goes through py-ecc, which checks the flags, the field range and the
curve equation; the functions here add the subgroup check, so whatever they return is a point
the precompiles accept. Pure functions; invalid input raises ValueError.
"""

from __future__ import annotations

from typing import Final

from py_ecc.bls.point_compression import (
    compress_G2,
    decompress_G1,
    decompress_G2,
)
from py_ecc.bls.typing import G1Compressed, G2Compressed
from py_ecc.fields import optimized_bls12_381_FQ as FQ
from py_ecc.fields import optimized_bls12_381_FQ2 as FQ2
from py_ecc.optimized_bls12_381 import (
    G1,
    b,
    b2,
    curve_order,
    field_modulus,
    is_inf,
    is_on_curve,
    multiply,
    neg,
    normalize,
)
from py_ecc.typing import Optimized_Field, Optimized_Point3D

__all__ = [
    "FP_SIZE",
    "G1_SIZE",
    "G2_SIZE",
    "NEG_G1_GENERATOR",
    "decode_g1_point",
    "decode_g2",
    "decode_g2_point",
    "encode_fp",
    "encode_g1",
    "encode_g1_point",
    "encode_g2",
    "encode_g2_point",
]

FP_SIZE: Final = 64
G1_SIZE: Final = 128
G2_SIZE: Final = 256
_PADDING: Final = bytes(16)

G1Point = Optimized_Point3D[FQ]
G2Point = Optimized_Point3D[FQ2]


def encode_fp(value: int) -> bytes:
    """A base-field element as 64 bytes: 16 zero bytes, then 48 bytes big-endian."""
    if not 0 <= value < field_modulus:
        raise ValueError("a field element is in [0, p)")
    return value.to_bytes(FP_SIZE, "big")


def decode_fp(data: bytes) -> int:
    """The field element in 64 bytes; ValueError unless padded and below p."""
    if len(data) != FP_SIZE or data[:16] != _PADDING:
        raise ValueError("an EIP-2537 field element is 64 bytes, the first 16 zero")
    value = int.from_bytes(data, "big")
    if value >= field_modulus:
        raise ValueError("field element is not below p")
    return value


def encode_g1_point(point: G1Point) -> bytes:
    """A py-ecc (optimized, projective) G1 point as 128 bytes; infinity as zeros."""
    if is_inf(point):
        return bytes(G1_SIZE)
    x, y = normalize(point)
    return encode_fp(int(x)) + encode_fp(int(y))


def encode_g2_point(point: G2Point) -> bytes:
    """A py-ecc (optimized, projective) G2 point as 256 bytes; infinity as zeros."""
    if is_inf(point):
        return bytes(G2_SIZE)
    x, y = normalize(point)
    x0, x1 = (int(c) for c in x.coeffs)
    y0, y1 = (int(c) for c in y.coeffs)
    return encode_fp(x0) + encode_fp(x1) + encode_fp(y0) + encode_fp(y1)


def decode_g1_point(data: bytes) -> G1Point:
    """128 bytes as a py-ecc G1 point, checked on the curve and in the subgroup."""
    if len(data) != G1_SIZE:
        raise ValueError(f"an EIP-2537 G1 point is {G1_SIZE} bytes, not {len(data)}")
    x, y = decode_fp(data[:64]), decode_fp(data[64:])
    point: G1Point = (FQ(x), FQ(y), FQ(0 if x == y == 0 else 1))
    if not is_on_curve(point, b):
        raise ValueError("G1 point is not on the curve")
    _require_subgroup(point)
    return point


def decode_g2_point(data: bytes) -> G2Point:
    """256 bytes as a py-ecc G2 point, checked on the curve and in the subgroup."""
    if len(data) != G2_SIZE:
        raise ValueError(f"an EIP-2537 G2 point is {G2_SIZE} bytes, not {len(data)}")
    x0, x1, y0, y1 = (decode_fp(data[i : i + FP_SIZE]) for i in range(0, G2_SIZE, FP_SIZE))
    infinite = x0 == x1 == y0 == y1 == 0
    point: G2Point = (FQ2([x0, x1]), FQ2([y0, y1]), FQ2([0, 0] if infinite else [1, 0]))
    if not is_on_curve(point, b2):
        raise ValueError("G2 point is not on the twisted curve")
    _require_subgroup(point)
    return point


def encode_g1(pk48: bytes) -> bytes:
    """A 48-byte compressed public key as the 128-byte point the precompiles take.

    Refuses (ValueError) what KeyValidate refuses: bad length or flags, x not below p, no
    point on the curve, a point outside the prime-order subgroup, the point at infinity.
    """
    if len(pk48) != 48:
        raise ValueError(f"a compressed G1 point is 48 bytes, not {len(pk48)}")
    point: G1Point = decompress_G1(G1Compressed(int.from_bytes(pk48, "big")))
    if is_inf(point):
        raise ValueError("the point at infinity is not a public key")
    _require_subgroup(point)
    return encode_g1_point(point)


def encode_g2(sig96: bytes) -> bytes:
    """A 96-byte compressed signature as the 256-byte point the precompiles take.

    Refuses (ValueError) bad length or flags, coordinates not below p, no point on the curve,
    a point outside the subgroup. Infinity (a valid, if useless, signature) encodes as zeros.
    """
    if len(sig96) != 96:
        raise ValueError(f"a compressed G2 point is 96 bytes, not {len(sig96)}")
    z1, z2 = int.from_bytes(sig96[:48], "big"), int.from_bytes(sig96[48:], "big")
    point: G2Point = decompress_G2(G2Compressed((z1, z2)))
    _require_subgroup(point)
    return encode_g2_point(point)


def decode_g2(b256: bytes) -> bytes:
    """A 256-byte EIP-2537 G2 point (checked) as its 96 compressed bytes."""
    z1, z2 = compress_G2(decode_g2_point(b256))
    return z1.to_bytes(48, "big") + z2.to_bytes(48, "big")


def _require_subgroup(point: Optimized_Point3D[Optimized_Field]) -> None:
    if not is_inf(multiply(point, curve_order)):
        raise ValueError("point is not in the prime-order subgroup")


NEG_G1_GENERATOR: Final[bytes] = encode_g1_point(neg(G1))
"""-G1 (the negated generator), 128 bytes: the fixed G1 input of every pairing check."""
