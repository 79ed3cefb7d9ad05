"""Every bad input: problem+json naming the field, and nothing changes on the ledger."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.api.story import (
    POLICY_NO,
    Story,
    drawdown_body,
    limit_body,
    policy_body,
    repayment_body,
)

PROBLEM = "application/problem+json"


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    assert body["instance"] == r.request.url.path
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["errors"]]


async def refused(
    story: Story, org: str | None, path: str, body: Any, status: int
) -> dict[str, Any]:
    """POST that must be refused with ``status`` and leave the ledger as it was."""
    before = await story.log_size()
    answer = problem(await story.post(org, path, body), status)
    assert await story.log_size() == before
    return answer


@pytest.fixture
async def drawn(story: Story) -> Story:
    """A notice for BANK-A and its accepted loan A-LOAN-1 (200,000 USD)."""
    rec = await story.insure()
    assert (await story.draw("BANK-A", "A-LOAN-1", "CN-1", rec)).status_code == 201
    return story


async def test_invalid_float_amount_names_amount(story: Story) -> None:
    answer = await refused(
        story, "INSURER", "/v1/policies", policy_body(max_liability=5000000.0), 422
    )
    assert answer["type"] == "https://pfnode.dev/problems/invalid-body"
    assert fields(answer) == ["max_liability"]
    assert "max_liability" in answer["detail"]


async def test_invalid_float_drawdown_amount_names_amount(drawn: Story) -> None:
    rec = await drawn.insure("CN-9", invoice="INV-9", bl="BL-9")
    answer = await refused(
        drawn, "BANK-A", "/v1/loans", drawdown_body("A-2", "CN-9", rec, amount=100.5), 422
    )
    assert fields(answer) == ["amount"]


async def test_invalid_negative_amount(story: Story) -> None:
    answer = await refused(
        story, "INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body(amount="-5.00"), 422
    )
    assert fields(answer) == ["amount"]
    assert "greater than zero" in answer["errors"][0]["message"]


async def test_invalid_nested_field_is_a_dotted_path(story: Story) -> None:
    rec = await story.insure()
    bad = {**rec, "amount": "12.345"}  # USD has two minor units
    answer = await refused(story, "BANK-A", "/v1/loans", drawdown_body("A-1", "CN-1", bad), 422)
    assert fields(answer) == ["receivable.amount"]
    assert "receivable.amount" in answer["detail"]


async def test_invalid_missing_field(story: Story) -> None:
    body = policy_body()
    del body["exporter_name"]
    answer = await refused(story, "INSURER", "/v1/policies", body, 422)
    assert fields(answer) == ["exporter_name"]


async def test_invalid_unknown_currency(story: Story) -> None:
    answer = await refused(story, "INSURER", "/v1/policies", policy_body(currency="XYZ"), 422)
    assert "currency" in fields(answer)


async def test_invalid_extra_field(story: Story) -> None:
    answer = await refused(story, "INSURER", "/v1/policies", policy_body(discount="0.1"), 422)
    assert fields(answer) == ["discount"]


async def test_invalid_every_bad_field_is_listed_once(story: Story) -> None:
    body = policy_body(currency="XYZ", indemnity_ratio="1.5", extra=1)
    answer = await refused(story, "INSURER", "/v1/policies", body, 422)
    assert sorted(fields(answer)) == ["currency", "extra", "indemnity_ratio"]
    for field in fields(answer):
        assert field in answer["detail"]


async def test_refuses_policy_no_differing_from_the_path(story: Story) -> None:
    await story.ok("INSURER", "/v1/policies", policy_body())
    answer = await refused(
        story, "INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body(policy_no="OTHER"), 422
    )
    assert fields(answer) == ["policy_no"]


async def test_limit_body_may_repeat_the_path_policy_no(story: Story) -> None:
    await story.ok("INSURER", "/v1/policies", policy_body())
    receipt = await story.ok(
        "INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body(policy_no=POLICY_NO)
    )
    assert receipt["type"] == "limit.approved"


async def test_refuses_missing_token_with_401_and_challenge(story: Story) -> None:
    before = await story.log_size()
    r = await story.post(None, "/v1/policies", policy_body())
    answer = problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert answer["type"] == "https://pfnode.dev/problems/unauthenticated"
    assert await story.log_size() == before


async def test_refuses_unknown_token(story: Story) -> None:
    r = await story.client.get("/v1/loans", headers={"Authorization": "Bearer pfn_not-a-token"})
    problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await story.client.get("/v1/loans", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    problem(r, 401)


async def test_refuses_bank_registering_a_policy(story: Story) -> None:
    answer = await refused(story, "BANK-A", "/v1/policies", policy_body(), 403)
    assert answer["role"] == "bank"
    assert answer["allowed_roles"] == ["insurer"]


async def test_refuses_wrong_role_before_reading_the_body(story: Story) -> None:
    await refused(story, "BANK-A", "/v1/policies", {"nonsense": True}, 403)


async def test_refuses_insurer_drawing_a_loan(story: Story) -> None:
    rec = await story.insure()
    await refused(story, "INSURER", "/v1/loans", drawdown_body("I-1", "CN-1", rec), 403)


@pytest.mark.parametrize(
    ("org", "path"),
    [
        ("BANK-A", "/v1/fx-rates"),
        ("INSURER", "/v1/orgs"),
        ("REGULATOR", "/v1/loans"),
        ("REGULATOR", "/v1/coverage-notices"),
        ("INSURER", "/v1/financing-checks"),
    ],
)
async def test_refuses_paths_of_another_role(story: Story, org: str, path: str) -> None:
    await refused(story, org, path, {}, 403)


async def test_refuses_repayment_of_unknown_loan_with_404(story: Story) -> None:
    answer = await refused(story, "BANK-A", "/v1/loans/NOPE/repayments", repayment_body(), 404)
    assert answer["type"] == "https://pfnode.dev/problems/not-found"


async def test_refuses_repayment_of_another_banks_loan_with_404(drawn: Story) -> None:
    await refused(drawn, "BANK-B", "/v1/loans/A-LOAN-1/repayments", repayment_body(), 404)


async def test_refuses_repayment_above_outstanding_naming_amount(drawn: Story) -> None:
    answer = await refused(
        drawn, "BANK-A", "/v1/loans/A-LOAN-1/repayments", repayment_body("200000.01"), 422
    )
    assert fields(answer) == ["amount"]


async def test_repayment_takes_loan_id_from_the_path(drawn: Story) -> None:
    receipt = await drawn.ok("BANK-A", "/v1/loans/A-LOAN-1/repayments", repayment_body())
    assert receipt["type"] == "loan.repayment"
    loan = (await drawn.get("BANK-A", "/v1/loans/A-LOAN-1")).json()
    assert loan["outstanding"] == "150000.00"


async def test_refuses_repayment_loan_id_differing_from_the_path(drawn: Story) -> None:
    body = repayment_body(loan_id="A-LOAN-2")
    answer = await refused(drawn, "BANK-A", "/v1/loans/A-LOAN-1/repayments", body, 422)
    assert fields(answer) == ["loan_id"]


async def test_unknown_route_is_problem_json_404(story: Story) -> None:
    answer = problem(await story.get("BANK-A", "/v1/no-such-thing"), 404)
    assert answer["type"] == "about:blank"


async def test_wrong_method_is_problem_json_405(story: Story) -> None:
    r = await story.client.delete("/v1/loans", headers=story.auth("BANK-A"))
    problem(r, 405)
    assert "GET" in r.headers["allow"]


async def test_invalid_malformed_json_is_400(story: Story) -> None:
    before = await story.log_size()
    r = await story.post_raw("INSURER", "/v1/policies", b'{"policy_no": "P-1",')
    answer = problem(r, 400)
    assert answer["type"] == "https://pfnode.dev/problems/malformed-json"
    assert await story.log_size() == before


async def test_invalid_duplicate_keys_are_malformed(story: Story) -> None:
    r = await story.post_raw("INSURER", "/v1/policies", b'{"policy_no": "P-1", "policy_no": "P-2"}')
    assert "duplicate key" in problem(r, 400)["detail"]


async def test_invalid_json_that_is_not_an_object(story: Story) -> None:
    answer = problem(await story.post_raw("INSURER", "/v1/policies", b"[1, 2]"), 422)
    assert fields(answer) == [""]


async def test_refuses_a_body_that_is_not_json(story: Story) -> None:
    r = await story.post_raw(
        "INSURER", "/v1/policies", b"policy_no=P-1", "application/x-www-form-urlencoded"
    )
    problem(r, 415)


async def test_invalid_claim_kind(story: Story) -> None:
    answer = await refused(story, "INSURER", "/v1/claims", {"kind": "maybe"}, 422)
    assert fields(answer) == ["kind"]


async def test_invalid_query_parameter_names_it_without_location(story: Story) -> None:
    answer = problem(await story.get("BANK-A", "/v1/ledger/blocks", limit=101), 422)
    assert fields(answer) == ["limit"]
    answer = problem(await story.get("REGULATOR", "/v1/audit/report", to="2026-11-21"), 422)
    assert fields(answer) == ["from"]
    answer = problem(
        await story.get(
            "REGULATOR", "/v1/audit/report", **{"from": "2026-13-01", "to": "2026-11-21"}
        ),
        422,
    )
    assert fields(answer) == ["from"]


async def test_invalid_exposure_grouping(story: Story) -> None:
    answer = problem(await story.get("REGULATOR", "/v1/exposures", by="planet"), 422)
    assert fields(answer) == ["by"]


async def test_invalid_entry_hash(story: Story) -> None:
    answer = problem(await story.get("REGULATOR", "/v1/ledger/entries/zz"), 422)
    assert fields(answer) == ["hash"]
