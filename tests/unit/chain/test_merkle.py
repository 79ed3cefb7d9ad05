"""Tests of chain.merkle: RFC 9162 hashing, stored-node proofs and proof verification."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import ChainError, MerkleError
from chain.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    NodeKey,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    new_nodes,
    node_hash,
    root_at,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# ----------------------------------------------------------------------------- helpers


def _leaf(i: int) -> bytes:
    return leaf_hash(b"entry %d" % i)


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


class DictReader:
    """A NodeReader over a plain dict (lets a test remove or corrupt nodes)."""

    def __init__(self, nodes: Mapping[NodeKey, bytes]) -> None:
        self.nodes = dict(nodes)

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}


class CountingReader:
    """Wraps a NodeReader and records every get_nodes call."""

    def __init__(self, inner: MemoryNodeStore) -> None:
        self.inner = inner
        self.calls: list[list[NodeKey]] = []

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.calls.append(list(keys))
        return self.inner.get_nodes(keys)

    def reset(self) -> None:
        self.calls.clear()


class OverlayReader:
    """A store plus nodes not yet written to it (what new_nodes returned)."""

    def __init__(self, base: MemoryNodeStore, extra: Mapping[NodeKey, bytes]) -> None:
        self.base = base
        self.extra = extra

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        out = self.base.get_nodes(keys)
        out.update({k: self.extra[k] for k in keys if k in self.extra})
        return out


# ------------------------------------------------- slow reference (RFC 9162 section 2.1)


REF_N = 64
REF_LEAVES = [_leaf(i) for i in range(REF_N)]


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@cache
def ref_mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) of REF_LEAVES, by the recursive definition."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return REF_LEAVES[lo]
    k = _split(n)
    return node_hash(ref_mth(lo, lo + k), ref_mth(lo + k, hi))


def ref_path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) (RFC 9162 section 2.1.3.1)."""
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return ref_path(m, lo, lo + k) + [ref_mth(lo + k, hi)]
    return ref_path(m - k, lo + k, hi) + [ref_mth(lo, lo + k)]


