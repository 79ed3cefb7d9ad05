"""POST /v1/entries: envelopes signed elsewhere (an HSM); idempotent resubmission."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from chain.entries import SignedEntry, make_entry
from node.genesis import NodeFiles
from tests.unit.api.story import NOW, Story, drawdown_body, repayment_body

PROBLEM = "application/problem+json"


def sign(story: Story, org: str, entry_type: str, body: dict[str, Any], **kw: Any) -> SignedEntry:
    key = NodeFiles(story.data).org_key(org)
    assert key is not None
    return make_entry(key, entry_type, body, kw.pop("ts", NOW), **kw)


def errors(r: Any) -> list[str]:
    assert r.headers["content-type"] == PROBLEM, r.text
    return [e["field"] for e in r.json()["errors"]]


async def test_resubmitted_envelope_returns_the_first_receipt(story: Story) -> None:
    rec = await story.insure()
    signed = sign(story, "BANK-A", "loan.drawdown", drawdown_body("A-1", "CN-1", rec))
    before = await story.log_size()
    first = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
    assert first.status_code == 201, first.text
    again = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
    assert again.status_code == 201, again.text
    one, two = first.json(), again.json()
    assert one["entry_hash"] == two["entry_hash"] == signed.hash.hex()
    assert one["index"] == two["index"]
    assert one["duplicate"] is False
    assert two["duplicate"] is True
    assert await story.log_size() == before + 1


async def test_envelope_drawdown_rejected_is_409_with_receipt(story: Story) -> None:
    rec = await story.insure("CN-1", "BANK-A")
    await story.insure("CN-2", "BANK-B")
    await story.ok("BANK-A", "/v1/loans", drawdown_body("A-1", "CN-1", rec))
    signed = sign(story, "BANK-B", "loan.drawdown", drawdown_body("B-1", "CN-2", rec))
    r = await story.post_raw("BANK-B", "/v1/entries", signed.raw)
    assert r.status_code == 409
    receipt = r.json()["receipt"]
    assert receipt["entry_hash"] == signed.hash.hex()
    assert "DUPLICATE_FINANCING" in [f["code"] for f in receipt["flags"]]
    again = await story.post_raw("BANK-B", "/v1/entries", signed.raw)
    assert again.status_code == 409  # same answer, nothing added
    assert again.json()["receipt"]["duplicate"] is True


async def test_envelope_of_other_types_is_201(story: Story) -> None:
    rec = await story.insure()
    await story.ok("BANK-A", "/v1/loans", drawdown_body("A-1", "CN-1", rec))
    signed = sign(story, "BANK-A", "loan.repayment", {"loan_id": "A-1", **repayment_body()})
    r = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "loan.repayment"


async def test_refuses_an_envelope_signed_by_another_org(story: Story) -> None:
    rec = await story.insure()
    signed = sign(story, "BANK-A", "loan.drawdown", drawdown_body("A-1", "CN-1", rec))
    before = await story.log_size()
    r = await story.post_raw("BANK-B", "/v1/entries", signed.raw)
    assert r.status_code == 403
    assert await story.log_size() == before


async def test_refuses_a_forged_signature_naming_sig(story: Story) -> None:
    rec = await story.insure()
    signed = sign(story, "BANK-A", "loan.drawdown", drawdown_body("A-1", "CN-1", rec))
    forged = base64.b64encode(bytes(64)).decode()
    before = await story.log_size()
    r = await story.post("BANK-A", "/v1/entries", {"entry": signed.entry, "sig": forged})
    assert r.status_code == 422
    assert errors(r) == ["sig"]
    assert await story.log_size() == before


async def test_refuses_an_entry_outside_the_clock_window_naming_ts(story: Story) -> None:
    rec = await story.insure()
    body = drawdown_body("A-1", "CN-1", rec)
    signed = sign(story, "BANK-A", "loan.drawdown", body, ts=NOW - timedelta(minutes=10))
    r = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
    assert r.status_code == 422
    assert errors(r) == ["entry.ts"]


async def test_refuses_a_malformed_envelope(story: Story) -> None:
    r = await story.post("BANK-A", "/v1/entries", {"entry": {"v": 1}})
    assert r.status_code == 422
    assert errors(r) == [""]
    r = await story.post_raw("BANK-A", "/v1/entries", b'{"entry": ')
    assert r.status_code == 422
    assert errors(r) == ["entry"]


async def test_refuses_an_envelope_with_an_invalid_body_naming_the_field(story: Story) -> None:
    rec = await story.insure()
    body = drawdown_body("A-1", "CN-1", rec, currency="XYZ")
    signed = sign(story, "BANK-A", "loan.drawdown", body)
    r = await story.post_raw("BANK-A", "/v1/entries", json.dumps(signed.to_json()).encode())
    assert r.status_code == 422
    assert "currency" in errors(r)
