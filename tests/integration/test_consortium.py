"""Consortium mode: four institutions, four nodes, real processes on loopback ports."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.errors import ChainError
from chain.merkle import verify_inclusion
from node import demo
from node.genesis import init_consortium
from tests.integration.cluster_helpers import ServeProcess

TODAY = datetime.now(UTC).date()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def local_token(data: Path, org: str) -> str:
    token: str = json.loads((data / "demo-tokens.json").read_text())[org]
    return token


class Consortium:
    def __init__(self, root: Path) -> None:
        self.dirs = init_consortium(root, datetime.now(UTC))
        self.sequencer = ServeProcess(self.dirs["REGULATOR"], None)
        self.followers: dict[str, ServeProcess] = {}
        self.anchor_args: tuple[str, ...] = ()

    def start(self) -> None:
        witnesses = []
        for org in ("BANK-A", "BANK-B", "INSURER"):
            proc = ServeProcess(self.dirs[org], None)
            self.followers[org] = proc
            witnesses.append(f"{org}={proc.base}")
        self.sequencer.extra = tuple(a for w in witnesses for a in ("--witness", w))
        self.sequencer.extra += self.anchor_args
        self.sequencer.start().wait_healthy()
        for org, proc in self.followers.items():
            self.start_follower(org)
            del proc

    def start_follower(self, org: str) -> ServeProcess:
        old = self.followers[org]
        proc = ServeProcess(self.dirs[org], None, port=old.port,
                            extra=("--role", "follower", "--upstream", self.sequencer.base,
                                   "--org", org))
        self.followers[org] = proc
        proc.start().wait_healthy()
        return proc

    def client(self, org: str) -> httpx.Client:
        proc = self.followers[org]
        return httpx.Client(base_url=proc.base, timeout=30,
                            headers=auth(local_token(self.dirs[org], org)))

    def sequencer_height(self) -> int:
        token = local_token(self.dirs["REGULATOR"], "REGULATOR")
        r = httpx.get(f"{self.sequencer.base}/healthz", timeout=5)
        del token
        height: int = r.json()["height"]
        return height

    def wait_replicated(self, org: str, seconds: float = 20) -> dict[str, Any]:
        want = self.sequencer_height()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            health: dict[str, Any] = httpx.get(f"{self.followers[org].base}/healthz",
                                               timeout=5).json()
            if health["height"] == want:
                return health
            time.sleep(0.1)
        raise AssertionError(f"{org} did not catch up to height {want}: {health}")

    def stop(self) -> None:
        for proc in [*self.followers.values(), self.sequencer]:
            proc.stop()


@pytest.fixture
def consortium(tmp_path: Path) -> Any:
    c = Consortium(tmp_path / "consortium")
    c.start()
    yield c
    c.stop()


def test_the_fraud_story_across_four_nodes(consortium: Consortium) -> None:
    original = demo.receivable(TODAY, "INV-2026-0117", "COSU6281550")
    with consortium.client("INSURER") as insurer:
        insurer.post("/v1/policies", json=demo.policy_body(TODAY)).raise_for_status()
        insurer.post("/v1/policies/SINO-2026-0001/limits",
                     json=demo.limit_body(TODAY)).raise_for_status()
        insurer.post("/v1/coverage-notices", json=demo.notice_body(
            TODAY, "CN-0001", "BANK-A", original)).raise_for_status()
    with consortium.client("BANK-A") as bank_a:
        first = bank_a.post("/v1/loans", json=demo.drawdown_body(TODAY, "A-LOAN-1", "CN-0001",
                                                                  original))
    assert first.status_code == 201, first.text
    with consortium.client("BANK-B") as bank_b:
        second = bank_b.post("/v1/loans", json=demo.drawdown_body(TODAY, "B-LOAN-9", "CN-0001",
                                                                   original))
    assert second.status_code == 409
    receipt = second.json()["receipt"]
    assert "DUPLICATE_FINANCING" in [f["code"] for f in receipt["flags"]]
    assert "BANK-A" not in json.dumps(receipt["flags"])

    for org in ("BANK-A", "BANK-B", "INSURER"):
        consortium.wait_replicated(org)
    with consortium.client("BANK-B") as bank_b:
        # BANK-B's replica proves its own rejected attempt against its own tree
        entry = bank_b.get(f"/v1/ledger/entries/{receipt['entry_hash']}").json()
        proof = entry["proof"]
        verify_inclusion(bytes.fromhex(receipt["entry_hash"]), entry["index"],
                         proof["tree_size"], [bytes.fromhex(h) for h in proof["hashes"]],
                         bytes.fromhex(proof["log_root"]))
        # ...but holds only the leaf hash of BANK-A's drawdown
        assert bank_b.get(f"/v1/ledger/entries/{first.json()['entry_hash']}").status_code == 404
    replica = (consortium.dirs["BANK-B"] / "replica.db").read_bytes()
    wal = consortium.dirs["BANK-B"] / "replica.db-wal"
    everything = replica + (wal.read_bytes() if wal.exists() else b"")
    assert b"A-LOAN-1" not in everything  # never received BANK-A's plaintext
    with sqlite3.connect(consortium.dirs["BANK-A"] / "replica.db") as db:
        stored = db.execute("SELECT count(*) FROM replica_entries WHERE raw IS NOT NULL").fetchone()
    assert stored[0] >= 2  # BANK-A sees its notice and its loan in full


def test_follower_killed_mid_stream_catches_up(consortium: Consortium) -> None:
    with consortium.client("INSURER") as insurer:
        insurer.post("/v1/policies", json=demo.policy_body(TODAY)).raise_for_status()
        consortium.followers["BANK-A"].kill()
        for i in range(30):
            rec = demo.receivable(TODAY, f"INV-{i}", f"BL-{i}")
            insurer.post("/v1/coverage-notices", json=demo.notice_body(
                TODAY, f"CN-{i}", "BANK-A", rec)).raise_for_status()
    consortium.start_follower("BANK-A")
    health = consortium.wait_replicated("BANK-A")
    assert health["status"] == "ok"
    assert health["log_size"] == 31


def test_witnesses_cosign_and_every_follower_catches_an_equivocating_sequencer(
    consortium: Consortium,
) -> None:
    from chain.checkpoint import Checkpoint, NoteSigner, open_checkpoint, parse_verifier_key
    from chain.keys import SigningKey
    from chain.witness import verify_cosigned
    from node.cli import main
    from node.witnessing import format_add_checkpoint, witness_verifiers

    with consortium.client("INSURER") as insurer:
        insurer.post("/v1/policies", json=demo.policy_body(TODAY)).raise_for_status()
    genesis = json.loads((consortium.dirs["REGULATOR"] / "genesis.json").read_text())
    log_key = parse_verifier_key(genesis["sequencer"]["note_key"])
    token = local_token(consortium.dirs["REGULATOR"], "REGULATOR")
    deadline = time.monotonic() + 20
    while True:  # the sequencer pushes its checkpoint; all three witnesses cosign
        note = httpx.get(f"{consortium.sequencer.base}/v1/ledger/checkpoint",
                         headers=auth(token), timeout=5).text
        try:
            checkpoint, signers = verify_cosigned(note, log_key, witness_verifiers(genesis),
                                                  genesis["origin"], quorum=3)
            break
        except ChainError:
            assert time.monotonic() < deadline, f"never cosigned by 3 witnesses:\n{note}"
            time.sleep(0.2)
    assert len(signers) == 3

    # A sequencer that lies: the same size, another root, validly signed.
    seq_key = SigningKey.load(consortium.dirs["REGULATOR"] / "keys" / "sequencer.json")
    forged = Checkpoint(genesis["origin"], checkpoint.size, bytes(32)).to_text()
    from chain.checkpoint import sign_note

    forged_note = sign_note(forged, [NoteSigner(genesis["origin"], seq_key.private)])
    open_checkpoint(forged_note, [log_key], genesis["origin"])  # it is validly signed
    alarms: list[dict[str, Any]] = []
    listening = threading.Event()

    def listen() -> None:
        proc = consortium.followers["BANK-B"]
        with httpx.stream("GET", f"{proc.base}/v1/flags/stream", timeout=10,
                          headers=auth(local_token(consortium.dirs["BANK-B"], "BANK-B"))) as r:
            listening.set()
            for line in r.iter_lines():
                if line.startswith("data:"):
                    alarms.append(json.loads(line[5:]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(10)
    for org, proc in consortium.followers.items():
        r = httpx.post(f"{proc.base}/v1/witness/add-checkpoint", timeout=10,
                       content=format_add_checkpoint(checkpoint.size, [], forged_note))
        assert r.status_code == 409 and "split view" in r.text.lower(), (org, r.text)
        health = httpx.get(f"{proc.base}/healthz", timeout=5).json()
        assert health["status"] == "degraded" and health["alarms"], (org, health)
    listener.join(10)
    assert alarms and alarms[0]["code"] == "SPLIT_VIEW"  # on BANK-B's own flag stream
    for org in consortium.followers:
        assert main(["verify", "--data", str(consortium.dirs[org])]) == 1


@pytest.mark.anvil
def test_checkpoints_are_anchored_with_every_institutions_bls_signature(tmp_path: Path) -> None:
    from contracts.anchor import AnchorChain
    from contracts.anvil import AnvilProcess
    from node.anchoring import log_id_of, min_roles_of, validators_of

    c = Consortium(tmp_path / "consortium")
    genesis = json.loads((c.dirs["REGULATOR"] / "genesis.json").read_text())
    with AnvilProcess(accounts=2) as anvil:
        chain = AnchorChain.connect(anvil.url, anvil.private_keys[0])
        chain.deploy(log_id_of(genesis), min_roles_of(genesis))
        for v in validators_of(genesis):
            chain.register(v.name, v.role, v.public, v.pop)
        key = tmp_path / "anchor.key"
        key.write_text(anvil.private_keys[0])
        c.anchor_args = ("--anchor", anvil.url, "--anchor-contract", chain.address,
                         "--anchor-key", str(key), "--anchor-every-blocks", "1",
                         "--anchor-every-seconds", "0.2")
        c.start()
        try:
            with c.client("INSURER") as insurer:
                insurer.post("/v1/policies", json=demo.policy_body(TODAY)).raise_for_status()
            deadline, row = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                with sqlite3.connect(c.dirs["REGULATOR"] / "ledger.db") as db:
                    row = db.execute(
                        "SELECT size, signers FROM node_anchor_checkpoints "
                        "WHERE tx_hash IS NOT NULL ORDER BY size DESC LIMIT 1"
                    ).fetchone()
                if row and len(json.loads(row[1])) == 4:
                    break
                time.sleep(0.2)
            assert row is not None, "nothing was anchored"
            assert sorted(json.loads(row[1])) == ["BANK-A", "BANK-B", "INSURER", "REGULATOR"]
            assert row[0] in chain.anchored()
        finally:
            c.stop()


def test_a_bank_reads_an_exporters_indicators_through_its_own_node(
    consortium: Consortium,
) -> None:
    """BANK-A's node signs the read with BANK-A's key; the sequencer answers under it."""
    original = demo.receivable(TODAY, "INV-2026-0117", "COSU6281550")
    exporter = demo.EXPORTER
    with consortium.client("INSURER") as insurer:
        insurer.post("/v1/policies", json=demo.policy_body(TODAY)).raise_for_status()
        insurer.post("/v1/policies/SINO-2026-0001/limits",
                     json=demo.limit_body(TODAY)).raise_for_status()
        insurer.post("/v1/coverage-notices", json=demo.notice_body(
            TODAY, "CN-0001", "BANK-A", original)).raise_for_status()
        insurer.post("/v1/consents", json={
            "consent_id": "C-1", "exporter_id": exporter, "bank": "BANK-A",
            "scope": "insurance_indicators",
            "valid_until": (TODAY + timedelta(days=30)).isoformat(),
        }).raise_for_status()  # fmt: skip
    with consortium.client("BANK-A") as bank_a:
        got = bank_a.get(f"/v1/exporters/{exporter}/indicators")
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["indicators"]["insured"]["total"] == {"USD": original["amount"]}
    with consortium.client("BANK-B") as bank_b:
        refused = bank_b.get(f"/v1/exporters/{exporter}/indicators")
    assert refused.status_code == 403
    assert "consent missing" in refused.json()["detail"]
    with consortium.client("INSURER") as insurer:
        log = insurer.get(f"/v1/exporters/{exporter}/access-log").json()
    assert [(r["bank"], r["entry_hash"]) for r in log["reads"]] == [
        ("BANK-A", answer["access"]["entry_hash"])
    ]
