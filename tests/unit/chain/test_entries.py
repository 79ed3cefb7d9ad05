"""Signed entries: format, signature, hash, size cap, clock window."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from chain.canonical import ENTRY_PREFIX, canonical
from chain.entries import (
    MAX_ENTRY_BYTES,
    decode_signed_entry,
    make_entry,
    verify_timestamp,
)
from chain.errors import EntryError, SignatureError
from chain.merkle import leaf_hash
from tests.ledger_helpers import T0, seeded_key

KEY = seeded_key("BANK-A/1")


def test_entry_hash_is_rfc9162_leaf_of_canonical_signed_entry() -> None:
    e = make_entry(KEY, "loan.drawdown", {"amount": "100.00"}, T0, nonce="0" * 32)
    assert e.raw == canonical(e.to_json())
    assert e.hash == leaf_hash(e.raw)
    assert e.entry["ts"] == "2026-11-21T12:00:00.000Z"
    KEY.public.verify(ENTRY_PREFIX, canonical(e.entry), e.sig)
    assert decode_signed_entry(e.raw) == e


def test_refuses_tampered_body() -> None:
    e = make_entry(KEY, "loan.drawdown", {"amount": "100.00"}, T0)
    forged = e.to_json()
    forged["entry"]["body"]["amount"] = "900.00"
    with pytest.raises(SignatureError, match="BANK-A/1 does not verify"):
        decode_signed_entry(forged).verify_signature(KEY.public)


def test_refuses_signature_from_another_kind_of_message() -> None:
    e = make_entry(KEY, "loan.drawdown", {"amount": "1.00"}, T0)
    sig = KEY.sign(b"pfnode/block-header/v1\n", canonical(e.entry))
    forged = {**e.to_json(), "sig": __import__("base64").b64encode(sig).decode()}
    with pytest.raises(SignatureError):
        decode_signed_entry(forged).verify_signature(KEY.public)


def test_refuses_oversized_entry() -> None:
    with pytest.raises(EntryError, match=f"the cap is {MAX_ENTRY_BYTES}"):
        make_entry(KEY, "loan.drawdown", {"pad": "x" * MAX_ENTRY_BYTES}, T0)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["entry"].update(v=2), "unknown version"),
        (lambda d: d["entry"].update(org="BANK-B"), "does not belong to org"),
        (lambda d: d["entry"].update(nonce="xyz"), "entry.nonce"),
        (lambda d: d["entry"].update(ts="2026-11-21 12:00:00"), "ts"),
        (lambda d: d["entry"].pop("body"), "missing ['body']"),
        (lambda d: d["entry"].update(extra=1), "unexpected ['extra']"),
        (lambda d: d.update(sig="!!"), "sig: not base64"),
        (lambda d: d["entry"]["body"].update(x=1.5), "floats"),
    ],
)
def test_invalid_envelopes_are_refused(mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    data = make_entry(KEY, "loan.drawdown", {"amount": "1.00"}, T0).to_json()
    mutate(data)
    with pytest.raises(EntryError, match=re.escape(fragment)):
        decode_signed_entry(data)


def test_refuses_duplicate_keys_in_raw_json() -> None:
    raw = make_entry(KEY, "loan.drawdown", {"a": "1"}, T0).raw
    doubled = raw.replace(b'{"a":"1"}', b'{"a":"1","a":"2"}')
    with pytest.raises(EntryError, match="duplicate key"):
        decode_signed_entry(doubled)


def test_refuses_timestamp_outside_window() -> None:
    e = make_entry(KEY, "loan.drawdown", {}, T0)
    verify_timestamp(e, T0 + timedelta(minutes=4, seconds=59), timedelta(minutes=5))
    with pytest.raises(EntryError, match="window"):
        verify_timestamp(e, T0 + timedelta(minutes=5, seconds=1), timedelta(minutes=5))
    with pytest.raises(EntryError, match="window"):
        verify_timestamp(e, T0 - timedelta(minutes=6), timedelta(minutes=5))
