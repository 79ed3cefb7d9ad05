"""The committed contract artifacts are exactly what the pinned npm solc makes of the sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contracts.build import (
    BUILD_DIR,
    CONTRACTS_DIR,
    check_artifacts,
    compute_artifact_text,
    compute_source_sha256,
    get_artifact,
)
from contracts.errors import ToolchainError
from contracts.toolchain import ensure_tools, get_pinned_version


@pytest.fixture(scope="module")
def solc() -> None:
    """The pinned solc in node_modules (installed with `npm ci` if missing), or a skip."""
    try:
        ensure_tools()
    except ToolchainError as exc:
        pytest.skip(f"the pinned npm solc is unavailable (needs node and npm): {exc}")


def test_committed_artifacts_match_a_fresh_compile(solc: None) -> None:
    assert check_artifacts() == []


def test_registry_artifact_records_its_source_compiler_and_interface() -> None:
    artifact = get_artifact("DuplicateRegistry")
    source = CONTRACTS_DIR / "DuplicateRegistry.sol"
    assert artifact["sourceSha256"] == compute_source_sha256(source)
    assert artifact["solcVersion"].startswith(get_pinned_version("solc") + "+commit.")
    assert f"pragma solidity {get_pinned_version('solc')};" in source.read_text("utf-8")
    entries = {(item["type"], item.get("name")) for item in artifact["abi"]}
    assert entries == {
        ("function", "register"),
        ("function", "ownerOf"),
        ("event", "Registered"),
        ("error", "AlreadyRegistered"),
    }
    assert artifact["bytecode"].startswith("0x6080")
    assert len(artifact["deployedBytecode"]) > 2


def test_artifacts_are_stored_canonically() -> None:
    for path in BUILD_DIR.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert text == compute_artifact_text(json.loads(text)), path.name
        assert text.endswith("}\n")


def test_refuses_stale_artifacts(solc: None, tmp_path: Path) -> None:
    for path in BUILD_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    tampered = get_artifact("DuplicateRegistry") | {"sourceSha256": "00" * 32}
    (tmp_path / "DuplicateRegistry.json").write_text(compute_artifact_text(tampered))
    (tmp_path / "Ghost.json").write_text(compute_artifact_text({"contractName": "Ghost"}))
    assert check_artifacts(tmp_path) == ["DuplicateRegistry", "Ghost"]


def test_refuses_missing_artifacts(solc: None, tmp_path: Path) -> None:
    assert "DuplicateRegistry" in check_artifacts(tmp_path)
