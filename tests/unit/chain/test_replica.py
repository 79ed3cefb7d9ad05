"""A follower's partial blocks: what it may see verifies; anything forged is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chain.blocks import genesis_hash
from chain.errors import VerificationError
from chain.keys import PublicKey
from chain.merkle import CompactRange, root_at
from chain.replica import verify_partial_block
from node import demo
from node.visibility import block_for
from tests.node_helpers import BANK_A, BANK_B, TODAY, issue_notice, running_node


async def bank_b_view(tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    async with running_node(tmp_path) as node:
        rec = await issue_notice(node)
        await node.submit(BANK_A, "loan.drawdown", demo.drawdown_body(TODAY, "A1", "CN-1", rec))
        await node.submit(BANK_B, "loan.drawdown", demo.drawdown_body(TODAY, "B1", "CN-1", rec))
        with node.ledger.engine.connect() as conn:
            blocks = [block_for(conn, "BANK-B", "bank", b) for b in node.ledger.iter_blocks()]
        return blocks, node.genesis


def replay(blocks: list[dict[str, Any]], genesis: dict[str, Any]) -> CompactRange:
    seq = genesis["sequencer"]
    producer = PublicKey.from_b64(seq["key_id"], seq["public_key"])
    edge = CompactRange()
    prev = genesis_hash(genesis)
    for height, data in enumerate(blocks):
        block = verify_partial_block(data, height, prev, producer, edge)
        edge.advance(len(block.hashes), block.nodes)
        prev = block.header.hash
    return edge


async def test_partial_blocks_verify_with_withheld_entries(tmp_path: Path) -> None:
    blocks, genesis = await bank_b_view(tmp_path)
    withheld = [e for b in blocks for e in b["entries"] if e.get("withheld")]
    assert withheld, "BANK-B must not see BANK-A's notice and drawdown"
    edge = replay(blocks, genesis)
    assert edge.size == 5
    assert root_at(5, edge) == bytes.fromhex(blocks[-1]["header"]["log_root"])


@pytest.mark.parametrize("forge", ["withheld_hash", "entry_body", "receipt_leaf", "signature",
                                   "reorder"])
async def test_refuses_forged_partial_blocks(tmp_path: Path, forge: str) -> None:
    blocks, genesis = await bank_b_view(tmp_path)
    forged = copy.deepcopy(blocks)
    if forge == "withheld_hash":
        height, offset = next((h, i) for h, b in enumerate(forged)
                              for i, e in enumerate(b["entries"]) if e.get("withheld"))
        entry = forged[height]["entries"][offset]
        entry["entry_hash"] = "00" + entry["entry_hash"][2:]
        forged[height]["receipts"][offset]["entry_hash"] = entry["entry_hash"]
    elif forge == "entry_body":
        height = next(h for h, b in enumerate(forged)
                      for e in b["entries"] if not e.get("withheld"))
        visible = next(e for e in forged[height]["entries"] if not e.get("withheld"))
        visible["entry"]["body"]["amount"] = "1.00"
    elif forge == "receipt_leaf":
        height = 0
        leaf = forged[0]["receipts"][0]["receipt_leaf"]
        forged[0]["receipts"][0]["receipt_leaf"] = ("0" if leaf[0] != "0" else "1") + leaf[1:]
    elif forge == "signature":
        height = 1
        sig = forged[1]["signature"]
        forged[1]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    else:
        height = 1
        forged[1], forged[2] = forged[2], forged[1]
    with pytest.raises(VerificationError) as info:
        replay(forged, genesis)
    assert info.value.height == height
