"""node.witnessing on every backend: the add-checkpoint wire format, the witness's
answers and stored state, the compare-and-swap under concurrency, key files, and the
sequencer's CosignCollector against real witnesses (handle_add_checkpoint behind an
injected ``post``)."""

from __future__ import annotations

import base64
import json
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chain.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    add_signatures,
    open_checkpoint,
    parse_verifier_key,
    sign_note,
)
from chain.errors import CheckpointError, StorageError
from chain.log import LogWriter, make_genesis
from chain.merkle import MemoryNodeStore, consistency_proof, leaf_hash, root_at
from chain.storage import Ledger, make_engine
from chain.witness import SplitView, StaleCheckpoint, WitnessRecord, verify_cosigned
from node.migrations import upgrade
from node.witnessing import (
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    SIZE_MEDIA_TYPE,
    CosignCollector,
    WitnessStore,
    format_add_checkpoint,
    handle_add_checkpoint,
    load_witness_signer,
    make_witness_key,
    parse_add_checkpoint,
    parse_size_body,
    publish,
    witness_verifiers,
)
from tests.ledger_helpers import T0, TestLedger, org, seeded_key

ORIGIN = "log.example/pfnode"
TS = 1_700_000_000


def _key(seed_byte: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed_byte]) * 32)


LOG = NoteSigner(ORIGIN, _key(0))
IMPOSTOR = NoteSigner(ORIGIN, _key(9))  # the log's name, another key
W1 = CosignatureSigner("witness.example/w1", _key(1))
W2 = CosignatureSigner("witness.example/w2", _key(2))
W3 = CosignatureSigner("witness.example/w3", _key(3))


def _log(leaves: int, tag: bytes = b"entry") -> MemoryNodeStore:
    store = MemoryNodeStore()
    store.append([leaf_hash(tag + b" %d" % i) for i in range(leaves)])
    return store


TREE = _log(40)
FORK = MemoryNodeStore()  # the same 40 entries but the 20th: one fork of the log
FORK.append([leaf_hash(b"entry %d" % i if i != 20 else b"rewritten") for i in range(40)])


def _note(size: int, tree: MemoryNodeStore = TREE, signer: NoteSigner = LOG) -> str:
    return sign_note(Checkpoint(signer.name, size, root_at(size, tree)).to_text(), [signer])


NOTE5, NOTE12, NOTE40 = _note(5), _note(12), _note(40)
FORK40 = _note(40, FORK)


# --------------------------------------------------------------------------- fixtures


def _witness_db(url: str) -> Iterator[WitnessStore]:
    upgrade(url)
    engine = make_engine(url)
    try:
        yield WitnessStore(engine)
    finally:
        engine.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[WitnessStore]:
    yield from _witness_db(db_url)


class Witness:
    """One witness: its store, key and alarms, answering as the route would."""

    def __init__(self, store: WitnessStore, signer: CosignatureSigner = W1) -> None:
        self.store = store
        self.signer = signer
        self.alarms: list[SplitView] = []
        self.now = TS

    def add(self, body: str | bytes) -> tuple[int, str, str]:
        self.now += 1
        return handle_add_checkpoint(
            self.store,
            body,
            LOG.verifier,
            ORIGIN,
            self.signer,
            self.now,
            on_alarm=self.alarms.append,
        )

    def add_note(
        self, old: int, note: str, proof: list[bytes] | None = None
    ) -> tuple[int, str, str]:
        return self.add(format_add_checkpoint(old, proof or [], note))

    def post(self, _url: str, body: str) -> tuple[int, str]:
        status, text, _media_type = self.add(body)
        return status, text


@pytest.fixture
def witness(store: WitnessStore) -> Witness:
    return Witness(store)


def _problem(answer: tuple[int, str, str]) -> dict[str, Any]:
    status, body, media_type = answer
    assert media_type == "application/problem+json"
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status
    assert problem["instance"] == "/v1/witness/add-checkpoint"
    return problem


def _verify_line(note: str, line: str, signer: CosignatureSigner = W1) -> int:
    """The timestamp of ``line`` once it verifies as ``signer``'s cosignature of ``note``."""
    _, opened = open_checkpoint(add_signatures(note, [line]), [signer.verifier], ORIGIN)
    assert opened.verified == (signer.name,)
    return opened.timestamps[signer.name]


# --------------------------------------------------------------------------- the wire


@pytest.mark.parametrize("old", [0, 5, 12])
def test_add_checkpoint_body_round_trips(old: int) -> None:
    proof = consistency_proof(old, 40, TREE) if old else []
    body = format_add_checkpoint(old, proof, NOTE40)
    assert body.startswith(f"old {old}\n")
    assert parse_add_checkpoint(body) == (old, proof, NOTE40)
    assert parse_add_checkpoint(body.encode()) == (old, proof, NOTE40)


