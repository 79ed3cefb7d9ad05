"""Offline check of an audit report (GET /v1/audit/report, JSON): `pfnode verify --audit`.

The report's ``proofs`` carry the latest checkpoint the sequencer signed and, for every entry
its records cite, the signed entry itself and its RFC 9162 inclusion proof. The check needs
only the consortium's genesis (the sequencer's note key):

    the checkpoint is signed by the sequencer's key, for the genesis's origin
    each entry hashes to its entry_hash, and its proof leads to the checkpoint's root
    each loan and flag record cites an entry that is proved (entries after the checkpoint
    are reported as unproved, not as broken: the next report proves them)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.checkpoint import open_checkpoint, parse_verifier_key
from chain.entries import decode_signed_entry
from chain.errors import ChainError, VerificationError
from chain.merkle import verify_inclusion


@dataclass(frozen=True)
class AuditCheck:
    proved: int
    unproved: list[str]
    size: int


def verify_audit(report: dict[str, Any], genesis: dict[str, Any]) -> AuditCheck:
    """Raise VerificationError naming the first record or proof that does not hold."""
    proofs = report.get("proofs") or {}
    note = proofs.get("checkpoint")
    if not note:
        raise VerificationError(None, "the report carries no signed checkpoint")
    verifier = parse_verifier_key(genesis["sequencer"]["note_key"])
    try:
        checkpoint, _ = open_checkpoint(note, [verifier], genesis["origin"])
    except ChainError as exc:
        raise VerificationError(None, f"checkpoint: {exc}") from exc
    proved: set[str] = set()
    for item in proofs.get("entries", []):
        cited = item.get("entry_hash", "?")
        try:
            entry = decode_signed_entry(item["entry"])
            if entry.hash.hex() != cited:
                raise VerificationError(
                    None, f"entry {cited}: its bytes hash to {entry.hash.hex()}"
                )
            proof = [bytes.fromhex(h) for h in item["proof"]]
            verify_inclusion(
                entry.hash, int(item["index"]), checkpoint.size, proof, checkpoint.root
            )
        except VerificationError:
            raise
        except (ChainError, KeyError, ValueError, TypeError) as exc:
            raise VerificationError(None, f"entry {cited}: {exc}") from exc
        proved.add(cited)
    cited = {r["entry_hash"] for name in ("loans", "flags") for r in report.get(name, [])}
    return AuditCheck(len(proved), sorted(cited - proved), checkpoint.size)
