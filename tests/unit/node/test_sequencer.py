"""The sequencer: group commit, durability of answers, refusals, idempotency, replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chain.entries import make_entry
from chain.errors import SignatureError
from chain.keys import SigningKey
from chain.merkle import verify_inclusion
from chain.storage import Ledger
from chain.verify import verify_database
from node import demo
from node.cli import main
from node.errors import Forbidden, NotFound, Overloaded, Unprocessable
from node.replay import DomainReplayer, rebuild_state
from tests.node_helpers import (
    BANK_A,
    BANK_B,
    NOW,
    REGULATOR,
    TODAY,
    issue_notice,
    running_node,
)


def url_of(data: Path, backend: str | None) -> str:
    return backend or f"sqlite:///{data / 'ledger.db'}"


def ledger_size(node) -> int:  # type: ignore[no-untyped-def]
    head = node.ledger.head(fresh=True)
    return head.log_size if head else 0


async def test_concurrent_writes_share_blocks_and_each_answer_is_durable(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend, max_block_ms=20) as node:
        rec = await issue_notice(node)
        bodies = [demo.drawdown_body(TODAY, f"A{i}", "CN-1", rec) for i in range(12)]
        for b in bodies:
            b["amount"] = "1000.00"
        receipts = await asyncio.gather(*(node.submit(BANK_A, "loan.drawdown", b) for b in bodies))
        heights = {r.height for r in receipts}
        assert len(heights) < len(receipts)  # group commit: several entries per block
        assert sorted(r.index for r in receipts) == list(range(3, 15))
        for r in receipts:
            full = node.with_proof(r)
            verify_inclusion(r.entry_hash, r.index, r.log_size, list(full.proof), r.log_root)
    with Ledger.open(url_of(tmp_path, backend)) as ledger:
        assert ledger.size == 15  # every answered write is on disk


async def test_refused_entries_change_nothing(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend) as node:
        await issue_notice(node)
        before = ledger_size(node)
        snapshot = node.sequencer.state.snapshot()
        with pytest.raises(Forbidden):
            await node.submit(BANK_A, "policy.registered", demo.policy_body(TODAY))
        with pytest.raises(NotFound):
            await node.submit(
                BANK_A,
                "loan.repayment",
                {
                    "loan_id": "NOPE",
                    "currency": "USD",
                    "amount": "1.00",
                    "date": TODAY.isoformat(),
                    "source": "buyer",
                },
            )
        with pytest.raises(Unprocessable) as info:
            body = demo.drawdown_body(TODAY, "A1", "CN-1", demo.receivable(TODAY, "INV-1", "BL-1"))
            body["amount"] = 100.5
            await node.submit(BANK_A, "loan.drawdown", body)
        assert info.value.problems[0].field == "amount"
        assert ledger_size(node) == before
        assert node.sequencer.state.snapshot() == snapshot


async def test_rejected_drawdown_is_recorded_and_flagged(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend) as node:
        rec = await issue_notice(node)
        ok = await node.submit(
            BANK_A, "loan.drawdown", demo.drawdown_body(TODAY, "A1", "CN-1", rec)
        )
        dup = await node.submit(
            BANK_B, "loan.drawdown", demo.drawdown_body(TODAY, "B1", "CN-1", rec)
        )
        assert ok.status == "accepted" and dup.status == "rejected"
        codes = [f["code"] for f in dup.flags]
        assert "DUPLICATE_FINANCING" in codes
        stored = node.ledger.get_entry(dup.entry_hash)
        assert stored is not None and stored.receipt["status"] == "rejected"
        assert [f["code"] for f in node.flags(BANK_B)] == codes
        assert node.flags(BANK_A) == []
        assert all("BANK-A" not in str(f) and f["related"] == [] for f in node.flags(BANK_B))
        assert [loan["loan_id"] for loan in node.loans(REGULATOR)] == ["A1"]


async def test_resubmitted_envelope_returns_first_receipt(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend) as node:
        key = node.files.org_key("REGULATOR")
        assert key is not None
        body = {"date": TODAY.isoformat(), "base": "EUR", "quote": "USD", "rate": "1.0850"}
        envelope = make_entry(key, "fx.rate", body, NOW).to_json()
        first = await node.submit_signed(REGULATOR, envelope)
        again = await node.submit_signed(REGULATOR, envelope)
        assert (again.entry_hash, again.index, again.duplicate) == (
            first.entry_hash,
            first.index,
            True,
        )
        assert ledger_size(node) == 1


async def test_refuses_forged_and_foreign_envelopes(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend) as node:
        stranger = SigningKey.generate("REGULATOR/1")  # right id, wrong key
        body = {"date": TODAY.isoformat(), "base": "EUR", "quote": "USD", "rate": "1.0850"}
        with pytest.raises(SignatureError):
            await node.submit_signed(
                REGULATOR, make_entry(stranger, "fx.rate", body, NOW).to_json()
            )
        key = node.files.org_key("REGULATOR")
        with pytest.raises(Forbidden):  # signed by the regulator, presented by a bank
            await node.submit_signed(BANK_A, make_entry(key, "fx.rate", body, NOW).to_json())
        assert ledger_size(node) == 0


async def test_revoked_key_signs_nothing_after_revocation(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend) as node:
        old = node.files.org_key("BANK-A")
        new = SigningKey.generate("BANK-A/2")
        await node.submit(
            REGULATOR,
            "key.added",
            {"org_id": "BANK-A", "key_id": "BANK-A/2", "public_key": new.public.b64},
        )
        rec = await issue_notice(node)
        early = make_entry(old, "loan.drawdown", demo.drawdown_body(TODAY, "A1", "CN-1", rec), NOW)
        await node.submit_signed(BANK_A, early.to_json())
        await node.submit(
            REGULATOR,
            "key.revoked",
            {"org_id": "BANK-A", "key_id": "BANK-A/1", "reason": "HSM replaced"},
        )
        body = {**demo.drawdown_body(TODAY, "A2", "CN-1", rec), "tranche_of": "A1"}
        body["amount"] = "1000.00"
        late = make_entry(old, "loan.drawdown", body, NOW)
        with pytest.raises(SignatureError, match="revoked"):
            await node.submit_signed(BANK_A, late.to_json())
        renewed = make_entry(new, "loan.drawdown", body, NOW)
        assert (await node.submit_signed(BANK_A, renewed.to_json())).status == "accepted"
    with Ledger.open(url_of(tmp_path, backend)) as ledger:
        report = verify_database(
            ledger, DomainReplayer(ledger.genesis, node.files.consortium_secret())
        )
        assert report.entries == 7  # the early entry still verifies under the revoked key


async def test_backpressure_answers_overloaded(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend, max_queue=1) as node:
        node.sequencer.stop()  # nothing drains the queue
        body = {"date": TODAY.isoformat(), "base": "EUR", "quote": "USD", "rate": "1.0850"}
        first = asyncio.ensure_future(node.submit(REGULATOR, "fx.rate", body))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await node.submit(REGULATOR, "fx.rate", {**body, "date": "2026-11-20"})
        first.cancel()


async def test_replay_rebuilds_identical_state_and_receipts(tmp_path: Path, backend: str | None) -> None:
    async with running_node(tmp_path, backend) as node:
        rec = await issue_notice(node)
        await node.submit(BANK_A, "loan.drawdown", demo.drawdown_body(TODAY, "A1", "CN-1", rec))
        await node.submit(BANK_B, "loan.drawdown", demo.drawdown_body(TODAY, "B1", "CN-1", rec))
        await node.submit(
            BANK_A,
            "loan.repayment",
            {
                "loan_id": "A1",
                "currency": "USD",
                "amount": "50000.00",
                "date": TODAY.isoformat(),
                "source": "buyer",
            },
        )
        live = node.sequencer.state.snapshot()
        loans, flags = node.loans(REGULATOR), node.flags(REGULATOR)
    assert rebuild_state(url_of(tmp_path, backend), tmp_path) == (6, 6)
    async with running_node(tmp_path, backend) as node:  # restart: state rebuilt by replay
        assert node.sequencer.state.snapshot() == live
        assert node.loans(REGULATOR) == loans and node.flags(REGULATOR) == flags
    db = ["--db", backend] if backend else []
    assert main(["replay", "--data", str(tmp_path), *db]) == 0
    assert main(["verify", "--data", str(tmp_path), *db]) == 0
