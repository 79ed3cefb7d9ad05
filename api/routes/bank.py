"""The bank's paths: coverage verification, financing checks and holds, loans, repayments.

- POST /coverage-verifications: "is this receivable covered, for me?" The body is a
  loan.drawdown body whose loan_id may be left out; every drawdown rule runs as a dry
  run (``Node.check_financing``), nothing is recorded, and the answer keeps the flags
  about the cover itself: COVERAGE_INVALID (notice unknown, revoked, expired, policy
  invalid, or naming another beneficiary) and DOCUMENT_MISMATCH (the receivable is not
  the one the notice covers). ``covered`` is true when neither fires. Whether the
  amount also fits the limits, or the receivable is already financed, is what
  /financing-checks answers.
- POST /financing-checks: a loan.drawdown body plus optional ``reserve`` (boolean) and
  ``expires_at`` (default: 15 minutes from the node's clock). Answers the verdict of
  every drawdown rule; with reserve=true and an accepted verdict it also records a
  financing.reserved hold for the calling bank (bank, notice_no, receivable, currency,
  amount, expires_at) and returns that entry's receipt as ``reservation``.
- POST /loans: 201 with the receipt when accepted; 409 problem+json whose ``receipt``
  holds the recorded, rejected receipt and its flags.
- POST /loans/{loan_id}/repayments: loan_id from the path (201).
- GET /loans, /loans/{loan_id}: as the caller may see them (a bank: its own; the
  insurer: loans against its notices; the regulator: all).

Results of a check are for the calling bank only: as everywhere a bank reads a flag,
the ``related`` entry hashes of other institutions are withheld.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter

from api.deps import BankDep, BankWriter, CallerDep, JsonObjectDep, NodeDep, with_path_field
from api.schemas import (
    CHECK_ERRORS,
    READ_ERRORS,
    WRITE_ERRORS,
    CoverageVerification,
    FinancingCheck,
    Loan,
    Receipt,
    body_schema,
    request_body,
    request_schema,
)
from node.bodies import LoanDrawdown, LoanRepayment, format_instant, parse_body
from node.domain import COVERAGE_INVALID, DOCUMENT_MISMATCH, Verdict
from node.errors import FieldProblem, InvalidBody

router = APIRouter(prefix="/v1", tags=["bank"])

COVERAGE_CODES = frozenset({COVERAGE_INVALID, DOCUMENT_MISMATCH})
HOLD_MINUTES = 15
HOLD_FIELDS = ("notice_no", "receivable", "currency", "amount")
CHECK_BODY = request_schema(
    body_schema(
        LoanDrawdown,
        extra={
            "reserve": {
                "type": "boolean",
                "default": False,
                "description": "also place a financing.reserved hold (if accepted)",
            },
            "expires_at": {
                "type": "string",
                "format": "date-time",
                "description": "end of the hold (<= 30 min); default now + 15 min",
            },
        },
    ),
    "A loan.drawdown body, plus reserve and expires_at.",
)


def _bank_flags(verdict: Verdict, codes: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """A dry run's flags as the calling bank sees them: no other institution's hashes."""
    return [
        {**flag.to_json(), "related": []}
        for flag in verdict.flags
        if codes is None or flag.code in codes
    ]


@router.post(
    "/coverage-verifications",
    response_model=CoverageVerification,
    summary="Is this receivable covered, for me? (no write)",
    openapi_extra=request_body(
        LoanDrawdown, "A loan.drawdown body; loan_id may be left out.", optional=["loan_id"]
    ),
    responses=CHECK_ERRORS,
)
async def verify_coverage(caller: BankDep, node: NodeDep, body: JsonObjectDep) -> dict[str, Any]:
    probe = {"loan_id": f"coverage-check-{secrets.token_hex(8)}", **body}
    verdict = await node.check_financing(caller, probe)
    flags = _bank_flags(verdict, COVERAGE_CODES)
    return {"covered": not flags, "flags": flags}


@router.post(
    "/financing-checks",
    response_model=FinancingCheck,
    summary="Every drawdown rule, no write; reserve=true places a hold",
    openapi_extra=CHECK_BODY,
    responses=WRITE_ERRORS,
)
async def check_financing(writer: BankWriter, node: NodeDep, body: JsonObjectDep) -> dict[str, Any]:
    drawdown = {k: v for k, v in body.items() if k not in ("reserve", "expires_at")}
    reserve = body.get("reserve", False)
    if not isinstance(reserve, bool):
        raise InvalidBody([FieldProblem("reserve", "must be true or false")])
    if "expires_at" in body and not reserve:
        raise InvalidBody([FieldProblem("expires_at", "is only taken with reserve=true")])
    hold = None
    if reserve:
        hold = _hold(writer.caller.org, drawdown, body.get("expires_at"), node.clock.now())
        parse_body("financing.reserved", hold)  # a bad hold is refused before any rule runs
    verdict = await node.check_financing(writer.caller, drawdown)
    reservation = None
    if hold is not None and verdict.accepted:
        reservation = await writer.record("financing.reserved", hold)
    return {"status": verdict.status, "flags": _bank_flags(verdict), "reservation": reservation}


def _hold(bank: str, drawdown: dict[str, Any], expires_at: Any, now: datetime) -> dict[str, Any]:
    """The financing.reserved body for the drawdown's receivable (default: 15 minutes)."""
    if expires_at is None:
        expires_at = format_instant(now + timedelta(minutes=HOLD_MINUTES))
    hold = {"bank": bank, "expires_at": expires_at}
    hold.update({k: drawdown[k] for k in HOLD_FIELDS if k in drawdown})
    return hold


@router.post(
    "/loans",
    status_code=201,
    response_model=Receipt,
    summary="Register a loan drawdown (201 accepted, 409 rejected with its receipt)",
    openapi_extra=request_body(LoanDrawdown),
    responses=WRITE_ERRORS,
)
async def draw_down(writer: BankWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("loan.drawdown", body)


@router.post(
    "/loans/{loan_id}/repayments",
    status_code=201,
    response_model=Receipt,
    summary="Register a repayment on one of the bank's loans",
    openapi_extra=request_body(LoanRepayment, optional=["loan_id"]),
    responses=WRITE_ERRORS,
)
async def repay(loan_id: str, writer: BankWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("loan.repayment", with_path_field(body, "loan_id", loan_id))


@router.get(
    "/loans",
    response_model=list[Loan],
    summary="Loans the caller may see",
    responses=READ_ERRORS,
)
def list_loans(caller: CallerDep, node: NodeDep) -> list[dict[str, Any]]:
    return node.loans(caller)


@router.get(
    "/loans/{loan_id}",
    response_model=Loan,
    summary="One loan (404 if not visible)",
    responses=READ_ERRORS,
)
def get_loan(loan_id: str, caller: CallerDep, node: NodeDep) -> dict[str, Any]:
    return node.loan(caller, loan_id)
