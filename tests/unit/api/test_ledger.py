"""Ledger reads: checkpoint, blocks, entries with proofs, consistency proofs."""

from __future__ import annotations

import asyncio
import base64
import time

from chain.merkle import verify_consistency, verify_inclusion
from tests.unit.api.story import Story

WAIT_S = 5.0


async def checkpoint_at(story: Story, size: int) -> list[str]:
    """The checkpoint note once it covers ``size`` entries (the sequencer writes one a second)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        r = await story.get("BANK-A", "/v1/ledger/checkpoint")
        if r.status_code == 200 and int(r.text.split("\n")[1]) == size:
            assert r.headers["content-type"].startswith("text/plain")
            return r.text.split("\n")
        assert time.monotonic() < deadline, f"no checkpoint at size {size}: {r.text}"
        await asyncio.sleep(0.05)


async def test_checkpoint_is_a_signed_note_matching_the_log(story: Story) -> None:
    await story.duplicate_story()
    size = await story.log_size()
    lines = await checkpoint_at(story, size)
    assert lines[0] == "pfnode.demo/ledger"
    root = base64.b64decode(lines[2])
    assert any(line.startswith("\u2014 ") for line in lines[3:])  # a signature line
    proof = (await story.get("BANK-B", "/v1/ledger/consistency", **{"from": 1, "to": size})).json()
    assert bytes.fromhex(proof["root2"]) == root


async def test_consistency_proof_verifies(story: Story) -> None:
    await story.duplicate_story()
    size = await story.log_size()
    r = await story.get("INSURER", "/v1/ledger/consistency", **{"from": 3, "to": size})
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["from"], p["to"]) == (3, size)
    verify_consistency(
        3,
        size,
        bytes.fromhex(p["root1"]),
        bytes.fromhex(p["root2"]),
        [bytes.fromhex(h) for h in p["hashes"]],
    )


async def test_invalid_consistency_range(story: Story) -> None:
    await story.insure()
    r = await story.get("REGULATOR", "/v1/ledger/consistency", **{"from": 2, "to": 99})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["to"]


async def test_entry_with_its_inclusion_proof_verifies(story: Story) -> None:
    first, _ = await story.duplicate_story()
    entry = (await story.get("BANK-A", f"/v1/ledger/entries/{first['entry_hash']}")).json()
    assert entry["index"] == first["index"]
    assert entry["height"] == first["height"]
    assert entry["receipt"]["status"] == "accepted"
    proof = entry["proof"]
    verify_inclusion(
        bytes.fromhex(entry["entry_hash"]),
        entry["index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["log_root"]),
    )


async def test_blocks_page_by_height(story: Story) -> None:
    await story.duplicate_story()
    blocks = (await story.get("REGULATOR", "/v1/ledger/blocks", **{"from": 1, "limit": 2})).json()
    assert [b["header"]["height"] for b in blocks] == [1, 2]
    head = blocks[-1]["header"]
    one = (await story.get("REGULATOR", f"/v1/ledger/blocks/{head['height']}")).json()
    assert one["header"] == head


async def test_refuses_unknown_block_with_404(story: Story) -> None:
    r = await story.get("BANK-A", "/v1/ledger/blocks/999")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_refuses_unknown_entry_with_404(story: Story) -> None:
    r = await story.get("BANK-A", "/v1/ledger/entries/" + "00" * 32)
    assert r.status_code == 404


async def test_refuses_ledger_reads_without_a_token(story: Story) -> None:
    for path in ("/v1/ledger/checkpoint", "/v1/ledger/blocks", "/v1/ledger/blocks/0"):
        assert (await story.get(None, path)).status_code == 401
