"""The command line as a user runs it: init, token, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chain.storage import Ledger
from node.cli import main
from node.tokens import TokenStore

ROOT = Path(__file__).resolve().parents[2]


def test_init_demo_writes_keys_tokens_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["init", "--demo", "--data", str(data)]) == 0
    tokens = json.loads((data / "demo-tokens.json").read_text())
    assert sorted(tokens) == ["BANK-A", "BANK-B", "INSURER", "REGULATOR"]
    for path in [*(data / "keys").iterdir(), data / "demo-tokens.json"]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    genesis = (data / "genesis.json").read_text()
    assert main(["init", "--demo", "--data", str(data)]) == 0
    assert "already initialised" in capsys.readouterr().out
    assert (data / "genesis.json").read_text() == genesis
    with Ledger.open(f"sqlite:///{data / 'ledger.db'}") as ledger:
        store = TokenStore(ledger.engine)
        assert store.org_for(tokens["BANK-A"]) == "BANK-A"
        assert store.org_for(tokens["BANK-A"] + "x") is None
        raw = ledger.engine.connect().exec_driver_sql("SELECT token_hash FROM node_tokens").all()
        assert tokens["BANK-A"] not in str(raw)  # stored hashed, never in clear


def test_token_create_prints_a_working_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    main(["init", "--demo", "--data", str(data)])
    capsys.readouterr()
    assert main(["token", "create", "--org", "INSURER", "--data", str(data)]) == 0
    token = capsys.readouterr().out.strip()
    with Ledger.open(f"sqlite:///{data / 'ledger.db'}") as ledger:
        assert TokenStore(ledger.engine).org_for(token) == "INSURER"
    assert main(["token", "create", "--org", "NOBODY", "--data", str(data)]) == 2


def test_demo_plays_the_story_over_http() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "demo"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "BANK-A draws USD 200,000 against CN-0001: HTTP 201 (accepted)" in text
    assert "flag SUSPECTED_DUPLICATE [warning]" in text
    assert "HTTP 409 (rejected)" in text and "flag DUPLICATE_FINANCING [critical]" in text
    assert "verified locally against root" in text


def test_serve_refuses_a_schema_it_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    main(["init", "--demo", "--data", str(data)])
    with Ledger.open(f"sqlite:///{data / 'ledger.db'}") as ledger, ledger.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'deadbeef'")
    capsys.readouterr()
    assert main(["serve", "--data", str(data), "--port", "1"]) == 2
    assert "unknown to this pfnode" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (data / "genesis.json").rename(empty / "genesis.json")
    assert main(["serve", "--data", str(empty), "--port", "1"]) == 2
    assert "pfnode db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade", "--data", str(empty)]) == 0
    assert "revision" in capsys.readouterr().out
