"""Annotated dependencies: the node, the caller, its role, the writer, the JSON body.

Authorisation lives here, once: a route states who may call it by the type of one
parameter (``BankDep``, ``InsurerDep``, ``RegulatorDep``, ``CallerDep`` for any
member, or a ``Writer`` for a role), never by an ``if`` in its body. The node checks
again who may sign what (defence in depth); the dependency answers first, so a bank
POSTing a policy gets 403 whatever its body holds.

(No ``from __future__ import annotations`` here: FastAPI resolves the annotations of
the closures below at runtime, and they name local dependencies.)
"""

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.metrics import Metrics, elapsed
from api.problems import (
    MalformedJson,
    PayloadTooLarge,
    Rejected,
    RoleRequired,
    Unauthenticated,
    UnsupportedMediaType,
)
from node.errors import FieldProblem, InvalidBody
from node.service import Caller, Node, Role

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects read (an entry envelope needs 5). The check runs on
the bytes before any parser: with the recursion limit some libraries raise at import
(py_ecc: 100,000), a parser would overflow the C stack on a deep body and kill the process."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


async def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


NodeDep = Annotated[Node, Depends(get_node)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An organisation's token (`pfnode token create --org ID`; demo: "
    "<data>/demo-tokens.json).",
)


async def get_caller(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthenticated("a bearer token is required: Authorization: Bearer <token>")
    caller = node.authenticate(credentials.credentials)
    if caller is None:
        raise Unauthenticated("the bearer token is not known to this node")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_role(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency that lets through callers of one of ``roles`` and answers 403 otherwise."""

    async def caller_with_role(caller: CallerDep, request: Request) -> Caller:
        if caller.role not in roles:
            raise RoleRequired(caller.org, caller.role, roles, request.url.path)
        return caller

    caller_with_role.__name__ = f"require_{'_or_'.join(roles)}"
    return caller_with_role


BankDep = Annotated[Caller, Depends(require_role("bank"))]
InsurerDep = Annotated[Caller, Depends(require_role("insurer"))]
RegulatorDep = Annotated[Caller, Depends(require_role("regulator"))]


# --------------------------------------------------------------------------- writes


@dataclass(frozen=True)
class Writer:
    """Writes entries for one caller; counts and times them; raises ``Rejected`` (409)."""

    node: Node
    caller: Caller
    metrics: Metrics

    async def record(self, entry_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sign with the caller's institution key, sequence, and return the receipt."""
        start = time.perf_counter()
        receipt = (await self.node.submit(self.caller, entry_type, body)).to_json()
        return self._answer(receipt, start)

    async def record_signed(self, envelope: bytes) -> dict[str, Any]:
        """Sequence an envelope signed elsewhere (an HSM), strictly parsed from its bytes."""
        start = time.perf_counter()
        receipt = (await self.node.submit_signed(self.caller, envelope)).to_json()
        return self._answer(receipt, start)

    def _answer(self, receipt: dict[str, Any], start: float) -> dict[str, Any]:
        self.metrics.observe_write(receipt, elapsed(start))
        if receipt["status"] == "rejected":
            raise Rejected(receipt)
        return receipt


def writer_for(*roles: Role) -> Callable[..., Awaitable[Writer]]:
    guard = require_role(*roles)

    async def writer(
        caller: Annotated[Caller, Depends(guard)], node: NodeDep, metrics: MetricsDep
    ) -> Writer:
        return Writer(node, caller, metrics)

    return writer


BankWriter = Annotated[Writer, Depends(writer_for("bank"))]
InsurerWriter = Annotated[Writer, Depends(writer_for("insurer"))]
RegulatorWriter = Annotated[Writer, Depends(writer_for("regulator"))]
MemberWriter = Annotated[Writer, Depends(writer_for("bank", "insurer", "regulator"))]


# --------------------------------------------------------------------------- bodies


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def is_nested_deeper(data: bytes, limit: int) -> bool:
    """True if the JSON text ``data`` nests arrays and objects more than ``limit`` deep.

    Iterative, on the bytes: strings are cut out first (a bracket in a string does not
    nest), then the brackets left are counted. Malformed text is the parser's business.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b"", data)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > limit:
            return True
    return False


async def raw_body(request: Request) -> bytes:
    """The request's bytes: JSON media type (or none), at most MAX_BODY_BYTES, nested at most
    MAX_JSON_DEPTH deep. A body longer than the limit is refused as soon as it is, unread."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"send application/json, not {media_type}")
    too_large = PayloadTooLarge(f"the body may be at most {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise too_large
    if is_nested_deeper(bytes(data), MAX_JSON_DEPTH):
        raise MalformedJson(f"the request body nests arrays or objects over {MAX_JSON_DEPTH} deep")
    return bytes(data)


async def json_object(data: Annotated[bytes, Depends(raw_body)]) -> dict[str, Any]:
    """The body as a JSON object. Numbers stay numbers: node.bodies refuses them by field."""
    try:  # UTF-8 only, no byte order mark (RFC 8259 section 8.1), as POST /entries reads it
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, duplicates
        raise MalformedJson(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidBody([FieldProblem("", "the request body must be a JSON object")])
    return value


RawBodyDep = Annotated[bytes, Depends(raw_body)]
JsonObjectDep = Annotated[dict[str, Any], Depends(json_object)]


def with_path_field(body: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    """The body with ``name`` taken from the path; a different value in the body is a 422."""
    given = body.get(name, value)
    if given != value:
        raise InvalidBody(
            [FieldProblem(name, f"{name} {given!r} differs from the path's {value!r}")]
        )
    return {**body, name: value}
