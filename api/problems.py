"""RFC 9457 problem details (application/problem+json) for every error the API answers.

One table, ``TABLE``, maps each exception class to its HTTP status, problem type and
title; one handler, ``handle_error``, answers all of them (Starlette picks it for the
nearest class in the exception's MRO, and so does ``kind_of``)::

    api ApiError (raised by the API layer itself; each carries its own kind)
    ├── Unauthenticated            401  no or unknown bearer token (WWW-Authenticate: Bearer)
    ├── RoleRequired               403  the caller's role may not use this path
    ├── MalformedJson              400  the request body is not JSON
    ├── PayloadTooLarge            413
    ├── UnsupportedMediaType       415  a body that is not application/json
    └── Rejected                   409  recorded, but rejected (critical flags); ``receipt``
    node NodeError                 500
    ├── Forbidden                  403
    ├── NotFound                   404
    ├── Conflict                   409
    ├── Unprocessable              422  ``errors``: one {field, message} per bad field
    │   └── InvalidBody            422
    └── Overloaded                 503  Retry-After
    chain ChainError               500
    ├── EncodingError              422  field ""
    ├── SignatureError             422  field "sig" ("entry.nonce" for a reused nonce)
    ├── EntryError                 422  field "entry", "entry.ts", "entry.<field>" or "sig"
    │   └── DuplicateNonce         409
    ├── MerkleError                422
    └── StorageError               503  a fixed detail (the node's log has the cause)
    SQLAlchemy OperationalError,   503  as StorageError: a database that cannot be reached,
      TimeoutError (pool)               a full disk, a read-only file, met outside a block
    FastAPI RequestValidationError 422  (400 for undecodable JSON); field = loc without
                                        its "body"/"query"/"path" head
    Starlette HTTPException        its status (404 unknown route, 405 with Allow)
    anything else                  500  (logged; the detail says nothing more)

Every problem has type (a URI under https://pfnode.dev/problems/ or "about:blank"),
title, status, detail and instance (the request path), plus its extensions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from chain.errors import (
    ChainError,
    DuplicateNonce,
    EncodingError,
    EntryError,
    MerkleError,
    SignatureError,
    StorageError,
)
from node.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidBody,
    NodeError,
    NotFound,
    Overloaded,
    Unprocessable,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://pfnode.dev/problems/"
LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
log = logging.getLogger("pfnode.api")


@dataclass(frozen=True)
class ProblemKind:
    status: int
    slug: str | None  # None: "about:blank", the title is the status phrase
    title: str

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug if self.slug else "about:blank"


# --------------------------------------------------------------------------- API errors


class ApiError(Exception):
    """Root of the errors raised by api/ itself; each subclass names its kind."""

    kind: ClassVar[ProblemKind]

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})

    def problem_kind(self) -> ProblemKind:
        return self.kind


class Unauthenticated(ApiError):
    kind = ProblemKind(401, "unauthenticated", "Authentication required")

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="pfnode"'})


class RoleRequired(ApiError):
    kind = ProblemKind(403, "forbidden", "Forbidden")

    def __init__(self, org: str, role: str, allowed: tuple[str, ...], path: str) -> None:
        super().__init__(
            f"{org} ({role}) may not use {path}: it is for {' or '.join(allowed)}",
            extensions={"org": org, "role": role, "allowed_roles": list(allowed)},
        )


class MalformedJson(ApiError):
    kind = ProblemKind(400, "malformed-json", "Malformed JSON")


class PayloadTooLarge(ApiError):
    kind = ProblemKind(413, "payload-too-large", "Payload too large")


class UnsupportedMediaType(ApiError):
    kind = ProblemKind(415, "unsupported-media-type", "Unsupported media type")


class Rejected(ApiError):
    """A recorded entry the rules rejected: 409 with its receipt (the attempt is evidence)."""

    def __init__(self, receipt: Mapping[str, Any]) -> None:
        flags = [f for f in receipt.get("flags", []) if f.get("severity") == "critical"]
        codes = ", ".join(f"{f['code']} ({f['detail']})" for f in flags) or "no critical flag"
        super().__init__(
            f"{receipt.get('type', 'entry')} {receipt.get('entry_hash')} was recorded and "
            f"rejected: {codes}",
            extensions={"receipt": dict(receipt)},
        )
        first = flags[0]["code"] if flags else "rejected"
        self._kind = ProblemKind(
            409,
            first.lower().replace("_", "-"),
            "Drawdown rejected" if receipt.get("type") == "loan.drawdown" else "Entry rejected",
        )

    def problem_kind(self) -> ProblemKind:
        return self._kind


# --------------------------------------------------------------------------- the table

TABLE: Mapping[type[Exception], ProblemKind] = {
    Forbidden: ProblemKind(403, "forbidden", "Forbidden"),
    NotFound: ProblemKind(404, "not-found", "Not found"),
    Conflict: ProblemKind(409, "conflict", "Conflict"),
    InvalidBody: ProblemKind(422, "invalid-body", "Invalid request body"),
    Unprocessable: ProblemKind(422, "unprocessable", "Unprocessable request"),
    Overloaded: ProblemKind(503, "overloaded", "Overloaded"),
    NodeError: ProblemKind(500, "node-error", "Node error"),
    DuplicateNonce: ProblemKind(409, "duplicate-nonce", "Nonce already used"),
    SignatureError: ProblemKind(422, "invalid-signature", "Invalid signature"),
    EntryError: ProblemKind(422, "invalid-entry", "Invalid signed entry"),
    EncodingError: ProblemKind(422, "invalid-encoding", "Not canonical JSON"),
    MerkleError: ProblemKind(422, "invalid-proof-request", "Invalid proof request"),
    StorageError: ProblemKind(503, "storage-unavailable", "Storage unavailable"),
    ChainError: ProblemKind(500, "ledger-error", "Ledger error"),
    OperationalError: ProblemKind(503, "storage-unavailable", "Storage unavailable"),
    PoolTimeout: ProblemKind(503, "storage-unavailable", "Storage unavailable"),
}
VALIDATION = ProblemKind(422, "invalid-request", "Invalid request")
STORAGE_DETAIL = "the ledger's storage failed; this request was not recorded: send it again"
INTERNAL = ProblemKind(500, None, "Internal Server Error")


def kind_of(exc: Exception) -> ProblemKind:
    if isinstance(exc, ApiError):
        return exc.problem_kind()
    for cls in type(exc).__mro__:
        kind = TABLE.get(cls)
        if kind is not None:
            return kind
    return INTERNAL


_ENTRY_FIELD = re.compile(r"^(entry\.[a-z_]+|sig)\b")


def entry_field(exc: ChainError) -> str:
    """The envelope field a chain error is about: "sig", "entry.ts", "entry.type", ..."""
    text = str(exc)
    if isinstance(exc, SignatureError):
        return "entry.nonce" if "nonce" in text else "sig"
    match = _ENTRY_FIELD.match(text)
    if match:
        return match.group(1)
    if text.startswith(("entry ts", "ts ")):
        return "entry.ts"
    if text.startswith("a signed entry"):
        return ""
    return "entry"


def field_problems(exc: Exception) -> tuple[FieldProblem, ...]:
    if isinstance(exc, Unprocessable):
        return exc.problems
    if isinstance(exc, Conflict) and exc.field is not None:
        return (FieldProblem(exc.field, exc.reason),)
    if isinstance(exc, EncodingError):
        return (FieldProblem("", str(exc)),)
    if isinstance(exc, SignatureError | EntryError) and not isinstance(exc, DuplicateNonce):
        return (FieldProblem(entry_field(exc), str(exc)),)
    return ()


# --------------------------------------------------------------------------- responses


def problem_response(
    request: Request,
    kind: ProblemKind,
    detail: str,
    *,
    problems: tuple[FieldProblem, ...] = (),
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    content: dict[str, Any] = {
        "type": kind.type,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "instance": request.url.path,
    }
    if problems:
        content["errors"] = [{"field": p.field, "message": p.message} for p in problems]
    content.update(extensions or {})
    return JSONResponse(
        content,
        status_code=kind.status,
        headers=dict(headers or {}),
        media_type=PROBLEM_MEDIA_TYPE,
    )


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one handler of every class in TABLE and of ApiError."""
    kind = kind_of(exc)
    headers: dict[str, str] = {}
    extensions: dict[str, Any] = {}
    if isinstance(exc, ApiError):
        headers, extensions = exc.headers, exc.extensions
    elif isinstance(exc, Overloaded):
        headers["Retry-After"] = str(exc.retry_after)
        extensions["retry_after"] = exc.retry_after
    elif isinstance(exc, NotFound):
        extensions.update(resource=exc.kind, key=exc.key)
    if kind.status >= 500 and kind.status != 503:
        log.error("%s answered %d: %s", request.url.path, kind.status, exc)
    fields = field_problems(exc)
    detail = "; ".join(str(p) for p in fields) if fields else str(exc)
    if type(exc) is StorageError:  # its text may quote SQL parameters: other entries' bytes
        detail = STORAGE_DETAIL
    elif isinstance(exc, OperationalError | PoolTimeout):
        log.warning("%s: storage unavailable: %s", request.url.path, getattr(exc, "orig", exc))
        detail = STORAGE_DETAIL
    return problem_response(
        request,
        kind,
        detail,
        problems=fields,
        headers=headers,
        extensions=extensions,
    )


