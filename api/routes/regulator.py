"""The regulator's paths: flags (and their live stream), receivable histories, exposures,
the audit report, reference rates, flag resolutions and membership.

GET /flags and /flags/stream are open to every member: the node filters them (a bank
sees its own flags without other institutions' hashes, the insurer the flags on its
notices). The stream sends one server-sent event per flag, ``event: flag``, its id
the flag's id and its data the flag as JSON, as soon as its block commits.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from api.deps import (
    CallerDep,
    JsonObjectDep,
    NodeDep,
    RegulatorDep,
    RegulatorWriter,
    with_path_field,
)
from api.schemas import (
    MAX_SIZE,
    READ_ERRORS,
    WRITE_ERRORS,
    AuditReport,
    Exposure,
    Flag,
    HistoryEntry,
    Receipt,
    request_body,
)
from node.bodies import FlagResolved, FxRate, KeyAdded, KeyRevoked, OrgAdded
from node.service import Caller, Node

router = APIRouter(prefix="/v1", tags=["regulator"])

PING_SECONDS = 15
CSV_MEDIA_TYPE = "text/csv"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@router.get(
    "/flags",
    response_model=list[Flag],
    summary="Flags the caller may see",
    responses=READ_ERRORS,
)
def list_flags(
    caller: CallerDep,
    node: NodeDep,
    since: Annotated[
        int | None,
        Query(ge=0, le=MAX_SIZE, description="only flags on entries after this log index"),
    ] = None,
    status: Literal["open", "confirmed", "dismissed"] | None = None,
) -> list[dict[str, Any]]:
    return node.flags(caller, since, status)


@router.get(
    "/flags/stream",
    response_class=EventSourceResponse,
    summary="Server-sent events: each flag the caller may see, as its block commits",
    responses={
        200: {
            "description": "event: flag, data: the flag as JSON",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **READ_ERRORS,
    },
)
async def stream_flags(caller: CallerDep, node: NodeDep) -> EventSourceResponse:
    return EventSourceResponse(_flag_events(node, caller), ping=PING_SECONDS)


async def _flag_events(node: Node, caller: Caller) -> AsyncIterator[dict[str, str]]:
    async for flag in node.flag_stream(caller):
        yield {"event": "flag", "id": str(flag.get("id", "")), "data": json.dumps(flag)}


@router.get(
    "/receivables/{key}/history",
    response_model=list[HistoryEntry],
    summary="Every entry about a receivable (by invoice, transport document or notice no.)",
    responses=READ_ERRORS,
)
def receivable_history(key: str, caller: RegulatorDep, node: NodeDep) -> list[dict[str, Any]]:
    return node.receivable_history(caller, key)


@router.get(
    "/exposures",
    response_model=list[Exposure],
    summary="Open financing, grouped",
    responses=READ_ERRORS,
)
def exposures(
    caller: RegulatorDep, node: NodeDep, by: Literal["bank", "buyer", "country"] = "bank"
) -> list[dict[str, Any]]:
    return node.exposures(caller, by)


@router.get(
    "/audit/report",
    response_model=AuditReport,
    summary="Flags and loans between two dates (JSON, or CSV: one row per flag or loan)",
    responses={
        200: {"content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}},
        **READ_ERRORS,
    },
)
def audit_report(
    caller: RegulatorDep,
    node: NodeDep,
    start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD")],
    format: Literal["json", "csv"] = "json",
) -> Any:
    report = node.audit_report(caller, start, end)
    if format == "json":
        return report
    filename = f"pfnode-audit-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        audit_csv(report),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def audit_csv(report: dict[str, Any]) -> str:
    """One row per record of each list in the report (loans, flags): ``record`` names the
    list, the other columns are the union of the records' fields, nested values as JSON."""
    records = [
        (name, row)
        for name, rows in report.items()
        if isinstance(rows, list)
        for row in rows
        if isinstance(row, dict)
    ]
    columns = ["record", *sorted({key for _, row in records for key in row})]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\r\n")
    writer.writeheader()
    for name, row in records:
        writer.writerow({"record": name.removesuffix("s"), **{k: _cell(v) for k, v in row.items()}})
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_START) else text  # no spreadsheet formulas


@router.post(
    "/fx-rates",
    status_code=201,
    response_model=Receipt,
    summary="Publish a reference exchange rate",
    openapi_extra=request_body(FxRate),
    responses=WRITE_ERRORS,
)
async def publish_rate(writer: RegulatorWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("fx.rate", body)


@router.post(
    "/flags/{flag_id}/resolution",
    status_code=201,
    response_model=Receipt,
    summary="Confirm or dismiss a flag",
    openapi_extra=request_body(FlagResolved, optional=["flag_id"]),
    responses=WRITE_ERRORS,
)
async def resolve_flag(
    flag_id: str, writer: RegulatorWriter, body: JsonObjectDep
) -> dict[str, Any]:
    return await writer.record("flag.resolved", with_path_field(body, "flag_id", flag_id))


@router.post(
    "/orgs",
    status_code=201,
    response_model=Receipt,
    summary="Admit an organisation",
    openapi_extra=request_body(OrgAdded),
    responses=WRITE_ERRORS,
)
async def add_org(writer: RegulatorWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("org.added", body)


@router.post(
    "/orgs/{org_id}/keys",
    status_code=201,
    response_model=Receipt,
    summary="Add a signing key to an organisation",
    openapi_extra=request_body(KeyAdded, optional=["org_id"]),
    responses=WRITE_ERRORS,
)
async def add_key(org_id: str, writer: RegulatorWriter, body: JsonObjectDep) -> dict[str, Any]:
    return await writer.record("key.added", with_path_field(body, "org_id", org_id))


@router.post(
    "/orgs/{org_id}/keys/{key_id:path}/revocation",
    status_code=201,
    response_model=Receipt,
    summary="Revoke an organisation's key (key ids hold a '/': BANK-A/1)",
    openapi_extra=request_body(KeyRevoked, optional=["org_id", "key_id"]),
    responses=WRITE_ERRORS,
)
async def revoke_key(
    org_id: str, key_id: str, writer: RegulatorWriter, body: JsonObjectDep
) -> dict[str, Any]:
    body = with_path_field(with_path_field(body, "org_id", org_id), "key_id", key_id)
    return await writer.record("key.revoked", body)
