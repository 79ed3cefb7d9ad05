"""Builders of valid entry bodies and a small driver for the domain state (tests only)."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from node.bodies import parse_body
from node.domain import EntryContext, Params, Verdict
from node.identifiers import make_uscc
from node.state import State, check_entry, process_entry

SECRET = b"consortium-test-secret-0123456789"
EXPORTER = make_uscc("91350100M000100Y4")
EXPORTER_2 = make_uscc("91310000MA1FL0000")
ORGS = {
    "BANK-A": "bank",
    "BANK-B": "bank",
    "INSURER": "insurer",
    "INSURER-2": "insurer",
    "REGULATOR": "regulator",
}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY_NO = "SCI-2026-000123"
BUYER = "USA/123456"


def policy(**over: Any) -> dict[str, Any]:
    body = {
        "policy_no": POLICY_NO,
        "exporter_id": EXPORTER,
        "exporter_name": "Fujian Export Co",
        "product": "comprehensive",
        "currency": "USD",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
        "indemnity_ratio": "0.9",
        "max_liability": "1000000.00",
        "max_credit_days": 180,
    }
    return {**body, **over}


def limit(**over: Any) -> dict[str, Any]:
    body = {
        "policy_no": POLICY_NO,
        "buyer_code": BUYER,
        "buyer_name": "Acme Imports LLC",
        "buyer_country": "US",
        "currency": "USD",
        "amount": "500000.00",
        "valid_to": "2026-12-31",
    }
    return {**body, **over}


def shipment(**over: Any) -> dict[str, Any]:
    body = {
        "vessel": "COSCO SHIPPING ARIES",
        "voyage": "042E",
        "port_of_loading": "CNXMN",
        "ship_date": "2026-02-09",
        "quantity": "1200.500",
        "unit": "MT",
    }
    return {**body, **over}


def receivable(**over: Any) -> dict[str, Any]:
    body = {
        "invoice_no": "INV-2026-0001",
        "invoice_date": "2026-02-10",
        "transport_doc_no": "COSU6123456780",
        "currency": "USD",
        "amount": "100000.00",
        "due_date": "2026-05-10",
        "shipment": shipment(),
    }
    return {**body, **over}


def coverage(notice_no: str, beneficiary: str, **over: Any) -> dict[str, Any]:
    body = {
        "notice_no": notice_no,
        "policy_no": POLICY_NO,
        "exporter_id": EXPORTER,
        "buyer_code": BUYER,
        "receivable": receivable(),
        "declared_amount": "100000.00",
        "effective_limit": "100000.00",
        "indemnity_ratio": "0.9",
        "beneficiary": beneficiary,
        "valid_to": "2026-12-31",
    }
    return {**body, **over}


def drawdown(loan_id: str, notice_no: str, **over: Any) -> dict[str, Any]:
    body = {
        "loan_id": loan_id,
        "notice_no": notice_no,
        "receivable": receivable(),
        "currency": "USD",
        "amount": "50000.00",
        "drawdown_date": "2026-03-01",
        "maturity_date": "2026-05-10",
    }
    return {**body, **over}


def drawdown_for(loan_id: str, notice: dict[str, Any], **over: Any) -> dict[str, Any]:
    """A drawdown repeating the notice's receivable."""
    body = drawdown(loan_id, notice["notice_no"], receivable=copy.deepcopy(notice["receivable"]))
    return {**body, **over}


def repayment(loan_id: str, amount: str, **over: Any) -> dict[str, Any]:
    body = {
        "loan_id": loan_id,
        "currency": "USD",
        "amount": amount,
        "date": "2026-04-01",
        "source": "buyer",
    }
    return {**body, **over}


def reservation(bank: str, notice: dict[str, Any], expires_at: str, **over: Any) -> dict[str, Any]:
    body = {
        "bank": bank,
        "notice_no": notice["notice_no"],
        "receivable": copy.deepcopy(notice["receivable"]),
        "currency": "USD",
        "amount": "50000.00",
        "expires_at": expires_at,
    }
    return {**body, **over}


def fx(on: str, base: str, quote: str, rate: str) -> dict[str, Any]:
    return {"date": on, "base": base, "quote": quote, "rate": rate}


def claim(notice_no: str, **over: Any) -> dict[str, Any]:
    body = {"notice_no": notice_no, "currency": "USD", "amount": "90000.00", "date": "2026-06-01"}
    return {**body, **over}


class World:
    """A State plus a counter of log indexes: submit entries as a sequencer would."""

    def __init__(self, params: Params | None = None, secret: bytes = SECRET) -> None:
        self.state = State(params or Params(), secret)
        self.state.set_orgs(ORGS)
        self.index = 0
        self.now = T0

    def ctx(self, org: str, entry_type: str) -> EntryContext:
        entry_hash = hashlib.sha256(b"test-entry/" + self.index.to_bytes(8, "big")).digest()
        role = ORGS.get(org, self.state.orgs.get(org, "bank"))
        return EntryContext(entry_hash, self.index, org, role, entry_type, self.now)

    def submit(self, org: str, entry_type: str, body: dict[str, Any]) -> Verdict:
        """process_entry at the current block time; a refusal raises and uses no index."""
        ctx = self.ctx(org, entry_type)
        verdict = process_entry(self.state, ctx, parse_body(entry_type, body), self.now)
        self.index += 1
        self.now += timedelta(seconds=1)
        return verdict

    def check(self, org: str, entry_type: str, body: dict[str, Any]) -> Verdict:
        ctx = self.ctx(org, entry_type)
        return check_entry(self.state, ctx, parse_body(entry_type, body), self.now)

    def last_hash(self) -> str:
        return hashlib.sha256(b"test-entry/" + (self.index - 1).to_bytes(8, "big")).hexdigest()

    def setup(self) -> None:
        """Policy and buyer limit registered by INSURER."""
        self.submit("INSURER", "policy.registered", policy())
        self.submit("INSURER", "limit.approved", limit())

    def issue(self, notice_no: str, beneficiary: str, **over: Any) -> dict[str, Any]:
        body = coverage(notice_no, beneficiary, **over)
        verdict = self.submit("INSURER", "coverage.issued", body)
        if verdict.status != "accepted":
            raise AssertionError(f"coverage not accepted: {verdict}")
        return body


def codes(verdict: Verdict) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in verdict.flags]
