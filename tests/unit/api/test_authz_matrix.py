"""Authorisation: every endpoint x every role x another institution's object id.

The world: INSURER's policy and notices CN-1 (for BANK-A), CN-2 and CN-3 (for BANK-B);
BANK-A's loan A-LOAN-1 on CN-1; BANK-B's rejected attempt on the same receivable under
CN-2 (DUPLICATE_FINANCING); BANK-B's own loan B-LOAN-2; a reference rate; and a second
insurer, INSURER-2, admitted with its own key and token, which owns nothing. Five
callers: BANK-A, BANK-B, INSURER, REGULATOR, INSURER-2.

What each may read is judged against ``may_read``, a model of DESIGN's visibility
written here independently of node.visibility; every entry of the ledger is asked for
by every caller, one by one and within blocks. Every write path is tried by every
caller: a role the path is not for gets 403 even with a valid body; a role it is for
gets past the gate (an empty body: 422). Writes against another institution's objects
are refused (403/404) or, for a drawdown, recorded as rejected evidence, as DESIGN
says. Every refusal changes nothing.

Tokens and logs: tokens are kept as SHA-256 hashes only (no table of the database holds
a token's text, on either backend); no log record of the node holds a token, a private
key or a receivable's identifiers.

Scope: the paths of DESIGN section 4; those added after it (credit information,
subscriptions) are not in this matrix (schemathesis in test_fuzz.py does reach them).

Test-visibility overlap: test_visibility.py checks the four demo roles on loans,
flags, entries, blocks and the regulator-only reads; this file adds INSURER-2, every
path, every entry, the write paths and the flag stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from chain.entries import decode_signed_entry, make_entry
from chain.keys import SigningKey
from node.genesis import NodeFiles
from node.service import Caller
from tests.unit.api.refusals import node_state, problem, refused
from tests.unit.api.story import (
    NOW,
    POLICY_NO,
    Story,
    day,
    drawdown_body,
    limit_body,
    notice_body,
    policy_body,
    receivable,
    repayment_body,
    running_story,
)
from tests.unit.api.test_openapi import DESIGN_PATHS

CALLERS = ("BANK-A", "BANK-B", "INSURER", "REGULATOR", "INSURER-2")
ROLES = {
    "BANK-A": "bank",
    "BANK-B": "bank",
    "INSURER": "insurer",
    "REGULATOR": "regulator",
    "INSURER-2": "insurer",
}
PUBLIC_TYPES = {"fx.rate", "org.added", "key.added", "key.revoked"}


@dataclass
class World:
    story: Story
    rec1: dict[str, Any]
    a_loan: dict[str, Any]
    b_rejected: dict[str, Any]
    b_loan: dict[str, Any]
    flag_id: str
    insurer2: SigningKey
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> entry


async def build_world(story: Story) -> World:
    await story.ok("INSURER", "/v1/policies", policy_body())
    await story.ok("INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body())
    story.policy_registered = True
    rec1, rec3 = receivable("INV-1", "BL-1"), receivable("INV-3", "BL-3")
    await story.ok("INSURER", "/v1/coverage-notices", notice_body("CN-1", "BANK-A", rec1))
    await story.ok("INSURER", "/v1/coverage-notices", notice_body("CN-2", "BANK-B", rec1))
    await story.ok("INSURER", "/v1/coverage-notices", notice_body("CN-3", "BANK-B", rec3))
    a_loan = await story.ok("BANK-A", "/v1/loans", drawdown_body("A-LOAN-1", "CN-1", rec1))
    rejected = await story.draw("BANK-B", "B-LOAN-1", "CN-2", rec1)
    assert rejected.status_code == 409, rejected.text
    b_loan = await story.ok("BANK-B", "/v1/loans", drawdown_body("B-LOAN-2", "CN-3", rec3))
    rate = {"date": day(-1), "base": "EUR", "quote": "USD", "rate": "1.0850"}
    await story.ok("REGULATOR", "/v1/fx-rates", rate)
    insurer2 = SigningKey.generate("INSURER-2/1")
    org = {
        "org_id": "INSURER-2",
        "name": "Second Insurer",
        "role": "insurer",
        "keys": [{"key_id": insurer2.key_id, "public_key": insurer2.public.b64}],
    }
    await story.ok("REGULATOR", "/v1/orgs", org)
    story.tokens["INSURER-2"] = story.node.tokens.create("INSURER-2", "tests")
    flags = (await story.get("REGULATOR", "/v1/flags")).json()
    flag_id = next(f["flag_id"] for f in flags if f["code"] == "DUPLICATE_FINANCING")
    world = World(story, rec1, a_loan, rejected.json()["receipt"], b_loan, flag_id, insurer2)
    blocks = (await story.get("REGULATOR", "/v1/ledger/blocks", limit=100)).json()
    for block in blocks:
        for entry in block["entries"]:
            world.entries[entry_hash_of(entry)] = entry["entry"]
    return world


def entry_hash_of(signed: dict[str, Any]) -> str:
    return decode_signed_entry(signed).hash.hex()


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    """SQLite only (the token table is checked on both backends, with ``any_story``)."""
    async with running_story(tmp_path) as s:
        yield s


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_story(tmp_path) as story:
        yield await build_world(story)


# --------------------------------------------------------------------------- the model


def notice_of(world: World, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The coverage.issued body an entry is about (by notice_no, or by its loan)."""
    body = entry["body"]
    notice_no = body.get("notice_no")
    if entry["type"] == "loan.repayment":
        drawdowns = [
            e
            for e in world.entries.values()
            if e["type"] == "loan.drawdown"
            and e["org"] == entry["org"]
            and e["body"]["loan_id"] == body["loan_id"]
        ]
        notice_no = drawdowns[0]["body"]["notice_no"] if drawdowns else None
    for e in world.entries.values():
        if e["type"] == "coverage.issued" and e["body"]["notice_no"] == notice_no:
            return e
    return None


