"""Credit information over the API: consents and indicators, buyer lights, BUYER_RED."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chain.bundle import DatabaseSource
from chain.entries import decode_signed_entry
from chain.storage import Ledger
from node.identifiers import normalise_id
from tests.unit.api.story import BUYER, EXPORTER, POLICY_NO, Story, day, limit_body


def consent(consent_id: str = "CONSENT-1", bank: str = "BANK-A", **changes: Any) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "exporter_id": EXPORTER,
        "bank": bank,
        "scope": "insurance_indicators",
        "valid_until": day(30),
        **changes,
    }


def rating(light: str, *reasons: str) -> dict[str, Any]:
    return {"buyer_code": BUYER, "buyer_country": "DE", "light": light, "reasons": list(reasons)}


def ledger_entries(story: Story) -> list[dict[str, Any]]:
    """Every entry on the ledger, decoded (the recomputation reads the ledger, not the state)."""
    with Ledger.open(story.node.config.url) as ledger:
        return [
            {"type": e.type, "org": e.org, "body": e.body}
            for raw in DatabaseSource(ledger).raw_blocks()
            for e in map(decode_signed_entry, raw.entries)
        ]


def recompute_indicators(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The indicators from the ledger's entries alone (USD only in these stories)."""
    covered, open_fin, losses, claims = Decimal(0), Decimal(0), Decimal(0), Decimal(0)
    countries: dict[str, Decimal] = {}
    buyer_country = {}
    notices = {}
    loans: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        t, b = e["type"], e["body"]
        if t == "limit.approved":
            buyer_country[normalise_id(b["buyer_code"])] = b["buyer_country"]
        elif t == "coverage.issued" and b["exporter_id"] == EXPORTER:
            covered += Decimal(b["declared_amount"])
            c = buyer_country.get(normalise_id(b["buyer_code"]), "??")
            countries[c] = countries.get(c, Decimal(0)) + Decimal(b["declared_amount"])
            notices[b["notice_no"]] = b
        elif t == "loan.drawdown" and b["notice_no"] in notices:
            loans[(e["org"], b["loan_id"])] = Decimal(b["amount"])
        elif t == "loan.repayment" and (e["org"], b["loan_id"]) in loans:
            loans[(e["org"], b["loan_id"])] -= Decimal(b["amount"])
        elif t == "claim.loss_notified":
            losses += Decimal(b["amount"])
        elif t == "claim.paid":
            claims += Decimal(b["amount"])
    open_fin = sum(loans.values(), Decimal(0))
    return {
        "covered": f"{covered:.2f}",
        "countries": {k: f"{v:.2f}" for k, v in countries.items()},
        "open": f"{open_fin:.2f}",
        "losses": f"{losses:.2f}",
        "claims": f"{claims:.2f}",
    }


async def test_consent_lifecycle_grant_read_revoke(story: Story) -> None:
    rec = await story.insure("CN-1", "BANK-A")
    await story.insure("CN-2", "BANK-B", invoice="INV-2", bl="BL-2")
    assert (await story.draw("BANK-A", "A-1", "CN-1", rec)).status_code == 201
    await story.ok("BANK-A", "/v1/loans/A-1/repayments", {
        "currency": "USD", "amount": "50000.00", "date": day(1), "source": "buyer"})  # fmt: skip

    # no consent yet: 403 saying so, and nothing is written
    size = await story.log_size()
    refused = await story.get("BANK-A", f"/v1/exporters/{EXPORTER}/indicators")
    assert refused.status_code == 403
    assert "consent missing" in refused.json()["detail"]
    assert await story.log_size() == size

    await story.ok("INSURER", "/v1/consents", consent())
    got = await story.get("BANK-A", f"/v1/exporters/{EXPORTER}/indicators")
    assert got.status_code == 200, got.text
    answer = got.json()
    ind = answer["indicators"]
    assert ind["insured"]["total"] == {"USD": "500000.00"}
    assert ind["insured"]["by_year"] == {day(-10)[:4]: {"USD": "500000.00"}}
    assert ind["countries"] == {"DE": {"USD": "500000.00"}}
    assert ind["buyers"] == {BUYER: {"USD": "500000.00"}}
    assert ind["open_financing"] == {"USD": "150000.00"}  # one total, no bank named
    assert "BANK-A" not in str(ind)

    recomputed = recompute_indicators(ledger_entries(story))
    assert ind["insured"]["total"]["USD"] == recomputed["covered"]
    assert {k: v["USD"] for k, v in ind["countries"].items()} == recomputed["countries"]
    assert ind["open_financing"]["USD"] == recomputed["open"]

    # the read itself is on the ledger, and in the access log for the insurer and regulator
    reads = [e for e in ledger_entries(story) if e["type"] == "indicators.read"]
    assert [(e["org"], e["body"]["consent_id"]) for e in reads] == [("BANK-A", "CONSENT-1")]
    for org in ("INSURER", "REGULATOR"):
        log = (await story.get(org, f"/v1/exporters/{EXPORTER}/access-log")).json()
        assert [r["entry_hash"] for r in log["reads"]] == [answer["access"]["entry_hash"]]
    other = (await story.get("BANK-B", f"/v1/exporters/{EXPORTER}/access-log")).json()
    assert other["reads"] == [] and other["consents"] == []

    # BANK-B holds no consent
    assert (await story.get("BANK-B", f"/v1/exporters/{EXPORTER}/indicators")).status_code == 403

    # revoked: refused again
    await story.ok("INSURER", "/v1/consents/CONSENT-1/revocation", {"reason": "withdrawn"})
    again = await story.get("BANK-A", f"/v1/exporters/{EXPORTER}/indicators")
    assert again.status_code == 403 and "consent missing" in again.json()["detail"]


