"""RFC 8785 canonical JSON: the shared vectors, the fast path, and refusals."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.canonical import MAX_SAFE_INTEGER, canonical, jcs, parse
from chain.errors import EncodingError
from tests.conftest import SHARED, shared_vectors

JCS_NAMES = sorted(p.stem for p in (SHARED / "vectors/jcs-rfc8785/input").glob("*.json"))


@pytest.mark.parametrize("name", JCS_NAMES or ["(no vectors)"])
def test_jcs_vectors_byte_for_byte(name: str) -> None:
    root = shared_vectors("jcs-rfc8785")
    value = json.loads((root / "input" / f"{name}.json").read_text(encoding="utf-8"))
    want = (root / "output" / f"{name}.json").read_bytes()
    assert jcs(value) == want


@pytest.mark.parametrize("name", JCS_NAMES or ["(no vectors)"])
def test_ledger_encoder_agrees_with_vectors_without_floats(name: str) -> None:
    root = shared_vectors("jcs-rfc8785")
    value = json.loads((root / "input" / f"{name}.json").read_text(encoding="utf-8"))
    try:
        got = canonical(value)
    except EncodingError:
        pytest.skip(f"{name} holds floats, which ledger values refuse")
    assert got == (root / "output" / f"{name}.json").read_bytes()


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_fast_path_equals_reference(value: object) -> None:
    assert canonical(value) == jcs(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_parse_round_trips_canonical_bytes(value: object) -> None:
    data = canonical(value)
    assert canonical(parse(data)) == data


@pytest.mark.parametrize(
    "value, fragment",
    [
        ({"amount": 1.5}, "floats are not allowed"),
        ({"x": float("nan")}, "floats"),
        ({"x": float("inf")}, "floats"),
        ({"x": 2**53}, "outside I-JSON"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"\udc00": 1}, "lone surrogate"),
        ({1: "x"}, "not a string"),
        ({"x": b"bytes"}, "not a JSON value"),
    ],
)
def test_refuses_non_ledger_values(value: object, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment):
        canonical(value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"amount": 1.25}', "floats are not allowed"),
        ('{"x": NaN}', "NaN is not JSON"),
        ('{"x": Infinity}', "Infinity is not JSON"),
        ('{"x": "\\ud800"}', "lone surrogate"),
        ('{"x": 9007199254740993}', "outside I-JSON"),
        ('{"x": ', "not JSON"),
    ],
)
def test_refuses_bad_json_on_parse(text: str, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment):
        parse(text)