def may_read(world: World, caller: str, entry: dict[str, Any]) -> bool:
    """DESIGN section 3, Visibility: the regulator everything; the insurer its policies,
    notices and the loans and repayments against them; a bank its own entries and the
    notices naming it; reference data and membership every member."""
    if caller == "REGULATOR" or entry["type"] in PUBLIC_TYPES or entry["org"] == caller:
        return True
    notice = notice_of(world, entry)
    if ROLES[caller] == "insurer":
        return notice is not None and notice["org"] == caller
    return entry["type"] == "coverage.issued" and entry["body"]["beneficiary"] == caller


# --------------------------------------------------------------------------- reads


async def test_every_entry_is_readable_by_exactly_whom_design_allows(world: World) -> None:
    story = world.story
    assert len(world.entries) >= 10
    for entry_hash, entry in world.entries.items():
        for caller in CALLERS:
            r = await story.get(caller, f"/v1/ledger/entries/{entry_hash}")
            expected = 200 if may_read(world, caller, entry) else 404
            assert r.status_code == expected, (caller, entry["type"], entry["org"])
            if expected == 404:  # as unknown as a hash that was never on the log
                assert problem(r, 404)["resource"] == "entry"


async def test_blocks_show_in_full_exactly_the_readable_entries(world: World) -> None:
    story = world.story
    for caller in CALLERS:
        blocks = (await story.get(caller, "/v1/ledger/blocks", limit=100)).json()
        shown, withheld = set(), set()
        for block in blocks:
            for entry in block["entries"]:
                if entry.get("withheld"):
                    withheld.add(entry["entry_hash"])
                else:
                    shown.add(entry_hash_of(entry))
        expected = {h for h, e in world.entries.items() if may_read(world, caller, e)}
        assert shown == expected, caller
        assert withheld == set(world.entries) - expected, caller


async def test_loans_and_flags_lists_per_caller(world: World) -> None:
    story = world.story
    loans = {c: {x["loan_id"] for x in (await story.get(c, "/v1/loans")).json()} for c in CALLERS}
    assert loans == {
        "BANK-A": {"A-LOAN-1"},
        "BANK-B": {"B-LOAN-2"},
        "INSURER": {"A-LOAN-1", "B-LOAN-2"},
        "REGULATOR": {"A-LOAN-1", "B-LOAN-2"},
        "INSURER-2": set(),
    }
    flags = {c: (await story.get(c, "/v1/flags")).json() for c in CALLERS}
    everything = {f["flag_id"] for f in flags["REGULATOR"]}
    assert world.flag_id in everything
    assert {f["flag_id"] for f in flags["INSURER"]} == everything  # all on its notices
    assert flags["BANK-A"] == [] and flags["INSURER-2"] == []
    assert world.flag_id in {f["flag_id"] for f in flags["BANK-B"]}
    for flag in flags["BANK-B"]:
        assert flag["related"] == []
    assert "BANK-A" not in json.dumps(flags["BANK-B"])


