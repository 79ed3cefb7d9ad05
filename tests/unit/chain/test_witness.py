"""Tests for chain.witness: cosigning checkpoints only along one append-only history."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    add_signatures,
    open_checkpoint,
    sign_note,
)
from chain.errors import CheckpointError, MerkleError
from chain.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    consistency_proof,
    leaf_hash,
    root_at,
)
from chain.witness import (
    InconsistentCheckpoint,
    SplitView,
    StaleCheckpoint,
    WitnessRecord,
    cosign,
    detect_split_view,
    merge_cosignatures,
    verify_cosigned,
)

# --------------------------------------------------------------------------- fixtures

ORIGIN = "log.example/pfnode"
TS = 1_700_000_000


def _key(seed_byte: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed_byte]) * 32)


LOG = NoteSigner(ORIGIN, _key(0))
IMPOSTOR = NoteSigner(ORIGIN, _key(9))  # the log's name, another key
STRANGER = NoteSigner("stranger.example/log", _key(8))
W1 = CosignatureSigner("witness.example/w1", _key(1))
W2 = CosignatureSigner("witness.example/w2", _key(2))
W3 = CosignatureSigner("witness.example/w3", _key(3))
WITNESSES = [W1.verifier, W2.verifier, W3.verifier]


def _log(leaves: int, tag: bytes = b"entry") -> MemoryNodeStore:
    store = MemoryNodeStore()
    store.append([leaf_hash(tag + b" %d" % i) for i in range(leaves)])
    return store


STORE = _log(40)
# The same 40 entries except the 20th: one fork of the log.
FORK = MemoryNodeStore()
FORK.append([leaf_hash(b"entry %d" % i if i != 20 else b"rewritten") for i in range(40)])


def _note(size: int, store: MemoryNodeStore = STORE, signer: NoteSigner = LOG) -> str:
    return sign_note(Checkpoint(ORIGIN, size, root_at(size, store)).to_text(), [signer])


NOTE5, NOTE12, NOTE40 = _note(5), _note(12), _note(40)
FORK40 = _note(40, FORK)


def _cosign(
    record: WitnessRecord | None, note: str, old_size: int, proof: list[bytes], ts: int = TS
) -> tuple[WitnessRecord, str]:
    return cosign(record, note, old_size, proof, LOG.verifier, ORIGIN, W1, ts)


def _records() -> tuple[WitnessRecord, WitnessRecord, WitnessRecord]:
    """The witness's records after cosigning 5 (first), 12 and 40."""
    r5, _ = _cosign(None, NOTE5, 0, [])
    r12, _ = _cosign(r5, NOTE12, 5, consistency_proof(5, 12, STORE))
    r40, _ = _cosign(r12, NOTE40, 12, consistency_proof(12, 40, STORE))
    return r5, r12, r40


def _flip(proof: list[bytes], element: int, byte: int, mask: int = 0x01) -> list[bytes]:
    out = list(proof)
    damaged = bytearray(out[element])
    damaged[byte] ^= mask
    out[element] = bytes(damaged)
    return out


# --------------------------------------------------------------------------- cosigning


def test_cosigns_first_checkpoint_then_each_consistent_extension() -> None:
    r5, line5 = _cosign(None, NOTE5, 0, [])
    assert r5 == WitnessRecord(ORIGIN, 5, root_at(5, STORE), NOTE5)

    r12, line12 = _cosign(r5, NOTE12, 5, consistency_proof(5, 12, STORE), TS + 1)
    assert r12 == WitnessRecord(ORIGIN, 12, root_at(12, STORE), NOTE12)

    r40, line40 = _cosign(r12, NOTE40, 12, consistency_proof(12, 40, STORE), TS + 2)
    assert r40 == WitnessRecord(ORIGIN, 40, STORE.root(), NOTE40)

    for note, line, ts, size in (
        (NOTE5, line5, TS, 5),
        (NOTE12, line12, TS + 1, 12),
        (NOTE40, line40, TS + 2, 40),
    ):
        cp, opened = open_checkpoint(add_signatures(note, [line]), [W1.verifier], ORIGIN)
        assert cp.size == size
        assert opened.verified == (W1.name,)
        assert dict(opened.timestamps) == {W1.name: ts}


