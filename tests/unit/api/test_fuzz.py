"""schemathesis against /openapi.json: every documented operation, the app in-process.

The demo consortium runs on SQLite under a fixed clock, behind its ASGI app, with a
small world already on the ledger (a policy, three notices, two accepted loans and one
rejected duplicate with its flags, a reference rate). schemathesis loads the document
from the app and sends each case through its own in-process ASGI client (which enters
the app's lifespan, so the sequencer runs). schemathesis's pytest plugin ends every
ASGI lifespan at the teardown of each test and starts it again on the next request,
and a node does not start twice: ``KeepRunning`` starts the node on the first
lifespan startup only, and the module fixture closes it.

Each case carries the bearer token of an organisation drawn per case: one of the roles
the operation is for (so the request reaches its handler) or any member (so refusals
are exercised too). Cases of operations with path parameters name, half of the time,
real objects of the world (another institution's included) instead of random ids.
Positive (schema-valid) and negative (schema-breaking) cases are mixed.

Checks on every answer: no 5xx; a documented status code, content type and headers; a
body that conforms to the schema documented for that status; and a schema-breaking
case is refused (schemathesis's ``negative_data_rejection``; unknown query
parameters are ignored, as HTTP APIs do, and schemathesis does not count them).

Default run: ``DEFAULT_EXAMPLES`` cases per operation; ``-m slow`` runs
``SLOW_EXAMPLES``. Set ``PFNODE_FUZZ_COUNTS=<file>`` to write the number of cases run
per operation (for the reliability figures).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app, openapi_document
from api.routes import ROUTERS
from node.service import Node
from tests.unit.api.story import (
    BUYER,
    EXPORTER,
    ORGS,
    POLICY_NO,
    drawdown_body,
    limit_body,
    notice_body,
    policy_body,
    read_tokens,
    receivable,
)
from tests.unit.api.story import make_node as make_story_node

DEFAULT_EXAMPLES = 25
SLOW_EXAMPLES = 400
STREAM_SECONDS = 0.1  # the flag stream never ends: read it this long
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def documented_operations() -> list[str]:
    """Every operation /openapi.json documents, known at collection (no node needed)."""
    app = FastAPI()
    for router in ROUTERS:
        app.include_router(router)
    paths = openapi_document(app)["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


LABELS = documented_operations()

INSURER_OPS = {
    "POST /v1/policies",
    "POST /v1/policies/{policy_no}/limits",
    "POST /v1/policies/{policy_no}/assignments",
    "POST /v1/coverage-notices",
    "POST /v1/coverage-notices/{notice_no}/revocation",
    "POST /v1/claims",
}
BANK_OPS = {
    "POST /v1/coverage-verifications",
    "POST /v1/financing-checks",
    "POST /v1/loans",
    "POST /v1/loans/{loan_id}/repayments",
}
REGULATOR_OPS = {
    "GET /v1/receivables/{key}/history",
    "GET /v1/exposures",
    "GET /v1/audit/report",
    "POST /v1/fx-rates",
    "POST /v1/flags/{flag_id}/resolution",
    "POST /v1/orgs",
    "POST /v1/orgs/{org_id}/keys",
    "POST /v1/orgs/{org_id}/keys/{key_id}/revocation",
}


def allowed_orgs(label: str) -> list[str]:
    """The organisations whose role the operation is for (every member for the others)."""
    if label in INSURER_OPS:
        return ["INSURER"]
    if label in BANK_OPS:
        return ["BANK-A", "BANK-B"]
    if label in REGULATOR_OPS:
        return ["REGULATOR"]
    return list(ORGS)


class KeepRunning:
    """The app, its node started on the first lifespan startup and left running after."""

    def __init__(self, app: FastAPI, node: Node) -> None:
        self.app = app
        self.node = node
        self.started = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.started:
                    await self.node.start()
                    self.started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass
class Target:
    schema: Any
    tokens: dict[str, str]
    known: dict[str, list[Any]]  # path parameter -> ids of real objects
    cases: Counter[str] = field(default_factory=Counter)
    reached: Counter[str] = field(default_factory=Counter)  # answered past authentication


def build_world(client: Any, tokens: dict[str, str]) -> dict[str, list[Any]]:
    """Write the world through the API; return the real ids each path parameter may take."""

    def post(org: str, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        r = client.post(path, json=body, headers={"Authorization": f"Bearer {tokens[org]}"})
        assert r.status_code == status, r.text
        answer: dict[str, Any] = r.json()
        return answer

    post("INSURER", "/v1/policies", policy_body())
    post("INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body())
    rec1, rec3 = receivable("INV-1", "BL-1"), receivable("INV-3", "BL-3")
    post("INSURER", "/v1/coverage-notices", notice_body("CN-1", "BANK-A", rec1))
    post("INSURER", "/v1/coverage-notices", notice_body("CN-2", "BANK-B", rec1))
    post("INSURER", "/v1/coverage-notices", notice_body("CN-3", "BANK-B", rec3))
    a_loan = post("BANK-A", "/v1/loans", drawdown_body("A-LOAN-1", "CN-1", rec1))
    rejected = post("BANK-B", "/v1/loans", drawdown_body("B-LOAN-1", "CN-2", rec1), 409)
    b_loan = post("BANK-B", "/v1/loans", drawdown_body("B-LOAN-2", "CN-3", rec3))
    rate = {"date": "2026-11-20", "base": "EUR", "quote": "USD", "rate": "1.0850"}
    post("REGULATOR", "/v1/fx-rates", rate)
    flags = client.get("/v1/flags", headers={"Authorization": f"Bearer {tokens['REGULATOR']}"})
    hashes = [a_loan["entry_hash"], rejected["receipt"]["entry_hash"], b_loan["entry_hash"]]
    return {
        "policy_no": [POLICY_NO, "SINO-2026-9999"],
        "notice_no": ["CN-1", "CN-2", "CN-3", "CN-404"],
        "loan_id": ["A-LOAN-1", "B-LOAN-1", "B-LOAN-2", "a loan 1"],
        "key": ["K1:INV-1", "K2:BL-1", "K3:CN-1", "K3:CN-3", f"K9:{BUYER}"],
        "flag_id": [f["flag_id"] for f in flags.json()] + ["0" * 20],
        "org_id": [*ORGS, "BANK-Z"],
        "key_id": ["BANK-A/1", "BANK-B/1", "INSURER/1", "NOBODY/9"],
        "height": [0, a_loan["height"], b_loan["height"], 10**6],
        "entry_hash": [*hashes, "0" * 64],
        "buyer_code": [BUYER, "NO-SUCH-BUYER"],
        "exporter_id": [EXPORTER, "91350100M000100Y4"],
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("fuzz")
    node = make_story_node(data)
    app = KeepRunning(create_app(node), node)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the node
    try:
        documented = {op.ok().label for op in schema.get_all_operations()}
        assert documented == set(LABELS)
        tokens = read_tokens(data)
        with asgi.get_client(app) as client:
            known = build_world(client, tokens)
        target = Target(schema, tokens, known)
        yield target
        if os.environ.get("PFNODE_FUZZ_COUNTS"):
            counts = {label: target.cases[label] for label in LABELS}
            Path(os.environ["PFNODE_FUZZ_COUNTS"]).write_text(json.dumps(counts, indent=1))
    finally:
        asgi.shutdown_lifespans()
        node.close()


def cases(target: Target, label: str) -> st.SearchStrategy[Any]:
    operation = target.schema.find_operation_by_label(label)
    assert operation is not None, label
    names = [p.name for p in operation.path_parameters]
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(generation_mode=mode))
        if names and mode is GenerationMode.POSITIVE and set(names) <= set(target.known):
            real = st.fixed_dictionaries({n: st.sampled_from(target.known[n]) for n in names})
            strategies.append(
                real.flatmap(lambda ids, m=mode: operation.as_strategy(m, path_parameters=ids))
            )
    return st.one_of(strategies)


def fuzz(target: Target, label: str, examples: int) -> None:
    allowed = allowed_orgs(label)
    orgs = st.one_of(st.sampled_from(allowed), st.sampled_from(list(ORGS)))
    extra = {"timeout": STREAM_SECONDS} if label.endswith("/stream") else {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=cases(target, label), org=orgs)
    def run(case: Any, org: str) -> None:
        # The token goes into the case itself: schemathesis then judges the request as sent.
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {target.tokens[org]}"}
        response = case.call(**extra)
        target.cases[label] += 1
        if response.status_code != 401:
            target.reached[label] += 1
        case.validate_response(response, checks=CHECKS)

    run()
    assert target.cases[label] > 0
    assert target.reached[label] > 0, f"no case of {label} got past authentication"


@pytest.mark.parametrize("label", LABELS)
def test_fuzz_operation(target: Target, label: str) -> None:
    fuzz(target, label, DEFAULT_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("label", LABELS)
def test_fuzz_operation_at_length(target: Target, label: str) -> None:
    fuzz(target, label, SLOW_EXAMPLES)