def test_add_checkpoint_body_is_the_c2sp_layout() -> None:
    proof = consistency_proof(5, 12, TREE)
    lines = format_add_checkpoint(5, proof, NOTE12).split("\n")
    assert lines[0] == "old 5"
    assert [base64.b64decode(x) for x in lines[1 : 1 + len(proof)]] == proof
    assert lines[1 + len(proof)] == ""
    assert lines[2 + len(proof)] == ORIGIN


HASH = base64.b64encode(bytes(32)).decode()
MALFORMED = {
    "no old line": f"{HASH}\n\n{NOTE5}",
    "old with a leading zero": f"old 05\n\n{NOTE5}",
    "negative old": f"old -1\n\n{NOTE5}",
    "two spaces": f"old  5\n\n{NOTE5}",
    "old in capitals": f"OLD 5\n\n{NOTE5}",
    "old over 2^64-1": f"old {1 << 64}\n\n{NOTE5}",
    "unicode digits": "old \u0665\n\n" + NOTE5,
    "no empty line": f"old 5\n{NOTE5}",
    "no note": "old 0\n\n",
    "an empty line too many": f"old 0\n\n\n{NOTE5}",
    "proof not base64": f"old 5\nnot-base64!\n\n{NOTE12}",
    "proof of 31 bytes": f"old 5\n{base64.b64encode(bytes(31)).decode()}\n\n{NOTE12}",
    "proof not canonical": f"old 5\n{HASH[:-2]}B=\n\n{NOTE12}",
    "64 proof lines": "old 5\n" + f"{HASH}\n" * (MAX_PROOF_LINES + 1) + "\n" + NOTE12,
    "CRLF": f"old 0\r\n\r\n{NOTE5}",
    "too large": "old 0\n\n" + NOTE5 + "x" * MAX_REQUEST_BYTES,
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_refuses_malformed_add_checkpoint(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_add_checkpoint(body)


def test_refuses_a_body_that_is_not_utf8() -> None:
    with pytest.raises(CheckpointError, match="not UTF-8"):
        parse_add_checkpoint(b"old 0\n\n\xff" + NOTE5.encode())


def test_size_body_is_a_decimal_and_a_newline() -> None:
    assert parse_size_body("0\n") == 0
    assert parse_size_body("40\n") == 40
    for bad in ("40", "040\n", " 40\n", "40\n\n", "{}", ""):
        assert parse_size_body(bad) is None


# --------------------------------------------------------------------------- the witness


def test_cosigns_first_checkpoint_then_a_consistent_growth(witness: Witness) -> None:
    status, line, media_type = witness.add_note(0, NOTE5)
    assert (status, media_type) == (200, "text/plain; charset=utf-8")
    assert _verify_line(NOTE5, line) == witness.now
    assert witness.store.record() == WitnessRecord(ORIGIN, 5, root_at(5, TREE), NOTE5)

    status, line, _ = witness.add_note(5, NOTE12, consistency_proof(5, 12, TREE))
    assert status == 200
    assert _verify_line(NOTE12, line) == witness.now
    assert witness.store.record(ORIGIN) == WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12)
    assert witness.store.split_views() == []
    assert witness.alarms == []


def test_cosigns_the_recorded_checkpoint_again(witness: Witness) -> None:
    assert witness.add_note(0, NOTE40)[0] == 200
    status, line, _ = witness.add_note(40, NOTE40)
    assert status == 200
    assert _verify_line(NOTE40, line) == witness.now
    assert witness.store.record() == WitnessRecord(ORIGIN, 40, TREE.root(), NOTE40)


def test_refuses_stale_old_size_with_the_recorded_size(witness: Witness) -> None:
    witness.add_note(0, NOTE12)
    status, body, media_type = witness.add_note(5, NOTE40, consistency_proof(5, 40, TREE))
    assert (status, body, media_type) == (409, "12\n", SIZE_MEDIA_TYPE)
    status, body, media_type = witness.add_note(0, NOTE40)  # "tell me your size"
    assert (status, body, media_type) == (409, "12\n", SIZE_MEDIA_TYPE)
    assert witness.store.record() == WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12)


def test_refuses_a_first_checkpoint_claiming_an_old_size(witness: Witness) -> None:
    status, body, media_type = witness.add_note(5, NOTE12, consistency_proof(5, 12, TREE))
    assert (status, body, media_type) == (409, "0\n", SIZE_MEDIA_TYPE)
    assert witness.store.record() is None


