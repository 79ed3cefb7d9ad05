"""Projection tables: written from drained changes, read by the API's queries; every backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from chain.storage import make_engine
from node.domain import flag_id
from node.fingerprints import compute_k1, compute_k3
from node.projection import (
    NODE_TABLES,
    audit_rows,
    exposures,
    get_loan,
    list_flags,
    list_loans,
    list_notices,
    receivable_history,
    write_changes,
)
from tests.unit.node.domain_helpers import (
    EXPORTER,
    SECRET,
    World,
    drawdown_for,
    limit,
    receivable,
    repayment,
    shipment,
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    SQLModel.metadata.create_all(eng, tables=NODE_TABLES)
    yield eng
    eng.dispose()


def _flush(world: World, engine: Engine) -> None:
    with engine.begin() as conn:
        write_changes(conn, world.state.drain_changes())


@pytest.fixture
def story(engine: Engine) -> World:
    """BANK-A lends on N-A1; BANK-B is refused on a second notice of the same receivable."""
    world = World()
    world.setup()
    world.submit("INSURER", "limit.approved", limit(buyer_code="DE-77", buyer_country="DE"))
    notice_a = world.issue("N-A1", "BANK-A")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("LA-1", notice_a))
    _flush(world, engine)
    notice_b = world.issue("N-B1", "BANK-B")
    world.submit("BANK-B", "loan.drawdown", drawdown_for("LB-1", notice_b, amount="30000.00"))
    other = receivable(invoice_no="I-DE", transport_doc_no="BL-DE", shipment=shipment(voyage="9"))
    notice_c = world.issue("N-B2", "BANK-B", buyer_code="DE-77", receivable=other)
    world.submit("BANK-B", "loan.drawdown", drawdown_for("LB-2", notice_c, amount="20000.00"))
    _flush(world, engine)
    return world


def test_loans_are_listed_per_bank_and_insurer(engine: Engine, story: World) -> None:
    with engine.connect() as conn:
        every = list_loans(conn)
        assert [(r["bank"], r["loan_id"], r["status"]) for r in every] == [
            ("BANK-A", "LA-1", "open"),
            ("BANK-B", "LB-2", "open"),
        ]
        assert [r["loan_id"] for r in list_loans(conn, bank="BANK-B")] == ["LB-2"]
        assert len(list_loans(conn, insurer="INSURER")) == 2
        assert list_loans(conn, insurer="INSURER-2") == []
        loan = get_loan(conn, "BANK-A", "la 1")
        assert loan is not None
        assert (loan["amount"], loan["outstanding"], loan["buyer_country"]) == (
            "50000.00",
            "50000.00",
            "US",
        )
        assert loan["index"] == 4 and loan["ts"] == "2026-03-01T12:00:04.000Z"
        assert get_loan(conn, "BANK-B", "LA-1") is None


def test_repayment_updates_the_loan_row(engine: Engine, story: World) -> None:
    story.submit("BANK-A", "loan.repayment", repayment("LA-1", "20000.00"))
    _flush(story, engine)
    with engine.connect() as conn:
        assert get_loan(conn, "BANK-A", "LA-1")["outstanding"] == "30000.00"  # type: ignore[index]
    story.submit("BANK-A", "loan.repayment", repayment("LA-1", "30000.00"))
    _flush(story, engine)
    with engine.connect() as conn:
        loan = get_loan(conn, "BANK-A", "LA-1")
        assert loan is not None and (loan["outstanding"], loan["status"]) == ("0.00", "repaid")
        assert [r["bank"] for r in exposures(conn, "bank")] == ["BANK-B"]


def test_flags_are_listed_and_resolved(engine: Engine, story: World) -> None:
    with engine.connect() as conn:
        flags = list_flags(conn, None, None, None, None)
        assert [(f["code"], f["bank"], f["status"]) for f in flags] == [
            ("DUPLICATE_FINANCING", "BANK-B", "open")
        ]
        assert flags[0]["data"]["keys"] == ["K1", "K2"]
        assert isinstance(flags[0]["related"], list) and len(flags[0]["related"]) == 1
        text = json.dumps(flags)
        assert "BANK-A" not in text and "INV-2026-0001" not in text and "LA-1" not in text
        assert list_flags(conn, "BANK-A", None, None, None) == []
        assert len(list_flags(conn, None, "INSURER", None, None)) == 1
        assert list_flags(conn, None, None, flags[0]["index"], None) == []
        assert len(list_flags(conn, None, None, flags[0]["index"] - 1, "open")) == 1
    ident = flag_id(bytes.fromhex(flags[0]["entry_hash"]), "DUPLICATE_FINANCING")
    assert ident == flags[0]["flag_id"]
    story.submit(
        "REGULATOR", "flag.resolved", {"flag_id": ident, "outcome": "confirmed", "note": "n"}
    )
    _flush(story, engine)
    with engine.connect() as conn:
        assert list_flags(conn, None, None, None, "open") == []
        (resolved,) = list_flags(conn, None, None, None, "confirmed")
        assert resolved["note"] == "n"


def test_receivable_history_by_any_exact_key(engine: Engine, story: World) -> None:
    k1 = compute_k1(SECRET, EXPORTER, "inv 2026 0001")
    with engine.connect() as conn:
        history = receivable_history(conn, k1)
        assert [(h["type"], h["org"], h["status"]) for h in history] == [
            ("coverage.issued", "INSURER", "accepted"),
            ("loan.drawdown", "BANK-A", "accepted"),
            ("coverage.issued", "INSURER", "accepted"),
            ("loan.drawdown", "BANK-B", "rejected"),
        ]
        by_notice = receivable_history(conn, compute_k3(SECRET, "N-B1"))
        assert [h["type"] for h in by_notice] == ["coverage.issued", "loan.drawdown"]


def test_rewriting_the_same_changes_is_harmless(engine: Engine) -> None:
    world = World()
    world.setup()
    notice = world.issue("N-A1", "BANK-A")
    world.submit("BANK-A", "loan.drawdown", drawdown_for("L1", notice))
    changes = world.state.drain_changes()
    for _ in range(2):
        with engine.begin() as conn:
            write_changes(conn, changes)
    with engine.connect() as conn:
        assert len(list_loans(conn)) == 1
        assert len(receivable_history(conn, compute_k3(SECRET, "N-A1"))) == 2
        (row,) = list_notices(conn, beneficiary="BANK-A")
        assert (row["notice_no"], row["status"], row["index"]) == ("N-A1", "issued", 2)


def test_notice_revocation_updates_the_row(engine: Engine, story: World) -> None:
    story.submit("INSURER", "coverage.revoked", {"notice_no": "N-A1", "reason": "fraud"})
    _flush(story, engine)
    with engine.connect() as conn:
        statuses = {r["notice_no"]: r["status"] for r in list_notices(conn, insurer="INSURER")}
    assert statuses == {"N-A1": "revoked", "N-B1": "issued", "N-B2": "issued"}


def test_exposures_by_bank_buyer_and_country(engine: Engine, story: World) -> None:
    with engine.connect() as conn:
        assert exposures(conn, "bank") == [
            {"bank": "BANK-A", "currency": "USD", "outstanding": "50000.00", "loans": 1},
            {"bank": "BANK-B", "currency": "USD", "outstanding": "20000.00", "loans": 1},
        ]
        assert exposures(conn, "buyer") == [
            {"buyer": "DE-77", "currency": "USD", "outstanding": "20000.00", "loans": 1},
            {"buyer": "USA/123456", "currency": "USD", "outstanding": "50000.00", "loans": 1},
        ]
        assert exposures(conn, "country") == [
            {"country": "DE", "currency": "USD", "outstanding": "20000.00", "loans": 1},
            {"country": "US", "currency": "USD", "outstanding": "50000.00", "loans": 1},
        ]
        with pytest.raises(ValueError):
            exposures(conn, "planet")  # type: ignore[arg-type]


def test_audit_rows_in_a_window(engine: Engine, story: World) -> None:
    with engine.connect() as conn:
        every = audit_rows(conn, "2026-03-01", "2026-03-02T00:00:00.000Z")
        assert [r["loan_id"] for r in every["loans"]] == ["LA-1", "LB-2"]
        assert [r["code"] for r in every["flags"]] == ["DUPLICATE_FINANCING"]
        early = audit_rows(conn, "2026-03-01T00:00:00Z", "2026-03-01T12:00:05.000Z")
        assert [r["loan_id"] for r in early["loans"]] == ["LA-1"]
        assert early["flags"] == []
        assert audit_rows(conn, "2026-03-02", "2026-03-03") == {"flags": [], "loans": []}


def test_tables_are_prefixed() -> None:
    names = [t.name for t in NODE_TABLES]
    assert all(name.startswith("node_") for name in names)
    assert isinstance(NODE_TABLES[0], sa.Table)