async def test_a_consent_expires(story: Story) -> None:
    await story.insure("CN-1", "BANK-A")
    await story.ok("INSURER", "/v1/consents", consent(valid_until=day(2)))
    assert (await story.get("BANK-A", f"/v1/exporters/{EXPORTER}/indicators")).status_code == 200
    story.node.clock.advance(days=3)  # type: ignore[attr-defined]
    expired = await story.get("BANK-A", f"/v1/exporters/{EXPORTER}/indicators")
    assert expired.status_code == 403


async def test_only_the_exporters_insurer_may_consent_and_only_for_a_bank(story: Story) -> None:
    r = await story.post("INSURER", "/v1/consents", consent())  # no policy for the exporter yet
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "exporter_id"
    await story.insure()
    r = await story.post("INSURER", "/v1/consents", consent(bank="INSURER"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "bank"
    r = await story.post("BANK-A", "/v1/consents", consent())
    assert r.status_code == 403


async def test_a_buyer_turns_red_and_a_drawdown_against_it_is_flagged(story: Story) -> None:
    rec = await story.insure("CN-1", "BANK-A")
    light = (await story.get("BANK-B", f"/v1/buyers/{BUYER}/light")).json()
    assert light["light"] == "green" and light["why"] == []

    # a limit cut makes it yellow
    await story.ok("INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body(amount="400000.00"))
    light = (await story.get("BANK-B", f"/v1/buyers/{BUYER}/light")).json()
    assert light["light"] == "yellow"
    assert [s["reason"] for s in light["why"]] == ["LIMIT_CUT"]

    receipt = await story.ok("INSURER", "/v1/buyer-ratings", rating("red", "PAYMENT_DEFAULT"))
    light = (await story.get("BANK-A", f"/v1/buyers/{BUYER.lower()}/light")).json()
    assert light["light"] == "red"
    assert [s["reason"] for s in light["why"]] == ["RATED_RED:PAYMENT_DEFAULT"]
    assert light["why"][0]["entry_hash"] == receipt["entry_hash"]
    assert light["since"] == light["why"][0]["ts"]

    drawn = await story.draw("BANK-A", "A-1", "CN-1", rec)
    assert drawn.status_code == 201  # a warning, not a refusal
    assert [f["code"] for f in drawn.json()["flags"]] == ["BUYER_RED"]


async def test_coverage_for_a_red_buyer_needs_the_insurers_override(story: Story) -> None:
    await story.insure("CN-1", "BANK-A")
    await story.ok("INSURER", "/v1/buyer-ratings", rating("red", "INSOLVENCY"))
    from tests.unit.api.story import notice_body, receivable

    body = notice_body("CN-2", "BANK-A", receivable("INV-2", "BL-2"))
    size = await story.log_size()
    refused = await story.post("INSURER", "/v1/coverage-notices", body)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "buyer_code"
    assert await story.log_size() == size
    body["red_buyer_override"] = "secured by a bank guarantee"
    await story.ok("INSURER", "/v1/coverage-notices", body)

    # a green rating after review clears the light, and signals before it no longer count
    await story.ok("INSURER", "/v1/buyer-ratings", rating("green", "REVIEWED"))
    assert (await story.get("BANK-A", f"/v1/buyers/{BUYER}/light")).json()["light"] == "green"


async def test_a_claim_paid_makes_the_buyer_red(story: Story) -> None:
    await story.insure("CN-1", "BANK-A")
    await story.ok("INSURER", "/v1/claims", {
        "kind": "loss_notified", "notice_no": "CN-1", "currency": "USD",
        "amount": "100000.00", "date": day(0)})  # fmt: skip
    assert (await story.get("BANK-A", f"/v1/buyers/{BUYER}/light")).json()["light"] == "yellow"
    await story.ok("INSURER", "/v1/claims", {
        "kind": "paid", "notice_no": "CN-1", "currency": "USD", "amount": "90000.00",
        "date": day(0), "bank": "BANK-A"})  # fmt: skip
    light = (await story.get("BANK-A", f"/v1/buyers/{BUYER}/light")).json()
    assert light["light"] == "red" and [s["reason"] for s in light["why"]] == ["CLAIM_PAID"]
    await story.ok("INSURER", "/v1/consents", consent())
    ind = (await story.get("BANK-A", f"/v1/exporters/{EXPORTER}/indicators")).json()["indicators"]
    assert ind["losses_notified"] == {"count": 1, "amount": {"USD": "100000.00"}}
    assert ind["claims_paid"] == {"count": 1, "amount": {"USD": "90000.00"}}


async def test_alert_events_are_recorded_with_the_block(story: Story) -> None:
    import sqlalchemy as sa

    from node.projection import T_ALERTS

    rec = await story.insure("CN-1", "BANK-A")
    await story.ok("INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body(amount="400000.00"))
    await story.ok("INSURER", "/v1/buyer-ratings", rating("red", "INSOLVENCY"))
    await story.draw("BANK-A", "A-1", "CN-1", rec)
    with story.node.ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(T_ALERTS).order_by(T_ALERTS.c.id)).mappings().all()
    got = [
        (r["kind"], r["data"].get("light") or r["data"].get("code"), r["visible_to"]) for r in rows
    ]
    assert got == [
        ("limit", None, ["INSURER"]),  # the first limit
        ("limit", None, ["INSURER"]),  # the cut
        ("light", "yellow", ["*"]),
        ("light", "red", ["*"]),
        ("flag", "BUYER_RED", []),
    ]
    cut = rows[1]["data"]
    assert cut["cut"] is True and cut["previous"] == "1000000.00"
    assert all(r["buyer_key"] == normalise_id(BUYER) and r["country"] == "DE" for r in rows)
    assert rows[4]["exporter_id"] == EXPORTER and rows[4]["data"]["bank"] == "BANK-A"