def test_refuses_a_proof_that_does_not_verify(witness: Witness) -> None:
    witness.add_note(0, NOTE12)
    proof = consistency_proof(12, 40, TREE)
    damaged = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    problem = _problem(witness.add_note(12, NOTE40, damaged))
    assert problem["status"] == 422
    assert problem["title"] == "Inconsistent checkpoint"
    assert witness.store.record() == WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12)


def test_refuses_a_proof_from_another_history(witness: Witness) -> None:
    witness.add_note(0, _note(25))  # past the rewritten 20th entry
    assert witness.add_note(25, FORK40, consistency_proof(25, 40, FORK))[0] == 422
    assert witness.store.split_views() == []


def test_refuses_a_proof_from_size_zero(witness: Witness) -> None:
    assert witness.add_note(0, NOTE12, consistency_proof(5, 12, TREE))[0] == 422
    assert witness.store.record() is None


def test_refuses_a_fork_and_keeps_both_notes(witness: Witness) -> None:
    witness.add_note(0, NOTE12)
    witness.add_note(12, NOTE40, consistency_proof(12, 40, TREE))
    problem = _problem(witness.add_note(40, FORK40))
    assert problem["status"] == 409
    assert problem["title"] == "Split view"
    assert "split view" in problem["detail"]
    assert problem["kind"] == "fork"
    assert problem["evidence"] == [NOTE40, FORK40]
    (stored,) = witness.store.split_views()
    assert (stored["kind"], stored["note_a"], stored["note_b"]) == ("fork", NOTE40, FORK40)
    assert stored["detected"] == "2023-11-14T22:13:23.000Z"  # TS + 3, as given, no clock read
    (alarm,) = witness.alarms
    assert (alarm.kind, alarm.evidence) == ("fork", (NOTE40, FORK40))
    assert witness.store.record() == WitnessRecord(ORIGIN, 40, TREE.root(), NOTE40)


def test_refuses_a_fork_whatever_old_size_it_claims(witness: Witness) -> None:
    witness.add_note(0, NOTE40)
    assert _problem(witness.add_note(0, FORK40))["title"] == "Split view"
    assert [sv["kind"] for sv in witness.store.split_views()] == ["fork"]


def test_refuses_a_rollback_and_keeps_both_notes(witness: Witness) -> None:
    witness.add_note(0, NOTE12)
    problem = _problem(witness.add_note(12, NOTE5))
    assert (problem["status"], problem["kind"]) == (409, "rollback")
    (stored,) = witness.store.split_views()
    assert (stored["kind"], stored["note_a"], stored["note_b"]) == ("rollback", NOTE12, NOTE5)
    assert [sv.kind for sv in witness.alarms] == ["rollback"]
    assert witness.store.record() == WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12)


def test_split_view_answers_even_when_the_alarm_fails(store: WitnessStore) -> None:
    def broken_alarm(_sv: SplitView) -> None:
        raise RuntimeError("flag stream down")

    handle_add_checkpoint(store, format_add_checkpoint(0, [], NOTE40), LOG.verifier, ORIGIN, W1, TS)
    status, _, _ = handle_add_checkpoint(
        store,
        format_add_checkpoint(40, [], FORK40),
        LOG.verifier,
        ORIGIN,
        W1,
        TS,
        on_alarm=broken_alarm,
    )
    assert status == 409
    assert len(store.split_views()) == 1


def test_refuses_old_size_above_the_checkpoint_size(witness: Witness) -> None:
    witness.add_note(0, NOTE5)
    problem = _problem(witness.add_note(12, NOTE5))
    assert problem["status"] == 400
    assert "above the checkpoint's size" in problem["detail"]
    assert witness.store.split_views() == []


def test_refuses_a_note_not_signed_by_the_log(witness: Witness) -> None:
    forged = _note(12, signer=IMPOSTOR)
    assert _problem(witness.add_note(0, forged))["status"] == 403
    text = Checkpoint(ORIGIN, 12, root_at(12, TREE)).to_text()
    witness_only = sign_note(text, [W2], timestamp=TS)
    assert _problem(witness.add_note(0, witness_only))["status"] == 403
    broken = NOTE12.replace(NOTE12.split("\n")[2], base64.b64encode(bytes(32)).decode())
    assert _problem(witness.add_note(0, broken))["status"] == 403
    assert witness.store.record() is None


def test_refuses_another_logs_checkpoint_as_unknown(witness: Witness) -> None:
    other = NoteSigner("other.example/log", _key(0))
    problem = _problem(witness.add_note(0, _note(5, signer=other)))
    assert problem["status"] == 404
    assert witness.store.record() is None