def test_recosigning_the_recorded_checkpoint_is_idempotent() -> None:
    *_, r40 = _records()
    again, line = _cosign(r40, NOTE40, 40, [], TS + 60)
    assert again == r40
    _, opened = open_checkpoint(add_signatures(NOTE40, [line]), [W1.verifier], ORIGIN)
    assert dict(opened.timestamps) == {W1.name: TS + 60}
    # A note carrying other cosignatures is the same checkpoint.
    cosigned = add_signatures(
        NOTE40, [W2.sign_line(Checkpoint(ORIGIN, 40, STORE.root()).to_text(), TS)]
    )
    assert _cosign(r40, cosigned, 40, [])[0] == r40


def test_size_zero_is_a_placeholder_then_trust_on_first_use() -> None:
    empty = sign_note(Checkpoint(ORIGIN, 0, EMPTY_ROOT).to_text(), [LOG])
    r0, _ = _cosign(None, empty, 0, [])
    assert (r0.size, r0.root) == (0, EMPTY_ROOT)
    r12, _ = _cosign(r0, NOTE12, 0, [])
    assert r12.size == 12


def test_refuses_proof_from_size_zero() -> None:
    empty = sign_note(Checkpoint(ORIGIN, 0, EMPTY_ROOT).to_text(), [LOG])
    r0, _ = _cosign(None, empty, 0, [])
    with pytest.raises(InconsistentCheckpoint):
        _cosign(r0, NOTE12, 0, [STORE.root()])
    with pytest.raises(InconsistentCheckpoint):
        _cosign(None, NOTE12, 0, [STORE.root()])


def test_refuses_size_zero_with_a_root() -> None:
    bogus = sign_note(Checkpoint(ORIGIN, 0, STORE.root()).to_text(), [LOG])
    with pytest.raises(CheckpointError, match="empty tree"):
        _cosign(None, bogus, 0, [])


# --------------------------------------------------------------------------- refusals


def test_refuses_stale_old_size() -> None:
    _, r12, _ = _records()
    with pytest.raises(StaleCheckpoint) as info:
        _cosign(r12, NOTE40, 5, consistency_proof(5, 40, STORE))
    assert (info.value.recorded_size, info.value.claimed_size) == (12, 5)
    assert isinstance(info.value, CheckpointError)


def test_refuses_first_checkpoint_claiming_an_old_size() -> None:
    with pytest.raises(StaleCheckpoint) as info:
        _cosign(None, NOTE12, 5, consistency_proof(5, 12, STORE))
    assert info.value.recorded_size == 0


def test_refuses_proof_with_one_flipped_bit() -> None:
    _, r12, _ = _records()
    proof = consistency_proof(12, 40, STORE)
    for element in range(len(proof)):
        with pytest.raises(InconsistentCheckpoint) as info:
            _cosign(r12, NOTE40, 12, _flip(proof, element, 31))
        assert (info.value.old_size, info.value.new_size) == (12, 40)
        assert isinstance(info.value.__cause__, MerkleError)


def test_refuses_truncated_or_empty_proof() -> None:
    _, r12, _ = _records()
    proof = consistency_proof(12, 40, STORE)
    for bad in (proof[:-1], [], [*proof, proof[0]]):
        with pytest.raises(InconsistentCheckpoint):
            _cosign(r12, NOTE40, 12, bad)


def test_refuses_proof_with_equal_sizes() -> None:
    *_, r40 = _records()
    with pytest.raises(InconsistentCheckpoint):
        _cosign(r40, NOTE40, 40, [STORE.root()])


def test_refuses_rollback_with_both_notes_as_evidence() -> None:
    *_, r40 = _records()
    with pytest.raises(SplitView) as info:
        _cosign(r40, NOTE12, 40, [])
    assert info.value.evidence == (NOTE40, NOTE12)
    assert info.value.kind == "rollback"


def test_refuses_second_root_at_the_cosigned_size() -> None:
    *_, r40 = _records()
    with pytest.raises(SplitView) as info:
        _cosign(r40, FORK40, 40, [])
    assert info.value.evidence == (NOTE40, FORK40)
    assert info.value.kind == "fork"
    # The fork is evidence whatever old size the request claims.
    with pytest.raises(SplitView):
        _cosign(r40, FORK40, 12, consistency_proof(12, 40, FORK))


