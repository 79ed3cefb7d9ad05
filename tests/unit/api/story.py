"""A small story builder for API tests: the demo consortium behind the ASGI app.

The app runs in-process under httpx's ASGITransport with its lifespan entered (so
the sequencer runs), the node on a FakeClock at NOW. (Starlette's TestClient is not
used: with plain httpx it raises a deprecation warning, and the suite runs with -W
error; httpx.ASGITransport is the same thing without the extra dependency.)

The insurer registers a policy for an exporter, approves a buyer limit and issues
coverage notices naming a bank; banks draw against them. Bodies are plain JSON,
exactly what a client sends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from api.app import create_app
from node.clock import FakeClock
from node.genesis import init_demo
from node.identifiers import make_uscc
from node.service import Node, NodeConfig

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
EXPORTER = make_uscc("91350100M000100Y4")
POLICY_NO = "SINO-2026-0001"
BUYER = "DE-BUYER-042"
ORGS = ("BANK-A", "BANK-B", "INSURER", "REGULATOR")


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def policy_body(**changes: Any) -> dict[str, Any]:
    return {
        "policy_no": POLICY_NO,
        "exporter_id": EXPORTER,
        "exporter_name": "Fujian Example Export Co.",
        "product": "comprehensive",
        "currency": "USD",
        "valid_from": day(-30),
        "valid_to": day(335),
        "indemnity_ratio": "0.9",
        "max_liability": "5000000.00",
        "max_credit_days": 180,
        **changes,
    }


def limit_body(**changes: Any) -> dict[str, Any]:
    """A buyer limit without policy_no: the path names the policy."""
    return {
        "buyer_code": BUYER,
        "buyer_name": "Hamburg Importers GmbH",
        "buyer_country": "DE",
        "currency": "USD",
        "amount": "1000000.00",
        "valid_to": day(300),
        **changes,
    }


def receivable(invoice_no: str = "INV-1", bl: str = "BL-1", **changes: Any) -> dict[str, Any]:
    return {
        "invoice_no": invoice_no,
        "invoice_date": day(-10),
        "transport_doc_no": bl,
        "currency": "USD",
        "amount": "250000.00",
        "due_date": day(80),
        "shipment": {
            "vessel": "COSCO HARMONY",
            "voyage": "071E",
            "port_of_loading": "CNXMN",
            "ship_date": day(-9),
            "quantity": "1200",
            "unit": "cartons",
        },
        **changes,
    }


def notice_body(notice_no: str, bank: str, rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "notice_no": notice_no,
        "policy_no": POLICY_NO,
        "exporter_id": EXPORTER,
        "buyer_code": BUYER,
        "receivable": rec,
        "declared_amount": rec["amount"],
        "effective_limit": rec["amount"],
        "indemnity_ratio": "0.9",
        "beneficiary": bank,
        "valid_to": day(120),
    }


def drawdown_body(
    loan_id: str, notice_no: str, rec: dict[str, Any], **changes: Any
) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "notice_no": notice_no,
        "receivable": rec,
        "currency": "USD",
        "amount": "200000.00",
        "drawdown_date": TODAY.isoformat(),
        "maturity_date": day(75),
        **changes,
    }


def repayment_body(amount: str = "50000.00", **changes: Any) -> dict[str, Any]:
    """A repayment without loan_id: the path names the loan."""
    return {"currency": "USD", "amount": amount, "date": day(30), "source": "buyer", **changes}


@dataclass
class Story:
    client: httpx.AsyncClient
    node: Node
    tokens: dict[str, str]
    data: Path
    policy_registered: bool = False

    def auth(self, org: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org]}"} if org else {}

    async def post(self, org: str | None, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth(org))

    async def post_raw(
        self, org: str | None, path: str, content: bytes, content_type: str = "application/json"
    ) -> httpx.Response:
        headers = {**self.auth(org), "Content-Type": content_type}
        return await self.client.post(path, content=content, headers=headers)

    async def get(self, org: str | None, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(org))

    async def log_size(self) -> int:
        size: int = (await self.client.get("/healthz")).json()["log_size"]
        return size

    async def ok(self, org: str, path: str, body: Any) -> dict[str, Any]:
        """POST that must be accepted (201); returns the receipt."""
        r = await self.post(org, path, body)
        assert r.status_code == 201, r.text
        receipt: dict[str, Any] = r.json()
        assert receipt["status"] == "accepted"
        return receipt

    async def insure(
        self,
        notice_no: str = "CN-1",
        bank: str = "BANK-A",
        invoice: str = "INV-1",
        bl: str = "BL-1",
    ) -> dict[str, Any]:
        """Policy and buyer limit (once), then a coverage notice; returns the receivable."""
        if not self.policy_registered:
            await self.ok("INSURER", "/v1/policies", policy_body())
            await self.ok("INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body())
            self.policy_registered = True
        rec = receivable(invoice, bl)
        await self.ok("INSURER", "/v1/coverage-notices", notice_body(notice_no, bank, rec))
        return rec

    async def draw(
        self, org: str, loan_id: str, notice_no: str, rec: dict[str, Any], **changes: Any
    ) -> httpx.Response:
        return await self.post(org, "/v1/loans", drawdown_body(loan_id, notice_no, rec, **changes))

    async def duplicate_story(self) -> tuple[dict[str, Any], httpx.Response]:
        """BANK-A draws against CN-1; BANK-B then draws against the same receivable (same
        invoice and bill of lading) under its own notice CN-2. Returns (A's receipt, B's
        response)."""
        rec = await self.insure("CN-1", "BANK-A")
        await self.insure("CN-2", "BANK-B")
        first = await self.draw("BANK-A", "A-LOAN-1", "CN-1", rec)
        assert first.status_code == 201, first.text
        second = await self.draw("BANK-B", "B-LOAN-1", "CN-2", rec)
        return first.json(), second


def make_node(data: Path, db_url: str | None = None, **config: Any) -> Node:
    if not (data / "genesis.json").exists():
        init_demo(data, db_url, NOW)
    block_ms = config.pop("max_block_ms", 1)
    return Node(NodeConfig(data, db_url, max_block_ms=block_ms, **config), FakeClock(NOW))


def read_tokens(data: Path) -> dict[str, str]:
    tokens: dict[str, str] = json.loads((data / "demo-tokens.json").read_text())
    return tokens


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, behind an in-process httpx client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pfnode.test") as c:
            yield c


@asynccontextmanager
async def running_story(
    data: Path, db_url: str | None = None, **config: Any
) -> AsyncIterator[Story]:
    node = make_node(data, db_url, **config)
    async with serving(create_app(node)) as client:
        yield Story(client, node, read_tokens(data), data)
