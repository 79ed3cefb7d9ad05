"""What the API documents: request bodies (from node.bodies) and real response models.

Request bodies. The body of every POST that makes an entry is that entry type's
body (DESIGN section 4), and the node validates it with ``node.bodies.parse_body``:
one validation, and every 422 names its field exactly as node.bodies does. FastAPI
therefore receives the body as raw JSON (``api.deps.JsonObjectDep``) and the
OpenAPI document gets the models' JSON Schema through ``request_body(...)``
(``openapi_extra``), with the models themselves put under ``components/schemas``
by ``body_components()``. Decimal strings, dates and instants, which node.bodies
validates with plain functions, are described here as patterned strings.

Response models. Every route answers with one of the models below; those whose
fields the node owns (flags, loans, exposures, audit rows) allow extra fields so
nothing the node says is dropped on the way out.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from node.bodies import BODY_MODELS, Body

COMPONENTS = "#/components/schemas/{model}"
MAX_SIZE = 2**63 - 1
"""Heights, log indexes and sizes are signed 64-bit columns: a larger one is a 422, not a 500."""
DECIMAL_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
_VALUE_SCHEMAS: Mapping[str, JsonSchemaValue] = {
    "_parse_amount": {
        "type": "string",
        "pattern": DECIMAL_PATTERN,
        "examples": ["125000.00"],
        "description": "decimal string, > 0, at most the currency's minor units",
    },
    "_parse_ratio": {
        "type": "string",
        "pattern": DECIMAL_PATTERN,
        "examples": ["0.9"],
        "description": "decimal string in (0, 1]",
    },
    "_parse_rate": {"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["7.1234"]},
    "_parse_quantity": {"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["1000"]},
    "_parse_date": {"type": "string", "format": "date", "examples": ["2026-11-21"]},
    "_parse_instant": {
        "type": "string",
        "format": "date-time",
        "examples": ["2026-11-21T12:15:00Z"],
    },
}


# --------------------------------------------------------------------------- requests


class _BodySchema(GenerateJsonSchema):
    """JSON Schema of node.bodies models: plain-function fields get their real shape."""

    def function_plain_schema(
        self, schema: core_schema.PlainValidatorFunctionSchema
    ) -> JsonSchemaValue:
        name = getattr(schema["function"]["function"], "__name__", "")
        known = _VALUE_SCHEMAS.get(name)
        if known is not None:
            return dict(known)
        return super().function_plain_schema(schema)


@functools.cache
def body_components() -> dict[str, JsonSchemaValue]:
    """components/schemas for every entry body model and the models nested in them."""
    _, top = models_json_schema(
        [(model, "validation") for model in BODY_MODELS.values()],
        ref_template=COMPONENTS,
        schema_generator=_BodySchema,
    )
    defs: dict[str, JsonSchemaValue] = top.get("$defs", {})
    return defs


def _ref(model: type[Body]) -> JsonSchemaValue:
    return {"$ref": COMPONENTS.format(model=model.__name__)}


def _variant(
    model: type[Body],
    *,
    optional: Iterable[str] = (),
    extra: Mapping[str, JsonSchemaValue] | None = None,
    extra_required: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> JsonSchemaValue:
    """The model's schema with fields made optional, added or removed."""
    schema = copy.deepcopy(body_components()[model.__name__])
    dropped = set(drop)
    props = {k: v for k, v in schema.get("properties", {}).items() if k not in dropped}
    props.update(extra or {})
    skip = set(optional) | dropped
    required = [f for f in schema.get("required", []) if f not in skip]
    schema["properties"] = props
    schema["required"] = [*required, *extra_required]
    schema.pop("title", None)
    return schema


def body_schema(model: type[Body], **variant: Any) -> JsonSchemaValue:
    """The model's schema: a reference, or a variant (see ``_variant``) inline."""
    return _variant(model, **variant) if variant else _ref(model)


def request_body(model: type[Body], description: str = "", **variant: Any) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body of the model's shape."""
    return request_schema(
        body_schema(model, **variant), description or (model.__doc__ or "").split("\n")[0]
    )


