"""Projection tables of the domain state, and the queries the API reads them with.

The sequencer drains ``State.drain_changes()`` after each block and calls
``write_changes(conn, changes)`` in the block's own transaction, so the tables are
always those of the last committed block and can be rebuilt by replay.

Tables (prefixed ``node_``)::

    node_loans              accepted loans, upsert by (bank, loan_key)
    node_flags              every flag (on accepted and rejected entries), upsert by flag_id
    node_receivable_events  one row per (K1/K2/K3 fingerprint, entry): a receivable's history
    node_notices            coverage notices, upsert by notice_fp (K3)

Amounts are stored as decimal strings (no float, no driver-specific Decimal) and
summed in Python with ``Decimal``; timestamps as the ledger's fixed-width
``YYYY-MM-DDTHH:MM:SS.mmmZ``, so text order is time order. Rows are filtered for
their reader by the API (node.visibility): a flag's detail and data never hold
another bank's identifiers, loans and notices rows do and are shown to their parties.

Upserts use the dialect's ``INSERT .. ON CONFLICT`` (SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from chain.entries import format_ts
from node.domain import Changes
from node.fx import DECIMAL_CONTEXT
from node.identifiers import normalise_id

NO_AUTOINC: Final = {"autoincrement": False}


class LoanRow(SQLModel, table=True):
    __tablename__ = "node_loans"
    bank: str = Field(primary_key=True, max_length=64)
    loan_key: str = Field(primary_key=True, max_length=256)
    loan_id: str = Field(max_length=256)
    entry_hash: str = Field(max_length=64)
    notice_fp: str = Field(max_length=64, index=True)
    notice_no: str = Field(max_length=256)
    policy_no: str = Field(max_length=256)
    insurer: str = Field(max_length=64, index=True)
    buyer_code: str = Field(max_length=256)
    buyer_country: str | None = Field(default=None, max_length=2)
    currency: str = Field(max_length=3)
    amount: str = Field(max_length=40)
    outstanding: str = Field(max_length=40)
    status: str = Field(max_length=8)
    drawdown_date: str = Field(max_length=10)
    maturity_date: str = Field(max_length=10)
    tranche_of: str | None = Field(default=None, max_length=256)
    idx: int = Field(sa_type=sa.BigInteger, index=True)
    ts: str = Field(max_length=24, index=True)


class FlagRow(SQLModel, table=True):
    __tablename__ = "node_flags"
    flag_id: str = Field(primary_key=True, max_length=20)
    entry_hash: str = Field(max_length=64, index=True)
    idx: int = Field(sa_type=sa.BigInteger, index=True)
    position: int
    entry_type: str = Field(max_length=64)
    code: str = Field(max_length=64)
    severity: str = Field(max_length=16)
    bank: str | None = Field(default=None, max_length=64, index=True)
    insurer: str | None = Field(default=None, max_length=64, index=True)
    detail: str
    related: list[str] = Field(sa_type=sa.JSON)
    data: dict[str, Any] = Field(sa_type=sa.JSON)
    status: str = Field(max_length=16)
    note: str | None = None
    ts: str = Field(max_length=24, index=True)


class ReceivableEventRow(SQLModel, table=True):
    __tablename__ = "node_receivable_events"
    fingerprint: str = Field(primary_key=True, max_length=64)
    entry_hash: str = Field(primary_key=True, max_length=64)
    idx: int = Field(sa_type=sa.BigInteger)
    type: str = Field(max_length=64)
    org: str = Field(max_length=64)
    status: str = Field(max_length=16)
    ts: str = Field(max_length=24)


class NoticeRow(SQLModel, table=True):
    __tablename__ = "node_notices"
    notice_fp: str = Field(primary_key=True, max_length=64)
    notice_no: str = Field(max_length=256)
    policy_no: str = Field(max_length=256)
    insurer: str = Field(max_length=64, index=True)
    beneficiary: str = Field(max_length=64, index=True)
    exporter_id: str = Field(max_length=32)
    buyer_code: str = Field(max_length=256)
    currency: str = Field(max_length=3)
    amount: str = Field(max_length=40)
    status: str = Field(max_length=8)
    valid_to: str = Field(max_length=10)
    entry_hash: str = Field(max_length=64)
    idx: int = Field(sa_type=sa.BigInteger)


class ConsentRow(SQLModel, table=True):
    __tablename__ = "node_consents"
    consent_id: str = Field(primary_key=True, max_length=64)
    exporter_id: str = Field(max_length=32, index=True)
    bank: str = Field(max_length=64, index=True)
    insurer: str = Field(max_length=64)
    valid_until: str = Field(max_length=10)
    status: str = Field(max_length=8)
    granted_hash: str = Field(max_length=64)
    revoked_hash: str | None = Field(default=None, max_length=64)
    idx: int = Field(sa_type=sa.BigInteger)


class BuyerLightRow(SQLModel, table=True):
    __tablename__ = "node_buyer_lights"
    buyer_key: str = Field(primary_key=True, max_length=256)
    buyer_code: str = Field(max_length=256)
    country: str | None = Field(default=None, max_length=2)
    light: str = Field(max_length=8)
    since: str | None = Field(default=None, max_length=24)
    why: list[dict[str, Any]] = Field(sa_type=sa.JSON)


class ExporterIndicatorsRow(SQLModel, table=True):
    __tablename__ = "node_exporter_indicators"
    exporter_id: str = Field(primary_key=True, max_length=32)
    data: dict[str, Any] = Field(sa_type=sa.JSON)


class IndicatorReadRow(SQLModel, table=True):
    __tablename__ = "node_indicator_reads"
    entry_hash: str = Field(primary_key=True, max_length=64)
    bank: str = Field(max_length=64)
    exporter_id: str = Field(max_length=32, index=True)
    consent_id: str = Field(max_length=64)
    idx: int = Field(sa_type=sa.BigInteger)
    ts: str = Field(max_length=24)


class AlertEventRow(SQLModel, table=True):
    """An alert event of a committed entry (node.credit), for node.alerts to deliver."""

    __tablename__ = "node_alert_events"
    id: int | None = Field(default=None, primary_key=True)
    idx: int = Field(sa_type=sa.BigInteger, index=True)
    entry_hash: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    buyer_key: str = Field(max_length=256, index=True)
    buyer_code: str = Field(max_length=256)
    country: str | None = Field(default=None, max_length=2)
    exporter_id: str | None = Field(default=None, max_length=32)
    visible_to: list[str] = Field(sa_type=sa.JSON)
    data: dict[str, Any] = Field(sa_type=sa.JSON)
    ts: str = Field(max_length=24)


NODE_TABLES: Final[list[sa.Table]] = [
    t.__table__  # type: ignore[attr-defined,union-attr]
    for t in (
        LoanRow, FlagRow, ReceivableEventRow, NoticeRow,
        ConsentRow, BuyerLightRow, ExporterIndicatorsRow, IndicatorReadRow, AlertEventRow,
    )
]  # fmt: skip
T_LOANS, T_FLAGS, T_EVENTS, T_NOTICES = NODE_TABLES[:4]
T_CONSENTS, T_LIGHTS, T_INDICATORS, T_READS, T_ALERTS = NODE_TABLES[4:]


# --------------------------------------------------------------------------- writing


def _to_db(row: Mapping[str, Any]) -> dict[str, Any]:
    return {("idx" if k == "index" else k): v for k, v in row.items()}


def _from_db(row: sa.RowMapping) -> dict[str, Any]:
    return {("index" if k == "idx" else k): v for k, v in row.items()}


def _upsert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), list(rows))


def _insert_new(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(table).on_conflict_do_nothing(), list(rows))


def write_changes(conn: Connection, changes: Changes) -> None:
    """Write one drain of changes (call inside the block's transaction)."""
    _upsert(conn, T_LOANS, [_to_db(r) for r in changes.loans])
    _upsert(conn, T_FLAGS, [_to_db(r) for r in changes.flags])
    _insert_new(conn, T_EVENTS, [_to_db(r) for r in changes.receivable_events])
    _upsert(conn, T_NOTICES, [_to_db(r) for r in changes.notices])
    credit = changes.credit
    _upsert(conn, T_CONSENTS, credit.get("consents", []))
    _upsert(conn, T_LIGHTS, credit.get("lights", []))
    _upsert(conn, T_INDICATORS, credit.get("indicators", []))
    _insert_new(conn, T_READS, credit.get("reads", []))
    if credit.get("alerts"):
        conn.execute(sa.insert(T_ALERTS), credit["alerts"])


# --------------------------------------------------------------------------- credit reads


def get_light(conn: Connection, buyer_code: str) -> dict[str, Any] | None:
    query = sa.select(T_LIGHTS).where(T_LIGHTS.c.buyer_key == normalise_id(buyer_code))
    rows = _rows(conn, query)
    return rows[0] if rows else None


def get_live_consent(
    conn: Connection, bank: str, exporter_id: str, on: str
) -> dict[str, Any] | None:
    """The bank's newest consent from the exporter that is granted and not past (on: ISO date)."""
    query = (
        sa.select(T_CONSENTS)
        .where(
            T_CONSENTS.c.bank == bank,
            T_CONSENTS.c.exporter_id == exporter_id,
            T_CONSENTS.c.status == "granted",
            T_CONSENTS.c.valid_until >= on,
        )
        .order_by(T_CONSENTS.c.idx.desc())
    )
    rows = _rows(conn, query)
    return rows[0] if rows else None


def get_indicators(conn: Connection, exporter_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(T_INDICATORS.c.data).where(T_INDICATORS.c.exporter_id == exporter_id)
    ).scalar()
    return dict(row) if row is not None else None


def list_indicator_reads(conn: Connection, exporter_id: str) -> list[dict[str, Any]]:
    query = sa.select(T_READS).where(T_READS.c.exporter_id == exporter_id).order_by(T_READS.c.idx)
    return _rows(conn, query)


def list_consents(conn: Connection, exporter_id: str) -> list[dict[str, Any]]:
    query = (
        sa.select(T_CONSENTS)
        .where(T_CONSENTS.c.exporter_id == exporter_id)
        .order_by(T_CONSENTS.c.idx)
    )
    return _rows(conn, query)


# --------------------------------------------------------------------------- reading


def _rows(conn: Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [_from_db(row) for row in conn.execute(query).mappings()]


def list_loans(
    conn: Connection, bank: str | None = None, insurer: str | None = None
) -> list[dict[str, Any]]:
    """Accepted loans in log order, optionally of one bank or against one insurer's policies."""
    query = sa.select(T_LOANS).order_by(T_LOANS.c.idx)
    if bank is not None:
        query = query.where(T_LOANS.c.bank == bank)
    if insurer is not None:
        query = query.where(T_LOANS.c.insurer == insurer)
    return _rows(conn, query)


def get_loan(conn: Connection, bank: str, loan_id: str) -> dict[str, Any] | None:
    """One loan of ``bank`` (loan ids match after normalisation), or None."""
    query = sa.select(T_LOANS).where(
        T_LOANS.c.bank == bank, T_LOANS.c.loan_key == normalise_id(loan_id)
    )
    rows = _rows(conn, query)
    return rows[0] if rows else None


def list_flags(
    conn: Connection,
    bank: str | None,
    insurer: str | None,
    since_index: int | None,
    status: str | None,
) -> list[dict[str, Any]]:
    """Flags in log order (and rule order within an entry), after ``since_index`` if given."""
    query = sa.select(T_FLAGS).order_by(T_FLAGS.c.idx, T_FLAGS.c.position)
    if bank is not None:
        query = query.where(T_FLAGS.c.bank == bank)
    if insurer is not None:
        query = query.where(T_FLAGS.c.insurer == insurer)
    if since_index is not None:
        query = query.where(T_FLAGS.c.idx > since_index)
    if status is not None:
        query = query.where(T_FLAGS.c.status == status)
    return _rows(conn, query)


def receivable_history(conn: Connection, fingerprint: str) -> list[dict[str, Any]]:
    """Every entry (accepted or rejected) that touched the receivable key, in log order."""
    query = (
        sa.select(T_EVENTS).where(T_EVENTS.c.fingerprint == fingerprint).order_by(T_EVENTS.c.idx)
    )
    return _rows(conn, query)


def list_notices(
    conn: Connection, insurer: str | None = None, beneficiary: str | None = None
) -> list[dict[str, Any]]:
    query = sa.select(T_NOTICES).order_by(T_NOTICES.c.idx)
    if insurer is not None:
        query = query.where(T_NOTICES.c.insurer == insurer)
    if beneficiary is not None:
        query = query.where(T_NOTICES.c.beneficiary == beneficiary)
    return _rows(conn, query)


def exposures(conn: Connection, by: Literal["bank", "buyer", "country"]) -> list[dict[str, Any]]:
    """Outstanding of open loans grouped by bank, buyer or buyer country, per currency.

    Each row: ``{by: ..., "currency", "outstanding" (decimal string), "loans" (count)}``,
    sorted by group then currency. Buyers are grouped by their normalised code and shown
    by the first spelling seen.
    """
    column = {
        "bank": T_LOANS.c.bank,
        "buyer": T_LOANS.c.buyer_code,
        "country": T_LOANS.c.buyer_country,
    }
    if by not in column:
        raise ValueError(f"exposures by {by!r}: must be bank, buyer or country")
    query = (
        sa.select(column[by].label("group"), T_LOANS.c.currency, T_LOANS.c.outstanding)
        .where(T_LOANS.c.status == "open")
        .order_by(T_LOANS.c.idx)
    )
    totals: dict[tuple[str, str], list[Any]] = {}
    for row in conn.execute(query):
        shown = row.group
        group = normalise_id(shown) if by == "buyer" and shown is not None else shown
        slot = totals.setdefault((group or "", row.currency), [shown, Decimal(0), 0])
        slot[1] = DECIMAL_CONTEXT.add(slot[1], Decimal(row.outstanding))
        slot[2] += 1
    return [
        {by: shown, "currency": currency, "outstanding": format(total, "f"), "loans": count}
        for (_, currency), (shown, total, count) in sorted(totals.items())
    ]


def _normalise_ts(text: str) -> str:
    """A bound given as a ledger ts, an ISO date-time or a date -> the ledger's ts form."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_ts(moment)


def audit_rows(conn: Connection, from_ts: str, to_ts: str) -> dict[str, list[dict[str, Any]]]:
    """Flags and loans whose entry ts lies in [from_ts, to_ts), for the regulator's report."""
    lo, hi = _normalise_ts(from_ts), _normalise_ts(to_ts)
    flags = _rows(
        conn,
        sa.select(T_FLAGS)
        .where(T_FLAGS.c.ts >= lo, T_FLAGS.c.ts < hi)
        .order_by(T_FLAGS.c.idx, T_FLAGS.c.position),
    )
    loans = _rows(
        conn,
        sa.select(T_LOANS).where(T_LOANS.c.ts >= lo, T_LOANS.c.ts < hi).order_by(T_LOANS.c.idx),
    )
    return {"flags": flags, "loans": loans}