def read_paths(world: World) -> list[tuple[str, str, dict[str, Any], dict[str, int]]]:
    """(operation, path, query, caller -> status) for every GET, with others' objects."""
    every = dict.fromkeys(CALLERS, 200)
    regulator_only = {**dict.fromkeys(CALLERS, 403), "REGULATOR": 200}
    a_only = {"BANK-A": 200, "BANK-B": 404, "INSURER": 200, "REGULATOR": 200, "INSURER-2": 404}
    a_hash, height = world.a_loan["entry_hash"], world.a_loan["height"]
    size = world.story.node.ledger.size
    window = {"from": day(-1), "to": day(0)}
    return [
        ("GET /v1/loans", "/v1/loans", {}, every),
        ("GET /v1/loans/{loan_id}", "/v1/loans/A-LOAN-1", {}, a_only),
        ("GET /v1/flags", "/v1/flags", {}, every),
        ("GET /v1/receivables/{key}/history", "/v1/receivables/K2:BL-1/history", {},
         regulator_only),
        ("GET /v1/exposures", "/v1/exposures", {"by": "buyer"}, regulator_only),
        ("GET /v1/audit/report", "/v1/audit/report", window, regulator_only),
        ("GET /v1/ledger/checkpoint", "/v1/ledger/checkpoint", {}, every),
        ("GET /v1/ledger/blocks/{height}", f"/v1/ledger/blocks/{height}", {}, every),
        ("GET /v1/ledger/blocks", "/v1/ledger/blocks", {}, every),
        ("GET /v1/ledger/entries/{entry_hash}", f"/v1/ledger/entries/{a_hash}", {}, a_only),
        ("GET /v1/ledger/consistency", "/v1/ledger/consistency", {"from": 1, "to": size}, every),
        ("GET /healthz", "/healthz", {}, every),
        ("GET /metrics", "/metrics", {}, every),
    ]  # fmt: skip


async def test_every_read_path_by_every_caller(world: World) -> None:
    story = world.story
    for _ in range(40):  # the checkpoint follows its block within a second
        if (await story.get("REGULATOR", "/v1/ledger/checkpoint")).status_code == 200:
            break
        await asyncio.sleep(0.05)
    for operation, path, params, expected in read_paths(world):
        for caller in CALLERS:
            r = await story.get(caller, path, **params)
            assert r.status_code == expected[caller], (operation, caller, r.text)
            if r.status_code >= 400:
                problem(r, r.status_code)
        if operation not in ("GET /healthz", "GET /metrics"):
            assert (await story.get(None, path, **params)).status_code == 401, operation


async def test_the_flag_stream_by_every_caller(world: World) -> None:
    """The stream's filter, at the node (an SSE response never ends under httpx's ASGI
    transport): BANK-B's second duplicate reaches BANK-B, INSURER and REGULATOR only."""
    story = world.story
    streams = {c: story.node.flag_stream(Caller(c, ROLES[c])) for c in CALLERS}  # type: ignore[arg-type]
    pending = {c: asyncio.ensure_future(anext(s)) for c, s in streams.items()}
    await asyncio.sleep(0.05)  # every subscriber registered
    r = await story.draw("BANK-B", "B-LOAN-3", "CN-2", world.rec1)
    assert r.status_code == 409
    try:
        for caller in ("BANK-B", "INSURER", "REGULATOR"):
            flag = await asyncio.wait_for(pending[caller], 5)
            assert flag["entry_hash"] == r.json()["receipt"]["entry_hash"]
            if caller == "BANK-B":
                assert flag["related"] == [] and "BANK-A" not in json.dumps(flag)
            else:
                assert world.a_loan["entry_hash"] in flag["related"]
        await asyncio.sleep(0.1)
        assert not pending["BANK-A"].done() and not pending["INSURER-2"].done()
    finally:
        for task in pending.values():
            task.cancel()
        await asyncio.gather(*pending.values(), return_exceptions=True)
        for stream in streams.values():
            await stream.aclose()


