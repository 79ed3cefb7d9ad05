"""RFC 9162 (RFC 6962) Merkle log over the ledger's append-only sequence of entries.

Hashing (RFC 9162 section 2.1.1, SHA-256 with domain separation)::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH([])         = SHA-256("")                      (EMPTY_ROOT)
    MTH(D[0:n])     = node_hash(MTH(D[0:k]), MTH(D[k:n])),  k = largest power of two < n

Storage layout
--------------
The ledger stores every node of every *complete* (perfect) subtree, keyed by
``NodeKey = (level, index)``: the node covers the leaves
``[index * 2**level, (index + 1) * 2**level)``. Level 0 holds the leaf hashes
themselves, ``(1, i)`` is ``node_hash((0, 2i), (0, 2i + 1))`` and so on. A node is
written once, when the leaf that completes it is appended, and never changes
afterwards (the log is append-only), so a tree of size ``n`` has at most ``2n - 1``
stored nodes and every tree size ``m <= n`` is served by the same rows. (The SQL
adapter packs a key into one integer, ``level << 48 | index``; see
``chain.storage``.)

Subtrees that are *not* complete (those touching the right edge of a tree whose
size is not a power of two) are never stored. Their hash is recomputed from the
complete subtrees of the binary decomposition of their width ("compact range"),
folded right to left, exactly as RFC 9162 defines MTH. For example, a tree of
size 13 = 8 + 4 + 1 has the root ``node_hash((3, 0), node_hash((2, 2), (0, 12)))``.

Every operation that reads nodes (``new_nodes``, ``root_at``, ``inclusion_proof``,
``consistency_proof``) first computes the full list of O(log n) keys it needs and
then makes ONE ``NodeReader.get_nodes`` call (none when it needs no node), so a
proof costs one database query. A missing node is an error (``MerkleError``),
never a silent rebuild.

Verification (``verify_inclusion``, ``verify_consistency``) is a port of
transparency-dev/merkle ``proof/verify.go`` (RFC 9162 sections 2.1.3.2 and
2.1.4.2). It raises ``MerkleError`` on any failure and returns ``None`` on success.
Note that a root is bound to its tree size only by the signed checkpoint carrying
both: the verifiers check that the proof links the given hashes under the given
sizes, nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Protocol

from chain.errors import MerkleError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryNodeStore",
    "NodeKey",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "new_nodes",
    "node_hash",
    "root_at",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""Root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

NodeKey = tuple[int, int]
"""``(level, index)`` of a complete subtree covering leaves
``[index * 2**level, (index + 1) * 2**level)``."""


class NodeReader(Protocol):
    """Batch read of stored Merkle nodes (one database query per call)."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """Return the stored hash of each requested key; absent keys are left out."""
        ...


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"{what} is {len(value)} bytes, want {HASH_SIZE}")


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of a compact range given left to right (highest level first)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = _sha256(_NODE_PREFIX + left + acc).digest()
    return acc


def _append_leaves(
    stack: list[bytes],
    size: int,
    leaves: Sequence[bytes],
    out: dict[NodeKey, bytes] | None,
) -> None:
    """Push leaf hashes onto a compact range ``stack`` of a tree of ``size``.

    ``stack`` holds the hashes of the complete subtrees of ``size``'s binary
    decomposition, highest level first; it is updated in place. Every node completed
    on the way (the leaves included) is written to ``out`` when given.
    """
    sha = _sha256
    prefix = _NODE_PREFIX
    pop = stack.pop
    push = stack.append
    pos = size
    for i, h in enumerate(leaves):
        if len(h) != HASH_SIZE:
            raise MerkleError(
                f"leaf hash {i} of the batch (leaf {pos}) is {len(h)} bytes, want {HASH_SIZE}"
            )
        idx = pos
        if out is not None:
            out[(0, idx)] = h
            level = 0
            while idx & 1:
                h = sha(prefix + pop() + h).digest()
                idx >>= 1
                level += 1
                out[(level, idx)] = h
        else:
            while idx & 1:
                h = sha(prefix + pop() + h).digest()
                idx >>= 1
        push(h)
        pos += 1


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 ``MTH`` of a list of leaf hashes (already ``leaf_hash``-ed).

    The empty list has the root ``EMPTY_ROOT``. Raises ``MerkleError`` if a hash is
    not 32 bytes.
    """
    stack: list[bytes] = []
    _append_leaves(stack, 0, hashes, None)
    return _fold_right(stack)


