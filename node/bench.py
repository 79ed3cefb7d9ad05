"""Benchmarks that print figures (medians, ratios against a floor measured in the same run).

    pfnode bench ledger [--entries N] [--proof-entries M]

Never asserts on speed: it measures and prints, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chain.bundle import export_bundle
from chain.entries import SignedEntry, make_entry
from chain.keyring import KeyRing
from chain.keys import SigningKey
from chain.log import LogWriter, make_genesis
from chain.merkle import inclusion_proof, leaf_hash, new_nodes
from chain.storage import Ledger
from chain.verify import verify_database

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BLOCK = 1000


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median wall time of fn over `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_signed(count: int, keys: list[SigningKey]) -> list[SignedEntry]:
    body = {"notice_no": "N-1", "amount": "125000.00", "currency": "USD"}
    return [
        make_entry(
            keys[i % len(keys)],
            "loan.drawdown",
            {**body, "loan_id": f"L{i}"},
            T0 + timedelta(microseconds=i),
        )
        for i in range(count)
    ]


def floor_ed25519(entries: list[SignedEntry], ring: KeyRing) -> float:
    sample = entries[:2000]

    def run() -> None:
        for e in sample:
            e.verify_signature(ring.key_for(e.key_id, 0))

    return len(sample) / timed(run, 3)


def floor_sqlite(entries: list[SignedEntry], folder: Path) -> float:
    rows = [(i, e.hash, e.raw) for i, e in enumerate(entries)]
    path = folder / "floor.db"

    def run() -> None:
        path.unlink(missing_ok=True)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, hash BLOB UNIQUE, raw BLOB)")
        for lo in range(0, len(rows), BLOCK):
            with conn:
                conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows[lo : lo + BLOCK])
        conn.close()

    return len(rows) / timed(run, 3)


def new_bench_ledger(url: str) -> tuple[Ledger, LogWriter, list[SigningKey], KeyRing]:
    keys = [SigningKey.generate(f"BANK-{c}/1") for c in "ABCD"]
    seq = SigningKey.generate("REGULATOR/seq-1")
    orgs = [
        {
            "id": k.key_id.split("/")[0],
            "name": k.key_id,
            "role": "bank",
            "keys": [{"key_id": k.key_id, "public_key": k.public.b64}],
        }
        for k in keys
    ]
    genesis = make_genesis(origin="pfnode.bench/ledger", orgs=orgs, sequencer=seq, created=T0)
    ledger = Ledger.open(url, writer=True, create=True)
    ledger.init(genesis)
    return ledger, LogWriter(ledger, seq), keys, KeyRing.from_genesis(genesis)


def append_verified(
    ledger: Ledger, writer: LogWriter, ring: KeyRing, entries: list[SignedEntry]
) -> float:
    """Append in blocks, checking every signature first, as the sequencer does."""
    start = time.perf_counter()
    for lo in range(0, len(entries), BLOCK):
        batch = entries[lo : lo + BLOCK]
        size = ledger.size
        for offset, e in enumerate(batch):
            e.verify_signature(ring.key_for(e.key_id, size + offset))
        receipts = [{"entry_hash": e.hash.hex(), "status": "accepted", "flags": []} for e in batch]
        writer.append(batch, receipts, T0 + timedelta(seconds=lo))
    writer.checkpoint()
    return len(entries) / (time.perf_counter() - start)


def proof_times(count: int, folder: Path) -> tuple[float, float]:
    """Build a `count`-leaf tree of stored nodes; median inclusion-proof time (s) and build s."""
    ledger = Ledger.open(f"sqlite:///{folder / 'proofs.db'}", writer=True, create=True)
    start = time.perf_counter()
    size = 0
    step = 8192
    import sqlalchemy as sa

    from chain.storage import T_NODE, node_id

    while size < count:
        leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(size, min(size + step, count))]
        nodes, _ = new_nodes(size, leaves, ledger)
        with ledger.engine.begin() as conn:
            conn.execute(
                sa.insert(T_NODE), [{"id": node_id(k), "hash": h} for k, h in nodes.items()]
            )
        size += len(leaves)
    built = time.perf_counter() - start
    rng = random.Random(1)
    times = []
    for _ in range(500):
        index = rng.randrange(count)
        t = time.perf_counter()
        inclusion_proof(index, count, ledger)
        times.append(time.perf_counter() - t)
    ledger.close()
    return statistics.median(times), built


def bundle_rss(bundle: Path) -> tuple[float, float]:
    """Verify a bundle in a fresh process; (entries/s, peak RSS MiB).

    The peak is the child's own VmHWM: ru_maxrss would carry the parent's high-water
    mark across fork and exec.
    """
    code = (
        "import sys,time;from pathlib import Path;"
        "from chain.bundle import BundleSource;from chain.verify import verify_ledger;"
        "t=time.perf_counter();r=verify_ledger(BundleSource(Path(sys.argv[1])));"
        "d=time.perf_counter()-t;"
        "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
        "print(r.entries/d, int(hwm)/1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def run_ledger(args: argparse.Namespace) -> int:
    n = args.entries
    print(f"pfnode bench ledger: {n} entries, blocks of {BLOCK}; proofs at {args.proof_entries}")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="pfnode-bench-") as tmp:
        folder = Path(tmp)
        url = args.db or f"sqlite:///{folder / 'ledger.db'}"
        ledger, writer, keys, ring = new_bench_ledger(url)
        t = time.perf_counter()
        entries = make_signed(n, keys)
        print(f"  signed {n} entries in {time.perf_counter() - t:.1f} s (setup, not measured)")
        ed = floor_ed25519(entries, ring)
        raw = floor_sqlite(entries, folder)
        appended = append_verified(ledger, writer, ring, entries)
        start = time.perf_counter()
        verify_database(ledger)
        verified = n / (time.perf_counter() - start)
        bundle = folder / "ledger.jsonl"
        export_bundle(ledger, bundle)
        ledger.close()
        bundle_rate, bundle_mib = bundle_rss(bundle)
        proof_s, built_s = proof_times(args.proof_entries, folder)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("floor (same run):")
    print(f"  Ed25519 verify            {ed:10,.0f} /s")
    print(f"  SQLite batched inserts    {raw:10,.0f} rows/s")
    print("pfnode:")
    print(
        f"  append + signature check  {appended:10,.0f} entries/s"
        f"   ({appended / ed:.2f} x the Ed25519 floor; goal >= 3,000/s)"
    )
    print(
        f"  verify (database, 1 core) {verified:10,.0f} entries/s"
        f"   ({verified / ed:.2f} x the floor; goal >= 3,500/s)"
    )
    print(
        f"  verify (bundle, streamed) {bundle_rate:10,.0f} entries/s, peak RSS {bundle_mib:.0f} MiB"
    )
    print(
        f"  inclusion proof at {args.proof_entries:,}: median {proof_s * 1000:.3f} ms"
        f" (tree of stored nodes built in {built_s:.1f} s; goal < 2 ms)"
    )
    print(f"  peak RSS of this process  {peak:.0f} MiB")
    return 0
