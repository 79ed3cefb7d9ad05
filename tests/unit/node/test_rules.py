"""Drawdown rules: each flag fires when it should and not in the close clean case.

Every test asserts the exact (code, severity) list of the verdict, in DESIGN order,
and its status.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from node.domain import DRAWDOWN_FLAG_CODES, Flag, Params
from node.errors import Unprocessable
from node.fx import DECIMAL_CONTEXT
from node.rules import DRAWDOWN_RULES, compute_k4_score
from tests.unit.node.domain_helpers import (
    EXPORTER,
    World,
    claim,
    codes,
    drawdown,
    drawdown_for,
    fx,
    limit,
    policy,
    receivable,
    repayment,
    shipment,
)

CRIT = "critical"
WARN = "warning"


@pytest.fixture
def world() -> World:
    w = World()
    w.setup()
    return w


def _renumbered() -> dict[str, object]:
    """The same sale renumbered: new invoice number dated a day later, new B/L."""
    return receivable(
        invoice_no="INV-2026-0001-R", invoice_date="2026-02-11", transport_doc_no="MAEU7777777"
    )


def _text(flag: Flag) -> str:
    return json.dumps(flag.to_json())


def test_rules_run_in_design_order() -> None:
    names = [rule.__name__.removeprefix("compute_").upper() for rule in DRAWDOWN_RULES]
    assert names == list(DRAWDOWN_FLAG_CODES)


# --------------------------------------------------------------------------- the story


def test_story_duplicate_and_suspected_duplicate(world: World) -> None:
    notice_a = world.issue("N-A1", "BANK-A")
    first = world.submit("BANK-A", "loan.drawdown", drawdown_for("LA-1", notice_a))
    assert first.status == "accepted"
    assert first.flags == ()
    loan_a_hash = world.last_hash()

    renumbered = world.issue("N-B1", "BANK-B", receivable=_renumbered())
    second = world.submit("BANK-B", "loan.drawdown", drawdown_for("LB-1", renumbered))
    assert second.status == "accepted"
    assert codes(second) == [("SUSPECTED_DUPLICATE", WARN)]
    suspicion = second.flags[0]
    assert suspicion.related == (loan_a_hash,)
    assert suspicion.data["keys"] == ["K4", "K5"]
    assert [(m["key"], m["score"]) for m in suspicion.data["matches"]] == [
        ("K4", "0.75"),
        ("K5", "1.00"),
    ]
    assert (suspicion.data["key"], suspicion.data["score"]) == ("K5", "1.00")

    original = world.issue("N-B2", "BANK-B")
    third = world.submit(
        "BANK-B", "loan.drawdown", drawdown_for("LB-2", original, amount="30000.00")
    )
    assert third.status == "rejected"
    # the cargo also matches BANK-B's own renumbered loan, hence the warning
    assert codes(third) == [("DUPLICATE_FINANCING", CRIT), ("SUSPECTED_DUPLICATE", WARN)]
    duplicate = third.flags[0]
    assert duplicate.related == (loan_a_hash,)
    assert duplicate.data["keys"] == ["K1", "K2"]
    assert duplicate.data["when"] == "2026-03-01T12:00:03.000Z"
    assert "another institution" in duplicate.detail
    assert "2026-03-01T12:00:03.000Z" in duplicate.detail
    for flag in third.flags + second.flags:
        text = _text(flag)
        assert "BANK-A" not in text
        assert "INV-2026-0001" not in text and "INV20260001" not in text
        assert "COSU6123456780" not in text and "N-A1" not in text


# --------------------------------------------------------------------------- COVERAGE_INVALID


def test_coverage_invalid_unknown_notice(world: World) -> None:
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown("L1", "N-NOPE"))
    assert verdict.status == "rejected"
    assert codes(verdict) == [("COVERAGE_INVALID", CRIT)]
    assert verdict.flags[0].data["reasons"] == ["notice_unknown"]


def test_coverage_invalid_beneficiary_is_another_bank(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("L1", notice))
    assert codes(verdict) == [("COVERAGE_INVALID", CRIT)]
    assert verdict.status == "rejected"
    assert verdict.flags[0].data["reasons"] == ["not_beneficiary"]
    assert "BANK-A" not in _text(verdict.flags[0])


def test_coverage_invalid_revoked_notice(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    world.submit("INSURER", "coverage.revoked", {"notice_no": "N-A1", "reason": "fraud"})
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert codes(verdict) == [("COVERAGE_INVALID", CRIT)]
    assert verdict.flags[0].data["reasons"] == ["notice_revoked"]


def test_coverage_invalid_notice_expired_at_block_time(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A", valid_to="2026-03-01")
    clean = world.check(
        "BANK-A",
        "loan.drawdown",
        drawdown_for("L1", notice, maturity_date="2026-03-01", drawdown_date="2026-02-28"),
    )
    assert clean.status == "accepted" and clean.flags == ()  # valid through its last day
    world.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    verdict = world.submit(
        "BANK-A",
        "loan.drawdown",
        drawdown_for("L1", notice, drawdown_date="2026-03-01", maturity_date="2026-03-02"),
    )
    assert codes(verdict) == [("COVERAGE_INVALID", CRIT), ("COVER_LAPSES_BEFORE_MATURITY", WARN)]
    assert verdict.flags[0].data["reasons"] == ["notice_expired"]


def test_coverage_invalid_policy_not_in_force() -> None:
    world = World()
    world.submit("INSURER", "policy.registered", policy(valid_from="2026-03-02"))
    world.submit("INSURER", "limit.approved", limit())
    notice = world.issue("N-A1", "BANK-A")
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert codes(verdict) == [("COVERAGE_INVALID", CRIT)]
    assert verdict.flags[0].data["reasons"] == ["policy_not_in_force"]
    world.now = datetime(2026, 3, 2, tzinfo=UTC)
    assert world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice)).flags == ()


def test_coverage_invalid_indemnity_assigned_to_another_bank(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    world.submit(
        "INSURER",
        "assignment.registered",
        {"policy_no": "SCI-2026-000123", "bank": "BANK-B", "kind": "claims", "scope": "country:US"},
    )
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert codes(verdict) == [("COVERAGE_INVALID", CRIT)]
    assert verdict.flags[0].detail == "indemnity assigned to another bank"


def test_coverage_valid_when_assigned_to_this_bank_or_another_country(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    for bank, scope in (("BANK-A", "all"), ("BANK-B", "country:DE"), ("BANK-B", "buyer:OTHER")):
        world.submit(
            "INSURER",
            "assignment.registered",
            {"policy_no": "SCI-2026-000123", "bank": bank, "kind": "claims", "scope": scope},
        )
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert verdict.status == "accepted" and verdict.flags == ()


# --------------------------------------------------------------------------- DOCUMENT_MISMATCH


def test_document_mismatch_names_the_fields(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    body = drawdown_for("L1", notice, receivable=receivable(transport_doc_no="OTHER-BL-1"))
    verdict = world.submit("BANK-A", "loan.drawdown", body)
    assert verdict.status == "rejected"
    assert codes(verdict) == [("DOCUMENT_MISMATCH", CRIT)]
    assert verdict.flags[0].data["fields"] == ["receivable.transport_doc_no"]


def test_document_mismatch_not_fired_by_spelling_of_identifiers(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    spelled = receivable(
        invoice_no="inv 2026 0001",
        transport_doc_no="cosu-6123456780",
        amount="100000.0",
        shipment=shipment(vessel="Cosco Shipping Aries", quantity="1200.5"),
    )
    verdict = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L1", notice, receivable=spelled)
    )
    assert verdict.status == "accepted" and verdict.flags == ()


# --------------------------------------------------------------------------- DUPLICATE_FINANCING


def test_duplicate_financing_same_bank_other_loan_and_repaid(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    world.submit("BANK-A", "loan.repayment", repayment("L1", "50000.00"))
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L2", notice))
    assert verdict.status == "rejected"
    assert codes(verdict) == [("DUPLICATE_FINANCING", CRIT)]
    assert verdict.flags[0].data["holders"] == [
        {"keys": ["K1", "K2", "K3"], "when": "2026-03-01T12:00:03.000Z", "status": "repaid"}
    ]
    assert "this bank's loan L1" in verdict.flags[0].detail


def test_duplicate_financing_not_fired_for_a_tranche(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="40000.00"))
    verdict = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L2", notice, amount="40000.00", tranche_of="L1")
    )
    assert verdict.status == "accepted" and verdict.flags == ()


# --------------------------------------------------------------------------- over limits


def test_over_limit_coverage(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A", effective_limit="80000.00")  # cover 72000.00
    clean = world.check("BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="72000.00"))
    assert clean.status == "accepted" and clean.flags == ()
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="72000.01"))
    assert verdict.status == "rejected"
    assert codes(verdict) == [("OVER_LIMIT_COVERAGE", CRIT)]
    assert verdict.flags[0].data == {"total": "72000.01", "cap": "72000.00", "currency": "USD"}


def test_over_limit_receivable() -> None:
    world = World(Params(max_financing_ratio=Decimal("0.5")))
    world.setup()
    notice = world.issue("N-A1", "BANK-A")
    clean = world.check("BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="50000.00"))
    assert clean.flags == ()
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="50000.01"))
    assert verdict.status == "rejected"
    assert codes(verdict) == [("OVER_LIMIT_RECEIVABLE", CRIT)]
    assert verdict.flags[0].data["cap"] == "50000.00"


def _two_notices_same_buyer(world: World) -> tuple[dict[str, object], dict[str, object]]:
    first = world.issue("N-1", "BANK-A")
    other = receivable(
        invoice_no="INV-2", transport_doc_no="BL-2", invoice_date="2026-01-01",
        shipment=shipment(voyage="043W"),
    )  # fmt: skip
    second = world.issue("N-2", "BANK-B", receivable=other)
    return first, second


def test_over_limit_buyer() -> None:
    world = World()
    world.submit("INSURER", "policy.registered", policy())
    world.submit("INSURER", "limit.approved", limit(amount="60000.00"))  # x 0.9 = 54000.00
    first, second = _two_notices_same_buyer(world)
    assert world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", first)).flags == ()
    clean = world.check("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="4000.00"))
    assert clean.flags == ()
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="4000.01"))
    assert verdict.status == "rejected"
    assert codes(verdict) == [("OVER_LIMIT_BUYER", CRIT)]
    assert verdict.flags[0].data == {
        "open": "50000.00", "total": "54000.01", "cap": "54000.00", "currency": "USD",
    }  # fmt: skip


def test_over_limit_buyer_without_a_limit_in_force() -> None:
    world = World()
    world.submit("INSURER", "policy.registered", policy())
    world.submit("INSURER", "limit.approved", limit(valid_to="2026-02-28"))
    notice = world.issue("N-1", "BANK-A")
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert codes(verdict) == [("OVER_LIMIT_BUYER", CRIT)]
    assert verdict.flags[0].detail == "no buyer limit in force"
    world.submit("INSURER", "limit.approved", limit(valid_to="2026-03-01"))  # replaces it
    assert world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice)).flags == ()


def test_over_limit_policy() -> None:
    world = World()
    world.submit("INSURER", "policy.registered", policy(max_liability="60000.00"))
    world.submit("INSURER", "limit.approved", limit())
    first, second = _two_notices_same_buyer(world)
    assert world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", first)).flags == ()
    clean = world.check("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="10000.00"))
    assert clean.flags == ()
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="10000.01"))
    assert codes(verdict) == [("OVER_LIMIT_POLICY", CRIT)]
    assert verdict.flags[0].data["total"] == "60000.01"


# --------------------------------------------------------------------------- default


def test_receivable_in_default_on_the_notice(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    world.submit("INSURER", "claim.loss_notified", claim("N-A1"))
    claim_hash = world.last_hash()
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert verdict.status == "rejected"
    assert codes(verdict) == [("RECEIVABLE_IN_DEFAULT", CRIT)]
    assert verdict.flags[0].related == (claim_hash,)
    assert verdict.flags[0].data["keys"] == ["K1", "K2", "K3"]


def test_receivable_in_default_via_another_notice_with_the_same_invoice(world: World) -> None:
    world.issue("N-A1", "BANK-A")
    world.submit("INSURER", "claim.paid", {**claim("N-A1"), "bank": "BANK-A"})
    # the claim paid made the buyer red: covering it again takes the insurer's override
    notice_b = world.issue("N-B1", "BANK-B", red_buyer_override="re-underwritten after review")
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("L1", notice_b))
    assert codes(verdict) == [("RECEIVABLE_IN_DEFAULT", CRIT), ("BUYER_RED", "warning")]
    assert verdict.flags[0].data["keys"] == ["K1", "K2"]
    assert verdict.flags[0].data["event"] == "claim.paid"


def test_receivable_in_default_not_fired_by_another_receivables_claim(world: World) -> None:
    first, _ = (world.issue("N-X", "BANK-B", receivable=_renumbered()), None)
    world.submit("INSURER", "claim.loss_notified", claim(first["notice_no"]))
    notice = world.issue("N-A1", "BANK-A")
    verdict = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    assert verdict.status == "accepted" and verdict.flags == ()


# --------------------------------------------------------------------------- suspected duplicate


def test_suspected_duplicate_not_fired_outside_the_date_window(world: World) -> None:
    notice_a = world.issue("N-A1", "BANK-A")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("LA", notice_a))
    far = receivable(
        invoice_no="INV-9", invoice_date="2026-02-14", transport_doc_no="BL-9",
        shipment=shipment(voyage="043W"),
    )  # fmt: skip  # 4 days apart, window 3
    notice_b = world.issue("N-B1", "BANK-B", receivable=far)
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("LB", notice_b))
    assert verdict.status == "accepted" and verdict.flags == ()


def test_suspected_duplicate_k4_only_and_not_against_repaid_loans(world: World) -> None:
    notice_a = world.issue("N-A1", "BANK-A")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("LA", notice_a))
    near = receivable(
        invoice_no="INV-9", invoice_date="2026-02-13", transport_doc_no="BL-9",
        shipment=shipment(voyage="043W"),
    )  # fmt: skip  # 3 days apart: inside the window
    notice_b = world.issue("N-B1", "BANK-B", receivable=near)
    verdict = world.check("BANK-B", "loan.drawdown", drawdown_for("LB", notice_b))
    assert codes(verdict) == [("SUSPECTED_DUPLICATE", WARN)]
    assert (verdict.flags[0].data["key"], verdict.flags[0].data["score"]) == ("K4", "0.25")
    world.submit("BANK-A", "loan.repayment", repayment("LA", "50000.00"))
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("LB", notice_b))
    assert verdict.status == "accepted" and verdict.flags == ()


def test_k4_score_falls_with_days_apart() -> None:
    assert [compute_k4_score(d, 3) for d in range(4)] == [
        Decimal("1.00"), Decimal("0.75"), Decimal("0.50"), Decimal("0.25"),
    ]  # fmt: skip


# --------------------------------------------------------------------------- maturity


def test_cover_lapses_before_maturity(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A", valid_to="2026-04-30")
    clean = world.check(
        "BANK-A", "loan.drawdown", drawdown_for("L1", notice, maturity_date="2026-04-30")
    )
    assert clean.flags == ()
    verdict = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L1", notice, maturity_date="2026-05-01")
    )
    assert verdict.status == "accepted"
    assert codes(verdict) == [("COVER_LAPSES_BEFORE_MATURITY", WARN)]


def test_maturity_beyond_due(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")  # due 2026-05-10, + 90 days = 2026-08-08
    clean = world.check(
        "BANK-A", "loan.drawdown", drawdown_for("L1", notice, maturity_date="2026-08-08")
    )
    assert clean.flags == ()
    verdict = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L1", notice, maturity_date="2026-08-09")
    )
    assert verdict.status == "accepted"
    assert codes(verdict) == [("MATURITY_BEYOND_DUE", WARN)]


# --------------------------------------------------------------------------- together


def test_every_rule_runs_and_flags_come_in_design_order(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A", valid_to="2026-06-30")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("LA", notice))
    body = drawdown_for("LB", notice, amount="95000.00", maturity_date="2026-09-01")
    body["receivable"]["transport_doc_no"] = "BL-OTHER"
    verdict = world.submit("BANK-B", "loan.drawdown", body)
    assert verdict.status == "rejected"
    assert codes(verdict) == [
        ("COVERAGE_INVALID", CRIT),
        ("DOCUMENT_MISMATCH", CRIT),
        ("DUPLICATE_FINANCING", CRIT),
        ("OVER_LIMIT_COVERAGE", CRIT),
        ("OVER_LIMIT_RECEIVABLE", CRIT),
        ("COVER_LAPSES_BEFORE_MATURITY", WARN),
        ("MATURITY_BEYOND_DUE", WARN),
    ]
    assert world.state.flags  # recorded for the regulator
    assert {r.status for r in world.state.flags.values()} == {"open"}


def test_rejected_drawdown_adds_no_exposure(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")
    rejected = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="90000.01")
    )
    assert rejected.status == "rejected"
    assert world.state.loans == {}
    again = world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice, amount="90000.00"))
    assert again.status == "accepted" and again.flags == ()


def test_repayment_frees_capacity() -> None:
    world = World()
    world.submit("INSURER", "policy.registered", policy(max_liability="60000.00"))
    world.submit("INSURER", "limit.approved", limit())
    first, second = _two_notices_same_buyer(world)
    world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", first))
    blocked = world.check("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="20000.00"))
    assert codes(blocked) == [("OVER_LIMIT_POLICY", CRIT)]
    world.submit("BANK-A", "loan.repayment", repayment("L1", "10000.00"))
    verdict = world.submit("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="20000.00"))
    assert verdict.status == "accepted" and verdict.flags == ()


def test_tranche_limits_apply_to_the_sum(world: World) -> None:
    notice = world.issue("N-A1", "BANK-A")  # cover 90000.00, receivable cap 90000.00
    world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    second = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L2", notice, amount="30000.00", tranche_of="L1")
    )
    assert second.status == "accepted" and second.flags == ()
    loan = world.state.loans[("BANK-A", "L2")]
    assert loan.group == "L1"
    third = world.submit(
        "BANK-A", "loan.drawdown", drawdown_for("L3", notice, amount="10000.01", tranche_of="L2")
    )
    assert codes(third) == [("OVER_LIMIT_COVERAGE", CRIT), ("OVER_LIMIT_RECEIVABLE", CRIT)]
    assert third.flags[0].data["total"] == "90000.01"
    not_tranche = world.check("BANK-A", "loan.drawdown", drawdown_for("L3", notice, amount="1.00"))
    assert codes(not_tranche) == [("DUPLICATE_FINANCING", CRIT)]


# --------------------------------------------------------------------------- FX


def _eur_world() -> tuple[World, dict[str, object]]:
    world = World()
    world.setup()
    world.submit("REGULATOR", "fx.rate", fx("2026-02-27", "EUR", "USD", "1.08"))
    world.submit("REGULATOR", "fx.rate", fx("2026-03-02", "EUR", "USD", "1.10"))
    eur = receivable(currency="EUR", amount="100000.00")
    notice = world.issue("N-EUR", "BANK-A", receivable=eur)
    return world, notice


def test_fx_converts_at_latest_rate_on_or_before_drawdown_date() -> None:
    world, notice = _eur_world()
    # 97300 USD / 1.08 = 90092.59 EUR > cover 90000 EUR; at 1.10 (published after the
    # drawdown date) it would be 88454.55 EUR and pass.
    body = drawdown_for("L1", notice, currency="USD", amount="97300.00")
    verdict = world.submit("BANK-A", "loan.drawdown", body)
    assert codes(verdict) == [("OVER_LIMIT_COVERAGE", CRIT), ("OVER_LIMIT_RECEIVABLE", CRIT)]
    assert verdict.flags[0].data == {"total": "90092.59", "cap": "90000.00", "currency": "EUR"}
    later = drawdown_for(
        "L1", notice, currency="USD", amount="97300.00", drawdown_date="2026-03-02"
    )
    world.now += timedelta(days=1)
    assert world.submit("BANK-A", "loan.drawdown", later).flags == ()
    loan = world.state.loans[("BANK-A", "L1")]
    assert loan.factors["USD"] == Decimal(1)
    assert loan.factors["EUR"] == DECIMAL_CONTEXT.divide(Decimal(1), Decimal("1.10"))


def test_invalid_fx_without_a_rate_names_the_currency() -> None:
    world = World()
    world.setup()
    notice = world.issue("N-EUR", "BANK-A", receivable=receivable(currency="EUR"))
    with pytest.raises(Unprocessable) as caught:
        world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice, currency="USD"))
    (problem,) = caught.value.problems
    assert problem.field == "currency"
    assert "USD/EUR" in problem.message and "2026-03-01" in problem.message


def test_exporter_of_the_fixture_is_a_valid_uscc() -> None:
    assert len(EXPORTER) == 18


def test_buyer_exposure_revalued_when_the_limit_changes_currency() -> None:
    world = World()
    world.setup()
    world.submit("REGULATOR", "fx.rate", fx("2026-02-01", "EUR", "USD", "1.25"))
    first, second = _two_notices_same_buyer(world)
    world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", first))  # 50000 USD
    # the new limit is in EUR: 50000 USD are worth 40000.00 EUR; 45000 EUR x 0.9 = 40500.00
    world.submit("INSURER", "limit.approved", limit(currency="EUR", amount="45000.00"))
    clean = world.check("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="625.00"))
    assert clean.flags == ()
    verdict = world.check("BANK-B", "loan.drawdown", drawdown_for("L1", second, amount="625.02"))
    assert codes(verdict) == [("OVER_LIMIT_BUYER", CRIT)]
    assert verdict.flags[0].data == {
        "open": "40000.00", "total": "40500.02", "cap": "40500.00", "currency": "EUR",
    }  # fmt: skip
