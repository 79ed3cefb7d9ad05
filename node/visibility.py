"""Who may sign what, and who may see what (DESIGN section 3, "Visibility").

- The regulator sees everything.
- The insurer sees its policies, notices, and the loans and repayments against them.
- A bank sees its own entries, notices naming it, and its own flags. A flag tells
  a bank that another institution financed the receivable and when, never which
  institution: the hashes of other institutions' entries are taken out of it.
- Reference data (fx.rate, membership) is visible to every member.

Parties are decided once, when the entry commits (``parties_of``), and stored
beside the ledger (``node_entry_parties``), so that any process can filter reads
without the sequencer's memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from chain.blocks import Block, receipt_leaf
from chain.entries import SignedEntry
from node import projection
from node.errors import Forbidden
from node.fingerprints import compute_k3
from node.identifiers import normalise_id
from node.state import State

EVERYONE = "*"
MAY_SIGN: Mapping[str, tuple[str, ...]] = {
    "insurer": ("policy.", "limit.", "assignment.", "coverage.", "claim.", "consent.", "buyer."),
    "bank": ("financing.reserved", "loan.drawdown", "loan.repayment", "indicators.read"),
    "regulator": ("org.", "key.", "fx.rate", "flag.resolved"),
}
PUBLIC_TYPES = ("fx.rate", "org.added", "key.added", "key.revoked", "buyer.rated")


class EntryPartyRow(SQLModel, table=True):
    __tablename__ = "node_entry_parties"
    entry_hash: str = Field(primary_key=True, max_length=64)
    org: str = Field(primary_key=True, max_length=64)


T_PARTY = EntryPartyRow.__table__  # type: ignore[attr-defined]


def is_permitted(role: str, entry_type: str) -> bool:
    """True when an organisation of `role` may sign entries of `entry_type`."""
    return any(
        entry_type == p or (p.endswith(".") and entry_type.startswith(p))
        for p in MAY_SIGN.get(role, ())
    )


def require_may_sign(role: str, entry_type: str, org: str = "") -> None:
    if not is_permitted(role, entry_type):
        raise Forbidden(org or role, role, entry_type)


def require_regulator(role: str) -> None:
    if role != "regulator":
        raise Forbidden(role, role, "regulator reads")


class PartyOracle(Protocol):
    """What the domain state tells visibility about an entry's counterparties."""

    def notice_parties(self, notice_no: str) -> tuple[str, str] | None:
        """(insurer, beneficiary bank) of a notice."""
        ...

    def loan_notice(self, bank: str, loan_id: str) -> str | None: ...

    def flag_bank(self, flag_id: str) -> str | None: ...

    def consent_parties(self, consent_id: str) -> tuple[str, str] | None:
        """(insurer, bank) of a consent."""
        ...


def insurer_of(entry: SignedEntry, oracle: PartyOracle) -> str | None:
    """The insurer of the notice an entry names (for routing its flags)."""
    notice_no = entry.body.get("notice_no")
    if entry.type == "loan.repayment":
        notice_no = oracle.loan_notice(entry.org, str(entry.body.get("loan_id")))
    if not isinstance(notice_no, str):
        return None
    parties = oracle.notice_parties(notice_no)
    return parties[0] if parties else None


def parties_of(entry: SignedEntry, oracle: PartyOracle) -> set[str]:
    """Every organisation that may read this entry in full (the regulator always may)."""
    body = entry.body
    parties = {entry.org}
    kind = entry.type
    if kind in PUBLIC_TYPES:
        return {EVERYONE}
    notice_no = body.get("notice_no")
    if kind == "assignment.registered":
        parties.add(str(body.get("bank")))
    elif kind == "coverage.issued":
        parties.add(str(body.get("beneficiary")))
    elif kind == "loan.repayment":
        notice_no = oracle.loan_notice(entry.org, str(body.get("loan_id")))
    elif kind == "flag.resolved":
        bank = oracle.flag_bank(str(body.get("flag_id")))
        if bank:
            parties.add(bank)
    if kind == "claim.paid" and body.get("bank"):
        parties.add(str(body["bank"]))
    if kind == "consent.granted":
        parties.add(str(body.get("bank")))
    elif kind in ("consent.revoked", "indicators.read"):
        # the bank learns its consent ended; the exporter's insurer sees every read of it
        consent = oracle.consent_parties(str(body.get("consent_id")))
        if consent is not None:
            parties.update(consent)
    if isinstance(notice_no, str):
        notice = oracle.notice_parties(notice_no)
        if notice is not None:
            insurer, beneficiary = notice
            parties.add(insurer)
            if kind.startswith(("coverage.", "claim.")):
                parties.add(beneficiary)
    return parties


def party_rows(entry: SignedEntry, oracle: PartyOracle) -> list[dict[str, str]]:
    return [{"entry_hash": entry.hash.hex(), "org": o} for o in sorted(parties_of(entry, oracle))]


