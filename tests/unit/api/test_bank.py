"""The bank's story over HTTP: duplicate drawdown, coverage verification, checks and holds."""

from __future__ import annotations

import json
from typing import Any

from chain.merkle import verify_inclusion
from tests.unit.api.story import Story, drawdown_body, receivable

PROBLEM = "application/problem+json"


def verify_receipt(receipt: dict[str, Any]) -> None:
    """The receipt's inclusion proof verifies against its log root (raises otherwise)."""
    proof = receipt["inclusion_proof"]
    assert proof["leaf_index"] == receipt["index"]
    verify_inclusion(
        bytes.fromhex(receipt["entry_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["log_root"]),
    )


async def test_duplicate_drawdown_story(story: Story) -> None:
    first, second = await story.duplicate_story()
    assert first["status"] == "accepted"
    assert first["type"] == "loan.drawdown"
    assert first["flags"] == []
    assert first["duplicate"] is False
    assert first["height"] >= 0 and first["index"] >= 0
    verify_receipt(first)

    assert second.status_code == 409
    assert second.headers["content-type"] == PROBLEM
    problem = second.json()
    assert problem["type"] == "https://pfnode.dev/problems/duplicate-financing"
    assert problem["title"] == "Drawdown rejected"
    receipt = problem["receipt"]
    assert receipt["status"] == "rejected"
    assert receipt["index"] == first["index"] + 1
    codes = [f["code"] for f in receipt["flags"]]
    assert "DUPLICATE_FINANCING" in codes
    verify_receipt(receipt)  # the attempt is recorded: it is on the log
    assert "BANK-A" not in second.text


async def test_rejected_drawdown_is_recorded_but_counts_for_nothing(story: Story) -> None:
    before = await story.log_size()
    _, second = await story.duplicate_story()
    assert second.status_code == 409
    assert await story.log_size() == before + 6  # policy, limit, 2 notices, 2 drawdowns
    loans = (await story.get("BANK-B", "/v1/loans")).json()
    assert loans == []
    assert (await story.get("BANK-B", "/v1/loans/B-LOAN-1")).status_code == 404


async def test_rejected_receipt_hides_the_other_banks_entries(story: Story) -> None:
    first, second = await story.duplicate_story()
    flags = second.json()["receipt"]["flags"]
    assert all(flag["related"] == [] for flag in flags)
    # The proof path may hold the other entry's leaf hash (an opaque sibling, as in every
    # block a member reads); the flags must not point at it.
    assert first["entry_hash"] not in json.dumps(flags)


async def test_bank_reads_its_loan(story: Story) -> None:
    rec = await story.insure()
    receipt = await story.ok("BANK-A", "/v1/loans", drawdown_body("A-LOAN-1", "CN-1", rec))
    loans = (await story.get("BANK-A", "/v1/loans")).json()
    assert [loan["loan_id"] for loan in loans] == ["A-LOAN-1"]
    loan = (await story.get("BANK-A", "/v1/loans/A-LOAN-1")).json()
    assert loan["amount"] == "200000.00"
    assert loan["entry_hash"] == receipt["entry_hash"]


async def test_coverage_verification_says_covered_for_the_beneficiary(story: Story) -> None:
    rec = await story.insure()
    body = drawdown_body("ignored", "CN-1", rec)
    del body["loan_id"]
    before = await story.log_size()
    r = await story.post("BANK-A", "/v1/coverage-verifications", body)
    assert r.status_code == 200, r.text
    assert r.json() == {"covered": True, "flags": []}
    assert await story.log_size() == before


async def test_coverage_verification_refuses_cover_naming_another_bank(story: Story) -> None:
    rec = await story.insure()  # the notice names BANK-A
    body = drawdown_body("B-1", "CN-1", rec)
    answer = (await story.post("BANK-B", "/v1/coverage-verifications", body)).json()
    assert answer["covered"] is False
    assert [f["code"] for f in answer["flags"]] == ["COVERAGE_INVALID"]
    assert "BANK-A" not in str(answer)


async def test_coverage_verification_spots_a_document_mismatch(story: Story) -> None:
    await story.insure()
    other = receivable("INV-1", "BL-OTHER")
    answer = (
        await story.post("BANK-A", "/v1/coverage-verifications", drawdown_body("A", "CN-1", other))
    ).json()
    assert answer["covered"] is False
    assert "DOCUMENT_MISMATCH" in [f["code"] for f in answer["flags"]]


async def test_coverage_verification_ignores_financing_flags(story: Story) -> None:
    """Already financed is not "not covered": that is what financing-checks says."""
    first, _ = await story.duplicate_story()
    rec = receivable()
    body = drawdown_body("B-2", "CN-2", rec)
    answer = (await story.post("BANK-B", "/v1/coverage-verifications", body)).json()
    assert answer == {"covered": True, "flags": []}
    check = (await story.post("BANK-B", "/v1/financing-checks", body)).json()
    assert check["status"] == "rejected"
    assert "DUPLICATE_FINANCING" in [f["code"] for f in check["flags"]]
    assert all(f["related"] == [] for f in check["flags"])
    assert first["entry_hash"] not in str(check)


async def test_financing_check_writes_nothing(story: Story) -> None:
    rec = await story.insure()
    before = await story.log_size()
    r = await story.post("BANK-A", "/v1/financing-checks", drawdown_body("A-1", "CN-1", rec))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "flags": [], "reservation": None}
    assert await story.log_size() == before


async def test_financing_check_with_reserve_places_a_hold(story: Story) -> None:
    rec = await story.insure("CN-1", "BANK-A")
    await story.insure("CN-2", "BANK-B")
    before = await story.log_size()
    body = {**drawdown_body("A-1", "CN-1", rec), "reserve": True}
    r = await story.post("BANK-A", "/v1/financing-checks", body)
    assert r.status_code == 200, r.text
    hold = r.json()["reservation"]
    assert hold["type"] == "financing.reserved"
    assert hold["status"] == "accepted"
    verify_receipt(hold)
    assert await story.log_size() == before + 1
    entry = (await story.get("BANK-A", f"/v1/ledger/entries/{hold['entry_hash']}")).json()
    body_on_ledger = entry["entry"]["entry"]["body"]
    assert body_on_ledger["bank"] == "BANK-A"
    assert body_on_ledger["expires_at"] == "2026-11-21T12:15:00Z"  # NOW + 15 minutes
    # while the hold lives, another bank cannot draw against the receivable
    other = (
        await story.post("BANK-B", "/v1/financing-checks", drawdown_body("B-1", "CN-2", rec))
    ).json()
    assert other["status"] == "rejected"
    assert "DUPLICATE_FINANCING" in [f["code"] for f in other["flags"]]


async def test_invalid_reserve_flag(story: Story) -> None:
    rec = await story.insure()
    body = {**drawdown_body("A-1", "CN-1", rec), "reserve": "yes"}
    r = await story.post("BANK-A", "/v1/financing-checks", body)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["reserve"]


async def test_invalid_hold_expiry_is_refused_before_any_write(story: Story) -> None:
    rec = await story.insure()
    before = await story.log_size()
    body = {**drawdown_body("A-1", "CN-1", rec), "reserve": True, "expires_at": "soon"}
    r = await story.post("BANK-A", "/v1/financing-checks", body)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["expires_at"]
    assert await story.log_size() == before
