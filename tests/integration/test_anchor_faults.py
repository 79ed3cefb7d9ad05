"""The anchor client against a misbehaving chain node (Anvil): a transaction dropped from its
pool is sent again with the same nonce; a node that restarts while a receipt is awaited is
waited for, and the checkpoint still lands, once."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from contracts.anchor import AnchorChain, Sent
from contracts.anvil import AnvilProcess, call_rpc, get_free_port
from node.anchoring import Aggregator
from tests.integration.test_anchoring import _deployed
from tests.unit.node.test_anchoring import GENESIS, KEYS

pytestmark = pytest.mark.anvil
ROOT = b"\x5a" * 32


def _aggregate(size: int) -> tuple[int, bytes]:
    agg = Aggregator(GENESIS, {"REGULATOR": KEYS["REGULATOR"]})
    sig = KEYS["INSURER"].sign(agg.message(size, ROOT))
    made = agg.aggregate(size, ROOT, {"INSURER": sig})
    return 0b1001, made.signature


def _anchor_in_thread(chain: AnchorChain, size: int) -> tuple[threading.Thread, dict[str, Any]]:
    bitmap, signature = _aggregate(size)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["sent"] = chain.anchor(size, ROOT, bitmap, signature)
        except Exception as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _wait_pending(url: str, address: str) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        pending = int(call_rpc(url, "eth_getTransactionCount", [address, "pending"]), 16)
        latest = int(call_rpc(url, "eth_getTransactionCount", [address, "latest"]), 16)
        if pending > latest:
            return
        time.sleep(0.05)
    raise AssertionError("the anchor transaction never reached the pool")


def test_a_dropped_transaction_is_sent_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pfnode.anchor.chain")
    with AnvilProcess(accounts=2) as anvil:
        chain = _deployed(
            AnchorChain.connect(anvil.url, anvil.private_keys[0], receipt_timeout=0.5, deadline=30)
        )
        call_rpc(anvil.url, "evm_setAutomine", [False])
        thread, out = _anchor_in_thread(chain, 3)
        _wait_pending(anvil.url, chain.account.address)
        call_rpc(anvil.url, "anvil_dropAllTransactions")
        call_rpc(anvil.url, "evm_setAutomine", [True])
        thread.join(30)
        assert "error" not in out, out.get("error")
        assert isinstance(out["sent"], Sent)
        assert chain.latest() == (3, ROOT)
        assert chain.anchored() == {3: ROOT}
    assert any("was dropped" in r.getMessage() for r in caplog.records)


def test_a_chain_node_restart_is_survived(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pfnode.anchor.chain")
    state, port = tmp_path / "anvil-state.json", get_free_port()
    with AnvilProcess(accounts=2, port=port, state=state) as first:
        chain = _deployed(
            AnchorChain.connect(first.url, first.private_keys[0], receipt_timeout=0.5, deadline=60)
        )
        address = chain.address
        call_rpc(first.url, "evm_setAutomine", [False])
        thread, out = _anchor_in_thread(chain, 4)
        _wait_pending(first.url, chain.account.address)
    # the node is down (its state written at exit); the client keeps waiting
    time.sleep(1.0)
    assert thread.is_alive()
    with AnvilProcess(accounts=2, port=port, state=state) as second:
        thread.join(60)
        assert "error" not in out, out.get("error")
        assert isinstance(out["sent"], Sent)
        again = AnchorChain.connect(second.url, second.private_keys[0], address)
        assert again.latest() == (4, ROOT)
        assert again.anchored() == {4: ROOT}
        assert again.validator_count() == 4  # the chain came back with its state
