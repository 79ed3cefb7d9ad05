"""`pfnode bench alerts`: webhook delivery latency of alert subscriptions under drawdown load.

One run on one machine, the node a `pfnode serve` subprocess on a temporary demo directory:

1. set-up: the insurer registers a policy, a buyer limit and one coverage notice per
   drawdown (a Python client, 8 threads), then rates the buyer red; BANK-A subscribes to the buyer with a webhook to a receiver in this process
   (``http.server``, keep-alive, every signature checked with node.alerts.verify_webhook);
2. load: BANK-A's drawdowns against the red buyer for ``--seconds``, through wrk when it is
   installed, else a Python client (each is accepted with a BUYER_RED warning flag, i.e. one
   alert for BANK-A's subscription);
3. idle: after the load has drained, 100 single drawdowns 20 ms apart.

Latency is the time from the entry's timestamp (signed when the node takes the request,
before its block commits) to the webhook's arrival at the receiver, on the same machine's
clock; the node's own record (``latency_ms``: delivered_at - alert ts, taken when the 2xx
came back) is printed beside it. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from chain.entries import parse_ts
from chain.storage import make_engine
from node import demo
from node.alerts import T_DELIVERIES, ForgedWebhook, verify_webhook
from node.bench import machine
from node.bench_api import seed_policy, start_server, stop, write_bodies, wrk

BUYER = "DE-BUYER-042"
IDLE_PROBES = 100


class Receiver:
    """The subscriber's webhook endpoint: records (arrival, alert) and checks signatures."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.forged = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.time()
                receiver.record(at, body, dict(self.headers.items()))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, at: float, body: bytes, headers: dict[str, str]) -> None:
        try:
            verify_webhook(self.secret, body, headers)
        except ForgedWebhook:
            with self.lock:
                self.forged += 1
            return
        with self.lock:
            self.arrivals.append((at, json.loads(body)))

    def last_arrival(self) -> float:
        with self.lock:
            return self.arrivals[-1][0] if self.arrivals else float("nan")

    def count(self, kind: str = "flag") -> int:
        with self.lock:
            return sum(1 for _, a in self.arrivals if a["kind"] == kind)

    def latencies(self, since: int = 0, kind: str = "flag") -> list[float]:
        """Milliseconds from each alert's ts to its arrival (arrivals from ``since`` on)."""
        with self.lock:
            got = self.arrivals[since:]
        return [(at - parse_ts(a["ts"]).timestamp()) * 1000 for at, a in got if a["kind"] == kind]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def plan(count: int, today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One coverage notice per drawdown, distinct receivables (no duplicate flags)."""
    notices, drawdowns = [], []
    for i in range(count):
        rec = demo.receivable(today, f"INV-{i}", f"BL-{i}")
        rec["shipment"] = {**rec["shipment"], "voyage": f"V{i}"}
        rec["amount"] = f"{2000 + i}.00"
        notice = demo.notice_body(today, f"CN-{i}", "BANK-A", rec)
        notice.update(declared_amount=rec["amount"], effective_limit=rec["amount"])
        notices.append(notice)
        body = demo.drawdown_body(today, f"L{i}", f"CN-{i}", rec)
        body["amount"] = "1000.00"
        drawdowns.append(body)
    return notices, drawdowns


def python_load(
    base: str, token: str, path: str, bodies: list[dict[str, Any]], seconds: float, threads: int
) -> dict[str, Any]:
    """wrk's result, from a Python client: POST the bodies until they or the time run out."""
    lock = threading.Lock()
    cursor = iter(bodies)
    statuses: dict[str, int] = {}
    times: list[float] = []
    start = time.perf_counter()

    def worker() -> None:
        with httpx.Client(
            base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            while time.perf_counter() - start < seconds:
                with lock:
                    body = next(cursor, None)
                if body is None:
                    return
                t = time.perf_counter()
                code = str(client.post(path, json=body).status_code)
                with lock:
                    times.append((time.perf_counter() - t) * 1000)
                    statuses[code] = statuses.get(code, 0) + 1

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(worker)
    elapsed = time.perf_counter() - start
    return {
        "requests": len(times),
        "seconds": elapsed,
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "statuses": statuses,
    }


def percentile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def post_all(
    folder: Path,
    base: str,
    token: str,
    path: str,
    bodies: list[dict[str, Any]],
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    if shutil.which("wrk"):
        write_bodies(folder, bodies)
        return wrk(folder, token, path, seconds, connections, base)
    return python_load(base, token, path, bodies, seconds, min(connections, 16))


def wait_for(done: Callable[[], bool], seconds: float) -> float:
    """Wait until ``done()`` (at most ``seconds``); returns the seconds waited."""
    start = time.monotonic()
    while not done() and time.monotonic() - start < seconds:
        time.sleep(0.05)
    return time.monotonic() - start


def wait_quiet(hook: Receiver, at_least: int, quiet: float, seconds: float) -> None:
    """Wait until ``at_least`` alerts arrived and none for ``quiet`` s (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = hook.count()
        if now != seen:
            seen, since = now, time.monotonic()
        elif now >= at_least and time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def node_figures(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(T_DELIVERIES)).mappings().all()
    finally:
        engine.dispose()
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    latencies = [float(r["latency_ms"]) for r in rows if r["latency_ms"] is not None]
    return {
        "statuses": by_status,
        "retried": sum(1 for r in rows if r["attempts"] > 1),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def show(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label}: none received"
    return (
        f"  {label} ({len(values)} alerts): p50 {percentile(values, 50):.1f} ms   "
        f"p99 {percentile(values, 99):.1f} ms   max {max(values):.1f} ms"
    )


def run_alerts(args: argparse.Namespace) -> int:
    from node.demo import free_port
    from node.genesis import init_demo

    today = datetime.now(UTC).date()
    client = "wrk -t1" if shutil.which("wrk") else "a Python client (wrk not installed)"
    print(
        f"pfnode bench alerts: {args.seconds}s of BANK-A drawdowns against a red buyer (each "
        f"a BUYER_RED alert to BANK-A's webhook), {args.connections} connections, {client}"
    )
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="pfnode-bench-alerts-") as tmp, Receiver() as hook:
        folder = Path(tmp)
        data = folder / "data"
        init_demo(data, args.db, datetime.now(UTC))
        tokens = json.loads((data / "demo-tokens.json").read_text())
        count = int(args.rate * args.seconds)
        notices, drawdowns = plan(count + IDLE_PROBES, today)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--port", str(port)]
        if args.db:
            cmd += ["--db", args.db]
        node = start_server(cmd, port)
        try:
            seed_policy(base, tokens["INSURER"], today)
            t = time.perf_counter()
            setup = python_load(
                base, tokens["INSURER"], "/v1/coverage-notices", notices, float("inf"), 8
            )
            print(
                f"  set-up: {setup['statuses'].get('201', 0)} coverage notices in "
                f"{time.perf_counter() - t:.1f} s"
            )
            with httpx.Client(base_url=base, timeout=30) as c:
                insurer = {"Authorization": f"Bearer {tokens['INSURER']}"}
                rating = {
                    "buyer_code": BUYER,
                    "buyer_country": "DE",
                    "light": "red",
                    "reasons": ["PAYMENT_DEFAULT"],
                }
                c.post("/v1/buyer-ratings", json=rating, headers=insurer).raise_for_status()
                sub = c.post(
                    "/v1/subscriptions",
                    json={"kind": "buyer", "value": BUYER, "webhook_url": hook.url},
                    headers={"Authorization": f"Bearer {tokens['BANK-A']}"},
                )
                sub.raise_for_status()
                hook.secret = sub.json()["secret"]
            load = post_all(
                folder,
                base,
                tokens["BANK-A"],
                "/v1/loans",
                drawdowns[:count],
                args.seconds,
                args.connections,
            )
            ended = time.time()
            accepted = load["statuses"].get("201", 0)  # wrk leaves out answers in flight
            wait_quiet(hook, accepted, quiet=2.0, seconds=120)
            drained = hook.last_arrival() - ended
            under_load = hook.latencies()
            mark, during = len(hook.arrivals), hook.count()
            requests = idle_probe(base, tokens["BANK-A"], drawdowns[count:], hook, during)
            idle = hook.latencies(since=mark)
        finally:
            stop(node)
        figures = node_figures(args.db or f"sqlite:///{data / 'ledger.db'}")
    rate = accepted / load["seconds"]
    print("pfnode (SQLite)" if not args.db else f"pfnode ({args.db.split(':')[0]})")
    print(
        f"  load: {rate:,.0f} drawdowns/s accepted (each a BUYER_RED alert)   request p50 "
        f"{load['p50_ms']:.1f} ms   p99 {load['p99_ms']:.1f} ms   statuses {load['statuses']}"
    )
    print(
        f"  webhooks received: {during} flag alerts under load, {hook.count() - during} idle; "
        f"forged {hook.forged}; the last of the load {drained:.1f} s after it ended"
    )
    print("webhook delivery latency, entry ts (signed as the node takes the request) -> received")
    print(show("under load", under_load))
    print(show(f"idle, {IDLE_PROBES} drawdowns 20 ms apart", idle))
    print(
        f"    (those drawdowns' own requests, to their 201 after the commit: p50 "
        f"{percentile(requests, 50):.1f} ms   p99 {percentile(requests, 99):.1f} ms)"
    )
    print(
        f"  as the node records it, every delivery (delivered_at - alert ts): p50 {figures['p50']:.1f} ms   "
        f"p99 {figures['p99']:.1f} ms; deliveries {figures['statuses']}, "
        f"retried {figures['retried']}"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the machine)")
    return 0


def idle_probe(
    base: str, token: str, bodies: list[dict[str, Any]], hook: Receiver, before: int
) -> list[float]:
    """Single drawdowns 20 ms apart, each waited for at the receiver; returns the
    drawdowns' request times (ms), for comparison."""
    requests: list[float] = []
    with httpx.Client(
        base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        accepted = 0
        for body in bodies:
            start = time.perf_counter()
            if client.post("/v1/loans", json=body).status_code != 201:
                continue
            requests.append((time.perf_counter() - start) * 1000)
            accepted += 1
            wanted = before + accepted
            wait_for(lambda: hook.count() >= wanted, 10)  # noqa: B023 (called right here)
            time.sleep(0.02)
    return requests