# --------------------------------------------------------------------------- writes

WRITE_ROLES = {
    "POST /v1/policies": {"insurer"},
    "POST /v1/policies/{policy_no}/limits": {"insurer"},
    "POST /v1/policies/{policy_no}/assignments": {"insurer"},
    "POST /v1/coverage-notices": {"insurer"},
    "POST /v1/coverage-notices/{notice_no}/revocation": {"insurer"},
    "POST /v1/claims": {"insurer"},
    "POST /v1/coverage-verifications": {"bank"},
    "POST /v1/financing-checks": {"bank"},
    "POST /v1/loans": {"bank"},
    "POST /v1/loans/{loan_id}/repayments": {"bank"},
    "POST /v1/fx-rates": {"regulator"},
    "POST /v1/flags/{flag_id}/resolution": {"regulator"},
    "POST /v1/orgs": {"regulator"},
    "POST /v1/orgs/{org_id}/keys": {"regulator"},
    "POST /v1/orgs/{org_id}/keys/{key_id}/revocation": {"regulator"},
    "POST /v1/entries": {"bank", "insurer", "regulator"},
}


def write_paths(world: World) -> dict[str, tuple[str, dict[str, Any]]]:
    """operation -> (path, a body valid for the role it is for), naming others' objects."""
    rec = world.rec1
    new_key = SigningKey.generate("BANK-A/9")
    claim = {"kind": "loss_notified", "notice_no": "CN-1", "currency": "USD",
             "amount": "1.00", "date": day(1)}  # fmt: skip
    org = {"org_id": "BANK-Z", "name": "Bank Z", "role": "bank",
           "keys": [{"key_id": "BANK-Z/1", "public_key": new_key.public.b64}]}  # fmt: skip
    return {
        "POST /v1/policies": ("/v1/policies", policy_body(policy_no="P-NEW")),
        "POST /v1/policies/{policy_no}/limits": (f"/v1/policies/{POLICY_NO}/limits", limit_body()),
        "POST /v1/policies/{policy_no}/assignments": (
            f"/v1/policies/{POLICY_NO}/assignments",
            {"bank": "BANK-A", "kind": "claims", "scope": "all"},
        ),
        "POST /v1/coverage-notices": (
            "/v1/coverage-notices",
            notice_body("CN-NEW", "BANK-A", receivable("INV-N", "BL-N")),
        ),
        "POST /v1/coverage-notices/{notice_no}/revocation": (
            "/v1/coverage-notices/CN-1/revocation",
            {"reason": "premium unpaid"},
        ),
        "POST /v1/claims": ("/v1/claims", claim),
        "POST /v1/coverage-verifications": (
            "/v1/coverage-verifications",
            drawdown_body("X-1", "CN-1", rec),
        ),
        "POST /v1/financing-checks": ("/v1/financing-checks", drawdown_body("X-1", "CN-1", rec)),
        "POST /v1/loans": ("/v1/loans", drawdown_body("X-1", "CN-1", rec)),
        "POST /v1/loans/{loan_id}/repayments": (
            "/v1/loans/A-LOAN-1/repayments",
            repayment_body(),
        ),
        "POST /v1/fx-rates": (
            "/v1/fx-rates",
            {"date": day(-2), "base": "GBP", "quote": "USD", "rate": "1.27"},
        ),
        "POST /v1/flags/{flag_id}/resolution": (
            f"/v1/flags/{world.flag_id}/resolution",
            {"outcome": "dismissed", "note": "not a duplicate"},
        ),
        "POST /v1/orgs": ("/v1/orgs", org),
        "POST /v1/orgs/{org_id}/keys": (
            "/v1/orgs/BANK-A/keys",
            {"key_id": new_key.key_id, "public_key": new_key.public.b64},
        ),
        "POST /v1/orgs/{org_id}/keys/{key_id}/revocation": (
            "/v1/orgs/BANK-A/keys/BANK-A/1/revocation",
            {"reason": "compromised"},
        ),
        "POST /v1/entries": (
            "/v1/entries",
            sign_as(
                world.story, "BANK-A", "loan.repayment", {"loan_id": "A-LOAN-1", **repayment_body()}
            ),
        ),  # fmt: skip
    }