def test_refuses_a_malformed_request_with_400(witness: Witness) -> None:
    for body in MALFORMED.values():
        assert _problem(witness.add(body))["status"] == 400
    assert witness.store.record() is None


def test_answers_503_when_the_database_fails(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # never migrated
    try:
        status, body, _ = Witness(WitnessStore(engine)).add_note(0, NOTE5)
    finally:
        engine.dispose()
    assert status == 503
    assert "witness database failed" in json.loads(body)["detail"]


# --------------------------------------------------------------------------- the store


def _records() -> tuple[WitnessRecord, WitnessRecord, WitnessRecord]:
    return (
        WitnessRecord(ORIGIN, 5, root_at(5, TREE), NOTE5),
        WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12),
        WitnessRecord(ORIGIN, 40, TREE.root(), NOTE40),
    )


def test_swap_moves_the_record_along(store: WitnessStore) -> None:
    r5, r12, r40 = _records()
    store.swap(None, r5)
    store.swap(r5, r12)
    store.swap(r12, r12)
    store.swap(r12, r40)
    assert store.record() == r40


def test_refuses_a_swap_from_a_record_no_longer_stored(store: WitnessStore) -> None:
    r5, r12, r40 = _records()
    store.swap(None, r5)
    with pytest.raises(StaleCheckpoint) as caught:
        store.swap(None, r12)
    assert (caught.value.recorded_size, caught.value.claimed_size) == (5, 0)
    store.swap(r5, r12)
    with pytest.raises(StaleCheckpoint) as caught:
        store.swap(r5, r40)
    assert caught.value.recorded_size == 12
    assert store.record() == r12


def _race(swaps: list[Callable[[], None]]) -> tuple[int, list[BaseException]]:
    """Run the swaps at once, one thread each; (how many won, what the others raised)."""
    barrier = threading.Barrier(len(swaps))
    won: list[int] = []
    errors: list[BaseException] = []

    def run(swap: Callable[[], None]) -> None:
        barrier.wait()
        try:
            swap()
            won.append(1)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(swap,)) for swap in swaps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(won), errors


@pytest.mark.parametrize("start", ["empty", "recorded"])
def test_concurrent_swaps_from_one_record_exactly_one_wins(db_url: str, start: str) -> None:
    upgrade(db_url)
    engines = [make_engine(db_url) for _ in range(4)]
    try:
        stores = [WitnessStore(engine) for engine in engines]
        r5, r12, _ = _records()
        r25 = WitnessRecord(ORIGIN, 25, root_at(25, TREE), _note(25))
        fork25 = WitnessRecord(ORIGIN, 25, root_at(25, FORK), _note(25, FORK))
        base = None if start == "empty" else r5
        if base is not None:
            stores[0].swap(None, base)
        for _round in range(3):
            candidates = [r12, r25, fork25, r25] if base else [r5, r12, fork25, r25]
            won, errors = _race(
                [partial(s.swap, base, c) for s, c in zip(stores, candidates, strict=True)]
            )
            assert won == 1
            assert len(errors) == 3
            assert all(isinstance(e, StaleCheckpoint) for e in errors), errors
            winner = stores[0].record()
            assert winner in candidates
            assert {e.recorded_size for e in errors if isinstance(e, StaleCheckpoint)} == {
                winner.size if winner else -1
            }
            _reset(engines[0], base)
    finally:
        for engine in engines:
            engine.dispose()


def _reset(engine: sa.Engine, base: WitnessRecord | None) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM node_witness_state"))
    if base is not None:
        WitnessStore(engine).swap(None, base)


def _append_answer(answers: list[tuple[int, str, str]], witness: Witness, body: str) -> None:
    answers.append(witness.add(body))


def test_concurrent_requests_never_cosign_two_roots_at_one_size(db_url: str) -> None:
    """Two requests extend one record to two roots at once: one is cosigned, the other is
    judged against it and refused as a fork, with its evidence kept."""
    upgrade(db_url)
    engines = [make_engine(db_url) for _ in range(2)]
    try:
        witnesses = [Witness(WitnessStore(engine)) for engine in engines]
        witnesses[0].add_note(0, NOTE12)
        answers: list[tuple[int, str, str]] = []
        bodies = [
            format_add_checkpoint(12, consistency_proof(12, 40, TREE), NOTE40),
            format_add_checkpoint(12, consistency_proof(12, 40, FORK), FORK40),
        ]
        won, errors = _race(
            [partial(_append_answer, answers, w, b) for w, b in zip(witnesses, bodies, strict=True)]
        )
        assert (won, errors) == (2, [])
        # Both extend 12 (the fork rewrites entry 20): whichever commits first is
        # cosigned, the other is then a second root at 40.
        assert sorted(answer[0] for answer in answers) == [200, 409]
        (evidence,) = witnesses[0].store.split_views()
        assert evidence["kind"] == "fork"
        assert {evidence["note_a"], evidence["note_b"]} == {NOTE40, FORK40}
        record = witnesses[0].store.record()
        assert record is not None and record.size == 40
    finally:
        for engine in engines:
            engine.dispose()


