"""Several processes on one ledger: one sequencer, forwarded writes, failover, backpressure."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.storage import Ledger, normalise_url
from chain.verify import verify_database
from node import demo
from node.genesis import NodeFiles, init_demo
from node.replay import DomainReplayer
from tests.conftest import reset_pg
from tests.integration.cluster_helpers import ServeProcess, tokens

TODAY = datetime.now(UTC).date()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def setup_story(base: str, tok: dict[str, str], notices: int = 1) -> list[dict[str, Any]]:
    """Policy, limit and `notices` coverage notices for BANK-A; returns their receivables."""
    with httpx.Client(base_url=base, headers=auth(tok["INSURER"]), timeout=30) as c:
        policy = demo.policy_body(TODAY)
        policy["max_liability"] = "900000000000.00"
        c.post("/v1/policies", json=policy).raise_for_status()
        limit = demo.limit_body(TODAY)
        limit["amount"] = "900000000000.00"
        c.post("/v1/policies/SINO-2026-0001/limits", json=limit).raise_for_status()
        recs = []
        for i in range(notices):
            rec = demo.receivable(TODAY, f"INV-{i}", f"BL-{i}")
            rec["amount"] = f"{1000 + i}.00"
            rec["shipment"] = {**rec["shipment"], "voyage": f"V{i}"}
            notice = demo.notice_body(TODAY, f"CN-{i}", "BANK-A", rec)
            notice.update(declared_amount=rec["amount"], effective_limit=rec["amount"])
            c.post("/v1/coverage-notices", json=notice).raise_for_status()
            recs.append(rec)
    return recs


def verify_all(data: Path, url: str) -> int:
    with Ledger.open(url) as ledger:
        replayer = DomainReplayer(ledger.genesis, NodeFiles(data).consortium_secret())
        return verify_database(ledger, replayer).entries


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def node_db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str | None, str]:
    """A demo data directory and its database (None: SQLite under it)."""
    data = tmp_path / "data"
    if request.param == "sqlite":
        init_demo(data, None, datetime.now(UTC))
        return data, None, f"sqlite:///{data / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_server")
    reset_pg(url)
    init_demo(data, url, datetime.now(UTC))
    return data, url, url


def test_one_leader_and_fifty_clients_on_one_receivable(
    node_db: tuple[Path, str | None, str],
) -> None:
    data, db, url = node_db
    a = ServeProcess(data, db).start()
    a.wait_healthy()
    b = ServeProcess(data, db).start()
    b.wait_healthy()
    try:
        assert sorted([a.role(), b.role()]) == ["leader", "standby"]
        tok = tokens(data)
        rec = setup_story(a.base, tok)[0]

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(headers=auth(tok["BANK-A"]), timeout=60) as client:
                calls = []
                for i in range(50):
                    body = demo.drawdown_body(TODAY, f"L-{i}", "CN-0", rec)
                    body["amount"] = "500.00"
                    base = a.base if i % 2 else b.base
                    calls.append(client.post(f"{base}/v1/loans", json=body))
                return list(await asyncio.gather(*calls))

        answers = asyncio.run(fire())
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201] + [409] * 49
        for r in answers:
            if r.status_code == 409:
                codes = [f["code"] for f in r.json()["receipt"]["flags"]]
                assert "DUPLICATE_FINANCING" in codes
    finally:
        a.stop()
        b.stop()
    assert verify_all(data, normalise_url(url)) == 3 + 50


def test_standby_takes_over_when_the_leader_is_killed(
    node_db: tuple[Path, str | None, str],
) -> None:
    data, db, url = node_db
    first = ServeProcess(data, db).start()
    first.wait_healthy()
    second = ServeProcess(data, db).start()
    second.wait_healthy()
    leader, standby = (first, second) if first.role() == "leader" else (second, first)
    tok = tokens(data)
    recs = setup_story(standby.base, tok, notices=300)
    acknowledged: dict[str, dict[str, Any]] = {}
    stop = threading.Event()
    errors: list[str] = []

    def load(worker: int) -> None:
        with httpx.Client(headers=auth(tok["BANK-A"]), timeout=30) as client:
            for i in range(worker, len(recs), 4):
                if stop.is_set():
                    return
                body = demo.drawdown_body(TODAY, f"L-{i}", f"CN-{i}", recs[i])
                body["amount"] = "500.00"
                for _attempt in range(200):  # retry 503 and broken connections, same body
                    base = standby.base if i % 2 else leader.base
                    if leader.proc is not None and leader.proc.poll() is not None:
                        base = standby.base
                    try:
                        r = client.post(f"{base}/v1/loans", json=body)
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    if r.status_code == 201:
                        acknowledged[r.json()["entry_hash"]] = r.json()
                        break
                    if r.status_code not in (503, 409):
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        break
                    time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    leader.kill()
    took_over = None
    while time.monotonic() - killed_at < 10:
        try:
            if standby.role() == "leader":
                took_over = time.monotonic() - killed_at
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    for t in threads:
        t.join(120)
    stop.set()
    standby.stop()
    assert took_over is not None and took_over < 5, f"took over after {took_over}"
    assert not errors, errors[:3]
    with Ledger.open(normalise_url(url)) as ledger:
        for entry_hash, receipt in acknowledged.items():
            stored = ledger.get_entry(bytes.fromhex(entry_hash))
            assert stored is not None, f"answered 201 but lost: {entry_hash}"
            assert stored.index == receipt["index"]
    entries = verify_all(data, normalise_url(url))
    assert entries >= 302 + len(acknowledged)


def test_backpressure_answers_503_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_demo(data, None, datetime.now(UTC))
    node = ServeProcess(data, None, extra=("--max-queue", "4")).start()
    node.wait_healthy()
    try:
        tok = tokens(data)
        rate = {"date": TODAY.isoformat(), "base": "EUR", "quote": "USD", "rate": "1.0850"}

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(
                headers=auth(tok["REGULATOR"]), timeout=60, limits=httpx.Limits(max_connections=200)
            ) as client:
                calls = []
                for i in range(300):
                    day = TODAY.toordinal() - i
                    body = {**rate, "date": datetime.fromordinal(day).date().isoformat()}
                    calls.append(client.post(f"{node.base}/v1/fx-rates", json=body))
                return list(await asyncio.gather(*calls))

        answers = asyncio.run(fire())
    finally:
        node.stop()
    busy = [r for r in answers if r.status_code == 503]
    ok = [r for r in answers if r.status_code == 201]
    assert busy, "no 503: the queue never filled"
    assert all(r.headers.get("retry-after") for r in busy)
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in busy)
    assert len(ok) + len(busy) == 300
    with Ledger.open(f"sqlite:///{data / 'ledger.db'}") as ledger:
        assert ledger.size == len(ok)
        for r in ok:
            assert ledger.get_entry(bytes.fromhex(r.json()["entry_hash"])) is not None
