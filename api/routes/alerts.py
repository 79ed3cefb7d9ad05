"""Alert subscriptions (资信报警器, node.alerts): every member manages its own.

POST   /v1/subscriptions                 {kind: buyer | country | exporter, value,
                                         webhook_url?}: 201 with the webhook secret,
                                         shown this once
GET    /v1/subscriptions                 the caller's active subscriptions
DELETE /v1/subscriptions/{id}            the caller's own (404 for another's): 200 with it,
                                         ``active`` false
GET    /v1/subscriptions/dead-letters    the caller's webhook deliveries given up after
                                         every retry, with the last error and the alert
GET    /v1/alerts/stream                 server-sent events: ``event: alert``, its id the
                                         alert's, its data the alert as the caller may
                                         see it plus ``subscriptions`` (the ids it matched)

Any member may subscribe to any buyer, country or exporter; an alert reaches it only as
visibility allows (node.alerts.compute_view). Webhooks are signed (X-PFNode-Signature:
sha256=HMAC of the body with the secret); node.alerts.verify_webhook is the receiver's
check.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from api.deps import CallerDep, JsonObjectDep, NodeDep
from api.schemas import READ_ERRORS, WRITE_ERRORS, request_schema
from node.service import Caller, Node

router = APIRouter(prefix="/v1", tags=["alerts"])

PING_SECONDS = 15
MAX_DEAD_LETTERS = 1000
MAX_ID = 2**31 - 1  # subscription ids are 32-bit integers on PostgreSQL


class SubscriptionCreate(BaseModel):
    """A subscription: alerts about one buyer, country or exporter."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["buyer", "country", "exporter"]
    value: str = Field(
        description="a buyer code (matched after normalisation), an ISO 3166-1 alpha-2 "
        "country code, or an exporter's unified social credit code",
        max_length=256,
    )
    webhook_url: str | None = Field(default=None, description="http(s) URL to POST alerts to")


class SubscriptionPublic(BaseModel):
    id: int
    kind: str
    value: str
    webhook_url: str | None
    created: str
    active: bool


class SubscriptionCreated(SubscriptionPublic):
    secret: str = Field(description="the webhook's HMAC-SHA256 key; shown only here")


class Alert(BaseModel):
    """An alert as the caller may see it."""

    model_config = ConfigDict(extra="allow")

    id: int
    kind: Literal["light", "limit", "loss", "flag"]
    index: int
    entry_hash: str
    buyer_code: str
    country: str | None
    exporter_id: str | None
    ts: str
    data: dict[str, Any]


class DeadLetter(BaseModel):
    alert_id: int
    subscription_id: int
    webhook_url: str | None
    attempts: int
    last_error: str | None
    last_attempt: str
    alert: Alert | None


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionCreated,
    summary="Subscribe to alerts about a buyer, a country or an exporter",
    openapi_extra=request_schema(
        SubscriptionCreate.model_json_schema(), SubscriptionCreate.__doc__ or ""
    ),
    responses=WRITE_ERRORS,
)
def subscribe(caller: CallerDep, node: NodeDep, body: JsonObjectDep) -> dict[str, Any]:
    return node.alerts.subscribe(caller.org, body)


@router.get(
    "/subscriptions",
    response_model=list[SubscriptionPublic],
    summary="The caller's subscriptions",
    responses=READ_ERRORS,
)
def list_subscriptions(caller: CallerDep, node: NodeDep) -> list[dict[str, Any]]:
    return node.alerts.subscriptions(caller.org)


@router.get(
    "/subscriptions/dead-letters",
    response_model=list[DeadLetter],
    summary="The caller's webhook deliveries that failed every attempt",
    responses=READ_ERRORS,
)
def dead_letters(
    caller: CallerDep,
    node: NodeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_DEAD_LETTERS)] = 100,
) -> list[dict[str, Any]]:
    return node.alerts.dead_letters(caller.org, limit)


@router.delete(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionPublic,
    summary="Stop one of the caller's subscriptions (pending webhooks are dropped)",
    responses=READ_ERRORS,
)
def unsubscribe(
    subscription_id: Annotated[int, Path(ge=1, le=MAX_ID)], caller: CallerDep, node: NodeDep
) -> dict[str, Any]:
    return node.alerts.unsubscribe(caller.org, subscription_id)


@router.get(
    "/alerts/stream",
    response_class=EventSourceResponse,
    summary="Server-sent events: each alert matching the caller's subscriptions",
    responses={
        200: {
            "description": "event: alert, data: the alert as JSON",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **READ_ERRORS,
    },
)
async def stream_alerts(caller: CallerDep, node: NodeDep) -> EventSourceResponse:
    return EventSourceResponse(alert_events(node, caller), ping=PING_SECONDS)


async def alert_events(node: Node, caller: Caller) -> AsyncIterator[dict[str, str]]:
    async for alert in node.alerts.stream(caller.org):
        yield {"event": "alert", "id": str(alert["id"]), "data": json.dumps(alert)}