def test_split_views_are_kept_in_order(store: WitnessStore) -> None:
    r40, fork40 = NOTE40, FORK40
    store.add_split_view(SplitView((r40, fork40), "fork", "two roots"), "2026-11-21T12:00:00.000Z")
    store.add_split_view(SplitView((NOTE12, NOTE5), "rollback", "back"), "2026-11-21T12:00:01.000Z")
    views = store.split_views()
    assert [(v["kind"], v["note_a"], v["note_b"]) for v in views] == [
        ("fork", r40, fork40),
        ("rollback", NOTE12, NOTE5),
    ]
    assert views[0]["id"] < views[1]["id"]


# --------------------------------------------------------------------------- key file


def test_witness_key_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    assert load_witness_signer(tmp_path) is None
    vkey = make_witness_key(tmp_path, "pfnode.consortium/witness/BANK-A")
    path = tmp_path / "keys" / "witness.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = load_witness_signer(tmp_path)
    assert signer is not None
    assert signer.verifier == parse_verifier_key(vkey)
    assert signer.verifier.algorithm == 0x04
    text = Checkpoint(ORIGIN, 5, root_at(5, TREE)).to_text()
    line = signer.sign_line(text, TS)
    assert _verify_line(NOTE5, line, signer) == TS
    assert make_witness_key(tmp_path, signer.name) == vkey  # pfnode init again keeps it


def test_refuses_to_replace_a_witness_key_under_another_name(tmp_path: Path) -> None:
    vkey = make_witness_key(tmp_path, "witness.example/a")
    with pytest.raises(CheckpointError, match="holds the witness key"):
        make_witness_key(tmp_path, "witness.example/b")
    signer = load_witness_signer(tmp_path)
    assert signer is not None and signer.verifier.vkey == vkey


def test_refuses_an_invalid_witness_key_name(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        make_witness_key(tmp_path, "has space")
    assert not (tmp_path / "keys" / "witness.json").exists()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"name": "w"}),
        json.dumps({"name": "w", "seed": "AAAA"}),
        json.dumps({"name": "w", "seed": 7}),
        json.dumps({"name": "w", "seed": base64.b64encode(bytes(32)).decode()[:-1] + "B"}),
        json.dumps({"name": "has space", "seed": base64.b64encode(bytes(32)).decode()}),
    ],
)
def test_refuses_an_invalid_witness_key_file(tmp_path: Path, content: str) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "witness.json").write_text(content)
    with pytest.raises(CheckpointError):
        load_witness_signer(tmp_path)


def test_witness_verifiers_are_the_genesis_cosigner_keys() -> None:
    genesis = {
        "witnesses": [
            {"org": "BANK-A", "name": W1.name, "vkey": W1.verifier.vkey},
            {"org": "BANK-B", "name": W2.name, "vkey": W2.verifier.vkey},
        ]
    }
    assert witness_verifiers(genesis) == [W1.verifier, W2.verifier]
    genesis["witnesses"][0]["vkey"] = LOG.verifier.vkey  # a note key, not a cosigner key
    with pytest.raises(CheckpointError, match="witnesses\\[0\\]"):
        witness_verifiers(genesis)


# --------------------------------------------------------------------------- the sequencer


class Unreachable:
    def __init__(self) -> None:
        self.calls = 0

    def post(self, url: str, _body: str) -> tuple[int, str]:
        self.calls += 1
        raise httpx.ConnectError(f"connection refused: {url}")


class Network:
    """Routes the collector's posts to the witnesses by URL; records what was sent."""

    def __init__(self, routes: dict[str, Callable[[str, str], tuple[int, str]]]) -> None:
        self.routes = routes
        self.sent: list[tuple[str, int]] = []  # (url, old size)

    def post(self, url: str, body: str) -> tuple[int, str]:
        self.sent.append((url, parse_add_checkpoint(body)[0]))
        return self.routes[url](url, body)


ENDPOINTS = [
    (W1.name, "http://bank-a:8000", W1.verifier),
    (W2.name, "http://bank-b:8000/", W2.verifier),
    (W3.name, "http://insurer:8000/v1/witness/add-checkpoint", W3.verifier),
]
A_URL = "http://bank-a:8000/v1/witness/add-checkpoint"
B_URL = "http://bank-b:8000/v1/witness/add-checkpoint"
C_URL = "http://insurer:8000/v1/witness/add-checkpoint"