def may_read_hashes(conn: sa.Connection, org: str, role: str, hashes: list[str]) -> set[str]:
    """The subset of entry hashes that `org` may read in full."""
    if role == "regulator":
        return set(hashes)
    if not hashes:
        return set()
    rows = conn.execute(
        sa.select(T_PARTY.c.entry_hash).where(
            T_PARTY.c.entry_hash.in_(hashes), T_PARTY.c.org.in_([org, EVERYONE])
        )
    ).all()
    return {r[0] for r in rows}


def may_read_entry(conn: sa.Connection, org: str, role: str, entry: SignedEntry) -> bool:
    return bool(may_read_hashes(conn, org, role, [entry.hash.hex()]))


def flag_for(org: str, role: str, flag: dict[str, Any]) -> dict[str, Any] | None:
    """The flag as `org` may see it, or None.

    ``flag`` carries ``bank`` (the institution whose entry raised it) and
    ``insurer`` (the insurer of the notice, when known) besides its receipt fields.
    """
    if role == "regulator":
        return flag
    if role == "insurer":
        return flag if flag.get("insurer") == org else None
    if flag.get("bank") != org:
        return None
    return _for_bank(flag)


def _for_bank(flag: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in flag.items() if k not in ("related", "insurer")}
    shown["related"] = []  # another institution's entries, never named to a bank
    return shown


def receipt_for(org: str, role: str, receipt: dict[str, Any], bank: str) -> dict[str, Any]:
    if role == "regulator":
        return receipt
    flags = [f for f in (flag_for(org, role, {**f, "bank": bank}) for f in receipt["flags"]) if f]
    return {**receipt, "flags": [{k: v for k, v in f.items() if k != "bank"} for f in flags]}


INTERNAL_LOAN_FIELDS = ("loan_key", "notice_fp")


def loans_for(conn: sa.Connection, org: str, role: str) -> list[dict[str, Any]]:
    """Loans as `org` may see them, without the node's internal matching keys."""
    if role == "regulator":
        rows = projection.list_loans(conn)
    elif role == "insurer":
        rows = projection.list_loans(conn, insurer=org)
    else:
        rows = projection.list_loans(conn, bank=org)
    return [{k: v for k, v in r.items() if k not in INTERNAL_LOAN_FIELDS} for r in rows]


def flags_for(
    conn: sa.Connection, org: str, role: str, since: int | None, status: str | None
) -> list[dict[str, Any]]:
    if role == "regulator":
        return projection.list_flags(conn, None, None, since, status)
    if role == "insurer":
        return projection.list_flags(conn, None, org, since, status)
    return [_for_bank(f) for f in projection.list_flags(conn, org, None, since, status)]


def block_for(conn: sa.Connection, org: str, role: str, block: Block) -> dict[str, Any]:
    """A block with the entries `org` may not read reduced to their leaf hashes.

    Roots and proofs still verify: entries_root is over entry hashes; a receipt
    withheld is shown by the leaf hash of its canonical bytes.
    """
    data = block.to_json()
    if role == "regulator":
        data["receipts"] = [{**r, "receipt_leaf": receipt_leaf(r).hex()} for r in block.receipts]
        return data
    hashes = [e.hash.hex() for e in block.entries]
    readable = may_read_hashes(conn, org, role, hashes)
    entries: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    for entry, receipt in zip(block.entries, block.receipts, strict=True):
        h = entry.hash.hex()
        if h in readable:
            entries.append(entry.to_json())
            shown = receipt_for(org, role, receipt, entry.org)
            receipts.append({**shown, "receipt_leaf": receipt_leaf(receipt).hex()})
        else:
            entries.append({"entry_hash": h, "withheld": True})
            receipts.append({"entry_hash": h, "receipt_leaf": receipt_leaf(receipt).hex()})
    data["entries"] = entries
    data["receipts"] = receipts
    return data


class StateOracle:
    """PartyOracle over the sequencer's in-memory domain state."""

    def __init__(self, state: State) -> None:
        self.state = state

    def notice_parties(self, notice_no: str) -> tuple[str, str] | None:
        notice = self.state.notices.get(compute_k3(self.state.secret, notice_no))
        return (notice.insurer, notice.beneficiary) if notice else None

    def loan_notice(self, bank: str, loan_id: str) -> str | None:
        loan = self.state.loans.get((bank, normalise_id(loan_id)))
        return loan.notice_no if loan else None

    def flag_bank(self, flag_id: str) -> str | None:
        record = self.state.flags.get(flag_id)
        return record.bank if record else None

    def consent_parties(self, consent_id: str) -> tuple[str, str] | None:
        consent = self.state.credit.consents.get(normalise_id(consent_id))
        return (consent.insurer, consent.bank) if consent else None


def state_oracle(state: State) -> StateOracle:
    return StateOracle(state)
