"""/openapi.json documents every path of DESIGN section 4, with real 2xx models."""

from __future__ import annotations

from typing import Any

import pytest

from node.bodies import BODY_MODELS
from tests.unit.api.story import Story

DESIGN_PATHS = [
    ("post", "/v1/policies"),
    ("post", "/v1/policies/{policy_no}/limits"),
    ("post", "/v1/policies/{policy_no}/assignments"),
    ("post", "/v1/coverage-notices"),
    ("post", "/v1/coverage-notices/{notice_no}/revocation"),
    ("post", "/v1/claims"),
    ("post", "/v1/coverage-verifications"),
    ("post", "/v1/financing-checks"),
    ("post", "/v1/loans"),
    ("post", "/v1/loans/{loan_id}/repayments"),
    ("get", "/v1/loans"),
    ("get", "/v1/loans/{loan_id}"),
    ("get", "/v1/flags"),
    ("get", "/v1/flags/stream"),
    ("get", "/v1/receivables/{key}/history"),
    ("get", "/v1/exposures"),
    ("get", "/v1/audit/report"),
    ("post", "/v1/fx-rates"),
    ("post", "/v1/flags/{flag_id}/resolution"),
    ("post", "/v1/orgs"),
    ("post", "/v1/orgs/{org_id}/keys"),
    ("post", "/v1/orgs/{org_id}/keys/{key_id}/revocation"),
    ("get", "/v1/ledger/checkpoint"),
    ("get", "/v1/ledger/blocks/{height}"),
    ("get", "/v1/ledger/blocks"),
    ("get", "/v1/ledger/entries/{entry_hash}"),
    ("get", "/v1/ledger/consistency"),
    ("post", "/v1/entries"),
    ("get", "/v1/ledger/anchor"),
    ("get", "/v1/me"),
    ("post", "/v1/consents"),
    ("post", "/v1/consents/{consent_id}/revocation"),
    ("post", "/v1/buyer-ratings"),
    ("get", "/v1/buyers/{buyer_code}/light"),
    ("get", "/v1/exporters/{exporter_id}/indicators"),
    ("get", "/v1/exporters/{exporter_id}/access-log"),
    ("post", "/v1/subscriptions"),
    ("get", "/v1/subscriptions"),
    ("get", "/v1/subscriptions/dead-letters"),
    ("delete", "/v1/subscriptions/{subscription_id}"),
    ("get", "/v1/alerts/stream"),
    ("get", "/healthz"),
    ("get", "/metrics"),
]
TEXT_RESPONSES = {"/v1/flags/stream", "/v1/alerts/stream", "/v1/ledger/checkpoint", "/metrics"}
NO_BODY_POSTS: set[str] = set()


@pytest.fixture
async def doc(story: Story) -> dict[str, Any]:
    r = await story.client.get("/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_design_paths_are_exactly_the_documented_ones(doc: dict[str, Any]) -> None:
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == set(DESIGN_PATHS)
    assert doc["info"]["title"] == "pfnode"


@pytest.mark.parametrize(("method", "path"), DESIGN_PATHS)
def test_each_path_has_a_2xx_response_model(doc: dict[str, Any], method: str, path: str) -> None:
    responses = doc["paths"][path][method]["responses"]
    ok = [code for code in responses if code.startswith("2")]
    assert ok, f"{method} {path} has no 2xx response"
    content = responses[ok[0]]["content"]
    if path in TEXT_RESPONSES:
        assert any(media.startswith("text/") for media in content)
        return
    schema = content["application/json"]["schema"]
    model_refs = refs(schema)
    assert model_refs, f"{method} {path}: 2xx schema {schema} names no model"


@pytest.mark.parametrize(("method", "path"), [p for p in DESIGN_PATHS if p[0] == "post"])
def test_each_post_documents_its_body_and_problems(
    doc: dict[str, Any], method: str, path: str
) -> None:
    operation = doc["paths"][path][method]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body.get("$ref") or body.get("properties") or body.get("oneOf")
    for code in ("401", "403", "422"):
        problem = operation["responses"][code]["content"]
        assert list(problem) == ["application/problem+json"]
        assert problem["application/problem+json"]["schema"]["$ref"].endswith("/Problem")


def test_every_entry_body_is_a_component_with_real_field_types(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for model in BODY_MODELS.values():
        assert model.__name__ in schemas
    drawdown = schemas["LoanDrawdown"]["properties"]
    assert drawdown["amount"]["type"] == "string"
    assert drawdown["amount"]["pattern"]
    assert drawdown["drawdown_date"]["format"] == "date"
    assert drawdown["receivable"]["$ref"] == "#/components/schemas/Receivable"
    assert schemas["FinancingReserved"]["properties"]["expires_at"]["format"] == "date-time"


def test_path_named_fields_are_optional_in_the_body(doc: dict[str, Any]) -> None:
    limit = doc["paths"]["/v1/policies/{policy_no}/limits"]["post"]["requestBody"]
    schema = limit["content"]["application/json"]["schema"]
    assert "policy_no" in schema["properties"]
    assert "policy_no" not in schema["required"]


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_bearer_security_is_declared(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/loans"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
