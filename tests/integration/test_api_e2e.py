"""End to end: `pfnode init --demo`, `pfnode serve` as a real process, the duplicate story
over HTTP, then kill -9 the instant after the answers and check that they survived.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.merkle import verify_inclusion
from node import demo
from tests.integration.test_api_stream import free_port

START_S = 30.0


def pfnode() -> list[str]:
    script = shutil.which("pfnode")
    return [script] if script else [sys.executable, "-m", "node.cli"]


def has_serve() -> bool:
    done = subprocess.run([*pfnode(), "--help"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and "serve" in done.stdout and "init" in done.stdout


@contextmanager
def pfnode_serve(data: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [*pfnode(), "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"pfnode serve exited {proc.returncode}: {err}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("pfnode serve did not become healthy")
            time.sleep(0.05)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def verify(receipt: dict[str, Any]) -> None:
    proof = receipt["inclusion_proof"]
    verify_inclusion(
        bytes.fromhex(receipt["entry_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["log_root"]),
    )


def test_duplicate_story_against_a_real_server(tmp_path: Path) -> None:
    if not has_serve():
        pytest.skip("`pfnode init` / `pfnode serve` are not available in node/cli.py yet")
    data = tmp_path / "data"
    init = subprocess.run(
        [*pfnode(), "init", "--demo", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    tokens = json.loads((data / "demo-tokens.json").read_text())
    today = datetime.now(UTC).date()
    rec = demo.receivable(today, "INV-E2E-1", "BL-E2E-1")

    with pfnode_serve(data) as (base, proc), ExitStack() as clients:
        insurer, bank_a, bank_b = (
            clients.enter_context(client(base, tokens[o])) for o in ("INSURER", "BANK-A", "BANK-B")
        )
        for path, body in [
            ("/v1/policies", demo.policy_body(today)),
            (f"/v1/policies/{demo.policy_body(today)['policy_no']}/limits", demo.limit_body(today)),
            ("/v1/coverage-notices", demo.notice_body(today, "CN-A", "BANK-A", rec)),
            ("/v1/coverage-notices", demo.notice_body(today, "CN-B", "BANK-B", rec)),
        ]:
            r = insurer.post(path, json=body)
            assert r.status_code == 201, r.text

        first = bank_a.post("/v1/loans", json=demo.drawdown_body(today, "A-1", "CN-A", rec))
        assert first.status_code == 201, first.text
        accepted = first.json()
        verify(accepted)
        second = bank_b.post("/v1/loans", json=demo.drawdown_body(today, "B-1", "CN-B", rec))
        assert second.status_code == 409, second.text
        assert second.headers["content-type"] == "application/problem+json"
        rejected = second.json()["receipt"]
        assert "DUPLICATE_FINANCING" in [f["code"] for f in rejected["flags"]]
        assert "BANK-A" not in second.text
        verify(rejected)
        os.kill(proc.pid, signal.SIGKILL)  # the instant after the answers
        proc.wait(10)

    with (
        pfnode_serve(data) as (base, _),
        client(base, tokens["REGULATOR"]) as regulator,
        client(base, tokens["BANK-A"]) as bank_a,
    ):
        loans = bank_a.get("/v1/loans").json()
        assert [loan["loan_id"] for loan in loans] == ["A-1"]
        r = regulator.get(f"/v1/ledger/entries/{rejected['entry_hash']}")
        assert r.status_code == 200
        assert r.json()["receipt"]["status"] == "rejected"
        assert regulator.get("/healthz").json()["log_size"] == rejected["index"] + 1
