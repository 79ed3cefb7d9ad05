"""`pfnode bench compare`: one workload of signed drawdowns (10% duplicates), four ways.

1. pfnode on SQLite (one process), 2. pfnode on PostgreSQL with 2 workers: each a
   real `pfnode serve`, loaded by wrk posting pre-signed envelopes to /v1/entries at
   two concurrencies (a throughput-latency curve);
3. what a user might pick instead: a duplicate-registry Solidity contract on Anvil,
   driven like a bank would (one signed transaction per drawdown, receipt awaited,
   32 clients with an account each), plus its best JSON-RPC-batched figure;
4. the floor: Ed25519 verification and batched SQLite inserts of the same entries,
   no HTTP.

Prints throughput, p50/p99 and ratios with the machine; `--save DIR` writes the
output and a throughput-vs-latency plot (PNG). Never asserts on speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from chain.entries import SignedEntry, decode_signed_entry, make_entry
from chain.keyring import KeyRing
from node import bench_api, demo
from node.bench import machine
from node.fingerprints import compute_k1
from node.genesis import NodeFiles, init_demo

CONNECTIONS = (8, 32)


def signed_drawdowns(data: Path, drawdowns: list[dict[str, Any]]) -> list[SignedEntry]:
    key = NodeFiles(data).org_key("BANK-A")
    assert key is not None  # noqa: S101 - the demo consortium holds it
    now = datetime.now(UTC)
    return [make_entry(key, "loan.drawdown", body, now) for body in drawdowns]


@contextlib.contextmanager
def fresh_pg(base_url: str) -> Iterator[str]:
    """A new database beside `base_url`'s, dropped afterwards."""
    admin = sa.create_engine(
        "postgresql+psycopg://" + base_url.split("://", 1)[1], isolation_level="AUTOCOMMIT"
    )
    name = f"pfnode_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_pfnode(
    label: str, folder: Path, pg: str | None, workers: int, count: int, seconds: float
) -> list[dict[str, Any]]:
    """A fresh node per concurrency (SQLite, or a new PostgreSQL database beside `pg`)."""
    rows = []
    for connections in CONNECTIONS:
        with fresh_pg(pg) if pg else contextlib.nullcontext(None) as db:
            rows.append(run_once(label, folder, db, workers, count, seconds, connections))
    return rows


