"""Export bundles: the whole ledger in one self-contained, streamable file.

JSON Lines, one object a line::

    {"kind": "pfnode-bundle", "v": 1, "genesis": {...}}
    {"kind": "block", "header": {...}, "signature": b64, "entries": [...], "receipts": [...]}
    ...
    {"kind": "checkpoint", "size": 1234, "note": "..."}

Genesis carries every organisation's and the sequencer's public keys, so
``pfnode verify --bundle`` needs nothing else: the records outlive the platform.
A file ending in .gz is gzip-compressed. Reading streams: a million-entry bundle
never sits in memory whole.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from chain.canonical import canonical, parse
from chain.errors import ChainError, VerificationError
from chain.keys import b64decode, b64encode
from chain.storage import Ledger
from chain.verify import RawBlock

BUNDLE_KIND = "pfnode-bundle"


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        handle: IO[str] = gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[assignment]  # noqa: SIM115
        return handle
    return open(path, mode, encoding="utf-8")


def export_bundle(ledger: Ledger, out: Path) -> tuple[int, int]:
    """Write the ledger to `out`; returns (blocks, entries)."""
    blocks = entries = 0
    with _open(out, "w") as handle:
        handle.write(json.dumps({"kind": BUNDLE_KIND, "v": 1, "genesis": ledger.genesis}) + "\n")
        for _h, header, sig, raw_entries, raw_receipts in ledger.iter_block_rows():
            line = {
                "kind": "block",
                "header": parse(header),
                "signature": b64encode(sig),
                "entries": [parse(e) for e in raw_entries],
                "receipts": [parse(r) for r in raw_receipts],
            }
            handle.write(canonical(line).decode() + "\n")
            blocks += 1
            entries += len(raw_entries)
        for size, note in ledger.checkpoints():
            handle.write(json.dumps({"kind": "checkpoint", "size": size, "note": note}) + "\n")
    return blocks, entries


class BundleSource:
    """A LedgerSource over an exported bundle file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _open(path, "r") as handle:
            first = handle.readline()
        try:
            head = parse(first)
        except ChainError as exc:
            raise VerificationError(None, f"{path} is not a pfnode bundle: {exc}") from exc
        if not isinstance(head, dict) or head.get("kind") != BUNDLE_KIND or head.get("v") != 1:
            raise VerificationError(None, f"{path} is not a pfnode bundle (version 1)")
        self._genesis: dict[str, Any] = head["genesis"]
        self._checkpoints: list[tuple[int, str]] = []

    @property
    def genesis(self) -> dict[str, Any]:
        return self._genesis

    def raw_blocks(self) -> Iterator[RawBlock]:
        self._checkpoints = []
        height = 0
        with _open(self.path, "r") as handle:
            handle.readline()
            for line in handle:
                try:
                    item = parse(line)
                    kind = item["kind"]
                except (ChainError, KeyError, TypeError) as exc:
                    raise VerificationError(height, f"bundle line does not parse: {exc}") from exc
                if kind == "checkpoint":
                    self._checkpoints.append((item["size"], item["note"]))
                    continue
                try:
                    yield RawBlock(
                        height=height,
                        header=canonical(item["header"]),
                        signature=b64decode(item["signature"], "block signature"),
                        entries=[canonical(e) for e in item["entries"]],
                        receipts=[canonical(r) for r in item["receipts"]],
                    )
                except (ChainError, KeyError, TypeError) as exc:
                    raise VerificationError(height, f"block does not parse: {exc}") from exc
                height += 1

    def checkpoints(self) -> list[tuple[int, str]]:
        return self._checkpoints


class DatabaseSource:
    """A LedgerSource over a ledger database."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @property
    def genesis(self) -> dict[str, Any]:
        return self.ledger.genesis

    def raw_blocks(self) -> Iterator[RawBlock]:
        for height, header, sig, entries, receipts in self.ledger.iter_block_rows():
            yield RawBlock(height, header, sig, entries, receipts)

    def checkpoints(self) -> list[tuple[int, str]]:
        return self.ledger.checkpoints()
