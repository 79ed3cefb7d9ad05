"""The insurer's writes: policies, buyer limits, assignments, coverage notices, claims.

Each body is its entry type's body (DESIGN section 4). A field the path names
(policy_no, notice_no) may be left out of the body; if the body has it, it must be
the same value, else 422 on that field.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import InsurerWriter, JsonObjectDep, with_path_field
from api.schemas import WRITE_ERRORS, Receipt, body_schema, request_body, request_schema
from node.bodies import (
    AssignmentRegistered,
    ClaimLossNotified,
    ClaimPaid,
    CoverageIssued,
    CoverageRevoked,
    LimitApproved,
    PolicyRegistered,
)
from node.errors import FieldProblem, InvalidBody

router = APIRouter(prefix="/v1", tags=["insurer"], responses=WRITE_ERRORS)

CLAIM_KINDS = {"loss_notified": "claim.loss_notified", "paid": "claim.paid"}
_KIND = {"kind": {"type": "string", "enum": list(CLAIM_KINDS)}}
CLAIM_BODY = request_schema(
    {
        "oneOf": [
            body_schema(ClaimLossNotified, extra=_KIND, extra_required=["kind"]),
            body_schema(ClaimPaid, extra=_KIND, extra_required=["kind"]),
        ],
        "discriminator": {"propertyName": "kind"},
    },
    'A claim event: the body of claim.loss_notified or claim.paid plus "kind": '
    '"loss_notified" | "paid", which chooses the entry type.',
)


@router.post(
    "/policies",
    status_code=201,
    response_model=Receipt,
    summary="Register a policy",
    openapi_extra=request_body(PolicyRegistered),
)
async def register_policy(writer: InsurerWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("policy.registered", body)


@router.post(
    "/policies/{policy_no}/limits",
    status_code=201,
    response_model=Receipt,
    summary="Approve a buyer's credit limit (replaces the previous one)",
    openapi_extra=request_body(LimitApproved, optional=["policy_no"]),
)
async def approve_limit(
    policy_no: str, writer: InsurerWriter, body: JsonObjectDep
) -> dict[str, Any]:
    return await writer.record("limit.approved", with_path_field(body, "policy_no", policy_no))


@router.post(
    "/policies/{policy_no}/assignments",
    status_code=201,
    response_model=Receipt,
    summary="Register an assignment of the indemnity to a bank",
    openapi_extra=request_body(AssignmentRegistered, optional=["policy_no"]),
)
async def register_assignment(
    policy_no: str, writer: InsurerWriter, body: JsonObjectDep
) -> dict[str, Any]:
    return await writer.record(
        "assignment.registered", with_path_field(body, "policy_no", policy_no)
    )


@router.post(
    "/coverage-notices",
    status_code=201,
    response_model=Receipt,
    summary="Issue a coverage notice for one receivable",
    openapi_extra=request_body(CoverageIssued),
)
async def issue_coverage(writer: InsurerWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("coverage.issued", body)


@router.post(
    "/coverage-notices/{notice_no}/revocation",
    status_code=201,
    response_model=Receipt,
    summary="Revoke a coverage notice",
    openapi_extra=request_body(CoverageRevoked, optional=["notice_no"]),
)
async def revoke_coverage(
    notice_no: str, writer: InsurerWriter, body: JsonObjectDep
) -> dict[str, Any]:
    return await writer.record("coverage.revoked", with_path_field(body, "notice_no", notice_no))


@router.post(
    "/claims",
    status_code=201,
    response_model=Receipt,
    summary="Record a claim event (loss notified, or indemnity paid)",
    description='One path for both claim entries: the body\'s "kind" ("loss_notified" or '
    '"paid") chooses claim.loss_notified or claim.paid; the rest is that entry\'s body.',
    openapi_extra=CLAIM_BODY,
)
async def record_claim(writer: InsurerWriter, body: JsonObjectDep) -> dict[str, Any]:
    kind = body.get("kind")
    entry_type = CLAIM_KINDS.get(kind) if isinstance(kind, str) else None
    if entry_type is None:
        raise InvalidBody([FieldProblem("kind", "must be 'loss_notified' or 'paid'")])
    return await writer.record(entry_type, {k: v for k, v in body.items() if k != "kind"})