def request_schema(schema: JsonSchemaValue, description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


# --------------------------------------------------------------------------- responses


class _Open(BaseModel):
    """A response whose shape the node owns: documented fields, extras kept."""

    model_config = ConfigDict(extra="allow")


class FieldError(BaseModel):
    field: str = Field(description="dotted path into the request body ('' = the whole body)")
    message: str


class Flag(_Open):
    """A rule's finding. Banks never see ``related`` hashes of other institutions.

    On a receipt the flag's id is ``id``; in flag lists ``flag_id``, beside the entry
    (``entry_hash``, ``index``, ``ts``), its review ``status`` and ``note``.
    """

    code: str
    severity: Literal["critical", "warning"]
    detail: str
    related: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    log_root: str
    hashes: list[str]


class Receipt(BaseModel):
    """What the node decided for an entry, and the proof that it is on the log."""

    entry_hash: str
    type: str
    index: int
    height: int
    status: Literal["accepted", "rejected"]
    flags: list[Flag]
    duplicate: bool = Field(description="true when this envelope was already on the ledger")
    inclusion_proof: InclusionProof


class Problem(_Open):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = Field(default=None, description="one per bad field")
    receipt: Receipt | None = Field(default=None, description="a recorded, rejected entry")


class FinancingCheck(BaseModel):
    """All drawdown rules against the current state, nothing recorded (unless reserved)."""

    status: Literal["accepted", "rejected"]
    flags: list[Flag]
    reservation: Receipt | None = Field(
        default=None, description="the financing.reserved hold, when reserve=true"
    )


class CoverageVerification(BaseModel):
    covered: bool
    flags: list[Flag] = Field(description="COVERAGE_INVALID and DOCUMENT_MISMATCH only")


class Loan(_Open):
    loan_id: str


class Exposure(_Open):
    """One row of open financing grouped by bank, buyer or country."""


class HistoryEntry(_Open):
    entry_hash: str
    index: int


class AuditReport(_Open):
    from_: str = Field(alias="from")
    to: str

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EntryBody(BaseModel):
    v: int
    type: str
    org: str
    key: str
    ts: str
    nonce: str
    body: dict[str, Any]


class SignedEntry(BaseModel):
    entry: EntryBody
    sig: str


class WithheldEntry(BaseModel):
    """An entry the caller may not read: its leaf hash only (roots still recompute)."""

    entry_hash: str
    withheld: Literal[True]


class LedgerReceipt(BaseModel):
    entry_hash: str
    status: Literal["accepted", "rejected"]
    flags: list[Flag]
    receipt_leaf: str | None = None  # in blocks: the leaf of the receipt as committed


class WithheldReceipt(BaseModel):
    entry_hash: str
    receipt_leaf: str


class BlockHeader(BaseModel):
    v: int
    height: int
    prev_hash: str
    time: str
    entries_root: str
    receipts_root: str
    log_size: int
    log_root: str
    producer: str


class Block(BaseModel):
    header: BlockHeader
    signature: str
    entries: list[SignedEntry | WithheldEntry]
    receipts: list[LedgerReceipt | WithheldReceipt]


class LogProof(BaseModel):
    tree_size: int
    log_root: str
    hashes: list[str]


class EntryWithProof(BaseModel):
    entry: SignedEntry
    entry_hash: str
    index: int
    height: int
    receipt: LedgerReceipt
    proof: LogProof


class Consistency(BaseModel):
    from_: int = Field(alias="from")
    to: int
    root1: str
    root2: str
    hashes: list[str]

    model_config = ConfigDict(populate_by_name=True)


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    role: Literal["leader", "standby", "follower"]
    height: int | None
    log_size: int
    queue: int
    alarms: list[str] = Field(default_factory=list)  # a follower's split-view alarms
    upstream_error: str | None = None  # a follower's last replication error


# --------------------------------------------------------------------------- OpenAPI

_PROBLEM_DESCRIPTIONS: Mapping[int, str] = {
    400: "Malformed JSON",
    401: "No bearer token, or one this node does not know",
    403: "The caller's role may not do this",
    404: "Not found, or not visible to the caller",
    409: "Conflict: a rejected entry (recorded; the receipt is in the problem) or a collision",
    413: "Request body too large",
    415: "Request body is not application/json",
    422: "Invalid request: one {field, message} per bad field in `errors`",
    503: "Overloaded (Retry-After) or storage unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem+json answers (media type set in app.py)."""
    return {s: {"model": Problem, "description": _PROBLEM_DESCRIPTIONS[s]} for s in statuses}


READ_ERRORS = problem_responses(401, 403, 404, 422)
CHECK_ERRORS = problem_responses(400, 401, 403, 404, 413, 415, 422, 503)
"""A POST that reads a JSON body and records nothing (coverage verification)."""
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)


# --------------------------------------------------------------------------- console, anchor


class Me(BaseModel):
    """The caller as this node knows it: the console shows or hides panels by ``role``."""

    org: str
    role: Literal["bank", "insurer", "regulator"]


class Anchor(BaseModel):
    """The latest checkpoint aggregated (BLS) for the EVM anchor, and where it landed."""

    size: int
    root: str = Field(description="the log root at that size, hex")
    signers: list[str] = Field(description="the institutions whose BLS signatures it aggregates")
    tx_hash: str | None = Field(description="the anchoring transaction; null until it is mined")
    block_number: int | None = Field(description="the EVM block holding that transaction")