def sign_as(story: Story, org: str, entry_type: str, body: dict[str, Any]) -> dict[str, Any]:
    key = NodeFiles(story.data).org_key(org)
    assert key is not None
    return make_entry(key, entry_type, body, NOW).to_json()


def test_the_write_table_covers_every_design_post() -> None:
    """Every POST of DESIGN section 4 is in the table, and each is still documented. (Paths
    added after it, credit information and subscriptions, are not in this matrix.)"""
    posts = {f"POST {path}" for method, path in DESIGN_PATHS if method == "post"}
    assert set(WRITE_ROLES) <= posts
    assert len(WRITE_ROLES) == 16


async def test_every_write_path_by_every_caller(world: World) -> None:
    """A role the path is not for: 403 with a valid body (BANK-A's own envelope included,
    sent by anyone else). A role it is for: past the gate, to the body check (422)."""
    story = world.story
    for operation, (path, body) in write_paths(world).items():
        for caller in CALLERS:
            allowed = ROLES[caller] in WRITE_ROLES[operation]
            if operation == "POST /v1/entries":
                allowed = caller == "BANK-A"  # the envelope is BANK-A's
                if allowed:
                    continue  # accepting it is test_entries.py's business
            sent = {} if allowed else body
            answer = await refused(
                story, lambda p=path, c=caller, b=sent: story.post(c, p, b), 422 if allowed else 403
            )
            assert answer["status"] in (403, 422), (operation, caller)
        await refused(story, lambda p=path, b=body: story.post(None, p, b), 401)


async def test_refuses_another_insurers_writes_on_insurers_objects(world: World) -> None:
    """INSURER-2 signs with its own key (the node holds none for it): limits, assignments,
    notices on INSURER's policy, and a revocation or a claim on INSURER's notice."""
    story, key = world.story, world.insurer2
    claim = {"notice_no": "CN-1", "currency": "USD", "amount": "1.00", "date": day(1)}
    attempts = [
        ("limit.approved", {**limit_body(), "policy_no": POLICY_NO}),
        ("assignment.registered",
         {"policy_no": POLICY_NO, "bank": "BANK-B", "kind": "claims", "scope": "all"}),
        ("coverage.issued", notice_body("CN-I2", "BANK-B", receivable("INV-9", "BL-9"))),
        ("coverage.revoked", {"notice_no": "CN-1", "reason": "not ours to revoke"}),
        ("claim.loss_notified", claim),
        ("claim.paid", {**claim, "bank": "BANK-A"}),
    ]  # fmt: skip
    for entry_type, body in attempts:
        signed = make_entry(key, entry_type, body, NOW)
        answer = await refused(
            story, lambda s=signed: story.post_raw("INSURER-2", "/v1/entries", s.raw), 403
        )
        assert "INSURER-2" in answer["detail"], entry_type
    # the same key may record on what it owns: its own policy
    own = make_entry(key, "policy.registered", policy_body(policy_no="I2-POLICY"), NOW)
    r = await story.post_raw("INSURER-2", "/v1/entries", own.raw)
    assert r.status_code == 201, r.text


async def test_refuses_a_bank_acting_on_another_banks_objects(world: World) -> None:
    story = world.story
    await refused(
        story,
        lambda: story.post("BANK-B", "/v1/loans/A-LOAN-1/repayments", repayment_body()),
        404,
    )
    hold = {"bank": "BANK-A", "notice_no": "CN-1", "receivable": world.rec1, "currency": "USD",
            "amount": "1000.00", "expires_at": "2026-11-21T12:10:00Z"}  # fmt: skip
    signed = make_entry(org_key(story, "BANK-B"), "financing.reserved", hold, NOW)
    await refused(story, lambda: story.post_raw("BANK-B", "/v1/entries", signed.raw), 403)


def org_key(story: Story, org: str) -> SigningKey:
    key = NodeFiles(story.data).org_key(org)
    assert key is not None
    return key