@pytest.fixture
def two_witnesses(store: WitnessStore, tmp_path: Path) -> Iterator[tuple[Witness, Witness]]:
    for other in _witness_db(f"sqlite:///{tmp_path / 'witness-b.db'}"):
        yield Witness(store, W1), Witness(other, W2)


def test_collector_merges_two_witnesses_one_stale_one_unreachable(
    two_witnesses: tuple[Witness, Witness],
) -> None:
    a, b = two_witnesses
    b.add_note(0, NOTE5)  # B cosigned size 5 before this sequencer (re)started
    down = Unreachable()
    network = Network({A_URL: a.post, B_URL: b.post, C_URL: down.post})
    collector = CosignCollector(TREE, ENDPOINTS, LOG.verifier, ORIGIN, post=network.post)

    merged = collector.push(NOTE12)
    checkpoint, cosigners = verify_cosigned(
        merged, LOG.verifier, [W1.verifier, W2.verifier, W3.verifier], ORIGIN, quorum=2
    )
    assert checkpoint.size == 12
    assert sorted(cosigners) == sorted([W1.name, W2.name])
    assert sorted(network.sent) == sorted([(A_URL, 0), (B_URL, 0), (B_URL, 5), (C_URL, 0)])
    assert collector.sizes == {W1.name: 12, W2.name: 12}
    assert b.store.record() == WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12)

    network.sent.clear()
    merged = collector.push(NOTE40)  # now each known witness is asked from its size at once
    assert sorted(network.sent) == sorted([(A_URL, 12), (B_URL, 12), (C_URL, 0)])
    _, cosigners = verify_cosigned(
        merged, LOG.verifier, [W1.verifier, W2.verifier, W3.verifier], ORIGIN, quorum=2
    )
    assert len(cosigners) == 2
    assert down.calls == 2


def test_collector_drops_lines_that_are_not_the_witness_cosignature(
    two_witnesses: tuple[Witness, Witness],
) -> None:
    a, b = two_witnesses
    impostor = Witness(b.store, W3)  # answers from B's address, signs with W3's key

    def garbled(url: str, body: str) -> tuple[int, str]:
        status, line = a.post(url, body)
        return status, line.replace(line.split(" ")[-1][:8], "AAAAAAAA") + "not a line\n"

    network = Network({A_URL: garbled, B_URL: impostor.post, C_URL: Unreachable().post})
    collector = CosignCollector(TREE, ENDPOINTS, LOG.verifier, ORIGIN, post=network.post)
    assert collector.push(NOTE12) == NOTE12  # nothing valid: the log's note as it was


def test_collector_skips_a_witness_that_reports_a_split_view_or_is_ahead(
    two_witnesses: tuple[Witness, Witness],
) -> None:
    a, b = two_witnesses
    a.add_note(0, FORK40)  # A was shown another history at 40
    b.add_note(0, NOTE40)  # B already cosigned this checkpoint
    network = Network({A_URL: a.post, B_URL: b.post, C_URL: Unreachable().post})
    collector = CosignCollector(TREE, ENDPOINTS, LOG.verifier, ORIGIN, post=network.post)
    merged = collector.push(NOTE40)  # A: 409 split view; B: 409 "40", then cosigns again
    _, cosigners = verify_cosigned(merged, LOG.verifier, [W1.verifier, W2.verifier], ORIGIN, 1)
    assert cosigners == (W2.name,)
    assert [sv["kind"] for sv in a.store.split_views()] == ["fork"]

    network.sent.clear()
    assert collector.push(NOTE12) == NOTE12  # an older checkpoint: no witness can cosign it
    assert [url for url, _ in network.sent if url == B_URL] == []  # B at 40: not even asked
    assert (A_URL, 0) in network.sent and (A_URL, 40) not in network.sent  # A says 40: skipped
    assert b.store.split_views() == []
    assert a.store.record() == WitnessRecord(ORIGIN, 40, FORK.root(), FORK40)


def test_refuses_a_collector_without_witnesses_or_with_wrong_keys() -> None:
    with pytest.raises(CheckpointError, match="at least one witness"):
        CosignCollector(TREE, [], LOG.verifier, ORIGIN)
    with pytest.raises(CheckpointError, match="not a cosigner key"):
        CosignCollector(TREE, [(LOG.name, "http://x", LOG.verifier)], LOG.verifier, ORIGIN)
    with pytest.raises(CheckpointError, match="its key is named"):
        CosignCollector(TREE, [("w9", "http://x", W1.verifier)], LOG.verifier, ORIGIN)


