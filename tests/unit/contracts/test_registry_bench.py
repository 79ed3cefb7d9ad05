"""The comparator's pure parts: transactions built with no round trip, counts, percentiles."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.providers.base import BaseProvider

from contracts.anvil import compute_dev_accounts
from contracts.registry_bench import (
    MAX_FEE_PER_GAS,
    REGISTER_GAS,
    compute_duplicates_sent,
    compute_percentile_ms,
    compute_register_transaction,
    get_registry,
    verify_fingerprints,
)

REGISTRY_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


class NoNetwork(BaseProvider):
    """A provider that fails any request: encoding must not need one."""

    def make_request(self, method: Any, params: Any) -> Any:
        raise AssertionError(f"unexpected JSON-RPC round trip: {method}")

    def is_connected(self, show_traceback: bool = False) -> bool:
        return False


def test_register_transaction_is_complete_and_matches_the_abi() -> None:
    fingerprint = hashlib.sha256(b"BANK-A/INV-1").digest()
    transaction = compute_register_transaction(REGISTRY_ADDRESS, fingerprint, 31337, nonce=7)
    registry = get_registry(Web3(NoNetwork()), REGISTRY_ADDRESS)
    assert transaction["data"] == registry.encode_abi("register", [fingerprint])
    assert transaction["data"] == "0x" + (keccak(text="register(bytes32)")[:4] + fingerprint).hex()
    assert transaction["gas"] == REGISTER_GAS
    assert transaction["maxFeePerGas"] == MAX_FEE_PER_GAS
    assert (transaction["type"], transaction["nonce"], transaction["chainId"]) == (2, 7, 31337)
    assert transaction["to"] == REGISTRY_ADDRESS


def test_register_transaction_signs_without_a_node() -> None:
    (account,) = compute_dev_accounts(1)
    transaction = compute_register_transaction(REGISTRY_ADDRESS, b"\x01" * 32, 31337, nonce=0)
    signed = account.sign_transaction(transaction)
    assert Account.recover_transaction(signed.raw_transaction) == account.address


def test_duplicates_sent_counts_repeats_of_earlier_fingerprints() -> None:
    a, b, c = (bytes([n]) * 32 for n in range(3))
    assert compute_duplicates_sent([a, b, a, c, a, b]) == 3
    assert compute_duplicates_sent([a, b, c]) == 0


def test_percentiles_in_milliseconds() -> None:
    latencies = [n / 1000 for n in range(1, 101)]  # 1..100 ms
    assert compute_percentile_ms(latencies, 50) == pytest.approx(50.5)
    assert compute_percentile_ms(latencies, 99) == pytest.approx(99.01)
    assert compute_percentile_ms([0.004], 99) == pytest.approx(4.0)


def test_refuses_no_fingerprints() -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify_fingerprints([])


def test_refuses_fingerprints_that_are_not_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        verify_fingerprints([b"\x01" * 32, b"\x02" * 31])