def test_refuses_extension_of_another_history() -> None:
    r5, _ = _cosign(None, _note(5, _log(5, b"other")), 0, [])
    with pytest.raises(InconsistentCheckpoint) as info:
        _cosign(r5, NOTE40, 5, consistency_proof(5, 40, STORE))
    assert (info.value.old_size, info.value.new_size) == (5, 40)


def test_refuses_note_signed_by_unknown_key() -> None:
    r5, _ = _cosign(None, NOTE5, 0, [])
    for forged in (_note(12, signer=STRANGER), _note(12, signer=IMPOSTOR)):
        with pytest.raises(CheckpointError):
            _cosign(r5, forged, 5, consistency_proof(5, 12, STORE))
        with pytest.raises(CheckpointError):
            _cosign(None, forged, 0, [])


def test_refuses_note_with_broken_signature() -> None:
    text = Checkpoint(ORIGIN, 12, STORE.root()).to_text()  # size 12, root of 40
    forged = text + "\n" + LOG.sign_line(NOTE12[: NOTE12.index("\n\n") + 1])
    with pytest.raises(CheckpointError, match="does not verify"):
        _cosign(None, forged, 0, [])


def test_refuses_unsigned_or_witness_only_note() -> None:
    text = Checkpoint(ORIGIN, 12, root_at(12, STORE)).to_text()
    for bad in (text, text + "\n" + W2.sign_line(text, TS)):
        with pytest.raises(CheckpointError):
            _cosign(None, bad, 0, [])


def test_refuses_wrong_origin() -> None:
    other = NoteSigner("other.example/log", _key(0))
    note = sign_note(Checkpoint("other.example/log", 5, root_at(5, STORE)).to_text(), [other])
    with pytest.raises(CheckpointError, match="origin"):
        cosign(None, note, 0, [], other.verifier, ORIGIN, W1, TS)
    r5, _ = _cosign(None, NOTE5, 0, [])
    with pytest.raises(CheckpointError, match="origin"):
        cosign(r5, note, 5, [], other.verifier, "other.example/log", W1, TS)


def test_refuses_cosigner_key_as_the_log_key() -> None:
    text = Checkpoint(ORIGIN, 5, root_at(5, STORE)).to_text()
    note = text + "\n" + W2.sign_line(text, TS)
    with pytest.raises(CheckpointError, match="log's verifier"):
        cosign(None, note, 0, [], W2.verifier, ORIGIN, W1, TS)


def test_refuses_malformed_request() -> None:
    r5, _ = _cosign(None, NOTE5, 0, [])
    proof = consistency_proof(5, 12, STORE)
    bad_requests: list[tuple[Any, Any]] = [
        (-1, proof),
        (True, proof),
        ("5", proof),
        (5, [p[:31] for p in proof]),
        (5, [p.hex() for p in proof]),
        (5, b"".join(proof)),
    ]
    for old_size, bad_proof in bad_requests:
        with pytest.raises(CheckpointError):
            cosign(r5, NOTE12, old_size, bad_proof, LOG.verifier, ORIGIN, W1, TS)


def test_refuses_malformed_record() -> None:
    with pytest.raises(CheckpointError):
        WitnessRecord(ORIGIN, -1, bytes(32), NOTE5)
    with pytest.raises(CheckpointError):
        WitnessRecord(ORIGIN, 5, bytes(31), NOTE5)
    with pytest.raises(CheckpointError):
        WitnessRecord("", 5, bytes(32), NOTE5)


# --------------------------------------------------------------------------- split views


def test_detect_split_view_finds_the_pair_among_many() -> None:
    text12 = Checkpoint(ORIGIN, 12, root_at(12, STORE)).to_text()
    cosigned12 = add_signatures(NOTE12, [W1.sign_line(text12, TS)])
    other_fork = _note(12, _log(12, b"other"))
    seen = [NOTE5, NOTE12, cosigned12, _note(20), NOTE12, NOTE40, other_fork, _note(30)]
    split = detect_split_view(seen, LOG.verifier, ORIGIN)
    assert split is not None
    assert split.evidence == (NOTE12, other_fork)
    assert split.kind == "fork"
    assert detect_split_view([*seen[:6], FORK40], LOG.verifier, ORIGIN) is not None


