"""`pfnode bench replication`: how far behind a follower runs, and how fast it catches up.

1. Lag under load: a consortium (the regulator's sequencer, BANK-A's follower) on
   loopback; wrk posts drawdowns to the sequencer while a probe polls both nodes'
   heads every 10 ms; for every block, lag = first seen verified on the follower -
   first seen committed on the sequencer. Printed as p50/p99 seconds.
2. Catch-up: a ledger of `--entries` entries (reference rates, which every member
   reads in full: the follower decodes and hashes each) is built; a follower starting
   from zero pulls, verifies and stores it. Printed as blocks/s and entries/s.

Figures only: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from chain.entries import make_entry
from chain.keys import SigningKey
from node import bench_api, demo
from node.bench import machine
from node.genesis import init_consortium


def signed(key: SigningKey, kind: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Envelopes as each institution's own node would send them to the sequencer."""
    now = datetime.now(UTC)
    return [make_entry(key, kind, body, now).to_json() for body in bodies]


def head(base: str) -> int | None:
    try:
        height = httpx.get(f"{base}/healthz", timeout=2).json()["height"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return None if height is None else int(height)


class LagProbe(threading.Thread):
    def __init__(self, sequencer: str, follower: str) -> None:
        super().__init__(daemon=True)
        self.bases = (sequencer, follower)
        self.seen: tuple[dict[int, float], dict[int, float]] = ({}, {})
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for base, seen in zip(self.bases, self.seen, strict=True):
                h = head(base)
                now = time.perf_counter()
                if h is not None:
                    for height in range(max(seen, default=-1) + 1, h + 1):
                        seen[height] = now
            time.sleep(0.01)

    def lags(self) -> list[float]:
        committed, verified = self.seen
        return [verified[h] - committed[h] for h in committed if h in verified]


def measure_lag(root: Path, seconds: float) -> dict[str, Any]:
    dirs = init_consortium(root / "lag", datetime.now(UTC))
    seq_port, fol_port = demo.free_port(), demo.free_port()
    seq_base, fol_base = f"http://127.0.0.1:{seq_port}", f"http://127.0.0.1:{fol_port}"
    token = {
        org: json.loads((dirs[org] / "upstream.json").read_text())["token"]
        for org in ("BANK-A", "INSURER")
    }
    today = datetime.now(UTC).date()
    sequencer = bench_api.serve_node(dirs["REGULATOR"], seq_port)
    follower = bench_api.serve_node(
        dirs["BANK-A"], fol_port, "--role", "follower", "--org", "BANK-A", "--upstream", seq_base
    )
    try:
        insurer = SigningKey.load(dirs["INSURER"] / "keys" / "INSURER.json")
        bank = SigningKey.load(dirs["BANK-A"] / "keys" / "BANK-A.json")
        policy = demo.policy_body(today)
        policy["max_liability"] = "900000000000.00"
        limit = demo.limit_body(today)
        limit["amount"] = "900000000000.00"
        with httpx.Client(
            base_url=seq_base, timeout=30, headers={"Authorization": f"Bearer {token['INSURER']}"}
        ) as c:
            for kind, body in (("policy.registered", policy), ("limit.approved", limit)):
                c.post("/v1/entries", json=signed(insurer, kind, [body])[0]).raise_for_status()
        notices, drawdowns, _ = bench_api.plan(int(600 * seconds), today)
        work = root / "lag-work"
        work.mkdir()
        bench_api.write_bodies(work, signed(insurer, "coverage.issued", notices))
        bench_api.wrk(
            work, token["INSURER"], "/v1/entries", max(3.0, len(notices) / 400), 16, seq_base
        )
        probe = LagProbe(seq_base, fol_base)
        probe.start()
        bench_api.write_bodies(work, signed(bank, "loan.drawdown", drawdowns))
        result = bench_api.wrk(work, token["BANK-A"], "/v1/entries", seconds, 16, seq_base)
        time.sleep(2)
        probe.stop.set()
        probe.join(5)
    finally:
        bench_api.stop(follower)
        bench_api.stop(sequencer)
    lags = sorted(probe.lags())
    return {
        "blocks": len(lags),
        "requests": result["requests"],
        "p50": statistics.median(lags) if lags else float("nan"),
        "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("nan"),
    }


async def _fill(data: Path, entries: int) -> None:
    from node.clock import SystemClock
    from node.service import Caller, Node, NodeConfig

    node = Node(NodeConfig(data, max_block_entries=1000, max_block_ms=20), SystemClock())
    await node.start()
    regulator = Caller("REGULATOR", "regulator")
    sem = asyncio.Semaphore(256)
    first = date(1800, 1, 1)

    async def one(i: int) -> None:
        body = {
            "date": (first + timedelta(days=i)).isoformat(),
            "base": "EUR",
            "quote": "USD",
            "rate": "1.0850",
        }
        async with sem:
            await node.submit(regulator, "fx.rate", body)

    try:
        await asyncio.gather(*(one(i) for i in range(entries)))
    finally:
        node.close()


def measure_catch_up(root: Path, entries: int) -> dict[str, Any]:
    dirs = init_consortium(root / "catch-up", datetime.now(UTC))
    began = time.perf_counter()
    asyncio.run(_fill(dirs["REGULATOR"], entries))
    built = time.perf_counter() - began
    seq_port, fol_port = demo.free_port(), demo.free_port()
    seq_base, fol_base = f"http://127.0.0.1:{seq_port}", f"http://127.0.0.1:{fol_port}"
    sequencer = bench_api.serve_node(dirs["REGULATOR"], seq_port)
    try:
        want = head(seq_base)
        follower = bench_api.serve_node(
            dirs["BANK-A"],
            fol_port,
            "--role",
            "follower",
            "--org",
            "BANK-A",
            "--upstream",
            seq_base,
        )
        began = time.perf_counter()
        try:
            while head(fol_base) != want:
                time.sleep(0.05)
            took = time.perf_counter() - began
        finally:
            bench_api.stop(follower)
    finally:
        bench_api.stop(sequencer)
    blocks = (want or 0) + 1
    return {"entries": entries, "blocks": blocks, "seconds": took, "built": built}


def run_replication(args: argparse.Namespace) -> int:
    print(
        f"pfnode bench replication: lag under {args.seconds:.0f}s of drawdowns; catch-up of "
        f"{args.entries:,} entries"
    )
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="pfnode-bench-repl-") as tmp:
        root = Path(tmp)
        lag = measure_lag(root, args.seconds)
        catch = measure_catch_up(root, args.entries)
    print(
        f"  replication lag over {lag['blocks']} blocks ({lag['requests']} drawdowns): "
        f"p50 {lag['p50']:.3f} s, p99 {lag['p99']:.3f} s (commit -> verified on the follower; "
        "probe resolution ~10 ms)"
    )
    print(
        f"  catch-up from zero: {catch['blocks']:,} blocks, {catch['entries']:,} entries in "
        f"{catch['seconds']:.1f} s = {catch['blocks'] / catch['seconds']:,.0f} blocks/s, "
        f"{catch['entries'] / catch['seconds']:,.0f} entries/s "
        f"(ledger built in {catch['built']:.0f} s, not measured)"
    )
    return 0
