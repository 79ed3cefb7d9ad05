"""Offline verification: an honest ledger passes; any tampered byte is named by height."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from chain.bundle import BundleSource, export_bundle
from chain.errors import VerificationError
from chain.keys import b64encode
from chain.storage import LEVEL_SHIFT, Ledger
from chain.verify import verify_database, verify_ledger
from node.cli import main
from tests.ledger_helpers import TestLedger, new_test_ledger


def build(db_url: str, blocks: int = 4, per_block: int = 5) -> TestLedger:
    t = new_test_ledger(db_url)
    for b in range(blocks):
        t.append(per_block, start=b * per_block)
        t.writer.checkpoint()
    return t


def flip(value: bytes, at: int) -> bytes:
    return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]


def tamper(url: str, sql: str, column: str, at: int) -> None:
    """Rewrite one byte of one stored value behind the node's back."""
    ledger = Ledger.open(url)
    with ledger.engine.begin() as conn:
        key, value = conn.execute(sa.text(sql)).first()
        table, key_col = sql.split(" FROM ")[1].split()[0], sql.split("SELECT ")[1].split(",")[0]
        conn.execute(
            sa.text(f"UPDATE {table} SET {column} = :v WHERE {key_col} = :k"),
            {"v": flip(bytes(value), at), "k": key},
        )
    ledger.close()


def test_honest_ledger_verifies_from_database_and_bundle(db_url: str, tmp_path: Path) -> None:
    t = build(db_url)
    report = verify_database(t.ledger)
    assert (report.blocks, report.entries, report.checkpoints) == (4, 20, 4)
    assert report.nodes_checked == 20 + 10 + 5 + 2 + 1
    out = tmp_path / "ledger.jsonl.gz"
    assert export_bundle(t.ledger, out) == (4, 20)
    t.ledger.close()
    bundle = verify_ledger(BundleSource(out))
    assert bundle.log_root == report.log_root and bundle.latest_checkpoint == 20


@pytest.mark.parametrize(
    "sql, column, at, height, what",
    [
        ("SELECT idx, raw FROM ledger_entries WHERE idx = 7", "raw", 60, 1, "entry 7"),
        ("SELECT idx, raw FROM ledger_entries WHERE idx = 12", "raw", 200, 2, "entry 12"),
        ("SELECT height, header FROM ledger_blocks WHERE height = 2", "header", 40, 2, ""),
        (
            "SELECT height, signature FROM ledger_blocks WHERE height = 3",
            "signature",
            5,
            3,
            "signature",
        ),
        ("SELECT idx, raw FROM ledger_receipts WHERE idx = 3", "raw", 30, 0, "receipt"),
        ("SELECT idx, hash FROM ledger_entries WHERE idx = 16", "hash", 0, 3, "stored hash"),
        (
            f"SELECT id, hash FROM ledger_nodes WHERE id = {(1 << LEVEL_SHIFT) | 4}",
            "hash",
            3,
            1,
            "Merkle node (level 1, index 4)",
        ),
        (
            f"SELECT id, hash FROM ledger_nodes WHERE id = {(3 << LEVEL_SHIFT) | 1}",
            "hash",
            9,
            1,
            "Merkle node (level 3, index 1)",
        ),
    ],
)
def test_refuses_tampered_byte_naming_height(
    db_url: str, sql: str, column: str, at: int, height: int, what: str
) -> None:
    build(db_url).ledger.close()
    tamper(db_url, sql, column, at)
    with Ledger.open(db_url) as ledger, pytest.raises(VerificationError) as info:
        verify_database(ledger)
    assert info.value.height == height
    assert what in info.value.what


def test_cli_verify_prints_first_break_and_exits_nonzero(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build(db_url).ledger.close()
    assert main(["verify", "--db", db_url, "--no-replay"]) == 0
    assert "OK database: 4 blocks, 20 entries" in capsys.readouterr().out
    tamper(db_url, "SELECT idx, raw FROM ledger_entries WHERE idx = 11", "raw", 80)
    assert main(["verify", "--db", db_url, "--no-replay"]) == 1
    assert "BROKEN at height 2: entry 11" in capsys.readouterr().err


def test_refuses_tampered_bundle(db_url: str, tmp_path: Path) -> None:
    t = build(db_url)
    out = tmp_path / "ledger.jsonl"
    export_bundle(t.ledger, out)
    t.ledger.close()
    lines = out.read_text().splitlines()
    block = json.loads(lines[3])  # height 2
    block["entries"][0]["entry"]["body"]["n"] = 999
    lines[3] = json.dumps(block)
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationError) as info:
        verify_ledger(BundleSource(out))
    assert info.value.height == 2 and "does not verify" in info.value.what


def test_refuses_forged_checkpoint(db_url: str, tmp_path: Path) -> None:
    t = build(db_url)
    out = tmp_path / "ledger.jsonl"
    export_bundle(t.ledger, out)
    t.ledger.close()
    lines = out.read_text().splitlines()
    cp = json.loads(lines[-1])
    body, sigs = cp["note"].split("\n\n", 1)
    origin, size, root = body.split("\n")
    cp["note"] = f"{origin}\n{size}\n{b64encode(bytes(32))}\n\n{sigs}"
    lines[-1] = json.dumps(cp)
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationError, match="checkpoint at size 20"):
        verify_ledger(BundleSource(out))


def test_refuses_reordered_blocks(db_url: str, tmp_path: Path) -> None:
    t = build(db_url)
    out = tmp_path / "ledger.jsonl"
    export_bundle(t.ledger, out)
    t.ledger.close()
    lines = out.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationError) as info:
        verify_ledger(BundleSource(out))
    assert info.value.height == 1


def test_parallel_verification_agrees_and_refuses_forgeries(tmp_path: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    build(url, blocks=3, per_block=100).ledger.close()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        with Ledger.open(url) as ledger:
            serial = verify_database(ledger)
            parallel = verify_database(ledger, pool=pool)
        assert (parallel.entries, parallel.log_root) == (serial.entries, serial.log_root) == (
            300, serial.log_root)
        with Ledger.open(url) as ledger, ledger.engine.begin() as conn:
            raw = conn.execute(sa.text("SELECT raw FROM ledger_entries WHERE idx = 150")).scalar()
            entry = json.loads(raw)
            sig = bytearray(__import__("base64").b64decode(entry["sig"]))
            sig[5] ^= 1  # a forged signature, the entry otherwise intact
            entry["sig"] = b64encode(bytes(sig))
            from chain.canonical import canonical

            conn.execute(sa.text("UPDATE ledger_entries SET raw = :r WHERE idx = 150"),
                         {"r": canonical(entry)})
        with Ledger.open(url) as ledger, pytest.raises(VerificationError) as info:
            verify_database(ledger, pool=pool)
    assert info.value.height == 1 and "entry 150: signature by" in info.value.what
    assert main(["verify", "--db", url, "--no-replay", "--workers", "2"]) == 1
