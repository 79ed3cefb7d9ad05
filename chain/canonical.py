"""Canonical bytes: RFC 8785 (JCS) for everything the ledger hashes or signs.

Two encoders, one result:

- ``jcs(value)`` is the general RFC 8785 encoder (the ``rfc8785`` package). It
  accepts every I-JSON value, floats included, and is what the shared test
  vectors exercise.
- ``canonical(value)`` is the ledger's encoder. Ledger objects carry amounts as
  decimal strings, so it refuses floats (and NaN, infinities), integers outside
  I-JSON's exact range, lone surrogates and non-string keys. For such values
  JCS coincides with sorted-key, separator-free UTF-8 JSON whenever every object
  key is ASCII (code-point order = UTF-16 order), so the hot path uses orjson and
  falls back to the reference otherwise. A property test proves the two equal on
  arbitrary inputs.

``parse(data)`` reads JSON strictly: duplicate keys, floats and lone surrogates
are refused, so what was parsed re-encodes to the same canonical bytes.

Every signed or hashed kind of message has its own domain-separation prefix
(``ENTRY_PREFIX``, ``HEADER_PREFIX``...), prepended by ``signing_bytes``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

from chain.errors import EncodingError

JSONValue = Any  # dict[str, JSONValue] | list[JSONValue] | str | int | bool | None

MAX_SAFE_INTEGER = 2**53 - 1

ENTRY_PREFIX = b"pfnode/entry/v1\n"
HEADER_PREFIX = b"pfnode/block-header/v1\n"
RECEIPT_PREFIX = b"pfnode/receipt/v1\n"
GENESIS_PREFIX = b"pfnode/genesis/v1\n"


def jcs(value: JSONValue) -> bytes:
    """RFC 8785 canonical bytes of any I-JSON value (floats allowed)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EncodingError(f"not canonicalizable: {exc}") from exc


def canonical(value: JSONValue) -> bytes:
    """Canonical bytes of a ledger value; refuses floats, big ints and lone surrogates."""
    ascii_keys = _check_ledger_value(value, "$")
    if not ascii_keys:
        return jcs(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # lone surrogate or similar
        raise EncodingError(f"not canonicalizable: {exc}") from exc


def signing_bytes(prefix: bytes, value: JSONValue) -> bytes:
    """The bytes a signature covers: a domain-separation prefix, then canonical(value)."""
    return prefix + canonical(value)


def _check_ledger_value(value: JSONValue, path: str) -> bool:
    """Refuse what a ledger value may not hold; True when every key is ASCII."""
    ascii_keys = True
    stack: list[tuple[JSONValue, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_string(item, where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise EncodingError(f"{where}: integer {item} is outside I-JSON's exact range")
        elif isinstance(item, float):
            raise EncodingError(f"{where}: floats are not allowed; use a decimal string")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise EncodingError(f"{where}: object key {key!r} is not a string")
                _check_string(key, where)
                if not key.isascii():
                    ascii_keys = False
                stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
        else:
            raise EncodingError(f"{where}: {type(item).__name__} is not a JSON value")
    return ascii_keys


def _check_string(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError(f"{where}: lone surrogate in string") from exc


def _refuse_float(text: str) -> Any:
    raise EncodingError(f"floats are not allowed: {text}; use a decimal string")


def _refuse_constant(text: str) -> Any:
    raise EncodingError(f"{text} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EncodingError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse(data: bytes | str) -> JSONValue:
    """Parse JSON strictly: no duplicate keys, no floats, no NaN, no lone surrogates."""
    try:
        value = json.loads(
            data,
            object_pairs_hook=_no_duplicates,
            parse_float=_refuse_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc.__cause__, EncodingError):
            raise exc.__cause__ from exc
        raise EncodingError(f"not JSON: {exc}") from exc
    _check_ledger_value(value, "$")
    return value
