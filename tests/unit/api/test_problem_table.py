"""The one handler table: each error class answers its status as problem+json."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api import problems
from chain.errors import (
    DuplicateNonce,
    EncodingError,
    EntryError,
    MerkleError,
    SignatureError,
    StorageError,
    WriterLocked,
)
from node.errors import Conflict, FieldProblem, Forbidden, InvalidBody, NotFound, Overloaded

CASES: list[tuple[Exception, int, str, list[str] | None]] = [
    (Forbidden("BANK-A", "bank", "policy.registered"), 403, "forbidden", None),
    (NotFound("loan", "L-1"), 404, "not-found", None),
    (Conflict("already reserved"), 409, "conflict", None),
    (
        InvalidBody([FieldProblem("receivable.amount", "bad"), FieldProblem("currency", "bad")]),
        422,
        "invalid-body",
        ["receivable.amount", "currency"],
    ),
    (Overloaded(20_000, retry_after=2), 503, "overloaded", None),
    (SignatureError("signature does not verify"), 422, "invalid-signature", ["sig"]),
    (
        SignatureError("nonce 00 of BANK-A was already used"),
        422,
        "invalid-signature",
        ["entry.nonce"],
    ),
    (
        EntryError("entry ts 2026-11-21T11:00:00.000Z is -3600s from the node's clock"),
        422,
        "invalid-entry",
        ["entry.ts"],
    ),
    (EntryError("entry.type: 'x' is malformed"), 422, "invalid-entry", ["entry.type"]),
    (EntryError("sig: an Ed25519 signature is 64 bytes"), 422, "invalid-entry", ["sig"]),
    (EntryError("entry is 70000 bytes; the cap is 65536"), 422, "invalid-entry", ["entry"]),
    (DuplicateNonce("BANK-A", "00", bytes(32)), 409, "duplicate-nonce", None),
    (EncodingError("float"), 422, "invalid-encoding", [""]),
    (MerkleError("size out of range"), 422, "invalid-proof-request", None),
    (StorageError("database is locked"), 503, "storage-unavailable", None),
    (WriterLocked("another writer"), 503, "storage-unavailable", None),
]


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return app


async def call(app: FastAPI, raise_app_exceptions: bool = True) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/boom")


@pytest.mark.parametrize(("exc", "status", "slug", "fields"), CASES)
async def test_error_class_maps_to_its_problem(
    exc: Exception, status: int, slug: str, fields: list[str] | None
) -> None:
    r = await call(app_raising(exc))
    assert r.status_code == status
    assert r.headers["content-type"] == problems.PROBLEM_MEDIA_TYPE
    body = r.json()
    assert body["type"] == f"https://pfnode.dev/problems/{slug}"
    assert body["status"] == status
    assert body["instance"] == "/boom"
    assert body["title"]
    assert body["detail"]
    if fields is None:
        assert "errors" not in body
    else:
        assert [e["field"] for e in body["errors"]] == fields
        for field in fields:
            assert not field or field in body["detail"]


async def test_overloaded_says_when_to_retry() -> None:
    r = await call(app_raising(Overloaded(5, retry_after=3)))
    assert r.headers["retry-after"] == "3"
    assert r.json()["retry_after"] == 3


async def test_unexpected_errors_are_a_bare_500() -> None:
    r = await call(app_raising(RuntimeError("secret internals")), raise_app_exceptions=False)
    assert r.status_code == 500
    assert r.headers["content-type"] == problems.PROBLEM_MEDIA_TYPE
    assert r.json()["type"] == "about:blank"
    assert "secret" not in r.text


def test_rejected_names_its_first_critical_flag() -> None:
    receipt = {
        "type": "loan.drawdown",
        "entry_hash": "ab" * 32,
        "flags": [
            {"code": "SUSPECTED_DUPLICATE", "severity": "warning", "detail": "w"},
            {"code": "OVER_LIMIT_BUYER", "severity": "critical", "detail": "c"},
        ],
    }
    rejected = problems.Rejected(receipt)
    kind = rejected.problem_kind()
    assert (kind.status, kind.type) == (409, "https://pfnode.dev/problems/over-limit-buyer")
    assert rejected.extensions["receipt"] == receipt
    assert "OVER_LIMIT_BUYER" in rejected.detail
