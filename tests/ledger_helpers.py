"""Build small test ledgers quickly (chain only, no domain)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chain.entries import SignedEntry, make_entry
from chain.keys import SigningKey
from chain.log import LogWriter, make_genesis
from chain.storage import Ledger

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


@dataclass
class TestLedger:
    __test__ = False
    ledger: Ledger
    writer: LogWriter
    keys: dict[str, SigningKey]
    genesis: dict[str, Any]

    def entry(self, org: str = "BANK-A", n: int = 0, **body: Any) -> SignedEntry:
        return make_entry(
            self.keys[org], "test.note", {"n": n, **body}, T0 + timedelta(milliseconds=n)
        )

    def accept(self, entries: list[SignedEntry]) -> list[dict[str, Any]]:
        return [{"entry_hash": e.hash.hex(), "status": "accepted", "flags": []} for e in entries]

    def append(self, count: int, start: int = 0, org: str = "BANK-A") -> list[SignedEntry]:
        entries = [self.entry(org, start + i) for i in range(count)]
        self.writer.append(entries, self.accept(entries), T0 + timedelta(seconds=start))
        return entries


def org(org_id: str, role: str, key: SigningKey) -> dict[str, Any]:
    return {
        "id": org_id,
        "name": org_id.title(),
        "role": role,
        "keys": [{"key_id": key.key_id, "public_key": key.public.b64}],
    }


def seeded_key(key_id: str) -> SigningKey:
    import hashlib

    return SigningKey.from_seed(key_id, hashlib.sha256(key_id.encode()).digest())


def new_test_ledger(url: str) -> TestLedger:
    keys = {
        "BANK-A": seeded_key("BANK-A/1"),
        "BANK-B": seeded_key("BANK-B/1"),
        "REGULATOR": seeded_key("REGULATOR/1"),
    }
    seq = seeded_key("REGULATOR/seq-1")
    genesis = make_genesis(
        origin="pfnode.test/ledger",
        orgs=[
            org("BANK-A", "bank", keys["BANK-A"]),
            org("BANK-B", "bank", keys["BANK-B"]),
            org("REGULATOR", "regulator", keys["REGULATOR"]),
        ],
        sequencer=seq,
        created=T0,
    )
    ledger = Ledger.open(url, writer=True, create=True)
    ledger.init(genesis)
    return TestLedger(ledger, LogWriter(ledger, seq), keys, genesis)