# ------------------------------------------------------------------ node key layouts


def _range_keys(start: int, count: int) -> list[NodeKey]:
    """Complete subtrees covering ``[start, start + count)``, left to right.

    ``start`` must be a multiple of the smallest power of two >= ``count`` (or 0),
    which holds for every range that appears in RFC 9162 proofs and roots: the
    subtrees are then the set bits of ``count``, highest first.
    """
    keys: list[NodeKey] = []
    level = count.bit_length() - 1
    while level >= 0:
        if (count >> level) & 1:
            keys.append((level, start >> level))
            start += 1 << level
        level -= 1
    return keys


def _path_plan(index: int, level: int, size: int) -> list[list[NodeKey]]:
    """Plan the proof that complete node ``(level, index)`` is in the tree of ``size``.

    Returns one entry per proof element, bottom-up; an entry is the list of stored
    keys (left to right) whose compact-range fold is that element. All entries are
    single keys except, possibly, the one for the partial right-edge subtree that is
    the sibling of the point where the paths to the node and to ``size`` diverge.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    plan: list[list[NodeKey]] = [[(level + i, (index >> i) ^ 1)] for i in range(inner)]
    fork_level = level + inner
    begin = (index >> inner) << fork_level
    end = begin + (1 << fork_level)
    if end < size:
        plan.append(_range_keys(end, size - end))
    plan.extend([key] for key in reversed(_range_keys(0, begin)))
    return plan


def _fetch(reader: NodeReader, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
    """One batch read of ``keys``; every key must come back as a 32-byte hash."""
    if not keys:
        return {}
    got = reader.get_nodes(keys)
    for key in keys:
        value = got.get(key)
        if value is None:
            raise MerkleError(f"stored Merkle node (level {key[0]}, index {key[1]}) is missing")
        if len(value) != HASH_SIZE:
            raise MerkleError(
                f"stored Merkle node (level {key[0]}, index {key[1]}) is {len(value)} bytes,"
                f" want {HASH_SIZE}"
            )
    return got


def _assemble(plan: Sequence[Sequence[NodeKey]], reader: NodeReader) -> list[bytes]:
    keys = [key for element in plan for key in element]
    got = _fetch(reader, keys)
    return [_fold_right([got[key] for key in element]) for element in plan]


def _check_size(size: int, what: str = "tree size") -> None:
    if size < 0:
        raise MerkleError(f"{what} {size} is negative")


# -------------------------------------------------------------- stored-node operations


def new_nodes(
    size: int, new_leaves: Sequence[bytes], reader: NodeReader
) -> tuple[dict[NodeKey, bytes], bytes]:
    """Append leaf hashes to the stored tree of ``size`` leaves.

    Reads only the right edge of the current tree (the O(log n) complete subtrees
    of ``size``'s binary decomposition, in one ``get_nodes`` call) and returns
    ``(nodes, root)``: every node completed by the new leaves, level-0 leaves
    included, to be stored; and the root of the tree of ``size + len(new_leaves)``.
    """
    _check_size(size)
    edge_keys = _range_keys(0, size)
    got = _fetch(reader, edge_keys)
    stack = [got[key] for key in edge_keys]
    out: dict[NodeKey, bytes] = {}
    _append_leaves(stack, size, new_leaves, out)
    return out, _fold_right(stack)


def root_at(size: int, reader: NodeReader) -> bytes:
    """Root (RFC 9162 ``MTH``) of the tree of the first ``size`` leaves, from stored nodes.

    Folds the complete subtrees of ``size``'s binary decomposition right to left;
    ``root_at(0, reader)`` is ``EMPTY_ROOT``.
    """
    _check_size(size)
    keys = _range_keys(0, size)
    got = _fetch(reader, keys)
    return _fold_right([got[key] for key in keys])


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 inclusion proof (``PATH``) for leaf ``index`` in the tree of ``size``.

    Requires ``0 <= index < size``; the nodes come from one ``get_nodes`` call. The
    reader must hold the tree of at least ``size`` leaves (this is not checked when
    the proof happens not to touch the last leaf).
    """
    if index < 0 or index >= size:
        raise MerkleError(f"leaf index {index} is out of range for tree size {size}")
    return _assemble(_path_plan(index, 0, size), reader)


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 consistency proof (``PROOF``) from the tree of ``size1`` to ``size2``.

    Requires ``0 < size1 <= size2``; ``size1 == size2`` gives the empty proof. The
    nodes come from one ``get_nodes`` call.
    """
    if size1 <= 0:
        raise MerkleError(f"consistency proof from tree size {size1} (must be > 0)")
    if size2 < size1:
        raise MerkleError(f"consistency proof from tree size {size1} to smaller size {size2}")
    if size1 == size2:
        return []
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    plan = _path_plan(index, level, size2)
    if index != 0:  # size1 is not a power of two: the proof starts with its last subtree
        plan.insert(0, [(level, index)])
    return _assemble(plan, reader)


def edge_keys(size: int) -> list[NodeKey]:
    """The complete subtrees of ``size``'s binary decomposition, left to right."""
    _check_size(size)
    return _range_keys(0, size)


class CompactRange:
    """The right edge of a tree: enough to extend it, compute its root, and (with the
    nodes a batch completes) prove every leaf of that batch, with no other reads."""

    def __init__(self, size: int = 0, nodes: Mapping[NodeKey, bytes] | None = None) -> None:
        self.size = size
        self.nodes: dict[NodeKey, bytes] = dict(nodes or {})

    @classmethod
    def load(cls, size: int, reader: NodeReader) -> CompactRange:
        """The right edge of a stored tree of ``size`` leaves (one read)."""
        return cls(size, dict(_fetch(reader, edge_keys(size))))

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    def advance(self, count: int, completed: Mapping[NodeKey, bytes]) -> None:
        """Move the edge past ``count`` leaves whose completed nodes are ``completed``."""
        self.size += count
        merged = {**self.nodes, **completed}
        self.nodes = {k: merged[k] for k in edge_keys(self.size)}

    def extend(self, leaves: Sequence[bytes]) -> tuple[dict[NodeKey, bytes], bytes]:
        completed, root = new_nodes(self.size, leaves, self)
        self.advance(len(leaves), completed)
        return completed, root


class OverlayReader:
    """Reads from the first mapping that has a key: a batch's nodes over an edge."""

    def __init__(self, *layers: Mapping[NodeKey, bytes]) -> None:
        self.layers = layers

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        out: dict[NodeKey, bytes] = {}
        for key in keys:
            for layer in self.layers:
                if key in layer:
                    out[key] = layer[key]
                    break
        return out


class MemoryNodeStore:
    """In-memory ``NodeReader`` over a dict of stored nodes (tests, offline verifier)."""

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def node_count(self) -> int:
        """Number of stored nodes (``2 * size - popcount(size)``)."""
        return len(self._nodes)

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        nodes = self._nodes
        return {key: nodes[key] for key in keys if key in nodes}

    def append(self, leaf_hashes: Sequence[bytes]) -> bytes:
        """Append leaf hashes (already ``leaf_hash``-ed); returns the new root."""
        nodes, root = new_nodes(self._size, leaf_hashes, self)
        self._nodes.update(nodes)
        self._size += len(leaf_hashes)
        return root

    def root(self) -> bytes:
        """Root of the whole stored tree."""
        return root_at(self._size, self)


# ---------------------------------------------------------------------- verification


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    """Lengths (inner, border) of the inclusion proof of ``index`` in ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _check_proof_elements(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(h, f"proof element {i}")


def _verify_match(calculated: bytes, expected: bytes, what: str) -> None:
    if not hmac.compare_digest(calculated, expected):
        raise MerkleError(
            f"{what}: calculated root {calculated.hex()} does not match {expected.hex()}"
        )


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an RFC 9162 inclusion proof (section 2.1.3.2).

    Checks that the leaf with hash ``leaf_hash`` (32 bytes, already ``leaf_hash``-ed)
    is at ``index`` in the tree of ``tree_size`` leaves with root ``root``, given the
    audit path ``proof`` (bottom-up, 32-byte hashes). Requires
    ``0 <= index < tree_size`` and a proof of exactly the length this index and size
    imply.

    Returns ``None`` on success; raises ``MerkleError`` saying what is wrong otherwise.
    """
    if tree_size <= 0:
        raise MerkleError(f"inclusion proof in tree size {tree_size} (must be > 0)")
    if index < 0 or index >= tree_size:
        raise MerkleError(f"leaf index {index} is out of range for tree size {tree_size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    _check_proof_elements(proof)
    inner, border = _decomp_incl_proof(index, tree_size)
    if len(proof) != inner + border:
        raise MerkleError(
            f"inclusion proof for leaf {index} in tree size {tree_size} has {len(proof)}"
            f" elements, want {inner + border}"
        )
    calculated = _chain_inner(leaf_hash, proof[:inner], index)
    calculated = _chain_border_right(calculated, proof[inner:])
    _verify_match(calculated, root, f"inclusion of leaf {index} in tree size {tree_size}")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Verify an RFC 9162 consistency proof (section 2.1.4.2).

    Checks that the tree of ``size2`` leaves with root ``root2`` extends the tree of
    ``size1`` leaves with root ``root1``. Requires ``0 < size1 <= size2`` (a proof
    from the empty tree is meaningless and refused), 32-byte roots and proof
    elements, and a proof of exactly the length the sizes imply; for
    ``size1 == size2`` the proof must be empty and the roots equal.

    Returns ``None`` on success; raises ``MerkleError`` saying what is wrong otherwise.
    """
    if size1 <= 0:
        raise MerkleError(f"consistency proof from tree size {size1} (must be > 0)")
    if size2 < size1:
        raise MerkleError(f"consistency proof from tree size {size1} to smaller size {size2}")
    _check_hash(root1, f"root1 (tree size {size1})")
    _check_hash(root2, f"root2 (tree size {size2})")
    _check_proof_elements(proof)
    what = f"consistency from tree size {size1} to {size2}"
    if size1 == size2:
        if proof:
            raise MerkleError(f"{what}: equal sizes need an empty proof, got {len(proof)}")
        _verify_match(root1, root2, what)
        return
    if not proof:
        raise MerkleError(f"{what}: empty proof")

    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1
    inner -= shift  # shift < inner because size1 < size2

    # The proof starts with the hash of the largest complete subtree ending at size1,
    # unless size1 is a power of two: then that subtree is root1 itself.
    if size1 == 1 << shift:
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise MerkleError(f"{what}: proof has {len(proof)} elements, want {start + inner + border}")
    rest = proof[start:]

    mask = (size1 - 1) >> shift
    hash1 = _chain_inner_right(seed, rest[:inner], mask)
    hash1 = _chain_border_right(hash1, rest[inner:])
    _verify_match(hash1, root1, f"{what} (old root)")

    hash2 = _chain_inner(seed, rest[:inner], mask)
    hash2 = _chain_border_right(hash2, rest[inner:])
    _verify_match(hash2, root2, f"{what} (new root)")