def test_detect_split_view_ignores_forged_notes() -> None:
    fork_text = Checkpoint(ORIGIN, 40, FORK.root()).to_text()
    forged = [
        fork_text,  # unsigned
        fork_text + "\n" + IMPOSTOR.sign_line(fork_text),  # the log's name, another key
        fork_text + "\n" + STRANGER.sign_line(fork_text),  # an unknown key
        fork_text + "\n" + LOG.sign_line(NOTE40[: NOTE40.index("\n\n") + 1]),  # stolen sig
        fork_text + "\n" + W1.sign_line(fork_text, TS),  # a witness, not the log
        "not a note",
    ]
    assert detect_split_view([NOTE5, NOTE40, *forged, NOTE12], LOG.verifier, ORIGIN) is None
    assert detect_split_view(iter([]), LOG.verifier, ORIGIN) is None


def test_detect_split_view_ignores_another_origin() -> None:
    other = NoteSigner("other.example/log", _key(0))
    note = sign_note(Checkpoint("other.example/log", 40, FORK.root()).to_text(), [other])
    assert detect_split_view([NOTE40, note], LOG.verifier, ORIGIN) is None


# --------------------------------------------------------------------------- quorum


def _lines(note: str, signers: list[CosignatureSigner]) -> list[str]:
    text = note[: note.index("\n\n") + 1]
    return [s.sign_line(text, TS + i) for i, s in enumerate(signers)]


def test_merge_cosignatures_dedupes_and_keeps_order() -> None:
    l1, l2 = _lines(NOTE40, [W1, W2])
    merged = merge_cosignatures(NOTE40, [l2, l1, l2])
    assert merged == NOTE40 + l2 + l1
    assert merge_cosignatures(merged, [l1, l2]) == merged
    # A second, different answer from a witness that already cosigned is dropped.
    later = W1.sign_line(NOTE40[: NOTE40.index("\n\n") + 1], TS + 99)
    assert merge_cosignatures(merged, [later]) == merged
    checked = merge_cosignatures(NOTE40, [l1, l2], witness_verifiers=WITNESSES)
    assert checked == NOTE40 + l1 + l2


def test_refuses_merging_a_bad_cosignature_when_checked() -> None:
    (l1,) = _lines(NOTE40, [W1])
    (wrong,) = _lines(NOTE12, [W2])  # W2's cosignature of another checkpoint
    with pytest.raises(CheckpointError):
        merge_cosignatures(NOTE40, [l1, wrong], witness_verifiers=WITNESSES)
    (unknown,) = _lines(NOTE40, [CosignatureSigner("witness.example/w9", _key(7))])
    with pytest.raises(CheckpointError):
        merge_cosignatures(NOTE40, [unknown], witness_verifiers=WITNESSES)
    with pytest.raises(CheckpointError):
        merge_cosignatures(NOTE40, [l1], witness_verifiers=[])
    with pytest.raises(CheckpointError):
        merge_cosignatures(NOTE40, ["\u2014 witness.example/w1 not base64\n"])
    with pytest.raises(CheckpointError):
        merge_cosignatures(NOTE40, l1)  # type: ignore[arg-type]


def test_verify_cosigned_with_quorum_two_of_three() -> None:
    note = merge_cosignatures(NOTE40, _lines(NOTE40, [W1, W3]))
    cp, cosigners = verify_cosigned(note, LOG.verifier, WITNESSES, ORIGIN, 2)
    assert cp == Checkpoint(ORIGIN, 40, STORE.root())
    assert cosigners == (W1.name, W3.name)
    # A witness listed with a second key (rotation) still counts once.
    rotated = CosignatureSigner(W1.name, _key(11)).verifier
    _, cosigners = verify_cosigned(note, LOG.verifier, [*WITNESSES, rotated], ORIGIN, 2)
    assert cosigners == (W1.name, W3.name)


def test_refuses_quorum_three_with_two_cosignatures() -> None:
    note = merge_cosignatures(NOTE40, _lines(NOTE40, [W1, W2]))
    with pytest.raises(CheckpointError, match="needs 3"):
        verify_cosigned(note, LOG.verifier, WITNESSES, ORIGIN, 3)


