"""The audit report's JSON carries proofs that `pfnode verify --audit` checks offline."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chain.errors import VerificationError
from node.audit import verify_audit
from node.cli import main
from tests.unit.api.story import TODAY, Story


async def _report(story: Story) -> dict[str, Any]:
    """The day's report, once the sequencer's periodic checkpoint covers the story."""
    await story.duplicate_story()
    size = await story.log_size()
    for _ in range(100):
        r = await story.get("REGULATOR", "/v1/audit/report", **{"from": TODAY.isoformat(),
                                                                "to": TODAY.isoformat()})  # fmt: skip
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()
        if (report["proofs"].get("size") or 0) >= size:
            return report
        await asyncio.sleep(0.1)
    raise AssertionError("no checkpoint covered the story within 10 s")


def _genesis(story: Story) -> dict[str, Any]:
    genesis: dict[str, Any] = json.loads((story.data / "genesis.json").read_text())
    return genesis


async def test_a_report_verifies_and_every_cited_entry_is_proved(story: Story) -> None:
    report = await _report(story)
    check = verify_audit(report, _genesis(story))
    cited = {r["entry_hash"] for r in report["loans"] + report["flags"]}
    assert cited and check.unproved == [] and check.proved == len(cited)


async def test_forged_reports_are_refused(story: Story) -> None:
    report = await _report(story)
    genesis = _genesis(story)

    flipped = copy.deepcopy(report)
    h = flipped["proofs"]["entries"][0]["proof"]
    if h:
        h[0] = ("0" if h[0][0] != "0" else "1") + h[0][1:]
    else:
        flipped["proofs"]["entries"][0]["index"] += 1
    with pytest.raises(VerificationError):
        verify_audit(flipped, genesis)

    body = copy.deepcopy(report)
    body["proofs"]["entries"][0]["entry"]["entry"]["body"]["amount"] = "1.00"
    with pytest.raises(VerificationError, match="hash"):
        verify_audit(body, genesis)

    note = copy.deepcopy(report)
    lines = note["proofs"]["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)  # another size under the same signature
    note["proofs"]["checkpoint"] = "\n".join(lines)
    with pytest.raises(VerificationError, match="checkpoint"):
        verify_audit(note, genesis)


async def test_verify_audit_command(
    story: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await _report(story)
    good, bad = tmp_path / "audit.json", tmp_path / "forged.json"
    good.write_text(json.dumps(report))
    report["proofs"]["entries"][0]["entry_hash"] = "00" * 32
    bad.write_text(json.dumps(report))
    assert main(["verify", "--data", str(story.data), "--audit", str(good)]) == 0
    assert "OK audit report" in capsys.readouterr().out
    assert main(["verify", "--data", str(story.data), "--audit", str(bad)]) == 1
    assert "BROKEN audit report" in capsys.readouterr().err