def ref_subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) (RFC 9162 section 2.1.4.1)."""
    n = hi - lo
    if m == n:
        return [] if complete else [ref_mth(lo, hi)]
    k = _split(n)
    if m <= k:
        return ref_subproof(m, lo, lo + k, complete) + [ref_mth(lo + k, hi)]
    return ref_subproof(m - k, lo + k, hi, False) + [ref_mth(lo, lo + k)]


@cache
def ref_sides(m: int, n: int) -> tuple[str, ...]:
    """For PATH(m, D[0:n]): is each proof element the left or the right sibling."""
    if n == 1:
        return ()
    k = _split(n)
    if m < k:
        return ref_sides(m, k) + ("R",)
    return ref_sides(m - k, n - k) + ("L",)


@cache
def ref_store() -> MemoryNodeStore:
    store = MemoryNodeStore()
    store.append(REF_LEAVES)
    return store


PROP_N = 320
PROP_LEAVES = [_leaf(i) for i in range(PROP_N)]


@cache
def prop_store() -> MemoryNodeStore:
    """One store serves every tree size <= PROP_N: nodes never change once written."""
    store = MemoryNodeStore()
    store.append(PROP_LEAVES)
    return store


# ------------------------------------------------------------------------ basic hashes


def test_hash_definitions() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # RFC 6962 empty-leaf hash, as in the shared vectors ("bjQLnP+zepi...").
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != node_hash(b, a)
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert root_from_leaf_hashes([a]) == a
    assert root_from_leaf_hashes([a, b]) == node_hash(a, b)
    c = leaf_hash(b"c")
    assert root_from_leaf_hashes([a, b, c]) == node_hash(node_hash(a, b), c)


def test_merkle_error_is_chain_error() -> None:
    assert issubclass(MerkleError, ChainError)


def test_roots_match_reference_for_all_sizes() -> None:
    store = ref_store()
    for n in range(REF_N + 1):
        want = ref_mth(0, n)
        assert root_from_leaf_hashes(REF_LEAVES[:n]) == want, n
        assert root_at(n, store) == want, n


# -------------------------------------------------------------- shared RFC 6962 vectors

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "merkle-rfc6962"


def _vector_params(kind: str) -> list[Any]:
    if not VECTORS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no vectors at {VECTORS}"))]
    files = sorted((VECTORS / kind).glob("*/*.json"))
    return [pytest.param(f, id=str(f.relative_to(VECTORS))) for f in files]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value, validate=True) if value else b""


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def test_vector_directory_is_complete() -> None:
    if not VECTORS.is_dir():
        pytest.skip(f"no vectors at {VECTORS}")
    for kind in ("inclusion", "consistency"):
        cases = [json.loads(f.read_text()) for f in (VECTORS / kind).glob("*/*.json")]
        assert any(not c["wantErr"] for c in cases), kind
        assert any(c["wantErr"] for c in cases), kind
        assert len(cases) >= 60, kind


@pytest.mark.parametrize("path", _vector_params("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _b64_list(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(MerkleError):
            verify_inclusion(*args)
    else:
        assert verify_inclusion(*args) is None  # type: ignore[func-returns-value]


@pytest.mark.parametrize("path", _vector_params("consistency"))
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        _b64_list(case["proof"]),
    )
    if case["wantErr"]:
        with pytest.raises(MerkleError):
            verify_consistency(*args)
    else:
        assert verify_consistency(*args) is None  # type: ignore[func-returns-value]


# ------------------------------------------------ self-generated vectors (reference)


def test_inclusion_proofs_match_reference() -> None:
    store = ref_store()
    for n in range(1, REF_N + 1):
        root = ref_mth(0, n)
        for m in range(n):
            want = ref_path(m, 0, n)
            got = inclusion_proof(m, n, store)
            assert got == want, (m, n)
            assert len(want) == len(ref_sides(m, n))
            verify_inclusion(REF_LEAVES[m], m, n, got, root)


def test_consistency_proofs_match_reference() -> None:
    store = ref_store()
    for n in range(1, REF_N + 1):
        for m in range(1, n + 1):
            want = ref_subproof(m, 0, n, True)
            got = consistency_proof(m, n, store)
            assert got == want, (m, n)
            verify_consistency(m, n, ref_mth(0, m), ref_mth(0, n), got)


# ------------------------------------------------------------------- property tests


def _refused_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except MerkleError:
        return True
    return False


def _refused_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> bool:
    try:
        verify_consistency(size1, size2, root1, root2, proof)
    except MerkleError:
        return True
    return False


def _mutations(value: int) -> set[int]:
    return {value - 1, value + 1, value ^ 1, value ^ 2, value * 2, value // 2} - {value}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_inclusion_property_verifies_and_refuses_tampering(data: st.DataObject) -> None:
    store = prop_store()
    size = data.draw(st.integers(1, 300), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf = PROP_LEAVES[index]
    proof = inclusion_proof(index, size, store)
    root = root_at(size, store)
    verify_inclusion(leaf, index, size, proof, root)

    # A single-bit flip anywhere: proof element, root, leaf hash.
    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        forged = list(proof)
        forged[element] = _flip(forged[element], bit)
        assert _refused_inclusion(leaf, index, size, forged, root)
    bit = data.draw(st.integers(0, 255), label="root bit")
    assert _refused_inclusion(leaf, index, size, proof, _flip(root, bit))
    assert _refused_inclusion(_flip(leaf, bit), index, size, proof, root)

    # Proof elements dropped, added or reordered.
    assert _refused_inclusion(leaf, index, size, [*proof, root], root)
    assert _refused_inclusion(leaf, index, size, [root, *proof], root)
    if proof:
        assert _refused_inclusion(leaf, index, size, proof[:-1], root)
        assert _refused_inclusion(leaf, index, size, proof[1:], root)
    if len(proof) > 1:
        assert _refused_inclusion(leaf, index, size, proof[::-1], root)

    # Another index, same leaf: always refused.
    for other in _mutations(index):
        assert _refused_inclusion(leaf, other, size, proof, root), other
        # The leaf that really is at `other` does not verify with this proof either.
        if 0 <= other < size:
            assert _refused_inclusion(PROP_LEAVES[other], other, size, proof, root), other

    for other in _mutations(size):
        # Claimed with that size's real root (what a signed checkpoint gives): refused.
        if 0 < other <= PROP_N and index < other:
            real = inclusion_proof(index, other, store)
            refused = _refused_inclusion(leaf, index, other, proof, root_at(other, store))
            assert real != proof and refused, other
        # Claimed with this root: the verifier does the very same hashing whenever the
        # audit path has the same shape (e.g. leaf 0 in sizes 5..8), so a root is bound
        # to its size only by the signed checkpoint; every other size is refused.
        same_shape = 0 <= index < other and ref_sides(index, other) == ref_sides(index, size)
        assert _refused_inclusion(leaf, index, other, proof, root) == (not same_shape), other


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_consistency_property_verifies_and_refuses_tampering(data: st.DataObject) -> None:
    store = prop_store()
    size2 = data.draw(st.integers(1, 300), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = consistency_proof(size1, size2, store)
    root1, root2 = root_at(size1, store), root_at(size2, store)
    verify_consistency(size1, size2, root1, root2, proof)

    bit = data.draw(st.integers(0, 255), label="bit")
    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        forged = list(proof)
        forged[element] = _flip(forged[element], bit)
        assert _refused_consistency(size1, size2, root1, root2, forged)
        assert _refused_consistency(size1, size2, root1, root2, proof[:-1])
        assert _refused_consistency(size1, size2, root1, root2, proof[1:])
    assert _refused_consistency(size1, size2, _flip(root1, bit), root2, proof)
    assert _refused_consistency(size1, size2, root1, _flip(root2, bit), proof)
    assert _refused_consistency(size1, size2, root1, root2, [*proof, root1])
    assert _refused_consistency(size1, size2, root1, root2, [root2, *proof])
    if size1 != size2:
        assert _refused_consistency(size1, size2, root2, root1, proof)

    # Other sizes, with their real roots (what signed checkpoints give): refused. (With
    # these roots some other sizes pass, as for inclusion: the verifier cannot tell sizes
    # whose proofs hash the same way apart; the checkpoint binds a root to its size.)
    pairs = {(s1, size2) for s1 in _mutations(size1)} | {(size1, s2) for s2 in _mutations(size2)}
    for s1, s2 in pairs:
        if s1 <= 0 or s2 < s1:
            assert _refused_consistency(s1, s2, root1, root2, proof), (s1, s2)
            continue
        if s2 > PROP_N:
            continue
        real = consistency_proof(s1, s2, store)
        refused = _refused_consistency(s1, s2, root_at(s1, store), root_at(s2, store), proof)
        assert real != proof and refused, (s1, s2)


def test_every_single_bit_flip_is_refused() -> None:
    store = prop_store()
    index, size = 77, 300
    leaf, root = PROP_LEAVES[index], root_at(size, store)
    proof = inclusion_proof(index, size, store)
    assert len(proof) >= 8
    for element in range(len(proof)):
        for bit in range(256):
            forged = list(proof)
            forged[element] = _flip(proof[element], bit)
            assert _refused_inclusion(leaf, index, size, forged, root), (element, bit)
    for bit in range(256):
        assert _refused_inclusion(leaf, index, size, proof, _flip(root, bit)), bit
        assert _refused_inclusion(_flip(leaf, bit), index, size, proof, root), bit

    size1 = 123
    root1 = root_at(size1, store)
    cproof = consistency_proof(size1, size, store)
    for element in range(len(cproof)):
        for bit in range(256):
            forged = list(cproof)
            forged[element] = _flip(cproof[element], bit)
            assert _refused_consistency(size1, size, root1, root, forged), (element, bit)
    for bit in range(256):
        assert _refused_consistency(size1, size, _flip(root1, bit), root, cproof), bit
        assert _refused_consistency(size1, size, root1, _flip(root, bit), cproof), bit


# --------------------------------------------------------------- appending in batches


def _batches(leaves: list[bytes], sizes: Iterator[int]) -> Iterator[list[bytes]]:
    pos = 0
    while pos < len(leaves):
        n = next(sizes)
        yield leaves[pos : pos + n]
        pos += n


def test_batched_appends_match_one_by_one_and_reference() -> None:
    n = 700
    leaves = [_leaf(i) for i in range(n)]
    one = MemoryNodeStore()
    one_roots = [one.append([h]) for h in leaves]
    assert one.size == n

    all_keys = [(lv, i) for lv in range(n.bit_length()) for i in range(n >> lv)]
    rng = random.Random(20240601)
    for _ in range(5):
        sizes = iter(
            [
                rng.choice([0, 1, 2, 3, 5, 7, 8, 16, 31, 64, 100, 255, 256, 257])
                for _ in range(10_000)
            ]
        )
        batch = MemoryNodeStore()
        for chunk in _batches(leaves, sizes):
            root = batch.append(chunk)
            assert root == (one_roots[batch.size - 1] if batch.size else EMPTY_ROOT)
            assert root == root_from_leaf_hashes(leaves[: batch.size])
        assert batch.size == n
        assert batch.get_nodes(all_keys) == one.get_nodes(all_keys)
        assert batch.node_count == one.node_count

    # Every node of every complete subtree is stored, nothing else: 2n - popcount(n).
    assert one.node_count == len(all_keys) == 2 * n - bin(n).count("1")
    assert len(one.get_nodes(all_keys)) == len(all_keys)
    for size in range(n + 1):
        assert root_at(size, one) == root_from_leaf_hashes(leaves[:size]), size


def test_new_nodes_returns_completed_nodes_and_reads_only_the_right_edge() -> None:
    leaves = [_leaf(i) for i in range(13)]
    store = MemoryNodeStore()
    store.append(leaves[:11])  # 11 = 8 + 2 + 1
    reader = CountingReader(store)
    nodes, root = new_nodes(11, leaves[11:], reader)
    assert reader.calls == [[(3, 0), (1, 4), (0, 10)]]
    assert set(nodes) == {(0, 11), (1, 5), (2, 2), (0, 12)}
    assert root == root_from_leaf_hashes(leaves)
    assert nodes[(2, 2)] == root_from_leaf_hashes(leaves[8:12])

    reader.reset()
    assert new_nodes(0, leaves, reader)[1] == root_from_leaf_hashes(leaves)
    assert reader.calls == []  # an empty tree needs no read
    assert new_nodes(11, [], store) == ({}, root_from_leaf_hashes(leaves[:11]))
    assert store.append([]) == store.root() == root_from_leaf_hashes(leaves[:11])


# ---------------------------------------------------------------- 1M-leaf tree, reads

BIG_N = 2**20 + 12345


@pytest.fixture(scope="module")
def big_store() -> Iterator[MemoryNodeStore]:
    store = MemoryNodeStore()
    for start in range(0, BIG_N, 4096):
        store.append(
            [leaf_hash(i.to_bytes(8, "big")) for i in range(start, min(start + 4096, BIG_N))]
        )
    yield store


def test_proofs_in_a_million_leaf_tree_read_log_n_nodes_in_one_call(
    big_store: MemoryNodeStore,
) -> None:
    n = BIG_N
    assert big_store.size == n
    bound = 2 * math.ceil(math.log2(n)) + 2
    reader = CountingReader(big_store)

    root = root_at(n, reader)
    assert len(reader.calls) == 1 and len(reader.calls[0]) == bin(n).count("1")

    rng = random.Random(7)
    indices = [0, 1, n - 1, n - 2, 2**20 - 1, 2**20, 2**20 + 1, 2**19, 12344, 12345]
    indices += [rng.randrange(n) for _ in range(200)]
    for index in indices:
        reader.reset()
        proof = inclusion_proof(index, n, reader)
        assert len(reader.calls) == 1, index
        keys = reader.calls[0]
        assert len(keys) <= bound, (index, len(keys))
        assert len(set(keys)) == len(keys)
        verify_inclusion(leaf_hash(index.to_bytes(8, "big")), index, n, proof, root)

    for size1 in [1, 2, 3, 1000, 2**20 - 1, 2**20, 2**20 + 1, n - 1]:
        reader.reset()
        proof = consistency_proof(size1, n, reader)
        assert len(reader.calls) == 1 and len(reader.calls[0]) <= bound + 1, size1
        verify_consistency(size1, n, root_at(size1, big_store), root, proof)

    reader.reset()
    leaves = [leaf_hash(b"more %d" % i) for i in range(1000)]
    nodes, new_root = new_nodes(n, leaves, reader)
    edge = [(k, (n >> k) - 1) for k in reversed(range(n.bit_length())) if (n >> k) & 1]
    assert reader.calls == [edge]
    assert edge[:2] == [(20, 0), (13, (2**20 + 8192) // 8192 - 1)]
    overlay = OverlayReader(big_store, nodes)
    assert root_at(n + 1000, overlay) == new_root
    verify_inclusion(
        leaves[500], n + 500, n + 1000, inclusion_proof(n + 500, n + 1000, overlay), new_root
    )
    verify_consistency(n, n + 1000, root, new_root, consistency_proof(n, n + 1000, overlay))
    assert len(nodes) == 1000 + sum(((n + 1000) >> level) - (n >> level) for level in range(1, 32))


# ------------------------------------------------------------------------- refusals


def test_refuses_out_of_range_indices_and_sizes() -> None:
    store = ref_store()
    with pytest.raises(MerkleError, match=r"leaf index 8 .* tree size 8"):
        inclusion_proof(8, 8, store)
    with pytest.raises(MerkleError, match=r"leaf index -1 "):
        inclusion_proof(-1, 8, store)
    with pytest.raises(MerkleError, match=r"leaf index 0 .* tree size 0"):
        inclusion_proof(0, 0, store)
    with pytest.raises(MerkleError, match=r"tree size 0 \(must be > 0\)"):
        consistency_proof(0, 8, store)
    with pytest.raises(MerkleError, match=r"tree size 0"):
        consistency_proof(0, 0, store)
    with pytest.raises(MerkleError, match=r"from tree size 9 to smaller size 8"):
        consistency_proof(9, 8, store)
    with pytest.raises(MerkleError, match=r"tree size -1 is negative"):
        root_at(-1, store)
    with pytest.raises(MerkleError, match=r"tree size -3 is negative"):
        new_nodes(-3, [], store)
    assert consistency_proof(5, 5, store) == []
    assert root_at(0, store) == EMPTY_ROOT


def test_refuses_missing_or_corrupt_stored_nodes() -> None:
    store = ref_store()
    reader = DictReader(store.get_nodes([(lv, i) for lv in range(7) for i in range(64)]))
    assert root_at(13, reader) == ref_mth(0, 13)
    del reader.nodes[(2, 2)]
    with pytest.raises(MerkleError, match=r"\(level 2, index 2\) is missing"):
        root_at(13, reader)
    with pytest.raises(MerkleError, match=r"\(level 2, index 2\) is missing"):
        inclusion_proof(0, 13, reader)
    with pytest.raises(MerkleError, match=r"\(level 2, index 2\) is missing"):
        consistency_proof(8, 13, reader)
    with pytest.raises(MerkleError, match=r"\(level 2, index 2\) is missing"):
        new_nodes(13, [_leaf(13)], reader)
    reader.nodes[(2, 2)] = b"short"
    with pytest.raises(MerkleError, match=r"\(level 2, index 2\) is 5 bytes"):
        root_at(13, reader)
    # Beyond the stored tree: the node for the last leaf is missing.
    with pytest.raises(MerkleError, match=r"missing"):
        root_at(REF_N + 1, store)


def test_refuses_malformed_leaf_hashes() -> None:
    with pytest.raises(MerkleError, match=r"leaf hash 1 of the batch \(leaf 1\) is 31 bytes"):
        root_from_leaf_hashes([_leaf(0), b"x" * 31])
    store = MemoryNodeStore()
    store.append([_leaf(0)])
    with pytest.raises(MerkleError, match=r"leaf hash 0 of the batch \(leaf 1\) is 0 bytes"):
        store.append([b""])
    assert store.size == 1


def test_refuses_malformed_inclusion_arguments() -> None:
    store = ref_store()
    proof = inclusion_proof(5, 13, store)
    root, leaf = ref_mth(0, 13), REF_LEAVES[5]
    verify_inclusion(leaf, 5, 13, proof, root)
    with pytest.raises(MerkleError, match=r"leaf index 13 is out of range for tree size 13"):
        verify_inclusion(leaf, 13, 13, proof, root)
    with pytest.raises(MerkleError, match=r"leaf index -1 is out of range"):
        verify_inclusion(leaf, -1, 13, proof, root)
    with pytest.raises(MerkleError, match=r"tree size 0"):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(MerkleError, match=r"proof element 1 is 33 bytes"):
        verify_inclusion(leaf, 5, 13, [proof[0], proof[1] + b"\0", *proof[2:]], root)
    with pytest.raises(MerkleError, match=r"root is 31 bytes"):
        verify_inclusion(leaf, 5, 13, proof, root[:31])
    with pytest.raises(MerkleError, match=r"leaf hash is 0 bytes"):
        verify_inclusion(b"", 5, 13, proof, root)
    with pytest.raises(MerkleError, match=rf"leaf 5 in tree size 13 has {len(proof) + 1} elem"):
        verify_inclusion(leaf, 5, 13, [*proof, root], root)
    with pytest.raises(MerkleError, match=r"calculated root .* does not match"):
        verify_inclusion(REF_LEAVES[6], 5, 13, proof, root)


def test_refuses_malformed_consistency_arguments() -> None:
    store = ref_store()
    r5, r13 = ref_mth(0, 5), ref_mth(0, 13)
    proof = consistency_proof(5, 13, store)
    verify_consistency(5, 13, r5, r13, proof)
    with pytest.raises(MerkleError, match=r"from tree size 0 \(must be > 0\)"):
        verify_consistency(0, 13, EMPTY_ROOT, r13, [])
    with pytest.raises(MerkleError, match=r"from tree size 0"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(MerkleError, match=r"from tree size 13 to smaller size 5"):
        verify_consistency(13, 5, r13, r5, proof)
    with pytest.raises(MerkleError, match=r"equal sizes need an empty proof"):
        verify_consistency(5, 5, r5, r5, [r5])
    with pytest.raises(MerkleError, match=r"consistency from tree size 5 to 5"):
        verify_consistency(5, 5, r5, r13, [])
    verify_consistency(5, 5, r5, r5, [])
    with pytest.raises(MerkleError, match=r"empty proof"):
        verify_consistency(5, 13, r5, r13, [])
    assert len(proof) == 5
    with pytest.raises(MerkleError, match=r"proof has 6 elements, want 5"):
        verify_consistency(5, 13, r5, r13, [*proof, r5])
    with pytest.raises(MerkleError, match=r"proof element 0 is 3 bytes"):
        verify_consistency(5, 13, r5, r13, [b"abc", *proof[1:]])
    with pytest.raises(MerkleError, match=r"root1 \(tree size 5\) is 0 bytes"):
        verify_consistency(5, 13, b"", r13, proof)
    with pytest.raises(MerkleError, match=r"root2 \(tree size 13\) is 33 bytes"):
        verify_consistency(5, 13, r5, r13 + b"\0", proof)
    with pytest.raises(MerkleError, match=r"\(old root\)"):
        verify_consistency(5, 13, ref_mth(0, 6), r13, proof)
    with pytest.raises(MerkleError, match=r"\(new root\)"):
        verify_consistency(5, 13, r5, ref_mth(0, 12), proof)
