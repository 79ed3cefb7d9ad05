"""`pfnode bench api`: drawdowns over HTTP, 90% clean and 10% duplicates, with wrk.

The load generator is wrk (Debian package `wrk`) replaying pre-generated bodies
through a Lua script, so the client is not the bottleneck; one wrk thread leaves
the other core to the node. Phases, in one run on one machine:

1. set-up: the insurer registers a policy, a buyer limit and one coverage notice per
   clean drawdown (also through wrk);
2. the ceiling: a bare FastAPI endpoint that only validates the same drawdown bodies
   (node.bodies.LoanDrawdown) and answers 201;
3. the node: BANK-A's drawdowns; meanwhile a probe sends a duplicate every 50 ms and
   times request -> flag received on the regulator's /v1/flags/stream.

Afterwards the ledger is read back: every duplicate must carry DUPLICATE_FINANCING
and no clean drawdown any flag. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from chain.storage import Ledger
from node import demo
from node.bench import machine

LUA = r"""
local threads = {}
local counter = 1
statuses = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  bodies = {}
  for line in io.lines(args[1] .. "/bodies-" .. id .. ".txt") do bodies[#bodies + 1] = line end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[2]
  wrk.path = args[3]
  exhausted = 0
end
function request()
  local body = bodies[counter]
  if body == nil then
    exhausted = 1
    return wrk.format("GET", "/healthz", {}, nil)
  end
  counter = counter + 1
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do merged[tostring(k)] = (merged[tostring(k)] or 0) + v end
    if t:get("exhausted") == 1 then merged["exhausted"] = 1 end
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%s": %d', k, v) end
  io.write(string.format('RESULT {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, table.concat(parts, ", ")))
end
"""

CEILING_APP = """
from fastapi import FastAPI
from node.bodies import LoanDrawdown
app = FastAPI()
@app.post("/v1/loans", status_code=201)
def loans(body: LoanDrawdown) -> dict[str, str]:
    return {"loan_id": body.loan_id}
"""


def wrk(
    folder: Path, token: str, path: str, seconds: float, connections: int, base: str
) -> dict[str, Any]:
    script = folder / "bench.lua"
    script.write_text(LUA)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
            "--",
            str(folder),
            token,
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def write_bodies(folder: Path, bodies: list[dict[str, Any]]) -> None:
    (folder / "bodies-0.txt").write_text("\n".join(json.dumps(b) for b in bodies) + "\n")


def start_server(
    args: list[str], port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    log = open(Path(tempfile.gettempdir()) / f"pfnode-bench-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=log, stderr=log, text=True, env=env or os.environ.copy())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start")


def seed_policy(base: str, insurer_token: str, today: Any) -> None:
    """The demo policy and buyer limit, with room for any number of drawdowns."""
    with httpx.Client(
        base_url=base, timeout=30, headers={"Authorization": f"Bearer {insurer_token}"}
    ) as c:
        policy = demo.policy_body(today)
        policy["max_liability"] = "900000000000.00"
        c.post("/v1/policies", json=policy).raise_for_status()
        limit = demo.limit_body(today)
        limit["amount"] = "900000000000.00"
        c.post("/v1/policies/SINO-2026-0001/limits", json=limit).raise_for_status()


def serve_node(data: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    """`pfnode serve` on `data` at `port`, healthy when this returns."""
    cmd = [
        sys.executable,
        "-m",
        "node.cli",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        *extra,
    ]
    return start_server(cmd, port)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def plan(count: int, today: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Notices for the clean drawdowns, and the drawdown stream (every 10th a duplicate)."""
    notices: list[dict[str, Any]] = []
    drawdowns: list[dict[str, Any]] = []
    originals: list[dict[str, Any]] = []
    for i in range(count):
        if i % 10 == 9 and len(originals) > 600:
            j = len(originals) - 600 + (i % 97)  # a drawdown committed long before
            body = dict(originals[j])
            body["loan_id"] = f"D{i}"
            drawdowns.append(body)
            continue
        rec = demo.receivable(today, f"INV-{i}", f"BL-{i}")
        rec["shipment"] = {**rec["shipment"], "voyage": f"V{i}"}
        rec["amount"] = f"{2000 + i}.00"  # distinct receivables: no K4 (same amount) match
        notice = demo.notice_body(today, f"CN-{i}", "BANK-A", rec)
        notice.update(declared_amount=rec["amount"], effective_limit=rec["amount"])
        notices.append(notice)
        body = demo.drawdown_body(today, f"L{i}", f"CN-{i}", rec)
        body["amount"] = "1000.00"
        drawdowns.append(body)
        originals.append(body)
    return notices, drawdowns, len(originals)


class FlagProbe(threading.Thread):
    """Sends a duplicate every 50 ms; times request -> flag on the regulator's stream."""

    def __init__(self, base: str, tokens: dict[str, str], body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.base, self.tokens, self.body = base, tokens, body
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.listening = threading.Event()

    def listen(self) -> None:
        listener = demo.FlagListener(self.base, self.tokens["REGULATOR"])
        listener.start()
        listener.ready.wait(5)
        self.listening.set()
        while not (self.stop.is_set() and not self.sent):
            try:
                at, flag = listener.arrivals.get(timeout=0.5)
            except queue.Empty:
                if not listener.is_alive():
                    return  # the node stopped
                continue
            start = self.sent.pop(flag.get("entry_hash", ""), None)
            if start is not None:
                self.latencies.append((at - start) * 1000)

    def run(self) -> None:
        threading.Thread(target=self.listen, daemon=True).start()
        self.listening.wait(5)
        client = httpx.Client(
            base_url=self.base,
            timeout=10,
            headers={"Authorization": f"Bearer {self.tokens['BANK-A']}"},
        )
        n = 0
        while not self.stop.is_set():
            body = {**self.body, "loan_id": f"P{n}"}
            n += 1
            start = time.perf_counter()
            r = client.post("/v1/loans", json=body)
            if r.status_code == 409:
                self.sent[r.json()["receipt"]["entry_hash"]] = start
            time.sleep(0.05)


def audit(url: str) -> dict[str, int]:
    """Read the ledger back: duplicates flagged, clean drawdowns not."""
    counts = {"clean": 0, "clean_flagged": 0, "dup": 0, "dup_flagged": 0}
    with Ledger.open(url) as ledger:
        for block in ledger.iter_blocks():
            for entry, receipt in zip(block.entries, block.receipts, strict=True):
                if entry.type != "loan.drawdown":
                    continue
                kind = str(entry.body["loan_id"])[0]
                codes = {f["code"] for f in receipt["flags"]}
                if kind == "L":
                    counts["clean"] += 1
                    counts["clean_flagged"] += bool(codes)
                elif kind == "D":
                    counts["dup"] += 1
                    counts["dup_flagged"] += "DUPLICATE_FINANCING" in codes
    return counts


def run_api(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("pfnode bench api needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    from node.demo import free_port
    from node.genesis import init_demo

    today = datetime.now(UTC).date()
    print(
        f"pfnode bench api: {args.seconds}s of drawdowns (90% clean, 10% duplicates), "
        f"{args.connections} connections, wrk -t1"
    )
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="pfnode-bench-api-") as tmp:
        folder = Path(tmp)
        data = folder / "data"
        init_demo(data, args.db, datetime.now(UTC))
        tokens = json.loads((data / "demo-tokens.json").read_text())
        notices, drawdowns, _clean = plan(int(args.rate * args.seconds), today)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--port", str(port)]
        if args.db:
            cmd += ["--db", args.db]
        node = start_server(cmd, port)
        try:
            seed_policy(base, tokens["INSURER"], today)
            write_bodies(folder, notices)
            t = time.perf_counter()
            setup = wrk(
                folder,
                tokens["INSURER"],
                "/v1/coverage-notices",
                max(5.0, len(notices) / 500),
                32,
                base,
            )
            print(
                f"  set-up: {setup['statuses'].get('201', 0)} coverage notices in "
                f"{time.perf_counter() - t:.1f} s"
            )
            probe_body = dict(drawdowns[0], loan_id="P")
            write_bodies(folder, drawdowns)
            probe = FlagProbe(base, tokens, probe_body)
            probe.start()
            result = wrk(
                folder, tokens["BANK-A"], "/v1/loans", args.seconds, args.connections, base
            )
            probe.stop.set()
            probe.join(10)
        finally:
            stop(node)
        url = args.db or f"sqlite:///{data / 'ledger.db'}"
        counts = audit(url)
        cport = free_port()
        ceiling_dir = folder / "ceiling"
        ceiling_dir.mkdir()
        (ceiling_dir / "ceiling_app.py").write_text(CEILING_APP)
        env = {**os.environ, "PYTHONPATH": f"{ceiling_dir}:{os.environ.get('PYTHONPATH', '')}"}
        ceiling_proc = start_server(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ceiling_app:app",
                "--port",
                str(cport),
                "--log-level",
                "warning",
            ],
            cport,
            env,
        )
        try:
            ceiling = wrk(
                folder,
                "x",
                "/v1/loans",
                args.seconds,
                args.connections,
                f"http://127.0.0.1:{cport}",
            )
        finally:
            stop(ceiling_proc)
    answered = sum(v for k, v in result["statuses"].items() if k.isdigit())
    rate = answered / result["seconds"]
    ceiling_rate = ceiling["requests"] / ceiling["seconds"]
    lat = probe.latencies
    print("ceiling (same run): bare FastAPI validation of the same bodies")
    print(
        f"  {ceiling_rate:10,.0f} req/s   p50 {ceiling['p50_ms']:.1f} ms   "
        f"p99 {ceiling['p99_ms']:.1f} ms"
    )
    print("pfnode (SQLite)" if not args.db else f"pfnode ({args.db.split(':')[0]})")
    print(
        f"  {rate:10,.0f} drawdowns/s  ({rate / ceiling_rate:.2f} x the ceiling; goal >= 2,000/s)"
        f"   p50 {result['p50_ms']:.1f} ms   p99 {result['p99_ms']:.1f} ms (goal <= 30 ms)"
    )
    print(
        f"  statuses {result['statuses']}"
        + ("  (body pool exhausted: raise --rate)" if "exhausted" in result["statuses"] else "")
    )
    if lat:
        p99 = statistics.quantiles(lat, n=100)[98] if len(lat) >= 2 else lat[0]
        print(
            f"  flag latency (request -> stream) over {len(lat)} probes: median "
            f"{statistics.median(lat):.1f} ms, p99 {p99:.1f} ms (goal p99 <= 25 ms)"
        )
    print(
        f"  duplicates flagged: {counts['dup_flagged']} of {counts['dup']}; "
        f"clean drawdowns flagged: {counts['clean_flagged']} of {counts['clean']}"
    )
    return 0