async def test_checks_on_another_banks_notice_tell_nothing_of_it(world: World) -> None:
    """BANK-B asks about CN-1 (BANK-A's notice, BANK-A's loan): not covered, rejected, no
    hold placed, nothing recorded, and neither BANK-A nor its entries are named."""
    story = world.story
    body = drawdown_body("B-9", "CN-1", world.rec1)
    before = node_state(story)
    answers: list[httpx.Response] = [
        await story.post("BANK-B", "/v1/coverage-verifications", body),
        await story.post("BANK-B", "/v1/financing-checks", {**body, "reserve": True}),
    ]
    assert node_state(story) == before
    verification, check = (a.json() for a in answers)
    assert verification["covered"] is False
    assert check["status"] == "rejected" and check["reservation"] is None
    codes = {f["code"] for f in check["flags"]}
    assert {"COVERAGE_INVALID", "DUPLICATE_FINANCING"} <= codes
    for answer in answers:
        assert answer.status_code == 200
        assert "BANK-A" not in answer.text
        assert world.a_loan["entry_hash"] not in answer.text


async def test_a_drawdown_on_another_banks_notice_is_evidence_not_exposure(world: World) -> None:
    story = world.story
    exposures = (await story.get("REGULATOR", "/v1/exposures", by="bank")).json()
    r = await story.draw("BANK-B", "B-9", "CN-1", world.rec1)
    assert r.status_code == 409
    receipt = r.json()["receipt"]
    assert receipt["status"] == "rejected"
    assert "not_beneficiary" in json.dumps(receipt["flags"])
    assert "BANK-A" not in r.text and world.a_loan["entry_hash"] not in r.text
    assert (await story.get("REGULATOR", "/v1/exposures", by="bank")).json() == exposures
    assert (await story.get("BANK-B", "/v1/loans/B-9")).status_code == 404


# --------------------------------------------------------------------------- tokens


@pytest.fixture
async def any_story(tmp_path: Path, backend: str | None) -> AsyncIterator[Story]:
    async with running_story(tmp_path, backend) as s:
        yield s