def run_once(
    label: str,
    folder: Path,
    db: str | None,
    workers: int,
    count: int,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """Set up a node, then post the signed drawdowns at one concurrency."""
    today = datetime.now(UTC).date()
    run = folder / f"{label}-{connections}"
    data = run / "data"
    run.mkdir(parents=True)
    init_demo(data, db, datetime.now(UTC))
    tokens = json.loads((data / "demo-tokens.json").read_text())
    notices, drawdowns, _ = bench_api.plan(count, today)
    port = demo.free_port()
    base = f"http://127.0.0.1:{port}"
    extra = ["--workers", str(workers), *(["--db", db] if db else [])]
    proc = bench_api.serve_node(data, port, *extra)
    try:
        bench_api.seed_policy(base, tokens["INSURER"], today)
        bench_api.write_bodies(run, notices)
        bench_api.wrk(
            run,
            tokens["INSURER"],
            "/v1/coverage-notices",
            max(5.0, len(notices) / 400),
            32,
            base,
        )
        envelopes = [e.to_json() for e in signed_drawdowns(data, drawdowns)]
        bench_api.write_bodies(run, envelopes)
        result = bench_api.wrk(run, tokens["BANK-A"], "/v1/entries", seconds, connections, base)
    finally:
        bench_api.stop(proc)
    answered = sum(v for k, v in result["statuses"].items() if k.isdigit())
    return {
        "label": label,
        "connections": connections,
        "throughput": answered / result["seconds"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "statuses": result["statuses"],
    }


def run_floor(folder: Path, count: int) -> dict[str, Any]:
    """Ed25519 verification + batched SQLite inserts of the same entries, no HTTP."""
    data = folder / "floor" / "data"
    init_demo(data, None, datetime.now(UTC))
    _, drawdowns, _ = bench_api.plan(count, datetime.now(UTC).date())
    raws = [e.raw for e in signed_drawdowns(data, drawdowns)]
    genesis = json.loads((data / "genesis.json").read_text())
    ring = KeyRing.from_genesis(genesis)
    db = folder / "floor" / "floor.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, hash BLOB UNIQUE, raw BLOB)")
    began = time.perf_counter()
    for lo in range(0, len(raws), 1000):
        rows = []
        for i, raw in enumerate(raws[lo : lo + 1000], start=lo):
            entry = decode_signed_entry(raw)
            entry.verify_signature(ring.key_for(entry.key_id, i))
            rows.append((i, entry.hash, entry.raw))
        with conn:
            conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    elapsed = time.perf_counter() - began
    conn.close()
    return {"label": "floor", "throughput": len(raws) / elapsed}


def run_anvil(folder: Path, count: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    try:
        from contracts.registry_bench import run_registry_batched, run_registry_bench
    except ImportError as exc:  # web3 missing
        print(f"  (Anvil registry skipped: {exc})")
        return None, None
    data = folder / "anvil" / "data"
    init_demo(data, None, datetime.now(UTC))
    secret = NodeFiles(data).consortium_secret()
    _, drawdowns, _ = bench_api.plan(count, datetime.now(UTC).date())
    prints = [
        bytes.fromhex(compute_k1(secret, demo.EXPORTER, d["receivable"]["invoice_no"]))
        for d in drawdowns
    ]
    try:
        awaited = run_registry_bench(prints, clients=32)
        batched = run_registry_batched(prints, clients=32)
    except Exception as exc:  # anvil not installable here: say so, keep the rest
        print(f"  (Anvil registry skipped: {exc})")
        return None, None
    return (
        {"label": "anvil registry (awaited receipts, 32 clients)", **awaited},
        {"label": "anvil registry (JSON-RPC batched)", **batched},
    )


def plot(
    rows: list[dict[str, Any]],
    floor: dict[str, Any],
    batched: dict[str, Any] | None,
    path: Path,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for label, points in by_label.items():
        points.sort(key=lambda r: r["throughput"])
        ax.plot(
            [p["throughput"] for p in points],
            [p["p99_ms"] for p in points],
            "o-",
            label=f"{label} (p99)",
        )
        ax.plot(
            [p["throughput"] for p in points],
            [p["p50_ms"] for p in points],
            "x:",
            label=f"{label} (p50)",
        )
    ax.axvline(floor["throughput"], color="grey", linestyle="--", label="floor (no HTTP)")
    if batched is not None:
        ax.axvline(
            batched["throughput"],
            color="brown",
            linestyle=":",
            label="anvil JSON-RPC batched (reference)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("drawdowns per second")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_compare(args: argparse.Namespace) -> int:
    out = io.StringIO()

    def say(text: str = "") -> None:
        print(text, flush=True)
        out.write(text + "\n")

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    say(f"pfnode bench compare, {stamp}: {args.count} signed drawdowns (10% duplicates)")
    say(f"machine: {machine()}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pfnode-compare-") as tmp:
        folder = Path(tmp)
        rows += run_pfnode("pfnode sqlite", folder, None, 1, args.count, args.seconds)
        rows += run_pfnode(
            "pfnode postgresql x2 workers", folder, args.pg, 2, args.count, args.seconds
        )
        awaited, batched = run_anvil(folder, args.anvil_count)
        floor = run_floor(folder, args.count)
    say(f"{'':42} {'drawdowns/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        say(
            f"{row['label'] + ' c=' + str(row['connections']):42} {row['throughput']:12,.0f} "
            f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f}"
        )
    if awaited is not None:
        say(
            f"{awaited['label']:42} {awaited['throughput']:12,.0f} "
            f"{awaited['p50_ms']:8.1f} {awaited['p99_ms']:8.1f}"
            f"   duplicates reverted {awaited['duplicates_detected']}/"
            f"{awaited['duplicates_sent']}"
        )
    if batched is not None:
        say(f"{batched['label']:42} {batched['throughput']:12,.0f}")
    say(f"{'floor: Ed25519 verify + SQLite batch insert':42} {floor['throughput']:12,.0f}")
    say("ratios:")
    for row in rows:
        name = f"{row['label']} c={row['connections']}"
        line = f"  {name}: {row['throughput'] / floor['throughput']:.0%} of the floor"
        if awaited is not None:
            line += (
                f", {row['throughput'] / awaited['throughput']:.1f}x the Anvil registry "
                f"(p99 {row['p99_ms']:.0f} vs {awaited['p99_ms']:.0f} ms)"
            )
        say(line)
    say(
        "goals: >= 5x the Anvil registry at a lower p99; >= 40% of the floor; "
        "PostgreSQL x2 workers >= 1,500/s"
    )
    if args.save:
        folder_out = Path(args.save)
        folder_out.mkdir(parents=True, exist_ok=True)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        (folder_out / f"compare-{day}.txt").write_text(out.getvalue())
        points = rows + ([awaited] if awaited else [])
        try:
            plot(
                points,
                floor,
                batched,
                folder_out / f"compare-{day}.png",
                f"pfnode bench compare {stamp}\n{machine()}",
            )
            say(f"saved {folder_out}/compare-{day}.txt and .png")
        except ImportError:
            say("matplotlib is not installed (pip install -e '.[bench]'): no plot")
    return 0