def test_refuses_to_push_a_note_the_log_did_not_sign() -> None:
    collector = CosignCollector(TREE, ENDPOINTS, LOG.verifier, ORIGIN, post=Unreachable().post)
    with pytest.raises(CheckpointError):
        collector.push(_note(12, signer=IMPOSTOR))


def test_collector_posts_over_http_with_the_given_client(
    two_witnesses: tuple[Witness, Witness],
) -> None:
    a, _ = two_witnesses

    def app(request: httpx.Request) -> httpx.Response:
        status, body, media_type = a.add(request.content)
        return httpx.Response(status, text=body, headers={"Content-Type": media_type})

    with httpx.Client(transport=httpx.MockTransport(app)) as client:
        collector = CosignCollector(TREE, ENDPOINTS[:1], LOG.verifier, ORIGIN, client)
        merged = collector.push(NOTE12)
    _, cosigners = verify_cosigned(merged, LOG.verifier, [W1.verifier], ORIGIN, quorum=1)
    assert cosigners == (W1.name,)


# --------------------------------------------------------------------------- publishing


@pytest.fixture
def ledger(db_url: str) -> Iterator[TestLedger]:
    upgrade(db_url)
    keys = {"BANK-A": seeded_key("BANK-A/1")}
    seq = seeded_key("REGULATOR/seq-1")
    genesis = make_genesis(
        origin="pfnode.test/witnessing",
        orgs=[org("BANK-A", "bank", keys["BANK-A"])],
        sequencer=seq,
        created=T0,
        extra={"witnesses": [{"org": "BANK-A", "name": W1.name, "vkey": W1.verifier.vkey}]},
    )
    handle = Ledger.open(db_url, writer=True)
    handle.init(genesis)
    try:
        yield TestLedger(handle, LogWriter(handle, seq), keys, genesis)
    finally:
        handle.close()


def _answer(
    store: WitnessStore, signer: CosignatureSigner, log_verifier: Any, origin: str
) -> Callable[[str, str], tuple[int, str]]:
    def post(_url: str, body: str) -> tuple[int, str]:
        status, text, _ = handle_add_checkpoint(store, body, log_verifier, origin, signer, TS)
        return status, text

    return post


