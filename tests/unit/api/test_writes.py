"""The insurer's and the regulator's other writes, each through its own path."""

from __future__ import annotations

from chain.keys import SigningKey
from tests.unit.api.story import POLICY_NO, Story, day, drawdown_body


async def test_assignment_takes_policy_no_from_the_path(story: Story) -> None:
    await story.insure()
    body = {"bank": "BANK-A", "kind": "claims", "scope": "all"}
    receipt = await story.ok("INSURER", f"/v1/policies/{POLICY_NO}/assignments", body)
    entry = (await story.get("INSURER", f"/v1/ledger/entries/{receipt['entry_hash']}")).json()
    assert entry["entry"]["entry"]["body"] == {**body, "policy_no": POLICY_NO}
    assert entry["entry"]["entry"]["type"] == "assignment.registered"


async def test_revoked_notice_no_longer_covers(story: Story) -> None:
    rec = await story.insure()
    receipt = await story.ok(
        "INSURER", "/v1/coverage-notices/CN-1/revocation", {"reason": "premium unpaid"}
    )
    assert receipt["type"] == "coverage.revoked"
    check = await story.post(
        "BANK-A", "/v1/coverage-verifications", drawdown_body("A-1", "CN-1", rec)
    )
    assert check.json()["covered"] is False
    r = await story.draw("BANK-A", "A-1", "CN-1", rec)
    assert r.status_code == 409
    assert r.json()["type"] == "https://pfnode.dev/problems/coverage-invalid"


async def test_claim_kinds_choose_the_entry_type(story: Story) -> None:
    rec = await story.insure()
    loss = {
        "kind": "loss_notified",
        "notice_no": "CN-1",
        "currency": "USD",
        "amount": "250000.00",
        "date": day(1),
    }
    receipt = await story.ok("INSURER", "/v1/claims", loss)
    assert receipt["type"] == "claim.loss_notified"
    check = (
        await story.post("BANK-A", "/v1/financing-checks", drawdown_body("A-1", "CN-1", rec))
    ).json()
    assert "RECEIVABLE_IN_DEFAULT" in [f["code"] for f in check["flags"]]
    paid = {**loss, "kind": "paid", "bank": "BANK-A"}
    assert (await story.ok("INSURER", "/v1/claims", paid))["type"] == "claim.paid"


async def test_invalid_claim_body_names_the_field(story: Story) -> None:
    await story.insure()
    body = {"kind": "paid", "notice_no": "CN-1", "currency": "USD", "amount": "1.00"}
    r = await story.post("INSURER", "/v1/claims", body)
    assert r.status_code == 422
    assert sorted(e["field"] for e in r.json()["errors"]) == ["bank", "date"]


async def test_regulator_publishes_a_reference_rate(story: Story) -> None:
    body = {"date": day(0), "base": "EUR", "quote": "USD", "rate": "1.0850"}
    receipt = await story.ok("REGULATOR", "/v1/fx-rates", body)
    # reference data is visible to every member
    for org in ("BANK-A", "BANK-B", "INSURER"):
        r = await story.get(org, f"/v1/ledger/entries/{receipt['entry_hash']}")
        assert r.status_code == 200


async def test_regulator_resolves_a_flag(story: Story) -> None:
    await story.duplicate_story()
    flags = (await story.get("REGULATOR", "/v1/flags", status="open")).json()
    flag_id = next(f["flag_id"] for f in flags if f["code"] == "DUPLICATE_FINANCING")
    body = {"outcome": "confirmed", "note": "same bill of lading as an earlier loan"}
    receipt = await story.ok("REGULATOR", f"/v1/flags/{flag_id}/resolution", body)
    assert receipt["type"] == "flag.resolved"
    confirmed = (await story.get("REGULATOR", "/v1/flags", status="confirmed")).json()
    assert [f["flag_id"] for f in confirmed] == [flag_id]
    again = await story.post("REGULATOR", f"/v1/flags/{flag_id}/resolution", body)
    assert again.status_code == 409
    assert again.json()["type"] == "https://pfnode.dev/problems/conflict"
    unknown = await story.post("REGULATOR", "/v1/flags/0000/resolution", body)
    assert unknown.status_code == 404


async def test_membership_add_org_add_key_revoke_key(story: Story) -> None:
    first = SigningKey.generate("BANK-C/1")
    org = {
        "org_id": "BANK-C",
        "name": "Bank C",
        "role": "bank",
        "keys": [{"key_id": first.key_id, "public_key": first.public.b64}],
    }
    assert (await story.ok("REGULATOR", "/v1/orgs", org))["type"] == "org.added"
    second = SigningKey.generate("BANK-C/2")
    key = {"key_id": second.key_id, "public_key": second.public.b64}
    assert (await story.ok("REGULATOR", "/v1/orgs/BANK-C/keys", key))["type"] == "key.added"
    revoked = await story.ok(
        "REGULATOR", "/v1/orgs/BANK-C/keys/BANK-C/1/revocation", {"reason": "rotated"}
    )
    entry = (await story.get("BANK-A", f"/v1/ledger/entries/{revoked['entry_hash']}")).json()
    assert entry["entry"]["entry"]["body"] == {
        "org_id": "BANK-C",
        "key_id": "BANK-C/1",
        "reason": "rotated",
    }


async def test_refuses_key_org_differing_from_the_path(story: Story) -> None:
    key = SigningKey.generate("BANK-A/2")
    body = {"org_id": "BANK-B", "key_id": key.key_id, "public_key": key.public.b64}
    r = await story.post("REGULATOR", "/v1/orgs/BANK-A/keys", body)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["org_id"]
