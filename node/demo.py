"""`pfnode demo`: the duplicate-financing story, played through the real HTTP API.

An exporter insures a receivable; the insurer issues a coverage notice naming
BANK-A; BANK-A draws. The exporter then renumbers the invoice and gets a second
notice for BANK-B (the ZenRock pattern): BANK-B's drawdown is accepted with a
SUSPECTED_DUPLICATE warning. BANK-B then tries the original invoice: rejected at
once with DUPLICATE_FINANCING. Each flag is timed from request to its arrival on
the regulator's flag stream; the regulator's audit report follows, and an
inclusion proof of the rejected attempt is verified locally.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from chain.merkle import verify_inclusion
from node.identifiers import make_uscc

EXPORTER = make_uscc("91350100M000100Y4")


def policy_body(today: date) -> dict[str, Any]:
    return {
        "policy_no": "SINO-2026-0001",
        "exporter_id": EXPORTER,
        "exporter_name": "Fujian Example Export Co.",
        "product": "comprehensive",
        "currency": "USD",
        "valid_from": (today - timedelta(days=30)).isoformat(),
        "valid_to": (today + timedelta(days=335)).isoformat(),
        "indemnity_ratio": "0.9",
        "max_liability": "5000000.00",
        "max_credit_days": 180,
    }


def limit_body(today: date) -> dict[str, Any]:
    return {
        "policy_no": "SINO-2026-0001",
        "buyer_code": "DE-BUYER-042",
        "buyer_name": "Hamburg Importers GmbH",
        "buyer_country": "DE",
        "currency": "USD",
        "amount": "1000000.00",
        "valid_to": (today + timedelta(days=300)).isoformat(),
    }


def receivable(today: date, invoice_no: str, bl: str, days: int = 0) -> dict[str, Any]:
    return {
        "invoice_no": invoice_no,
        "invoice_date": (today - timedelta(days=10 - days)).isoformat(),
        "transport_doc_no": bl,
        "currency": "USD",
        "amount": "250000.00",
        "due_date": (today + timedelta(days=80)).isoformat(),
        "shipment": {
            "vessel": "COSCO HARMONY",
            "voyage": "071E",
            "port_of_loading": "CNXMN",
            "ship_date": (today - timedelta(days=9)).isoformat(),
            "quantity": "1200",
            "unit": "cartons",
        },
    }


def notice_body(today: date, notice_no: str, bank: str, rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "notice_no": notice_no,
        "policy_no": "SINO-2026-0001",
        "exporter_id": EXPORTER,
        "buyer_code": "DE-BUYER-042",
        "receivable": rec,
        "declared_amount": "250000.00",
        "effective_limit": "250000.00",
        "indemnity_ratio": "0.9",
        "beneficiary": bank,
        "valid_to": (today + timedelta(days=120)).isoformat(),
    }


def drawdown_body(today: date, loan_id: str, notice_no: str, rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "notice_no": notice_no,
        "receivable": rec,
        "currency": "USD",
        "amount": "200000.00",
        "drawdown_date": today.isoformat(),
        "maturity_date": (today + timedelta(days=75)).isoformat(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pfnode serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("pfnode serve did not become healthy")


class FlagListener(threading.Thread):
    """The regulator's subscription to /v1/flags/stream; records arrival times."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.token = token
        self.arrivals: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.ready = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.stream(
            "GET",
            f"{self.base}/v1/flags/stream",
            headers=headers,
            timeout=httpx.Timeout(5, read=None),
        ) as response:
            self.ready.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    self.arrivals.put((time.perf_counter(), json.loads(line[5:])))

    def flags_for(
        self, entry_hash: str, sent: float, timeout: float = 5
    ) -> list[tuple[float, dict[str, Any]]]:
        got: list[tuple[float, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, flag = self.arrivals.get(timeout=0.2)
            except queue.Empty:
                if got:
                    break
                continue
            if flag.get("entry_hash") == entry_hash:
                got.append(((at - sent) * 1000, flag))
        return got


def run_demo(args: argparse.Namespace) -> int:
    from node.genesis import init_demo

    today = datetime.now(UTC).date()
    with tempfile.TemporaryDirectory(prefix="pfnode-demo-") as tmp:
        data = Path(tmp)
        init_demo(data, None, datetime.now(UTC))
        tokens = json.loads((data / "demo-tokens.json").read_text())
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        try:
            wait_healthy(base, proc)
            return _play(base, tokens, today)
        finally:
            proc.terminate()
            proc.wait(10)


def _play(base: str, tokens: dict[str, str], today: date) -> int:
    def client(org: str) -> httpx.Client:
        return httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {tokens[org]}"}, timeout=10
        )

    insurer, bank_a, bank_b, regulator = (
        client(o) for o in ("INSURER", "BANK-A", "BANK-B", "REGULATOR")
    )
    listener = FlagListener(base, tokens["REGULATOR"])
    listener.start()
    listener.ready.wait(5)
    say = print
    say(f"pfnode demo at {base}\n")

    original = receivable(today, "INV-2026-0117", "COSU6281550")
    renumbered = receivable(today, "INV-2026-0117A", "COSU6281551", days=1)
    for path, body, what in [
        ("/v1/policies", policy_body(today), "registers policy SINO-2026-0001"),
        (
            "/v1/policies/SINO-2026-0001/limits",
            limit_body(today),
            "approves a USD 1,000,000 limit on the buyer",
        ),
        (
            "/v1/coverage-notices",
            notice_body(today, "CN-0001", "BANK-A", original),
            "issues coverage notice CN-0001 (invoice INV-2026-0117) to BANK-A",
        ),
    ]:
        r = insurer.post(path, json=body)
        r.raise_for_status()
        say(f"INSURER {what}: {r.status_code}, height {r.json()['height']}")

    steps = [
        (
            bank_a,
            "BANK-A draws USD 200,000 against CN-0001",
            drawdown_body(today, "A-LOAN-1", "CN-0001", original),
        ),
    ]
    r = insurer.post(
        "/v1/coverage-notices", json=notice_body(today, "CN-0002", "BANK-B", renumbered)
    )
    r.raise_for_status()
    say(
        "INSURER issues CN-0002 for a 'new' invoice INV-2026-0117A to BANK-B "
        "(same buyer, amount and cargo)"
    )
    steps += [
        (
            bank_b,
            "BANK-B draws against CN-0002 (renumbered invoice)",
            drawdown_body(today, "B-LOAN-1", "CN-0002", renumbered),
        ),
        (
            bank_b,
            "BANK-B draws against the original invoice under CN-0001",
            drawdown_body(today, "B-LOAN-2", "CN-0001", original),
        ),
    ]
    rejected_hash = ""
    for who, what, body in steps:
        sent = time.perf_counter()
        r = who.post("/v1/loans", json=body)
        took = (time.perf_counter() - sent) * 1000
        receipt = r.json() if r.status_code == 201 else r.json().get("receipt", {})
        say(f"\n{what}: HTTP {r.status_code} ({receipt.get('status')}) in {took:.1f} ms")
        for ms, flag in listener.flags_for(receipt.get("entry_hash", ""), sent):
            say(
                f"  flag {flag['code']} [{flag['severity']}] on the regulator's stream "
                f"{ms:.1f} ms after the request: {flag['detail']}"
            )
        if r.status_code == 409:
            rejected_hash = receipt["entry_hash"]

    report = regulator.get(
        "/v1/audit/report",
        params={"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()},
    ).json()
    say(
        "\nREGULATOR audit report: "
        + json.dumps({k: (len(v) if isinstance(v, list) else v) for k, v in report.items()})
    )
    proof = regulator.get(f"/v1/ledger/entries/{rejected_hash}").json()
    p = proof["proof"]
    verify_inclusion(
        bytes.fromhex(rejected_hash),
        proof["index"],
        p["tree_size"],
        [bytes.fromhex(h) for h in p["hashes"]],
        bytes.fromhex(p["log_root"]),
    )
    say(
        f"inclusion proof of the rejected attempt {rejected_hash[:16]}... "
        f"(index {proof['index']} of {p['tree_size']}) verified locally against root "
        f"{p['log_root'][:16]}..."
    )
    return 0
