"""BLS validators in genesis, the witnesses' BLS lines, quorum and aggregation, anchored roots."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from chain import bls
from chain.errors import CheckpointError
from node.anchorer import verify_anchored
from node.anchoring import (
    Aggregated,
    Aggregator,
    AnchorStore,
    NoQuorum,
    check_quorum,
    format_bls_line,
    log_id_of,
    parse_bls_lines,
    signer_bitmap,
    validator_entry,
    validators_of,
)
from node.genesis import init_demo
from tests.ledger_helpers import T0

ORIGIN = "pfnode.test/ledger"
ROLES = {"REGULATOR": "regulator", "BANK-A": "bank", "BANK-B": "bank", "INSURER": "insurer"}
KEYS = {org: bls.BlsKey(org, bls.KeyGen(org.encode().ljust(32, b"."))) for org in ROLES}
ROOT = bytes(range(32))


def genesis_with(validators: list[dict[str, Any]], min_roles: int = 2) -> dict[str, Any]:
    return {"v": 1, "origin": ORIGIN, "validators": validators, "anchor": {"min_roles": min_roles}}


GENESIS = genesis_with([validator_entry(o, ROLES[o], KEYS[o], ORIGIN) for o in ROLES])
VALIDATORS = validators_of(GENESIS)


def test_genesis_validators_are_read_with_their_proofs() -> None:
    assert [(v.index, v.org, v.role) for v in VALIDATORS] == [
        (0, "REGULATOR", "regulator"),
        (1, "BANK-A", "bank"),
        (2, "BANK-B", "bank"),
        (3, "INSURER", "insurer"),
    ]
    assert VALIDATORS[1].name == "pfnode.test/bls/BANK-A"
    assert VALIDATORS[1].public == KEYS["BANK-A"].public()


def test_a_validator_whose_proof_is_another_keys_is_refused() -> None:
    forged = copy.deepcopy(GENESIS)
    forged["validators"][2]["pop"] = forged["validators"][1]["pop"]
    with pytest.raises(CheckpointError, match=r"validators\[2\] \(BANK-B\)"):
        validators_of(forged)


def test_a_repeated_key_and_a_bad_role_are_refused() -> None:
    twice = copy.deepcopy(GENESIS)
    twice["validators"][2] = dict(twice["validators"][1], org="BANK-B")
    with pytest.raises(CheckpointError, match="repeats"):
        validators_of(twice)
    bad_role = copy.deepcopy(GENESIS)
    bad_role["validators"][0]["role"] = "auditor"
    with pytest.raises(CheckpointError, match="auditor"):
        validators_of(bad_role)


def test_quorum_needs_the_regulator_and_two_roles() -> None:
    check_quorum(VALIDATORS, ["REGULATOR", "BANK-B"], 2)
    check_quorum(VALIDATORS, ["REGULATOR", "INSURER", "BANK-A"], 3)
    with pytest.raises(NoQuorum, match="regulator"):
        check_quorum(VALIDATORS, ["BANK-A", "BANK-B", "INSURER"], 2)
    with pytest.raises(NoQuorum, match="1 roles signed, 2 needed"):
        check_quorum(VALIDATORS, ["REGULATOR"], 2)
    with pytest.raises(NoQuorum, match="2 roles signed, 3 needed"):
        check_quorum(VALIDATORS, ["REGULATOR", "BANK-A", "BANK-B"], 3)
    assert signer_bitmap(VALIDATORS, ["REGULATOR", "INSURER"]) == 0b1001


def test_bls_lines_round_trip_and_foreign_lines_are_ignored() -> None:
    sig = KEYS["BANK-A"].sign(b"m")
    body = (
        "\u2014 pfnode.test/witness/BANK-A AAAAAAAA\n"
        + format_bls_line(VALIDATORS[1], sig)
        + format_bls_line(VALIDATORS[2], sig)[:-5]
        + "\n"
    )
    assert parse_bls_lines(body, VALIDATORS) == {"BANK-A": sig}
    # a line under BANK-A's name with BANK-B's key hash is not BANK-A's
    payload = base64.b64encode(VALIDATORS[2].keyhash + sig).decode()
    assert parse_bls_lines(f"\u2014 {VALIDATORS[1].name} {payload}\n", VALIDATORS) == {}


def test_aggregate_of_local_and_remote_signatures_verifies() -> None:
    agg_ = Aggregator(GENESIS, {"REGULATOR": KEYS["REGULATOR"]})
    message = agg_.message(12, ROOT)
    assert message == bls.anchor_message(log_id_of(GENESIS), 12, ROOT)
    remote = {o: KEYS[o].sign(message) for o in ("BANK-A", "INSURER")}
    agg = agg_.aggregate(12, ROOT, remote)
    assert agg.signers == ("REGULATOR", "BANK-A", "INSURER")
    assert agg_.verify(agg)
    assert not agg_.verify(Aggregated(13, ROOT, agg.signers, agg.signature))
    assert not agg_.verify(Aggregated(12, ROOT, ("REGULATOR", "BANK-A"), agg.signature))


def test_a_remote_signature_that_does_not_verify_is_dropped() -> None:
    agg_ = Aggregator(GENESIS, {"REGULATOR": KEYS["REGULATOR"]})
    wrong = KEYS["BANK-A"].sign(agg_.message(11, ROOT))  # over another size
    good = KEYS["INSURER"].sign(agg_.message(12, ROOT))
    agg = agg_.aggregate(12, ROOT, {"BANK-A": wrong, "INSURER": good})
    assert agg.signers == ("REGULATOR", "INSURER")
    with pytest.raises(NoQuorum):
        agg_.aggregate(12, ROOT, {"BANK-A": wrong})


def test_a_local_key_genesis_does_not_name_is_refused() -> None:
    stranger = bls.BlsKey("REGULATOR", bls.KeyGen(b"s" * 32))
    with pytest.raises(CheckpointError, match="REGULATOR"):
        Aggregator(GENESIS, {"REGULATOR": stranger})
    with pytest.raises(CheckpointError, match="no BLS validators"):
        Aggregator(genesis_with([]), {})


def test_store_keeps_one_root_per_size(tmp_path: Path) -> None:
    genesis, _ = init_demo(tmp_path / "demo", None, T0)
    from chain.storage import Ledger

    with Ledger.open(f"sqlite:///{tmp_path / 'demo' / 'ledger.db'}", writer=True) as ledger:
        store = AnchorStore(ledger.engine)
        agg = Aggregated(5, ROOT, ("REGULATOR", "BANK-A"), b"\x01" * 96)
        store.save(agg, "2026-11-22T00:00:00Z")
        store.save(agg, "2026-11-22T00:00:01Z")  # again after a restart: kept once
        with pytest.raises(CheckpointError, match="forked"):
            store.save(Aggregated(5, b"\x02" * 32, agg.signers, agg.signature), "t")
        latest = store.latest()
        assert latest is not None and latest.tx_hash is None and latest.signers == agg.signers
        store.mark_anchored(5, "0xabc", 7, 1337, "0x" + "00" * 20)
        assert store.latest(anchored=True) == Aggregated(5, ROOT, agg.signers, agg.signature, "0xabc", 7)
    assert {v["org"] for v in genesis["validators"]} == set(ROLES)
    assert validators_of(genesis)  # the demo's proofs verify


def test_verify_anchored_finds_a_different_root_a_truncation_and_a_non_boundary() -> None:
    roots = {3: b"\x03" * 32, 7: b"\x07" * 32, 9: b"\x09" * 32}
    assert verify_anchored(roots, {3: b"\x03" * 32, 9: b"\x09" * 32}).ok
    report = verify_anchored(roots, {3: b"\x33" * 32, 5: b"\x05" * 32, 12: b"\x0c" * 32})
    assert report.checked == 3
    assert len(report.problems) == 3
    assert "checkpoint 3" in report.problems[0]
    assert "no block of the ledger ends" in report.problems[1]
    assert "truncated or rolled back" in report.problems[2]
