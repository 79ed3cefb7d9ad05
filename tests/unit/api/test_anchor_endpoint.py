"""GET /v1/ledger/anchor: the latest checkpoint aggregated for the EVM anchor, for any member."""

from __future__ import annotations

from chain.merkle import root_at
from node.anchoring import Aggregated, AnchorStore
from tests.unit.api.story import Story

SIGNATURE = b"\x01" * 96  # the endpoint shows the aggregate's signers, not its bytes


def store_aggregate(story: Story, size: int, signers: tuple[str, ...]) -> bytes:
    """As the sequencer's anchorer does after aggregating: size, log root, signer set."""
    root = root_at(size, story.node.ledger)
    AnchorStore(story.node.ledger.engine).save(
        Aggregated(size, root, signers, SIGNATURE), "2026-11-21T12:00:00.000Z"
    )
    return root


async def test_refuses_when_nothing_was_aggregated(story: Story) -> None:
    await story.insure()
    r = await story.get("REGULATOR", "/v1/ledger/anchor")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["resource"] == "anchor"


async def test_shows_the_latest_aggregate_pending_then_mined(story: Story) -> None:
    await story.duplicate_story()
    store = AnchorStore(story.node.ledger.engine)
    store_aggregate(story, 3, ("REGULATOR", "BANK-A"))
    store.mark_anchored(3, "0x" + "ab" * 32, 41, 31337, "0x" + "cd" * 20)
    root = store_aggregate(story, 6, ("REGULATOR", "BANK-A", "INSURER"))

    pending = (await story.get("REGULATOR", "/v1/ledger/anchor")).json()
    assert pending == {
        "size": 6,
        "root": root.hex(),
        "signers": ["REGULATOR", "BANK-A", "INSURER"],
        "tx_hash": None,
        "block_number": None,
    }

    store.mark_anchored(6, "0x" + "ef" * 32, 42, 31337, "0x" + "cd" * 20)
    mined = (await story.get("BANK-B", "/v1/ledger/anchor")).json()
    assert (mined["size"], mined["tx_hash"], mined["block_number"]) == (6, "0x" + "ef" * 32, 42)


async def test_root_is_the_log_root_at_that_size(story: Story) -> None:
    await story.duplicate_story()
    size = await story.log_size()
    store_aggregate(story, size, ("REGULATOR", "BANK-B"))
    anchor = (await story.get("INSURER", "/v1/ledger/anchor")).json()
    consistency = (
        await story.get("INSURER", "/v1/ledger/consistency", **{"from": 1, "to": size})
    ).json()
    assert anchor["root"] == consistency["root2"]


async def test_refuses_without_a_token(story: Story) -> None:
    r = await story.get(None, "/v1/ledger/anchor")
    assert r.status_code == 401
