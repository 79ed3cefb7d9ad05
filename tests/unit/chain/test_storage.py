"""One storage suite, every backend: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from chain.errors import DuplicateNonce, StorageError, WriterLocked
from chain.merkle import (
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from chain.storage import Ledger
from chain.verify import verify_database
from tests.ledger_helpers import T0, new_test_ledger


def test_appends_blocks_and_reads_them_back(db_url: str) -> None:
    t = new_test_ledger(db_url)
    first = t.append(5)
    second = t.append(3, start=5)
    with Ledger.open(db_url) as reader:
        blocks = list(reader.iter_blocks())
        assert [b.header.height for b in blocks] == [0, 1]
        assert [e.hash for e in blocks[0].entries] == [e.hash for e in first]
        assert blocks[1].header.prev_hash == blocks[0].header.hash
        assert blocks[1].header.log_size == 8
        stored = reader.get_entry(second[1].hash)
        assert stored is not None and (stored.index, stored.height) == (6, 1)
        assert stored.receipt["status"] == "accepted"
    t.ledger.close()


def test_proofs_from_stored_nodes_match_memory_tree(db_url: str) -> None:
    t = new_test_ledger(db_url)
    memory = MemoryNodeStore()
    hashes = []
    for start, count in [(0, 1), (1, 6), (7, 13), (20, 1), (21, 11)]:
        batch = t.append(count, start=start)
        hashes += [e.hash for e in batch]
        memory.append([e.hash for e in batch])
    size = len(hashes)
    assert root_at(size, t.ledger) == memory.root() == t.ledger.head().log_root
    for index in range(size):
        proof = inclusion_proof(index, size, t.ledger)
        assert proof == inclusion_proof(index, size, memory)
        verify_inclusion(hashes[index], index, size, proof, t.ledger.head().log_root)
    old_root = root_at(7, t.ledger)
    verify_consistency(7, size, old_root, memory.root(), consistency_proof(7, size, t.ledger))
    t.ledger.close()


def test_refuses_second_writer_naming_the_holder(db_url: str) -> None:
    t = new_test_ledger(db_url)
    with pytest.raises(WriterLocked, match="locked by its writer: .*pid"):
        Ledger.open(db_url, writer=True)
    t.ledger.close()
    again = Ledger.open(db_url, writer=True)  # released: a new writer may take over
    again.close()


def test_refuses_duplicate_nonce_and_keeps_ledger_whole(db_url: str) -> None:
    t = new_test_ledger(db_url)
    entries = t.append(3)
    with pytest.raises(DuplicateNonce) as info:
        t.ledger.check_nonce("BANK-A", entries[1].nonce)
    assert info.value.first_hash == entries[1].hash
    replayed = [t.entry("BANK-A", 99), entries[1]]
    with pytest.raises(StorageError, match="violates a ledger constraint"):
        t.writer.append(replayed, t.accept(replayed), T0)
    assert t.ledger.head(fresh=True).height == 0  # the failed block left nothing behind
    t.append(2, start=100)
    assert verify_database(t.ledger).entries == 5
    t.ledger.close()


def test_refuses_block_that_does_not_follow_head(db_url: str) -> None:
    t = new_test_ledger(db_url)
    t.append(2)
    entries = [t.entry("BANK-A", 50)]
    block, nodes = t.writer.build(entries, t.accept(entries), T0)
    t.ledger.append_block(block, nodes)
    with pytest.raises(StorageError, match="does not follow the head"):
        t.ledger.append_block(block, nodes)
    t.ledger.close()


def test_append_is_one_transaction(db_url: str) -> None:
    t = new_test_ledger(db_url)
    t.append(2)

    def fail(_conn: sa.Connection) -> None:
        raise sa.exc.OperationalError("projection", {}, Exception("disk on fire"))

    entries = [t.entry("BANK-A", 60), t.entry("BANK-A", 61)]
    with pytest.raises(StorageError, match="was not committed"):
        t.writer.append(entries, t.accept(entries), T0, extra=fail)
    with Ledger.open(db_url) as reader:
        assert reader.head().height == 0
        assert reader.get_entry(entries[0].hash) is None
        assert len(reader.get_nodes([(0, 2)])) == 0
    t.ledger.close()


def test_refuses_database_without_ledger(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageError, match="pfnode init"):
        Ledger.open(f"sqlite:///{tmp_path / 'empty.db'}")
