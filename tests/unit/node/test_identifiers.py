"""Identifier normalisation and the unified social credit code (GB 32100-2015)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.identifiers import (
    USCC_ALPHABET,
    compute_uscc_check,
    is_valid_org_code,
    is_valid_uscc,
    make_uscc,
    normalise_id,
    split_uscc,
    verify_uscc,
)

# Published codes of real companies (business licences / annual reports): the check
# character of each was not computed by this code base, so they pin the algorithm.
REAL_USCCS = [
    "91350100M000100Y43",  # the example commonly cited for GB 32100-2015
    "914403001922038216",  # Huawei Technologies Co., Ltd.
    "91330100716105852F",  # Alibaba (China) Co., Ltd.
    "91440300708461136T",  # Shenzhen Tencent Computer Systems Co., Ltd.
]

# --------------------------------------------------------------------------- normalise_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("inv-2026/001", "INV2026001"),
        ("INV 2026 001", "INV2026001"),
        ("ＩＮＶ２０２６００１", "INV2026001"),  # full-width forms fold under NFKC
        ("cosu 612.345-678/0", "COSU6123456780"),
        ("发票-001", "发票001"),  # CJK letters stay
        ("No.\u00a0123\t\n", "NO123"),  # no-break space, tab, newline go
        ("A\u200bB", "AB"),  # zero-width space (a format character) goes
        ("ＣＯＳＣＯ　ＳＨＩＰＰＩＮＧ", "COSCOSHIPPING"),  # ideographic space
        ("straße", "STRASSE"),
        ("$100 + €5 = ¥?", "1005"),  # symbols go
        ("--/ .", ""),
    ],
)
def test_normalise_id_examples(raw: str, expected: str) -> None:
    assert normalise_id(raw) == expected


def test_normalise_id_recomposes_after_removal() -> None:
    # Removing the hyphen lets "e" and the combining acute compose; a second pass must
    # not change the result.
    once = normalise_id("e-\u0301")
    assert once == "É"
    assert normalise_id(once) == once


@given(st.text())
def test_normalise_id_is_idempotent(raw: str) -> None:
    once = normalise_id(raw)
    assert normalise_id(once) == once


@given(st.text())
def test_normalise_id_keeps_no_space_punctuation_or_symbol(raw: str) -> None:
    assert all(unicodedata.category(c)[0] in "LNM" for c in normalise_id(raw))


# --------------------------------------------------------------------------- USCC


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_uscc_accepted(code: str) -> None:
    verify_uscc(code)
    assert is_valid_uscc(code)
    assert compute_uscc_check(code[:17]) == code[17]
    assert make_uscc(code[:17]) == code


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_uscc_embeds_a_valid_org_code(code: str) -> None:
    parts = split_uscc(code)
    assert is_valid_org_code(parts.org_code)
    assert parts.authority + parts.kind + parts.division + parts.org_code + parts.check == code
    assert parts.division.isdigit()


@pytest.mark.parametrize("code", REAL_USCCS)
def test_refuses_every_single_substitution_of_real_uscc(code: str) -> None:
    for position in range(18):
        for char in USCC_ALPHABET:
            if char == code[position]:
                continue
            mutated = code[:position] + char + code[position + 1 :]
            assert not is_valid_uscc(mutated), mutated


def test_refuses_transposed_uscc() -> None:
    code = REAL_USCCS[1]
    swapped = code[:9] + code[10] + code[9] + code[11:]
    assert swapped != code
    with pytest.raises(ValueError, match="check character"):
        verify_uscc(swapped)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("", "18 characters, got 0"),
        ("91350100M000100Y4", "18 characters, got 17"),
        ("91350100M000100Y433", "18 characters, got 19"),
        ("91350100m000100Y43", "'m' at position 9"),  # lower case is not normalised away
        ("91350100O000100Y43", "'O' at position 9"),  # I, O, S, V, Z are not in the alphabet
        ("91350100M000100I43", "'I' at position 16"),
        ("9135010 M000100Y43", "' ' at position 8"),
        ("９1350100M000100Y43", "position 1"),  # full-width digit
        ("913501A0M000100Y43", "administrative division"),
        ("91350100M000100Y44", "check character is '4', expected '3'"),
    ],
)
def test_refuses_invalid_uscc_with_reason(code: str, reason: str) -> None:
    assert not is_valid_uscc(code)
    with pytest.raises(ValueError) as info:
        verify_uscc(code)
    assert reason in str(info.value)


@pytest.mark.parametrize("prefix", ["", "9135010", "91350100M000100Y4X", "9135010OM000100Y4"])
def test_refuses_make_uscc_from_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError):
        make_uscc(prefix)


def test_refuses_invalid_org_code() -> None:
    assert is_valid_org_code("M000100Y4")
    assert not is_valid_org_code("M000100Y5")
    assert not is_valid_org_code("M000100Y")
    assert not is_valid_org_code("m000100Y4")


_ALPHABET = st.sampled_from(USCC_ALPHABET)
_DIGIT = st.sampled_from("0123456789")
uscc_prefixes = st.tuples(
    _ALPHABET,
    _ALPHABET,
    st.lists(_DIGIT, min_size=6, max_size=6).map("".join),
    st.lists(_ALPHABET, min_size=9, max_size=9).map("".join),
).map("".join)


@given(uscc_prefixes)
def test_make_uscc_always_verifies(prefix: str) -> None:
    code = make_uscc(prefix)
    assert len(code) == 18
    assert code.startswith(prefix)
    verify_uscc(code)
    assert is_valid_uscc(code)


@given(uscc_prefixes, st.integers(min_value=0, max_value=17), st.characters())
def test_refuses_any_single_substitution_of_made_uscc(
    prefix: str, position: int, char: str
) -> None:
    code = make_uscc(prefix)
    if char == code[position]:
        char = USCC_ALPHABET[(USCC_ALPHABET.index(char) + 1) % len(USCC_ALPHABET)]
    mutated = code[:position] + char + code[position + 1 :]
    assert not is_valid_uscc(mutated)
    with pytest.raises(ValueError):
        verify_uscc(mutated)
