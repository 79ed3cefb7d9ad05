"""Identifiers: normalisation for matching, and the Chinese unified social credit code.

``normalise_id`` is how the node compares identifiers typed by different
institutions (invoice numbers, bills of lading, vessel names): NFKC, upper case,
and every space, punctuation mark and symbol removed, so ``"inv-2026/001"``,
``"INV 2026 001"`` and ``"ＩＮＶ２０２６００１"`` are one key.

The unified social credit code (统一社会信用代码, USCC, GB 32100-2015) is 18
characters from a 31-character alphabet (digits and upper-case letters without
I, O, S, V, Z)::

    position  1     registration authority (9 = market regulation, 5 = civil affairs, ...)
    position  2     kind of entity within that authority (1 = enterprise, ...)
    positions 3-8   administrative division code (GB/T 2260), six digits
    positions 9-17  organisation code (GB 11714), with its own check character at 17
    position  18    check character over positions 1-17

The check character is ``ALPHABET[(31 - sum(value(c_i) * w_i) mod 31) mod 31]``
with weights ``w_i = 3**(i-1) mod 31``. ``verify_uscc`` checks the length, the
alphabet, that the division code is digits, and the check character. It does not
require the embedded organisation code's own GB 11714 check (``is_valid_org_code``)
nor a known authority/kind pair: the node must never refuse a real exporter over a
rule the registries do not promise to keep.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC_LENGTH: Final = 18

_USCC_VALUE: Final = {c: i for i, c in enumerate(USCC_ALPHABET)}
_ORG_CODE_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_CODE_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_DROPPED_CATEGORIES: Final = ("P", "S", "Z", "C")
_MAX_ROUNDS: Final = 8  # in practice one extra round at most


def normalise_id(s: str) -> str:
    """Return the matching form of an identifier.

    NFKC, then upper case, then every character of Unicode category P* (punctuation),
    S* (symbols), Z* (separators) or C* (controls such as tab and newline, format
    characters such as zero-width spaces) removed. Letters, digits and combining marks
    stay, in any script (``"发票-001"`` -> ``"发票001"``). Idempotent: upper-casing can
    produce a non-NFKC string (``"ΐ"``) and removing a character can let its neighbours
    compose (``"e-\u0301"``), so the steps repeat until nothing changes.
    """
    if s.isascii():  # NFKC is the identity on ASCII; kept = letters and digits
        return s.upper().translate(_ASCII_DROP)
    current = _normalise_once(s)
    for _ in range(_MAX_ROUNDS):
        again = _normalise_once(current)
        if again == current:
            break
        current = again
    return current


_ASCII_DROP: Final = {c: None for c in range(128) if not chr(c).isalnum()}


def _normalise_once(s: str) -> str:
    upper = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).upper())
    return "".join(c for c in upper if _is_kept(c))


def _is_kept(c: str) -> bool:
    return not unicodedata.category(c).startswith(_DROPPED_CATEGORIES)


def compute_uscc_check(prefix17: str) -> str:
    """Return the check character for the first 17 characters of a USCC.

    Raises ``ValueError`` if ``prefix17`` is not 17 characters of the USCC alphabet.
    """
    if len(prefix17) != USCC_LENGTH - 1:
        raise ValueError(f"a USCC body is {USCC_LENGTH - 1} characters, got {len(prefix17)}")
    total = 0
    for position, (char, weight) in enumerate(zip(prefix17, USCC_WEIGHTS, strict=True), 1):
        value = _USCC_VALUE.get(char)
        if value is None:
            raise ValueError(
                f"character {char!r} at position {position} is not in the USCC alphabet"
            )
        total += value * weight
    return USCC_ALPHABET[(31 - total % 31) % 31]


def verify_uscc(code: str) -> None:
    """Check a unified social credit code exactly as given; raise ``ValueError`` saying why not.

    No normalisation: lower case, spaces or full-width characters are refused.
    """
    if len(code) != USCC_LENGTH:
        raise ValueError(f"a USCC is {USCC_LENGTH} characters, got {len(code)}")
    for position, char in enumerate(code, 1):
        if char not in _USCC_VALUE:
            raise ValueError(
                f"character {char!r} at position {position} is not in the USCC alphabet "
                f"({USCC_ALPHABET})"
            )
    if not code[2:8].isdigit():
        raise ValueError(
            f"positions 3-8 (administrative division) must be digits, got {code[2:8]!r}"
        )
    expected = compute_uscc_check(code[:17])
    if code[17] != expected:
        raise ValueError(f"check character is {code[17]!r}, expected {expected!r}")


def is_valid_uscc(code: str) -> bool:
    """True if ``code`` is a well-formed unified social credit code with a correct check."""
    try:
        verify_uscc(code)
    except ValueError:
        return False
    return True


def make_uscc(prefix17: str) -> str:
    """Append the check character to a 17-character USCC body (tests and the demo).

    Raises ``ValueError`` if the result would not pass ``verify_uscc``.
    """
    code = prefix17 + compute_uscc_check(prefix17)
    verify_uscc(code)
    return code


@dataclass(frozen=True, slots=True)
class UsccParts:
    """The fields of a unified social credit code (see the module docstring)."""

    authority: str
    kind: str
    division: str
    org_code: str
    check: str


def split_uscc(code: str) -> UsccParts:
    """Split a verified USCC into its fields; raises ``ValueError`` if it does not verify."""
    verify_uscc(code)
    return UsccParts(
        authority=code[0], kind=code[1], division=code[2:8], org_code=code[8:17], check=code[17]
    )


def is_valid_org_code(org_code: str) -> bool:
    """True if a 9-character organisation code (GB 11714) has a correct check character.

    The check is ``11 - (sum(value(c_i) * w_i) mod 11)`` over the first 8 characters,
    with 10 written ``X`` and 11 written ``0``; letters count A=10 .. Z=35.
    """
    if len(org_code) != 9 or not all(c in _ORG_CODE_ALPHABET for c in org_code[:8]):
        return False
    body = org_code[:8]
    total = sum(
        _ORG_CODE_ALPHABET.index(c) * w for c, w in zip(body, _ORG_CODE_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    expected = "X" if check == 10 else "0" if check == 11 else str(check)
    return org_code[8] == expected
