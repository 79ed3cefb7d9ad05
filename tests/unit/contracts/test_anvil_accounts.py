"""The keys derived from Anvil's test mnemonic are the ones Anvil funds (no node needed)."""

from __future__ import annotations

from contracts.anvil import ANVIL_MNEMONIC, compute_dev_accounts


def test_dev_accounts_are_anvils_well_known_ones() -> None:
    first, second = compute_dev_accounts(2)
    assert ANVIL_MNEMONIC.split() == ["test"] * 11 + ["junk"]
    assert first.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert first.key.hex().removeprefix("0x") == (
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    )
    assert second.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_dev_accounts_are_distinct() -> None:
    accounts = compute_dev_accounts(40)
    assert len({account.address for account in accounts}) == 40
