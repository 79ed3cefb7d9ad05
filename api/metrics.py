"""Prometheus metrics of one app, in its own registry (two apps never share counters).

- ``pfnode_http_requests_total{method, route, status}``: every answered request, by
  route template (``/v1/loans/{loan_id}``; ``unmatched`` for unknown paths).
- ``pfnode_entries_total{type, status}``: entries this API wrote (resubmissions excluded).
- ``pfnode_flags_total{code}``: flags on those entries' receipts.
- ``pfnode_write_seconds``: latency of a write, from submit to durable receipt.
- ``pfnode_ledger_height``, ``pfnode_ledger_size``, ``pfnode_sequencer_queue``: set from
  ``Node.health()`` at each scrape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pfnode_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.entries = Counter(
            "pfnode_entries",
            "Entries written through the API",
            ["type", "status"],
            registry=self.registry,
        )
        self.flags = Counter(
            "pfnode_flags",
            "Flags raised on entries written through the API",
            ["code"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "pfnode_write_seconds",
            "Write latency until the receipt is durable",
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.height = Gauge(
            "pfnode_ledger_height", "Height of the last block", registry=self.registry
        )
        self.size = Gauge("pfnode_ledger_size", "Entries on the log", registry=self.registry)
        self.queue = Gauge(
            "pfnode_sequencer_queue", "Writes waiting for the sequencer", registry=self.registry
        )

    def observe_write(self, receipt: Mapping[str, Any], seconds: float) -> None:
        self.write_seconds.observe(seconds)
        if receipt.get("duplicate"):
            return
        self.entries.labels(receipt["type"], receipt["status"]).inc()
        for flag in receipt.get("flags", []):
            self.flags.labels(flag["code"]).inc()

    def render(self, health: Mapping[str, Any]) -> bytes:
        height = health.get("height")
        self.height.set(-1 if height is None else float(height))
        self.size.set(health.get("log_size", 0))
        self.queue.set(health.get("queue", 0))
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting answered requests by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()


def elapsed(start: float) -> float:
    return time.perf_counter() - start
