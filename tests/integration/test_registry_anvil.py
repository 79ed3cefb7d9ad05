"""The comparator on a real Anvil: DuplicateRegistry refuses a second registration, and the
benchmark driver counts every duplicate it sends as detected (behaviour, not speed).

Needs node and npm (the pinned anvil and solc install from npm); skipped when they cannot be had.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError

from contracts.anvil import AnvilProcess
from contracts.errors import ToolchainError
from contracts.registry_bench import (
    RpcSession,
    deploy_registry,
    get_nonce,
    get_registry,
    open_web3,
    process_registration,
    run_registry_batched,
    run_registry_bench,
)

pytestmark = pytest.mark.anvil

ALREADY_REGISTERED = keccak(text="AlreadyRegistered(bytes32,address)")[:4]


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    with ExitStack() as stack:
        try:
            node = stack.enter_context(AnvilProcess())
        except ToolchainError as exc:
            pytest.skip(f"anvil cannot be installed here (needs node and npm): {exc}")
        yield node


@pytest.fixture
def w3(anvil: AnvilProcess) -> Iterator[Web3]:
    with open_web3(anvil.url) as web3:
        yield web3


def make_fingerprints(count: int, duplicate_every: int = 10) -> list[bytes]:
    """`count` fingerprints; every `duplicate_every`-th repeats an earlier one at random."""
    rng = random.Random(20261121)
    fingerprints: list[bytes] = []
    for index in range(count):
        if index % duplicate_every == duplicate_every - 1:
            fingerprints.append(rng.choice(fingerprints))
        else:
            fingerprints.append(hashlib.sha256(f"EXPORTER-1/INV-{index}".encode()).digest())
    return fingerprints


def register(anvil: AnvilProcess, registry_address: str, who: int, fp: bytes) -> dict[str, Any]:
    """Register `fp` from account `who` as the benchmark does; return the mined receipt."""
    account = anvil.accounts[who]
    with RpcSession(anvil.url) as rpc:
        nonce = get_nonce(rpc, account.address)
        return process_registration(rpc, account, registry_address, fp, anvil.chain_id, nonce)


def test_refuses_a_second_registration_with_already_registered(
    anvil: AnvilProcess, w3: Web3
) -> None:
    registry_address = deploy_registry(w3, anvil.accounts[0])
    registry = get_registry(w3, registry_address)
    first, second = anvil.accounts[1], anvil.accounts[2]
    fingerprint = hashlib.sha256(b"91310000MA1FL0000X/INV-2026-0001").digest()

    receipt = register(anvil, registry_address, 1, fingerprint)
    assert receipt["status"] == "0x1"
    (event,) = registry.events.Registered().process_receipt(
        w3.eth.get_transaction_receipt(receipt["transactionHash"])
    )
    assert event["args"]["fingerprint"] == fingerprint
    assert event["args"]["owner"] == first.address
    assert registry.functions.ownerOf(fingerprint).call() == first.address

    with pytest.raises(ContractCustomError) as refused:
        registry.functions.register(fingerprint).call({"from": second.address})
    data = bytes.fromhex(str(refused.value.data).removeprefix("0x"))
    assert data[:4] == ALREADY_REGISTERED
    assert decode(["bytes32", "address"], data[4:]) == (fingerprint, first.address.lower())

    duplicate = register(anvil, registry_address, 2, fingerprint)
    assert duplicate["status"] == "0x0"
    assert duplicate["logs"] == []
    assert registry.functions.ownerOf(fingerprint).call() == first.address


def test_unregistered_fingerprint_has_no_owner(anvil: AnvilProcess, w3: Web3) -> None:
    registry = get_registry(w3, deploy_registry(w3, anvil.accounts[0]))
    assert registry.functions.ownerOf(b"\x00" * 32).call() == "0x" + "00" * 20


def test_bench_detects_every_duplicate_it_sends(anvil: AnvilProcess) -> None:
    fingerprints = make_fingerprints(200)
    result = run_registry_bench(fingerprints, clients=32, node=anvil)
    assert result["count"] == 200
    assert result["duplicates_sent"] == 20
    assert result["duplicates_detected"] == result["duplicates_sent"]
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["throughput"] > 0


def test_bench_starts_its_own_anvil_when_given_none() -> None:
    try:
        result = run_registry_bench(make_fingerprints(20), clients=4)
    except ToolchainError as exc:
        pytest.skip(f"anvil cannot be installed here (needs node and npm): {exc}")
    assert (result["count"], result["duplicates_detected"], result["duplicates_sent"]) == (20, 2, 2)


def test_batched_run_mines_every_registration(anvil: AnvilProcess, w3: Web3) -> None:
    senders = [account.address for account in anvil.accounts[1:9]]
    before = sum(w3.eth.get_transaction_count(address) for address in senders)
    result = run_registry_batched(make_fingerprints(120), clients=8, batch_size=50, node=anvil)
    after = sum(w3.eth.get_transaction_count(address) for address in senders)
    assert result["count"] == after - before == 120
    assert result["throughput"] > 0
