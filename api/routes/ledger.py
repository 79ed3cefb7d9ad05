"""The ledger, for any member: checkpoint, blocks, entries with proofs, consistency, and
POST /entries for envelopes signed elsewhere (an HSM).

Blocks are shown as the caller may read them: an entry it may not read is its leaf
hash only (``withheld``) and its receipt the receipt's leaf hash, so entries_root,
receipts_root and every proof still recompute.

POST /entries takes the signed envelope {"entry": ..., "sig": ...} as bytes and the
node parses them strictly (I-JSON: no duplicate keys, no floats). 201 with the
receipt; a rejected drawdown is 409 like POST /loans. Sending the same envelope
again returns the first receipt with ``duplicate: true`` and the same status, and
adds nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from api.deps import CallerDep, MemberWriter, NodeDep, RawBodyDep
from api.schemas import (
    MAX_SIZE,
    READ_ERRORS,
    WRITE_ERRORS,
    Anchor,
    Block,
    Consistency,
    EntryWithProof,
    Receipt,
    request_schema,
)

router = APIRouter(prefix="/v1", tags=["ledger"])

MAX_BLOCKS = 100
MAX_HEIGHT = MAX_SIZE - MAX_BLOCKS
"""The largest height asked for: ``from + limit`` must still fit the column."""
ENVELOPE = request_schema(
    {
        "type": "object",
        "required": ["entry", "sig"],
        "additionalProperties": False,
        "properties": {
            "entry": {"$ref": "#/components/schemas/EntryBody"},
            "sig": {
                "type": "string",
                "description": "base64 Ed25519 signature over b'pfnode/entry/v1\\n' + JCS(entry)",
            },
        },
    },
    "A signed entry; its body is its type's body (see the other POST paths).",
)


@router.get(
    "/ledger/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest checkpoint: a C2SP signed note",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **READ_ERRORS},
)
def checkpoint(caller: CallerDep, node: NodeDep) -> str:
    return node.checkpoint()


@router.get(
    "/ledger/blocks/{height}",
    response_model=Block,
    summary="One block",
    responses=READ_ERRORS,
)
def block(
    height: Annotated[int, Path(ge=0, le=MAX_HEIGHT)], caller: CallerDep, node: NodeDep
) -> dict[str, Any]:
    return node.block(caller, height)


@router.get(
    "/ledger/blocks",
    response_model=list[Block],
    summary="Blocks from a height on",
    responses=READ_ERRORS,
)
def blocks(
    caller: CallerDep,
    node: NodeDep,
    start: Annotated[int, Query(alias="from", ge=0, le=MAX_HEIGHT)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_BLOCKS)] = 20,
) -> list[dict[str, Any]]:
    return node.blocks(caller, start, limit)


@router.get(
    "/ledger/entries/{entry_hash}",
    response_model=EntryWithProof,
    summary="One entry with its receipt and inclusion proof (404 if not visible)",
    responses=READ_ERRORS,
)
def entry(entry_hash: str, caller: CallerDep, node: NodeDep) -> dict[str, Any]:
    return node.entry(caller, entry_hash)


@router.get(
    "/ledger/consistency",
    response_model=Consistency,
    summary="Consistency proof between two tree sizes",
    responses=READ_ERRORS,
)
def consistency(
    caller: CallerDep,
    node: NodeDep,
    size1: Annotated[int, Query(alias="from", ge=1, le=MAX_SIZE)],
    size2: Annotated[int, Query(alias="to", ge=1, le=MAX_SIZE)],
) -> dict[str, Any]:
    return node.consistency(size1, size2)


@router.post(
    "/entries",
    status_code=201,
    response_model=Receipt,
    summary="Submit an entry signed elsewhere",
    openapi_extra=ENVELOPE,
    responses=WRITE_ERRORS,
)
async def submit_entry(writer: MemberWriter, envelope: RawBodyDep) -> dict[str, Any]:
    return await writer.record_signed(envelope)


@router.get(
    "/ledger/anchor",
    response_model=Anchor,
    summary="The latest checkpoint aggregated for the EVM anchor, and its transaction",
    responses=READ_ERRORS,
)
def anchor(caller: CallerDep, node: NodeDep) -> dict[str, Any]:
    return node.latest_anchor()
