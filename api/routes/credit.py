"""Credit information for lenders (node.credit): consents, indicators, buyer lights.

POST /v1/consents                          insurer: consent.granted (for its exporter)
POST /v1/consents/{consent_id}/revocation  insurer: consent.revoked
POST /v1/buyer-ratings                     insurer: buyer.rated
GET  /v1/buyers/{buyer_code}/light         every member: the light, since when, why
GET  /v1/exporters/{exporter_id}/indicators
                                           bank with a live consent (403 "consent
                                           missing" otherwise); each read is recorded
                                           on the ledger (indicators.read) before it is
                                           answered
GET  /v1/exporters/{exporter_id}/access-log
                                           consents and reads: the regulator all, the
                                           insurer those under its consents, a bank its own
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import BankDep, CallerDep, InsurerWriter, JsonObjectDep, NodeDep, with_path_field
from api.schemas import READ_ERRORS, WRITE_ERRORS, Receipt, request_body
from node.bodies import BuyerRated, ConsentGranted, ConsentRevoked

router = APIRouter(prefix="/v1", tags=["credit information"])


class Signal(BaseModel):
    light: str
    reason: str
    entry_hash: str
    index: int
    ts: str


class BuyerLight(BaseModel):
    buyer_code: str
    country: str | None
    light: str
    since: str | None
    why: list[Signal]


class Access(BaseModel):
    entry_hash: str
    index: int


class ConsentRef(BaseModel):
    consent_id: str
    valid_until: str


class Indicators(BaseModel):
    exporter_id: str
    consent: ConsentRef
    indicators: dict[str, Any]
    access: Access


class AccessLog(BaseModel):
    exporter_id: str
    consents: list[dict[str, Any]]
    reads: list[dict[str, Any]]


@router.post(
    "/consents",
    status_code=201,
    response_model=Receipt,
    summary="Record an exporter's consent for one bank to read its insurance indicators",
    responses=WRITE_ERRORS,
    openapi_extra=request_body(ConsentGranted),
)
async def grant_consent(writer: InsurerWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("consent.granted", body)


@router.post(
    "/consents/{consent_id}/revocation",
    status_code=201,
    response_model=Receipt,
    summary="Record the exporter's withdrawal of a consent",
    responses=WRITE_ERRORS,
    openapi_extra=request_body(ConsentRevoked, optional=["consent_id"]),
)
async def revoke_consent(
    consent_id: str, writer: InsurerWriter, body: JsonObjectDep
) -> dict[str, Any]:
    return await writer.record("consent.revoked", with_path_field(body, "consent_id", consent_id))


@router.post(
    "/buyer-ratings",
    status_code=201,
    response_model=Receipt,
    summary="Rate a buyer green, yellow or red, with reason codes",
    responses=WRITE_ERRORS,
    openapi_extra=request_body(BuyerRated),
)
async def rate_buyer(writer: InsurerWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("buyer.rated", body)


@router.get(
    "/buyers/{buyer_code}/light",
    response_model=BuyerLight,
    summary="A buyer's risk light: since when and why",
    responses=READ_ERRORS,
)
def buyer_light(buyer_code: str, caller: CallerDep, node: NodeDep) -> dict[str, Any]:
    del caller  # every member may ask
    return node.buyer_light(buyer_code)


@router.get(
    "/exporters/{exporter_id}/indicators",
    response_model=Indicators,
    summary="An exporter's insurance indicators, for a bank holding its live consent",
    responses={**READ_ERRORS, **WRITE_ERRORS},
)
async def exporter_indicators(
    exporter_id: str,
    caller: BankDep,
    node: NodeDep,
    access: Annotated[
        str | None,
        Query(
            pattern="^[0-9a-f]{64}$",
            description="an indicators.read the bank's own node recorded (consortium mode)",
        ),
    ] = None,
) -> dict[str, Any]:
    return await node.exporter_indicators(caller, exporter_id, access)


@router.get(
    "/exporters/{exporter_id}/access-log",
    response_model=AccessLog,
    summary="Who was authorised to read an exporter's indicators, and who read them",
    responses=READ_ERRORS,
)
def access_log(exporter_id: str, caller: CallerDep, node: NodeDep) -> dict[str, Any]:
    return node.access_log(caller, exporter_id)