def validation_problems(exc: RequestValidationError) -> tuple[FieldProblem, ...]:
    out: list[FieldProblem] = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] in LOCATIONS:
            loc = loc[1:]
        out.append(FieldProblem(".".join(str(part) for part in loc), str(error.get("msg"))))
    return tuple(out)


async def handle_validation(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registration
        raise exc
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return await handle_error(request, MalformedJson("the request body is not valid JSON"))
    problems = validation_problems(exc)
    return problem_response(
        request, VALIDATION, "; ".join(str(p) for p in problems), problems=problems
    )


async def handle_http(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registration
        raise exc
    kind = ProblemKind(exc.status_code, None, _phrase(exc.status_code))
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 404:
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}"
    return problem_response(request, kind, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method of every route at this path (Starlette's Allow names the first only)."""
    methods: set[str] = set()
    probe = {  # a fresh scope: the request's own carries its first route's context
        "type": "http",
        "path": request.scope["path"],
        "root_path": request.scope.get("root_path", ""),
        "method": "\x00",  # no route has it: a path match is PARTIAL
    }
    for route in getattr(request.app.state, "routes", request.app.routes):
        match, _ = route.matches(probe)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return problem_response(request, INTERNAL, "the node failed to answer; see its log")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app: FastAPI) -> None:
    """Register the handler table on an app."""
    for cls in (*TABLE, ApiError):
        app.add_exception_handler(cls, handle_error)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