def test_publish_stores_the_cosigned_checkpoint(ledger: TestLedger, tmp_path: Path) -> None:
    origin = ledger.genesis["origin"]
    log_verifier = parse_verifier_key(ledger.genesis["sequencer"]["note_key"])
    engines = [make_engine(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db")]
    for engine in engines:
        upgrade(str(engine.url))
    try:
        stores = [WitnessStore(engine) for engine in engines]
        routes = {
            A_URL: _answer(stores[0], W1, log_verifier, origin),
            B_URL: _answer(stores[1], W2, log_verifier, origin),
        }
        network = Network(routes)
        collector = CosignCollector(
            ledger.ledger, ENDPOINTS[:2], log_verifier, origin, post=network.post
        )
        for start, count in ((0, 3), (3, 4), (7, 6)):
            ledger.append(count, start=start)
            note = ledger.writer.checkpoint()
            assert note is not None
            collector.publish(ledger.ledger, collector.push(note))
        latest = ledger.ledger.latest_checkpoint()
        assert latest is not None and latest[0] == 13
        checkpoint, cosigners = verify_cosigned(
            latest[1], log_verifier, [W1.verifier, W2.verifier], origin, quorum=2
        )
        assert (checkpoint.size, sorted(cosigners)) == (13, sorted([W1.name, W2.name]))
        assert [size for size, _ in ledger.ledger.checkpoints()] == [3, 7, 13]
        assert sorted(network.sent[-2:]) == [(A_URL, 7), (B_URL, 7)]  # no 409 after the first
        assert ledger.writer.checkpoint() == latest[1]  # no growth: the published note
    finally:
        for engine in engines:
            engine.dispose()


def test_publishing_twice_or_a_partial_note_loses_no_cosignature(ledger: TestLedger) -> None:
    ledger.append(3)
    note = ledger.writer.checkpoint()
    assert note is not None
    text = note[: note.rfind("\n\n") + 1]
    line1, line2 = W1.sign_line(text, TS), W2.sign_line(text, TS)
    publish(ledger.ledger, add_signatures(note, [line1]))
    publish(ledger.ledger, add_signatures(note, [line2]))
    publish(ledger.ledger, note)
    assert ledger.ledger.latest_checkpoint() == (3, add_signatures(note, [line1, line2]))


def test_refuses_to_publish_another_checkpoint_over_a_stored_one(ledger: TestLedger) -> None:
    ledger.append(3)
    note = ledger.writer.checkpoint()
    assert note is not None
    seq = seeded_key("REGULATOR/seq-1")
    origin = ledger.genesis["origin"]
    other = sign_note(Checkpoint(origin, 3, bytes(32)).to_text(), [NoteSigner(origin, seq.private)])
    with pytest.raises(CheckpointError, match="not the stored checkpoint of size 3"):
        publish(ledger.ledger, other)
    unstored = sign_note(
        Checkpoint(origin, 4, bytes(32)).to_text(), [NoteSigner(origin, seq.private)]
    )
    with pytest.raises(StorageError, match="no checkpoint of size 4"):
        publish(ledger.ledger, unstored)
    assert ledger.ledger.latest_checkpoint() == (3, note)


def test_refuses_to_publish_a_line_no_witness_signed(ledger: TestLedger) -> None:
    ledger.append(3)
    note = ledger.writer.checkpoint()
    assert note is not None
    text = note[: note.rfind("\n\n") + 1]
    stranger = CosignatureSigner("witness.example/w9", _key(7))
    with pytest.raises(CheckpointError, match="not from a known witness"):
        publish(
            ledger.ledger,
            add_signatures(note, [stranger.sign_line(text, TS)]),
            witness_verifiers=[W1.verifier],
        )
    assert ledger.ledger.latest_checkpoint() == (3, note)


def test_refuses_to_publish_on_a_read_only_ledger(ledger: TestLedger, db_url: str) -> None:
    ledger.append(3)
    note = ledger.writer.checkpoint()
    assert note is not None
    with Ledger.open(db_url) as reader, pytest.raises(StorageError, match="writer=True"):
        publish(reader, note)


# --------------------------------------------------------------------------- migration


def test_upgrade_from_0001_adds_the_witness_tables(db_url: str) -> None:
    from alembic import command

    from node.migrations import HEAD, Migrations, current_revision

    migrations = Migrations()
    with migrations.connect(db_url) as conn:
        command.upgrade(migrations.config(conn), "0001")
    assert current_revision(db_url) == "0001"
    assert upgrade(db_url) == HEAD
    for store in _witness_db(db_url):
        store.swap(None, WitnessRecord(ORIGIN, 5, root_at(5, TREE), NOTE5))
        assert store.record() == WitnessRecord(ORIGIN, 5, root_at(5, TREE), NOTE5)
    with migrations.connect(db_url) as conn:
        command.downgrade(migrations.config(conn), "0001")
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"node_witness_state", "node_split_views"}.isdisjoint(names)
    assert "ledger_checkpoints" in names


# --------------------------------------------------------------------------- BLS for anchoring


def test_witnesses_answer_a_bls_line_the_aggregator_accepts(
    two_witnesses: tuple[Witness, Witness],
) -> None:
    from node.anchoring import Aggregator, validators_of
    from node.clock import FakeClock
    from node.witnessing import BlsSigner, WitnessContext
    from tests.unit.node.test_anchoring import GENESIS, KEYS

    a, b = two_witnesses
    validators = validators_of(GENESIS)
    aggregator = Aggregator(GENESIS, {"REGULATOR": KEYS["REGULATOR"]})
    by_org = {v.org: v for v in validators}

    def context(w: Witness, org: str, key_org: str) -> Callable[[str, str], tuple[int, str]]:
        ctx = WitnessContext(
            w.store,
            w.signer,
            LOG.verifier,
            ORIGIN,
            clock=FakeClock(datetime.fromtimestamp(TS, UTC)),
            bls=BlsSigner(by_org[org], KEYS[key_org], aggregator.log_id),
        )
        return lambda _url, body: ctx.handle(body)[:2]

    # BANK-A signs honestly; BANK-B's node signs with INSURER's key under its own name
    network = Network(
        {
            A_URL: context(a, "BANK-A", "BANK-A"),
            B_URL: context(b, "BANK-B", "INSURER"),
            C_URL: Unreachable().post,
        }
    )
    collector = CosignCollector(
        TREE, ENDPOINTS, LOG.verifier, ORIGIN, post=network.post, validators=validators
    )
    merged, sigs = collector.collect(NOTE12)
    _, cosigners = verify_cosigned(
        merged, LOG.verifier, [W1.verifier, W2.verifier, W3.verifier], ORIGIN, quorum=2
    )
    assert sorted(cosigners) == sorted([W1.name, W2.name])  # BLS lines are not merged in
    assert "/bls/" not in merged
    assert sorted(sigs) == ["BANK-A", "BANK-B"]
    agg = aggregator.aggregate(12, root_at(12, TREE), sigs)
    assert agg.signers == ("REGULATOR", "BANK-A")  # BANK-B's wrong-key signature dropped
    assert aggregator.verify(agg)