def test_refuses_quorum_zero_or_no_witnesses() -> None:
    note = merge_cosignatures(NOTE40, _lines(NOTE40, [W1, W2]))
    for quorum in (0, -1, True):
        with pytest.raises(CheckpointError, match="quorum"):
            verify_cosigned(note, LOG.verifier, WITNESSES, ORIGIN, quorum)
    with pytest.raises(CheckpointError, match="empty witness set"):
        verify_cosigned(note, LOG.verifier, [], ORIGIN, 1)
    with pytest.raises(CheckpointError, match="exceeds"):
        verify_cosigned(note, LOG.verifier, WITNESSES[:2], ORIGIN, 3)


def test_refuses_cosigned_note_without_the_log_signature() -> None:
    text = NOTE40[: NOTE40.index("\n\n") + 1]
    witnesses_only = text + "\n" + "".join(_lines(NOTE40, [W1, W2, W3]))
    with pytest.raises(CheckpointError, match="log's key"):
        verify_cosigned(witnesses_only, LOG.verifier, WITNESSES, ORIGIN, 2)


def test_refuses_witness_keys_that_are_not_cosigner_keys() -> None:
    note = merge_cosignatures(NOTE40, _lines(NOTE40, [W1, W2]))
    with pytest.raises(CheckpointError, match="cosignature/v1"):
        verify_cosigned(note, LOG.verifier, [W1.verifier, STRANGER.verifier], ORIGIN, 1)
    with pytest.raises(CheckpointError, match="log's verifier"):
        verify_cosigned(note, W2.verifier, [W1.verifier], ORIGIN, 1)


def test_refuses_bad_cosignature_from_a_known_witness() -> None:
    (l1,) = _lines(NOTE40, [W1])
    (l2_of_12,) = _lines(NOTE12, [W2])
    note = merge_cosignatures(NOTE40, [l1, l2_of_12])  # unchecked merge lets it in ...
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_cosigned(note, LOG.verifier, WITNESSES, ORIGIN, 1)  # ... readers refuse it


# --------------------------------------------------------------------------- properties


@st.composite
def _log_and_sizes(draw: st.DrawFn) -> tuple[MemoryNodeStore, int, int]:
    n = draw(st.integers(min_value=1, max_value=70))
    m = draw(st.integers(min_value=1, max_value=n))
    salt = draw(st.binary(max_size=8))
    store = MemoryNodeStore()
    store.append([leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)])
    return store, m, n


def _note_of(store: MemoryNodeStore, size: int) -> str:
    return sign_note(Checkpoint(ORIGIN, size, root_at(size, store)).to_text(), [LOG])


@settings(max_examples=150, deadline=None)
@given(_log_and_sizes())
def test_cosign_any_prefix_then_any_extension(case: tuple[MemoryNodeStore, int, int]) -> None:
    store, m, n = case
    first, _ = _cosign(None, _note_of(store, m), 0, [])
    second, line = _cosign(first, _note_of(store, n), m, consistency_proof(m, n, store))
    assert (second.size, second.root) == (n, root_at(n, store))
    _, opened = open_checkpoint(add_signatures(second.note, [line]), [W1.verifier], ORIGIN)
    assert opened.verified == (W1.name,)


@settings(max_examples=150, deadline=None)
@given(_log_and_sizes(), st.data())
def test_refuses_any_damaged_byte_of_the_proof(
    case: tuple[MemoryNodeStore, int, int], data: st.DataObject
) -> None:
    store, m, n = case
    proof = consistency_proof(m, n, store)
    if not proof:  # m == n: nothing to damage; a proof where none belongs is refused
        first, _ = _cosign(None, _note_of(store, m), 0, [])
        with pytest.raises(InconsistentCheckpoint):
            _cosign(first, _note_of(store, n), m, [root_at(n, store)])
        return
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=31))
    mask = data.draw(st.integers(min_value=1, max_value=255))
    first, _ = _cosign(None, _note_of(store, m), 0, [])
    with pytest.raises(InconsistentCheckpoint):
        _cosign(first, _note_of(store, n), m, _flip(proof, element, byte, mask))


def test_cosignature_line_is_base64_of_key_id_time_and_signature() -> None:
    _, line = _cosign(None, NOTE5, 0, [])
    name, b64 = line[len("\u2014 ") : -1].split(" ")
    raw = base64.b64decode(b64)
    assert name == W1.name
    assert raw[:4] == W1.key_id
    assert int.from_bytes(raw[4:12], "big") == TS
