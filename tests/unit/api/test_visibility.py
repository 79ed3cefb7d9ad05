"""Who sees what, on every read path, for BANK-A, BANK-B, INSURER and REGULATOR.

The world: BANK-A's accepted loan A-LOAN-1 on CN-1; BANK-B's rejected attempt on the
same receivable (DUPLICATE_FINANCING); BANK-B's own accepted loan B-LOAN-2 on CN-3.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chain.entries import decode_signed_entry
from chain.merkle import root_from_leaf_hashes
from tests.unit.api.story import Story, drawdown_body, running_story

ROLES = ("BANK-A", "BANK-B", "INSURER", "REGULATOR")
REGULATOR_ONLY: tuple[tuple[str, dict[str, str]], ...] = (
    ("/v1/receivables/K3:CN-1/history", {}),
    ("/v1/exposures", {"by": "bank"}),
    ("/v1/audit/report", {"from": "2026-11-20", "to": "2026-11-21"}),
    ("/v1/audit/report", {"from": "2026-11-20", "to": "2026-11-21", "format": "csv"}),
)


@dataclass
class World:
    story: Story
    a_loan: dict[str, Any]  # BANK-A's accepted drawdown receipt
    b_rejected: dict[str, Any]  # BANK-B's rejected drawdown receipt
    b_loan: dict[str, Any]  # BANK-B's accepted drawdown receipt


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_story(tmp_path) as story:
        a_loan, rejected = await story.duplicate_story()
        assert rejected.status_code == 409
        rec3 = await story.insure("CN-3", "BANK-B", invoice="INV-3", bl="BL-3")
        b_loan = await story.ok("BANK-B", "/v1/loans", drawdown_body("B-LOAN-2", "CN-3", rec3))
        yield World(story, a_loan, rejected.json()["receipt"], b_loan)


async def read(world: World, org: str, path: str, **params: Any) -> Any:
    r = await world.story.get(org, path, **params)
    assert r.status_code == 200, (org, path, r.text)
    return r.json()


async def status(world: World, org: str, path: str, **params: Any) -> int:
    return (await world.story.get(org, path, **params)).status_code


async def test_loans_list_per_role(world: World) -> None:
    seen = {org: [loan["loan_id"] for loan in await read(world, org, "/v1/loans")] for org in ROLES}
    assert seen == {
        "BANK-A": ["A-LOAN-1"],
        "BANK-B": ["B-LOAN-2"],
        "INSURER": ["A-LOAN-1", "B-LOAN-2"],
        "REGULATOR": ["A-LOAN-1", "B-LOAN-2"],
    }


async def test_a_bank_never_reads_another_banks_loan(world: World) -> None:
    assert await status(world, "BANK-B", "/v1/loans/A-LOAN-1") == 404
    assert await status(world, "BANK-A", "/v1/loans/B-LOAN-2") == 404
    for org in ("BANK-A", "INSURER", "REGULATOR"):
        assert (await read(world, org, "/v1/loans/A-LOAN-1"))["bank"] == "BANK-A"


async def test_a_banks_flags_have_no_related_hashes_and_name_no_other_bank(world: World) -> None:
    assert await read(world, "BANK-A", "/v1/flags") == []  # the flag is on BANK-B's entry
    flags = await read(world, "BANK-B", "/v1/flags")
    assert "DUPLICATE_FINANCING" in [f["code"] for f in flags]
    for flag in flags:
        assert flag["related"] == []
    text = json.dumps(flags)
    assert "BANK-A" not in text
    assert world.a_loan["entry_hash"] not in text


async def test_the_regulator_sees_who_and_what_a_flag_relates_to(world: World) -> None:
    flags = await read(world, "REGULATOR", "/v1/flags")
    duplicate = next(f for f in flags if f["code"] == "DUPLICATE_FINANCING")
    assert duplicate["related"] == [world.a_loan["entry_hash"]]
    assert duplicate["bank"] == "BANK-B"
    assert await read(world, "REGULATOR", "/v1/flags", status="dismissed") == []
    since = await read(world, "REGULATOR", "/v1/flags", since=world.b_rejected["index"])
    assert {f["index"] for f in since} <= {world.b_loan["index"]}  # only B-LOAN-2's warnings


async def test_the_insurer_sees_the_flags_on_its_notices(world: World) -> None:
    codes = [f["code"] for f in await read(world, "INSURER", "/v1/flags")]
    assert "DUPLICATE_FINANCING" in codes


async def test_entries_per_role(world: World) -> None:
    a_hash = world.a_loan["entry_hash"]
    b_hash = world.b_rejected["entry_hash"]
    assert await status(world, "BANK-B", f"/v1/ledger/entries/{a_hash}") == 404
    assert await status(world, "BANK-A", f"/v1/ledger/entries/{b_hash}") == 404
    for org in ("BANK-A", "INSURER", "REGULATOR"):
        entry = await read(world, org, f"/v1/ledger/entries/{a_hash}")
        assert entry["entry_hash"] == a_hash
        assert entry["entry"]["entry"]["org"] == "BANK-A"
    own = await read(world, "BANK-B", f"/v1/ledger/entries/{b_hash}")
    assert own["receipt"]["status"] == "rejected"
    assert all(f["related"] == [] for f in own["receipt"]["flags"])
    assert "BANK-A" not in json.dumps(own)


async def test_a_block_withholds_what_the_caller_may_not_read(world: World) -> None:
    height = world.a_loan["height"]
    a_hash = world.a_loan["entry_hash"]
    for org in ROLES:
        block = await read(world, org, f"/v1/ledger/blocks/{height}")
        leaves = []
        for entry in block["entries"]:
            if entry.get("withheld"):
                leaves.append(bytes.fromhex(entry["entry_hash"]))
            else:
                leaves.append(decode_signed_entry(entry).hash)
        root = root_from_leaf_hashes(leaves)
        assert root.hex() == block["header"]["entries_root"], org
        shown = {e["entry_hash"] for e in block["entries"] if e.get("withheld")}
        if org == "BANK-B":
            assert a_hash in shown
            assert "BANK-A" not in json.dumps(block["entries"])
        else:
            assert a_hash not in shown


async def test_a_banks_block_list_never_shows_another_banks_entry(world: World) -> None:
    blocks = await read(world, "BANK-B", "/v1/ledger/blocks", limit=100)
    assert [b["header"]["height"] for b in blocks] == list(range(len(blocks)))
    full = [e for b in blocks for e in b["entries"] if "entry" in e]
    assert all(e["entry"]["org"] != "BANK-A" for e in full)
    assert any(
        e.get("entry_hash") == world.a_loan["entry_hash"] for b in blocks for e in b["entries"]
    )


@pytest.mark.parametrize(("path", "params"), REGULATOR_ONLY)
async def test_refuses_regulator_reads_to_others(
    world: World, path: str, params: dict[str, str]
) -> None:
    for org in ("BANK-A", "BANK-B", "INSURER"):
        r = await world.story.get(org, path, **params)
        assert r.status_code == 403, (org, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert await status(world, "REGULATOR", path, **params) == 200


async def test_receivable_history_names_every_attempt(world: World) -> None:
    history = await read(world, "REGULATOR", "/v1/receivables/K2:BL-1/history")
    hashes = [h["entry_hash"] for h in history]
    assert world.a_loan["entry_hash"] in hashes
    assert world.b_rejected["entry_hash"] in hashes
    assert [h["index"] for h in history] == sorted(h["index"] for h in history)


async def test_exposures_by_bank_count_accepted_loans_only(world: World) -> None:
    rows = await read(world, "REGULATOR", "/v1/exposures", by="bank")
    assert rows == [
        {"bank": "BANK-A", "currency": "USD", "outstanding": "200000.00", "loans": 1},
        {"bank": "BANK-B", "currency": "USD", "outstanding": "200000.00", "loans": 1},
    ]
    by_country = await read(world, "REGULATOR", "/v1/exposures", by="country")
    assert by_country == [
        {"country": "DE", "currency": "USD", "outstanding": "400000.00", "loans": 2}
    ]


async def test_audit_report_json_and_csv(world: World) -> None:
    window = {"from": "2026-11-21", "to": "2026-11-21"}
    report = await read(world, "REGULATOR", "/v1/audit/report", **window)
    assert report["from"] == report["to"] == "2026-11-21"
    assert [loan["loan_id"] for loan in report["loans"]] == ["A-LOAN-1", "B-LOAN-2"]
    assert "DUPLICATE_FINANCING" in [f["code"] for f in report["flags"]]

    r = await world.story.get("REGULATOR", "/v1/audit/report", **window, format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("record,")
    records = [line.split(",", 1)[0] for line in lines[1:]]
    assert records.count("loan") == 2
    assert records.count("flag") == len(report["flags"])

    empty = await read(
        world, "REGULATOR", "/v1/audit/report", **{"from": "2026-01-01", "to": "2026-01-31"}
    )
    assert empty["loans"] == [] and empty["flags"] == []
