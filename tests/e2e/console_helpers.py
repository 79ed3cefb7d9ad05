"""A real `pfnode serve` with a small financing story, and a headless Chromium to watch it.

Used by tests/e2e/test_console.py and by ``python -m tests.e2e.screenshots``. The
story, over the real HTTP API: the insurer registers a policy with three buyers (DE, US,
FR) and issues coverage notices; BANK-A and BANK-B draw against their own. The
duplicate, BANK-B drawing against BANK-A's receivable (same invoice and bill of lading)
under a second notice, is left for the caller to cause while the page watches.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from node import demo
from node.genesis import init_demo
from tests.integration.cluster_helpers import ServeProcess, tokens

CHROMIUM = Path("/usr/bin/chromium")
POLICY_NO = "SINO-2026-0001"
BUYERS = {  # buyer code -> (name, country)
    "DE-BUYER-042": ("Hamburg Importers GmbH", "DE"),
    "US-BUYER-007": ("Oakland Trading Inc.", "US"),
    "FR-BUYER-311": ("Marseille Négoce SARL", "FR"),
}
# notice -> (bank, invoice, bill of lading, buyer, invoice amount, loan id or None, loan amount)
NOTICES = [
    ("CN-1", "BANK-A", "INV-1", "BL-1", "DE-BUYER-042", "250000.00", "A-LOAN-1", "200000.00"),
    ("CN-2", "BANK-B", "INV-1", "BL-1", "DE-BUYER-042", "250000.00", None, ""),
    ("CN-3", "BANK-A", "INV-2", "BL-2", "US-BUYER-007", "140000.00", "A-LOAN-2", "120000.00"),
    ("CN-4", "BANK-B", "INV-3", "BL-3", "US-BUYER-007", "100000.00", "B-LOAN-2", "90000.00"),
    ("CN-5", "BANK-B", "INV-4", "BL-4", "FR-BUYER-311", "80000.00", "B-LOAN-3", "64000.00"),
]
BANK_A_LOANS = ("A-LOAN-1", "A-LOAN-2")
BANK_B_LOANS = ("B-LOAN-2", "B-LOAN-3")
DUPLICATE_LOAN = "B-LOAN-1"


def receivable(today: date, invoice: str, bl: str, amount: str, voyage: str) -> dict[str, Any]:
    rec = demo.receivable(today, invoice, bl)
    rec["amount"] = amount
    rec["shipment"] = {**rec["shipment"], "voyage": voyage}
    return rec


@dataclass
class ConsoleNode:
    """One `pfnode serve` on a demo data directory, with the story played."""

    data: Path
    extra: tuple[str, ...] = ()
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    server: ServeProcess | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    receivables: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate: httpx.Response | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.base

    def start(self) -> ConsoleNode:
        init_demo(self.data, None, datetime.now(UTC))
        self.server = ServeProcess(self.data, None, extra=self.extra).start()
        self.server.wait_healthy(60)
        self.tokens = tokens(self.data)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def client(self, org: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[org]}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def play_story(self) -> None:
        """Policy, buyer limits, the notices, and every loan but the duplicate."""
        with self.client("INSURER") as insurer:
            policy = {**demo.policy_body(self.today), "max_liability": "50000000.00"}
            insurer.post("/v1/policies", json=policy).raise_for_status()
            for code, (name, country) in BUYERS.items():
                limit = demo.limit_body(self.today)
                limit.update(buyer_code=code, buyer_name=name, buyer_country=country)
                insurer.post(f"/v1/policies/{POLICY_NO}/limits", json=limit).raise_for_status()
            by_invoice: dict[str, dict[str, Any]] = {}
            for i, (notice_no, bank, invoice, bl, buyer, amount, *_) in enumerate(NOTICES):
                rec = by_invoice.setdefault(
                    invoice, receivable(self.today, invoice, bl, amount, f"07{i}E")
                )
                self.receivables[notice_no] = rec
                body = demo.notice_body(self.today, notice_no, bank, rec)
                body.update(buyer_code=buyer, declared_amount=amount, effective_limit=amount)
                insurer.post("/v1/coverage-notices", json=body).raise_for_status()
        for notice_no, bank, *_, loan_id, loan_amount in NOTICES:
            if loan_id is None:
                continue
            body = demo.drawdown_body(self.today, loan_id, notice_no, self.receivables[notice_no])
            body["amount"] = loan_amount
            with self.client(bank) as client:
                client.post("/v1/loans", json=body).raise_for_status()

    def draw_duplicate(self) -> httpx.Response:
        """BANK-B draws against BANK-A's receivable (INV-1, BL-1) under its notice CN-2: 409."""
        body = demo.drawdown_body(self.today, DUPLICATE_LOAN, "CN-2", self.receivables["CN-2"])
        with self.client("BANK-B") as bank_b:
            response = bank_b.post("/v1/loans", json=body)
        assert response.status_code == 409, response.text
        self.duplicate = response
        return response

    def ensure_duplicate(self) -> httpx.Response:
        return self.duplicate if self.duplicate is not None else self.draw_duplicate()

    def draw_renumbered(self) -> httpx.Response:
        """BANK-B draws against a 'new' invoice for BANK-A's cargo (the ZenRock pattern):
        accepted with a SUSPECTED_DUPLICATE warning."""
        original = self.receivables["CN-1"]
        rec = {**original, "invoice_no": "INV-1A", "transport_doc_no": "BL-1A"}
        rec["invoice_date"] = (self.today - timedelta(days=9)).isoformat()
        with self.client("INSURER") as insurer:
            notice = demo.notice_body(self.today, "CN-6", "BANK-B", rec)
            insurer.post("/v1/coverage-notices", json=notice).raise_for_status()
        body = demo.drawdown_body(self.today, "B-LOAN-4", "CN-6", rec)
        with self.client("BANK-B") as bank_b:
            response = bank_b.post("/v1/loans", json=body)
        response.raise_for_status()
        return response

    def wait_checkpoint(self, seconds: float = 10) -> None:
        """Until the latest checkpoint covers the whole log (cut within a second of a block)."""
        deadline = time.monotonic() + seconds
        with self.client("REGULATOR") as regulator:
            while time.monotonic() < deadline:
                size = httpx.get(f"{self.base}/healthz", timeout=5).json()["log_size"]
                note = regulator.get("/v1/ledger/checkpoint")
                if note.status_code == 200 and int(note.text.split("\n")[1]) == size:
                    return
                time.sleep(0.1)
        raise TimeoutError("no checkpoint covers the log")


@contextlib.contextmanager
def console_node(data: Path, extra: tuple[str, ...] = ()) -> Iterator[ConsoleNode]:
    node = ConsoleNode(data, extra).start()
    try:
        node.play_story()
        yield node
    finally:
        node.stop()


def log_in(page: Any, node: ConsoleNode, org: str) -> None:
    """Open the console, sign in with ``org``'s token, wait for the flag stream."""
    page.goto(node.base + "/")
    page.fill("#token", node.tokens[org])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('#stream-state[data-state="live"]')
    page.wait_for_selector("#who-org", state="visible")


def tamper_json(route: Any, change: Any) -> None:
    """Answer a request with the real response, its JSON body passed through ``change``."""
    response = route.fetch()
    body = json.loads(response.text())
    route.fulfill(response=response, body=json.dumps(change(body)))