def every_stored_value(engine: sa.Engine) -> list[bytes]:
    """Every value of every row of every table, as bytes."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    values: list[bytes] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        values.append(bytes(value))
                    elif value is not None:
                        values.append(str(value).encode())
    return values


async def test_tokens_are_stored_as_sha256_hashes_only(any_story: Story) -> None:
    story = any_story
    extra = story.node.tokens.create("BANK-A", "second device")
    tokens = {**story.tokens, "BANK-A#2": extra}
    engine = story.node.ledger.engine
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT token_hash, org FROM node_tokens")).all()
    stored = {(row[0], row[1]) for row in rows}
    for name, token in tokens.items():
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert (digest, name.split("#")[0]) in stored
    values = every_stored_value(engine)
    assert values  # the database is not empty: the check below means something
    for token in tokens.values():
        secret = token.removeprefix("pfn_").encode()
        assert not any(secret in value for value in values)
    if story.node.config.db_url is None:  # SQLite: the files themselves, WAL included
        files = [p.read_bytes() for p in story.data.glob("*.db*")]
        assert files
        for token in tokens.values():
            assert not any(token.encode() in data for data in files)


async def test_refuses_near_miss_tokens(story: Story) -> None:
    token = story.tokens["REGULATOR"]
    last = "A" if token[-1] != "A" else "B"
    near = [
        token[:-1] + last,  # one character off
        token[:-1],  # one character short
        token + "A",  # one character long
        token.upper() if token.upper() != token else token.lower(),
        token.removeprefix("pfn_"),  # the secret without its prefix
        hashlib.sha256(token.encode()).hexdigest(),  # the stored hash itself
    ]
    for candidate in near:
        r = await story.client.get(
            "/v1/exposures", headers={"Authorization": f"Bearer {candidate}"}
        )
        assert problem(r, 401)["type"] == "https://pfnode.dev/problems/unauthenticated", candidate
        assert candidate not in r.text


# --------------------------------------------------------------------------- logs

SECRETS = ("INV-SECRET-7781", "BL-SECRET-4410", "CN-SECRET-5523", "MV SECRET CARGO")
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test's own HTTP client, not the node


def secrets_of(story: Story) -> list[str]:
    """Every token, every private key (base64 and hex seeds) and the consortium secret."""
    files = NodeFiles(story.data)
    found = [*story.tokens.values(), files.consortium_secret().hex()]
    for org in ("BANK-A", "BANK-B", "INSURER", "REGULATOR"):
        key = files.org_key(org)
        assert key is not None
        found += [key.seed.hex(), base64.b64encode(key.seed).decode()]
    sequencer = files.sequencer_key()
    found += [sequencer.seed.hex(), base64.b64encode(sequencer.seed).decode()]
    return found


def node_log_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            continue
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


async def secret_story(story: Story) -> dict[str, Any]:
    """A notice and a drawdown on a receivable whose identifiers are SECRETS, then the
    attempts and reads that make a node talk: a duplicate, refusals, unknown tokens."""
    invoice, bl, notice, vessel = SECRETS
    rec = receivable(invoice, bl)
    rec["shipment"]["vessel"] = vessel
    await story.ok("INSURER", "/v1/policies", policy_body())
    await story.ok("INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body())
    await story.ok("INSURER", "/v1/coverage-notices", notice_body(notice, "BANK-A", rec))
    await story.ok("INSURER", "/v1/coverage-notices", notice_body("CN-B", "BANK-B", rec))
    await story.ok("BANK-A", "/v1/loans", drawdown_body("A-1", notice, rec))
    assert (await story.draw("BANK-B", "B-1", "CN-B", rec)).status_code == 409
    await story.post("BANK-A", "/v1/loans", drawdown_body("A-2", notice, {**rec, "amount": 1}))
    await story.post("INSURER", "/v1/loans", drawdown_body("I-1", notice, rec))
    await story.post_raw("BANK-A", "/v1/loans", b"[" * 100 + b"]" * 100)
    await story.client.get("/v1/loans", headers={"Authorization": "Bearer pfn_" + invoice})
    for key in (f"K2:{bl}", f"K3:{notice}"):
        await story.get("REGULATOR", f"/v1/receivables/{key}/history")
    await story.post("BANK-A", "/v1/financing-checks", drawdown_body("A-3", notice, rec))
    return rec


async def test_no_token_key_or_receivable_plaintext_in_the_logs(
    story: Story, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await secret_story(story)
    text = node_log_text(caplog)
    for secret in (*secrets_of(story), *SECRETS):
        assert secret not in text


FailNext = Callable[[str], None]


@pytest.fixture
def fail_next(story: Story) -> Iterator[FailNext]:
    """``fail_next(table)``: the next insert into ``table`` fails as a full disk would."""
    armed: list[str] = []

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed and statement.startswith(f"INSERT INTO {armed[0]} "):
            armed.clear()
            raise sqlite3.OperationalError("database or disk is full")

    sa.event.listen(story.node.ledger.engine, "before_cursor_execute", fail)
    yield armed.append
    sa.event.remove(story.node.ledger.engine, "before_cursor_execute", fail)


async def secret_notice(story: Story) -> dict[str, Any]:
    invoice, bl, notice, _ = SECRETS
    rec = receivable(invoice, bl)
    await story.insure("CN-0", "BANK-A")
    await story.ok("INSURER", "/v1/coverage-notices", notice_body(notice, "BANK-A", rec))
    return rec


async def test_a_storage_failure_answers_503_without_the_entries(
    story: Story, fail_next: FailNext
) -> None:
    """The database error's text quotes its SQL parameters (the batch's entries, of any
    institution, or their projection rows); it used to be the 503's detail."""
    rec = await secret_notice(story)
    notice = SECRETS[2]
    for table in ("ledger_entries", "node_loans"):
        fail_next(table)
        before = node_state(story)
        r = await story.draw("BANK-A", "A-SECRET-1", notice, rec)
        answer = problem(r, 503)
        assert answer["type"] == "https://pfnode.dev/problems/storage-unavailable"
        for secret in (notice, "A-SECRET-1", "INSERT", "parameters"):
            assert secret not in r.text, table
        # The sequencer answers, then rebuilds its state under its lock; a dry run takes
        # that lock, so after it the state is the one the ledger holds.
        check = await story.post("BANK-A", "/v1/financing-checks", drawdown_body("X", notice, rec))
        assert check.status_code == 200, check.text
        assert node_state(story) == before, table
    again = await story.draw("BANK-A", "A-SECRET-1", notice, rec)  # the disk has room again
    assert again.status_code == 201, again.text


async def test_a_storage_failure_logs_no_receivable_plaintext(
    story: Story, fail_next: FailNext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = await secret_notice(story)
    fail_next("node_loans")
    assert (await story.draw("BANK-A", "A-SECRET-1", SECRETS[2], rec)).status_code == 503
    text = node_log_text(caplog)
    assert "not committed" in text  # the node did log the failure
    assert SECRETS[2] not in text
