"""Anchoring end to end: ledger checkpoints, aggregated BLS signatures, the anchor contract.

The same tests run on eth-tester (py-evm in process: the embedded default) and on a real
Anvil process; `pfnode verify --anchored` is run as a command against Anvil.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.bundle import DatabaseSource
from contracts.anchor import AnchorChain, AnchorRefused
from contracts.anvil import AnvilProcess
from node import demo
from node.anchorer import AnchorConfig, Anchorer, block_roots, verify_anchored
from node.anchoring import AnchorStore, log_id_of, min_roles_of, validators_of
from node.migrations import upgrade
from tests.integration.cluster_helpers import ServeProcess, tokens
from tests.integration.test_cluster import TODAY, auth, setup_story
from tests.ledger_helpers import TestLedger, new_test_ledger
from tests.unit.node.test_anchoring import GENESIS, KEYS

CHAINS = ["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)]


@pytest.fixture(scope="module", params=CHAINS)
def chain(request: pytest.FixtureRequest) -> Iterator[AnchorChain]:
    """A chain with the anchor contract deployed for GENESIS and its validators registered."""
    if request.param == "eth-tester":
        made = AnchorChain.embedded()
        yield _deployed(made)
        return
    with AnvilProcess(accounts=2) as anvil:
        yield _deployed(AnchorChain.connect(anvil.url, anvil.private_keys[0]))


def _deployed(chain: AnchorChain) -> AnchorChain:
    chain.deploy(log_id_of(GENESIS), min_roles_of(GENESIS))
    for v in validators_of(GENESIS):
        chain.register(v.name, v.role, v.public, v.pop)
    return chain


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLedger]:
    url = f"sqlite:///{tmp_path_factory.mktemp('anchor') / 'ledger.db'}"
    upgrade(url)
    t = new_test_ledger(url)
    yield t
    t.ledger.close()


def _head(t: TestLedger) -> tuple[int, bytes, int]:
    head = t.ledger.head()
    assert head is not None
    return head.log_size, head.log_root, head.height


def test_checkpoints_anchor_and_the_ledger_verifies_against_the_chain(
    chain: AnchorChain, ledger: TestLedger
) -> None:
    store = AnchorStore(ledger.ledger.engine)
    config = AnchorConfig(chain="test", every_blocks=1, every_seconds=3600)
    local = {"REGULATOR": KEYS["REGULATOR"]}
    anchorer = Anchorer(GENESIS, local, store, config, chain)
    start = ledger.ledger.size
    ledger.append(5, start=start)
    size, root, height = _head(ledger)
    witnesses = {"BANK-B": KEYS["BANK-B"].sign(anchorer.aggregator.message(size, root))}
    assert anchorer.offer(size, root, height, witnesses) is not None
    assert anchorer.offer(size, root, height, witnesses) is None  # not due again
    anchored = anchorer.anchor_pending()
    assert anchored is not None and anchored.signers == ("REGULATOR", "BANK-B")
    assert chain.latest() == (size, root)
    row = store.latest(anchored=True)
    assert row is not None and row.tx_hash is not None and row.tx_hash.startswith("0x")

    roots = block_roots(DatabaseSource(ledger.ledger))
    report = verify_anchored(roots, chain.anchored())
    assert report.ok and report.checked >= 1

    # the same size with another root is a fork; the contract refuses it with evidence
    other = anchorer.aggregator.message(size, b"\x66" * 32)
    forged = anchorer.aggregator.aggregate(
        size, b"\x66" * 32, {"BANK-B": KEYS["BANK-B"].sign(other)}
    )
    with pytest.raises(AnchorRefused) as refused:
        chain.anchor(size, forged.root, 0b101, forged.signature)
    assert refused.value.error == "Fork"
    assert refused.value.args_ == (size, root, b"\x66" * 32)

    # a ledger shorter than what the chain anchors was truncated
    shorter = {s: r for s, r in roots.items() if s < size}
    problems = verify_anchored(shorter, chain.anchored()).problems
    assert any("truncated or rolled back" in p for p in problems)


def test_an_aggregate_sent_before_a_crash_is_recorded_at_restart(
    chain: AnchorChain, ledger: TestLedger
) -> None:
    store = AnchorStore(ledger.ledger.engine)
    config = AnchorConfig(chain="test", every_blocks=1, every_seconds=3600)
    anchorer = Anchorer(GENESIS, {"REGULATOR": KEYS["REGULATOR"]}, store, config, chain)
    ledger.append(3, start=ledger.ledger.size)
    size, root, height = _head(ledger)
    sig = KEYS["INSURER"].sign(anchorer.aggregator.message(size, root))
    agg = anchorer.offer(size, root, height, {"INSURER": sig})
    assert agg is not None
    chain.anchor(size, root, 0b1001, agg.signature)  # the transaction lands, then the crash
    restarted = Anchorer(GENESIS, {"REGULATOR": KEYS["REGULATOR"]}, store, config, chain)
    assert restarted.anchor_pending() == agg
    row = store.latest(anchored=True)
    assert row is not None and row.size == size and row.tx_hash == "already-anchored"
    assert restarted.anchor_pending() is None


# --------------------------------------------------------------------------- the commands


def _pfnode(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _wait_anchored(db: Path, size_at_least: int, timeout: float = 180) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT max(size) FROM node_anchor_checkpoints WHERE tx_hash IS NOT NULL"
            ).fetchone()
        if row and row[0] and row[0] >= size_at_least:
            return int(row[0])
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of size >= {size_at_least} anchored in {timeout} s")


@pytest.mark.anvil
@pytest.mark.slow  # flaky in the full suite on this VM (an anchor left pending at a restart)
def test_served_node_anchors_on_anvil_and_verify_anchored_catches_a_rewrite(
    tmp_path: Path,
) -> None:
    data = tmp_path / "node"
    assert _pfnode("init", "--demo", "--data", str(data)).returncode == 0
    with AnvilProcess(accounts=2) as anvil:
        key = tmp_path / "deployer.key"
        key.write_text(anvil.private_keys[0])
        deploy = ["anchor", "deploy", "--data", str(data), "--rpc", anvil.url, "--key", str(key)]
        deployed = _pfnode(*deploy)
        assert deployed.returncode == 0, deployed.stderr
        address = deployed.stdout.strip()
        anchor = ["--anchor", anvil.url, "--anchor-contract", address, "--anchor-key", str(key)]
        anchor += ["--anchor-every-blocks", "1", "--anchor-every-seconds", "0.2"]
        node = ServeProcess(data, None, extra=tuple(anchor)).start()
        copy = tmp_path / "copy"
        try:
            node.wait_healthy(120)
            tok = tokens(data)
            recs = setup_story(node.base, tok, notices=2)
            first = _wait_anchored(data / "ledger.db", 1)
            node.stop()
            shutil.copytree(data, copy)  # the ledger as it was: it will be "truncated"
            node = ServeProcess(data, None, extra=tuple(anchor)).start()
            node.wait_healthy(120)
            with httpx.Client(headers=auth(tok["BANK-A"]), timeout=30) as client:
                body = demo.drawdown_body(TODAY, "L-1", "CN-1", recs[1])
                body["amount"] = "500.00"
                drawn = client.post(f"{node.base}/v1/loans", json=body)
                assert drawn.status_code == 201, drawn.text
            size = drawn.json()["index"] + 1
            assert size > first, (size, first, drawn.text)
            _wait_anchored(data / "ledger.db", size)
        finally:
            node.stop()
        ok = _pfnode("verify", "--data", str(data), "--anchored", anvil.url, address)
        assert ok.returncode == 0, ok.stderr
        assert "OK anchored" in ok.stdout
        truncated = _pfnode("verify", "--data", str(copy), "--anchored", anvil.url, address)
        assert truncated.returncode == 1, truncated.stdout
        assert "truncated or rolled back" in truncated.stderr
