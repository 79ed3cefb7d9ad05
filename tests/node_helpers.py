"""A demo node in a temporary directory, driven in-process (no HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node import demo
from node.clock import FakeClock
from node.genesis import init_demo
from node.service import Caller, Node, NodeConfig

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
INSURER = Caller("INSURER", "insurer")
BANK_A = Caller("BANK-A", "bank")
BANK_B = Caller("BANK-B", "bank")
REGULATOR = Caller("REGULATOR", "regulator")


@asynccontextmanager
async def running_node(data: Path, db_url: str | None = None, **config: Any) -> AsyncIterator[Node]:
    if not (data / "genesis.json").exists():
        init_demo(data, db_url, NOW)
    node = Node(
        NodeConfig(data, db_url, max_block_ms=config.pop("max_block_ms", 2), **config),
        FakeClock(NOW),
    )
    await node.start()
    try:
        yield node
    finally:
        node.close()


async def issue_notice(
    node: Node,
    notice_no: str = "CN-1",
    bank: str = "BANK-A",
    invoice: str = "INV-1",
    bl: str = "BL-1",
) -> dict[str, Any]:
    """Policy and limit (once), then a coverage notice; returns the receivable."""
    if not node.sequencer.state.policies:
        await node.submit(INSURER, "policy.registered", demo.policy_body(TODAY))
        await node.submit(INSURER, "limit.approved", demo.limit_body(TODAY))
    rec = demo.receivable(TODAY, invoice, bl)
    await node.submit(INSURER, "coverage.issued", demo.notice_body(TODAY, notice_no, bank, rec))
    return rec
