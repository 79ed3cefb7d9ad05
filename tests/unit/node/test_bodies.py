"""Entry bodies: valid examples round-trip, each kind of bad value is named by its path."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from node.bodies import (
    BODY_MODELS,
    Body,
    CoverageIssued,
    FinancingReserved,
    LoanDrawdown,
    PolicyRegistered,
    body_to_json,
    format_instant,
    parse_body,
)
from node.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidBody,
    NodeError,
    NotFound,
    Unprocessable,
)

EXPORTER = "91350100M000100Y43"
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()

RECEIVABLE: dict[str, Any] = {
    "invoice_no": "INV-2026-0001",
    "invoice_date": "2026-01-05",
    "transport_doc_no": "COSU6123456780",
    "amount": "125000.00",
    "currency": "USD",
    "due_date": "2026-04-05",
    "shipment": {
        "vessel": "COSCO SHIPPING ARIES",
        "voyage": "042E",
        "port_of_loading": "CNXMN",
        "ship_date": "2026-01-04",
        "quantity": "1200.500",
        "unit": "MT",
    },
}

VALID: dict[str, dict[str, Any]] = {
    "policy.registered": {
        "policy_no": "SCI-2026-000123",
        "exporter_id": EXPORTER,
        "exporter_name": "福建某某进出口有限公司",
        "product": "comprehensive",
        "currency": "USD",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
        "indemnity_ratio": "0.9",
        "max_liability": "5000000.00",
        "max_credit_days": 180,
    },
    "limit.approved": {
        "policy_no": "SCI-2026-000123",
        "buyer_code": "USA/123456",
        "buyer_name": "Acme Imports LLC",
        "buyer_country": "US",
        "amount": "800000",
        "currency": "USD",
        "valid_to": "2026-12-31",
    },
    "assignment.registered": {
        "policy_no": "SCI-2026-000123",
        "bank": "BANK-A",
        "kind": "claims",
        "scope": "country:US",
    },
    "coverage.issued": {
        "notice_no": "CN-2026-000042",
        "policy_no": "SCI-2026-000123",
        "exporter_id": EXPORTER,
        "buyer_code": "USA/123456",
        "receivable": RECEIVABLE,
        "declared_amount": "125000.00",
        "effective_limit": "800000.00",
        "indemnity_ratio": "0.90",
        "beneficiary": "BANK-A",
        "valid_to": "2026-07-05",
    },
    "coverage.revoked": {"notice_no": "CN-2026-000042", "reason": "policy lapsed: premium unpaid"},
    "financing.reserved": {
        "bank": "BANK-A",
        "notice_no": "CN-2026-000042",
        "receivable": RECEIVABLE,
        "amount": "100000.00",
        "currency": "USD",
        "expires_at": "2026-01-10T12:30:00.123Z",
    },
    "loan.drawdown": {
        "loan_id": "BANK-A-L-0001",
        "notice_no": "CN-2026-000042",
        "receivable": RECEIVABLE,
        "amount": "100000.00",
        "currency": "USD",
        "drawdown_date": "2026-01-10",
        "maturity_date": "2026-04-10",
        "tranche_of": None,
    },
    "loan.repayment": {
        "loan_id": "BANK-A-L-0001",
        "amount": "40000.50",
        "currency": "USD",
        "date": "2026-03-01",
        "source": "buyer",
    },
    "claim.loss_notified": {
        "notice_no": "CN-2026-000042",
        "amount": "125000.00",
        "currency": "USD",
        "date": "2026-05-20",
    },
    "claim.paid": {
        "notice_no": "CN-2026-000042",
        "amount": "112500.00",
        "currency": "USD",
        "date": "2026-09-01",
        "bank": "BANK-A",
    },
    "fx.rate": {"date": "2026-01-09", "base": "USD", "quote": "CNY", "rate": "7.1234"},
    "flag.resolved": {
        "flag_id": "F-000017",
        "outcome": "dismissed",
        "note": "second tranche, documented",
    },
    "org.added": {
        "org_id": "BANK-C",
        "name": "Bank C, Xiamen branch",
        "role": "bank",
        "keys": [{"key_id": "BANK-C/1", "public_key": KEY_A}],
    },
    "key.added": {"org_id": "BANK-C", "key_id": "BANK-C/2", "public_key": KEY_B},
    "key.revoked": {"org_id": "BANK-C", "key_id": "BANK-C/1", "reason": "HSM replaced"},
    "consent.granted": {
        "consent_id": "CONSENT-7",
        "exporter_id": EXPORTER,
        "bank": "BANK-A",
        "scope": "insurance_indicators",
        "valid_until": "2027-06-30",
    },
    "consent.revoked": {"consent_id": "CONSENT-7", "reason": "exporter withdrew"},
    "buyer.rated": {
        "buyer_code": "US-BUYER-001",
        "buyer_country": "US",
        "light": "yellow",
        "reasons": ["PAYMENT_DELAY", "RATING_REVIEW"],
    },
    "indicators.read": {"exporter_id": EXPORTER, "consent_id": "CONSENT-7"},
}

_DELETE = object()


def mutate(entry_type: str, path: str, value: Any) -> dict[str, Any]:
    """A deep copy of VALID[entry_type] with the field at dotted ``path`` set (or deleted)."""
    body = copy.deepcopy(VALID[entry_type])
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


def problems_of(entry_type: str, body: Any) -> dict[str, str]:
    with pytest.raises(InvalidBody) as info:
        parse_body(entry_type, body)
    assert info.value.problems, "InvalidBody must carry problems"
    fields = [p.field for p in info.value.problems]
    assert len(fields) == len(set(fields)), "one FieldProblem per field"
    return {p.field: p.message for p in info.value.problems}


def assert_only_problem(entry_type: str, body: Any, field: str, *words: str) -> None:
    problems = problems_of(entry_type, body)
    assert list(problems) == [field], problems
    for word in words:
        assert word in problems[field], problems[field]


def json_leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        return [leaf for v in value.values() for leaf in json_leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in json_leaves(v)]
    return [value]


# --------------------------------------------------------------------------- valid


def test_every_entry_type_has_a_valid_example() -> None:
    assert set(VALID) == set(BODY_MODELS)


@pytest.mark.parametrize("entry_type", sorted(VALID))
def test_valid_body_parses_and_round_trips(entry_type: str) -> None:
    body = VALID[entry_type]
    model = parse_body(entry_type, body)
    assert isinstance(model, BODY_MODELS[entry_type])
    dumped = body_to_json(model)
    assert dumped == body
    assert parse_body(entry_type, dumped) == model
    for leaf in json_leaves(dumped):
        assert leaf is None or type(leaf) in (str, int), leaf  # never a float


@pytest.mark.parametrize("entry_type", sorted(VALID))
def test_models_are_frozen(entry_type: str) -> None:
    model = parse_body(entry_type, VALID[entry_type])
    first = next(iter(type(model).model_fields))
    with pytest.raises(ValidationError):
        setattr(model, first, "x")


def test_values_are_typed() -> None:
    cov = parse_body("coverage.issued", VALID["coverage.issued"])
    assert isinstance(cov, CoverageIssued)
    assert cov.receivable.amount == Decimal("125000.00")
    assert isinstance(cov.receivable.amount, Decimal)
    assert cov.indemnity_ratio == Decimal("0.9")
    assert cov.receivable.invoice_date == date(2026, 1, 5)
    assert cov.receivable.shipment.quantity == Decimal("1200.5")
    pol = parse_body("policy.registered", VALID["policy.registered"])
    assert isinstance(pol, PolicyRegistered)
    assert pol.max_credit_days == 180
    assert pol.valid_to == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("USD", "125000.00"),
        ("USD", "0.01"),
        ("USD", "100.5"),
        ("USD", "100"),
        ("JPY", "100"),
        ("KWD", "1.001"),
        ("BHD", "0.125"),
        ("CLF", "1.0001"),
        ("CNY", "999999999999999999.99"),
    ],
)
def test_amount_within_minor_units_round_trips(currency: str, amount: str) -> None:
    body = mutate("loan.repayment", "currency", currency)
    body["amount"] = amount
    model = parse_body("loan.repayment", body)
    assert body_to_json(model)["amount"] == amount


@given(
    st.from_regex(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,2})?", fullmatch=True).filter(
        lambda s: Decimal(s) > 0
    )
)
def test_any_usd_amount_round_trips_byte_exact(amount: str) -> None:
    body = mutate("loan.repayment", "amount", amount)
    model = parse_body("loan.repayment", body)
    assert body_to_json(model) == body


@given(st.from_regex(r"0\.[0-9]{1,10}", fullmatch=True).filter(lambda s: Decimal(s) > 0))
def test_any_rate_round_trips_byte_exact(rate: str) -> None:
    body = mutate("fx.rate", "rate", rate)
    assert body_to_json(parse_body("fx.rate", body)) == body


def test_tranche_of_absent_stays_absent_and_given_stays_given() -> None:
    absent = mutate("loan.drawdown", "tranche_of", _DELETE)
    model = parse_body("loan.drawdown", absent)
    assert isinstance(model, LoanDrawdown)
    assert model.tranche_of is None
    assert body_to_json(model) == absent
    given_ = mutate("loan.drawdown", "tranche_of", "BANK-A-L-0000")
    assert body_to_json(parse_body("loan.drawdown", given_)) == given_


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-01-10T12:30:00Z", datetime(2026, 1, 10, 12, 30, tzinfo=UTC)),
        ("2026-01-10T12:30:00+00:00", datetime(2026, 1, 10, 12, 30, tzinfo=UTC)),
        ("2026-01-10T20:30:00.5+08:00", datetime(2026, 1, 10, 12, 30, 0, 500000, tzinfo=UTC)),
        ("2026-01-10T07:30:00-05:00", datetime(2026, 1, 10, 12, 30, tzinfo=UTC)),
    ],
)
def test_expires_at_is_utc_and_keeps_its_text(text: str, utc: datetime) -> None:
    body = mutate("financing.reserved", "expires_at", text)
    model = parse_body("financing.reserved", body)
    assert isinstance(model, FinancingReserved)
    assert model.expires_at == utc
    assert model.expires_at.utcoffset() == timedelta(0)
    assert body_to_json(model) == body


def test_expires_at_built_in_python_dumps_canonical_utc() -> None:
    parsed = parse_body("financing.reserved", VALID["financing.reserved"])
    assert isinstance(parsed, FinancingReserved)
    local = datetime(2026, 1, 10, 20, 30, 0, 123000, tzinfo=timezone(timedelta(hours=8)))
    built = FinancingReserved(
        bank=parsed.bank,
        notice_no=parsed.notice_no,
        receivable=parsed.receivable,
        currency="USD",
        amount=Decimal("100000.00"),
        expires_at=local,
    )
    assert body_to_json(built) == VALID["financing.reserved"]
    assert format_instant(datetime(2026, 1, 10, 12, 30, tzinfo=UTC)) == "2026-01-10T12:30:00Z"


def test_expires_at_changed_by_copy_dumps_the_new_instant() -> None:
    body = mutate("financing.reserved", "expires_at", "2026-01-10T20:30:00+08:00")
    model = parse_body("financing.reserved", body)
    later = model.model_copy(update={"expires_at": datetime(2026, 1, 10, 13, 0, tzinfo=UTC)})
    assert body_to_json(later)["expires_at"] == "2026-01-10T13:00:00Z"
    assert body_to_json(model)["expires_at"] == "2026-01-10T20:30:00+08:00"


@pytest.mark.parametrize("scope", ["all", "country:CN", "buyer:USA/123456"])
def test_assignment_scopes(scope: str) -> None:
    body = mutate("assignment.registered", "scope", scope)
    model = parse_body("assignment.registered", body)
    assert body_to_json(model) == body


def test_identifiers_are_stored_as_given() -> None:
    body = mutate("loan.repayment", "loan_id", " bank-a l/0001 ")
    model = parse_body("loan.repayment", body)
    assert body_to_json(model)["loan_id"] == " bank-a l/0001 "


# --------------------------------------------------------------------------- invalid

INVALID: list[tuple[str, str, Any, str, str]] = [
    # (entry type, dotted path, bad value, field expected in problems, word in the message)
    ("loan.drawdown", "amount", 100000.0, "amount",
     "amount must be a decimal string, not a number"),
    ("loan.drawdown", "amount", 100000, "amount", "not a number"),
    ("loan.drawdown", "amount", True, "amount", "not a boolean"),
    ("coverage.issued", "receivable.amount", 125000.5, "receivable.amount", "not a number"),
    ("loan.drawdown", "amount", "-100.00", "amount", "greater than zero"),
    ("loan.drawdown", "amount", "0", "amount", "greater than zero"),
    ("loan.drawdown", "amount", "0.00", "amount", "greater than zero"),
    ("coverage.issued", "receivable.amount", "-1", "receivable.amount", "greater than zero"),
    ("loan.drawdown", "amount", "1.001", "amount", "USD allows at most 2 decimal places"),
    ("coverage.issued", "receivable.amount", "1.001", "receivable.amount", "3 decimal places"),
    ("coverage.issued", "declared_amount", "1.001", "declared_amount", "USD"),
    ("coverage.issued", "effective_limit", "1.001", "effective_limit", "USD"),
    ("policy.registered", "max_liability", "1.001", "max_liability", "USD"),
    ("loan.drawdown", "amount", "1e5", "amount", "plain digits"),
    ("loan.drawdown", "amount", "+100", "amount", "plain digits"),
    ("loan.drawdown", "amount", "0100.00", "amount", "plain digits"),
    ("loan.drawdown", "amount", ".5", "amount", "plain digits"),
    ("loan.drawdown", "amount", "5.", "amount", "plain digits"),
    ("loan.drawdown", "amount", "1,000.00", "amount", "plain digits"),
    ("loan.drawdown", "amount", "NaN", "amount", "plain digits"),
    ("loan.drawdown", "amount", " 100", "amount", "plain digits"),
    ("loan.drawdown", "amount", "1" * 19, "amount", "19 integer digits"),
    ("loan.drawdown", "currency", "XYZ", "currency", "unknown ISO 4217"),
    ("loan.drawdown", "currency", "usd", "currency", "unknown ISO 4217"),
    ("loan.drawdown", "currency", "XAU", "currency", "unknown ISO 4217"),  # no minor unit
    ("coverage.issued", "receivable.currency", "RMB", "receivable.currency", "ISO 4217"),
    ("limit.approved", "buyer_country", "XX", "buyer_country", "unknown ISO 3166"),
    ("limit.approved", "buyer_country", "UK", "buyer_country", "ISO 3166"),
    ("limit.approved", "buyer_country", "us", "buyer_country", "ISO 3166"),
    ("assignment.registered", "scope", "country:XX", "scope", "'XX'"),
    ("assignment.registered", "scope", "buyer:", "scope", "buyer code"),
    ("assignment.registered", "scope", "region:EU", "scope", "'all', 'country:XX'"),
    ("assignment.registered", "scope", "ALL", "scope", "'all'"),
    ("policy.registered", "exporter_id", "91350100M000100Y44", "exporter_id", "check character"),
    ("coverage.issued", "exporter_id", "91350100M000100Y4", "exporter_id", "18 characters"),
    ("policy.registered", "indemnity_ratio", "0", "indemnity_ratio", "greater than zero"),
    ("policy.registered", "indemnity_ratio", "1.5", "indemnity_ratio", "at most 1"),
    ("coverage.issued", "indemnity_ratio", "1.01", "indemnity_ratio", "at most 1"),
    ("policy.registered", "indemnity_ratio", 0.9, "indemnity_ratio", "not a number"),
    ("policy.registered", "valid_to", "2025-12-31", "valid_to", "after valid_from"),
    ("policy.registered", "valid_to", "2026-01-01", "valid_to", "after valid_from"),
    ("loan.drawdown", "maturity_date", "2026-01-09", "maturity_date", "after drawdown_date"),
    ("loan.drawdown", "maturity_date", "2026-01-10", "maturity_date", "after drawdown_date"),
    ("coverage.issued", "receivable.due_date", "2026-01-04", "receivable.due_date", "invoice_date"),
    ("coverage.issued", "receivable.shipment.ship_date", "2026/01/02",
     "receivable.shipment.ship_date", "YYYY-MM-DD"),
    ("loan.drawdown", "drawdown_date", "2026/01/02", "drawdown_date", "YYYY-MM-DD"),
    ("loan.repayment", "date", "20260102", "date", "YYYY-MM-DD"),
    ("loan.repayment", "date", "2026-01-02T00:00:00", "date", "YYYY-MM-DD"),
    ("loan.repayment", "date", "2026-02-30", "date", "not a calendar date"),
    ("loan.repayment", "date", 20260102, "date", "YYYY-MM-DD"),
    ("financing.reserved", "expires_at", "2026-01-10T12:30:00", "expires_at", "'Z'"),
    ("financing.reserved", "expires_at", "2026-01-10 12:30:00Z", "expires_at", "ISO 8601"),
    ("financing.reserved", "expires_at", "2026-01-10T12:30Z", "expires_at", "ISO 8601"),
    ("financing.reserved", "expires_at", 1767961800, "expires_at", "ISO 8601"),
    ("financing.reserved", "expires_at", "2026-01-10T25:30:00Z", "expires_at", "not a valid"),
    ("fx.rate", "quote", "USD", "quote", "differ from base"),
    ("fx.rate", "rate", "7.12345678901", "rate", "11 decimal places"),
    ("fx.rate", "rate", 7.1, "rate", "not a number"),
    ("policy.registered", "max_credit_days", 0, "max_credit_days", "greater than or equal to 1"),
    ("policy.registered", "max_credit_days", 721, "max_credit_days", "less than or equal to 720"),
    ("policy.registered", "max_credit_days", "180", "max_credit_days", "integer"),
    ("policy.registered", "max_credit_days", 180.0, "max_credit_days", "integer"),
    ("policy.registered", "max_credit_days", True, "max_credit_days", "integer"),
    ("policy.registered", "product", "gold", "product", "'comprehensive', 'sme' or 'micro'"),
    ("loan.repayment", "source", "bank", "source", "'buyer', 'claim' or 'exporter'"),
    ("flag.resolved", "outcome", "maybe", "outcome", "'confirmed' or 'dismissed'"),
    ("org.added", "role", "auditor", "role", "'bank', 'insurer' or 'regulator'"),
    ("loan.drawdown", "loan_id", "", "loan_id", "empty"),
    ("loan.drawdown", "loan_id", "L" * 65, "loan_id", "at most 64"),
    ("loan.drawdown", "loan_id", "--/ ", "loan_id", "letter or digit"),
    ("loan.drawdown", "loan_id", "L-1\n", "loan_id", "control character"),
    ("loan.drawdown", "loan_id", 1, "loan_id", "must be a string"),
    ("loan.drawdown", "tranche_of", "", "tranche_of", "empty"),
    ("coverage.issued", "receivable.shipment.vessel", "", "receivable.shipment.vessel", "empty"),
    ("coverage.issued", "receivable.shipment.quantity", "0", "receivable.shipment.quantity",
     "greater than zero"),
    ("coverage.issued", "receivable.shipment.quantity", 12, "receivable.shipment.quantity",
     "not a number"),
    ("coverage.revoked", "reason", "", "reason", "empty"),
    ("coverage.revoked", "reason", "   ", "reason", "blank"),
    ("flag.resolved", "note", "x" * 257, "note", "at most 256"),
    ("coverage.issued", "beneficiary", "BANK A", "beneficiary", "organisation id"),
    ("assignment.registered", "bank", "", "bank", "organisation id"),
    ("key.added", "key_id", "BANK C/2", "key_id", "key id"),
    ("key.added", "public_key", "not base64!", "public_key", "base64"),
    ("key.added", "public_key", base64.b64encode(bytes(31)).decode(), "public_key", "32 bytes"),
    ("org.added", "keys", [], "keys", "must not be empty"),
    ("org.added", "keys", "BANK-C/1", "keys", "must be a list"),
    ("org.added", "keys.0.public_key", KEY_A[:-2], "keys.0.public_key", "base64"),
    ("coverage.issued", "receivable", "INV-1", "receivable", "must be an object"),
    # extra fields, at the top and nested: the message names the field
    ("loan.drawdown", "branch", "Xiamen", "branch", "unexpected field 'branch'"),
    ("coverage.issued", "receivable.shipment.container", "X", "receivable.shipment.container",
     "unexpected field 'container'"),
    ("org.added", "keys.0.alg", "ed25519", "keys.0.alg", "unexpected field 'alg'"),
    # missing fields, at the top and nested
    ("loan.drawdown", "amount", _DELETE, "amount", "required"),
    ("coverage.issued", "receivable.invoice_no", _DELETE, "receivable.invoice_no", "required"),
    ("coverage.issued", "receivable.shipment.voyage", _DELETE, "receivable.shipment.voyage",
     "required"),
    ("org.added", "keys.0.key_id", _DELETE, "keys.0.key_id", "required"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry_type", "path", "value", "field", "words"),
    INVALID,
    ids=[f"{t}:{p}={v!r}"[:60] for t, p, v, _, _ in INVALID],
)
def test_refuses_invalid_body_naming_the_field(
    entry_type: str, path: str, value: Any, field: str, words: str
) -> None:
    assert_only_problem(entry_type, mutate(entry_type, path, value), field, words)


@pytest.mark.parametrize(
    ("currency", "amount", "words"),
    [
        ("JPY", "100.5", "JPY allows no decimal places"),
        ("KRW", "1.0", "KRW allows no decimal places"),
        ("USD", "1.001", "USD allows at most 2 decimal places"),
        ("KWD", "1.0001", "KWD allows at most 3 decimal places"),
        ("EUR", "0.001", "EUR allows at most 2"),
    ],
)
def test_refuses_amount_beyond_currency_minor_units(currency: str, amount: str, words: str) -> None:
    body = mutate("claim.paid", "currency", currency)
    body["amount"] = amount
    assert_only_problem("claim.paid", body, "amount", words)


def test_refuses_declared_amount_beyond_receivable_currency() -> None:
    body = mutate("coverage.issued", "receivable.currency", "JPY")
    body["receivable"]["amount"] = "18000000"
    body["declared_amount"] = "18000000.50"
    body["effective_limit"] = "120000000"
    assert_only_problem("coverage.issued", body, "declared_amount", "JPY allows no decimal places")


def test_unknown_currency_skips_the_scale_check_of_its_amount() -> None:
    body = mutate("loan.repayment", "currency", "XYZ")
    body["amount"] = "1.001"
    assert_only_problem("loan.repayment", body, "currency", "XYZ")


def test_refuses_huge_value_without_echoing_it() -> None:
    problems = problems_of(
        "loan.repayment", mutate("loan.repayment", "amount", "9" * 100_000 + "x")
    )
    assert len(problems["amount"]) < 300


def test_refuses_duplicate_key_ids() -> None:
    body = mutate("org.added", "keys", [
        {"key_id": "BANK-C/1", "public_key": KEY_A},
        {"key_id": "BANK-C/1", "public_key": KEY_B},
    ])  # fmt: skip
    assert_only_problem("org.added", body, "keys", "'BANK-C/1' appears twice")


def test_refuses_non_canonical_base64() -> None:
    # Same 32 bytes, but the last character carries non-zero padding bits.
    canonical = base64.b64encode(bytes(32)).decode()
    assert canonical.endswith("A=")
    body = mutate("key.added", "public_key", canonical[:-2] + "B=")
    assert_only_problem("key.added", body, "public_key", "canonical")


def test_reports_every_bad_field_at_once() -> None:
    body = mutate("coverage.issued", "receivable.amount", 125000.0)
    body["receivable"]["shipment"]["ship_date"] = "2026/01/04"
    body["indemnity_ratio"] = "1.5"
    body["beneficiary_name"] = "Bank A"
    del body["valid_to"]
    problems = problems_of("coverage.issued", body)
    assert set(problems) == {
        "receivable.amount",
        "receivable.shipment.ship_date",
        "indemnity_ratio",
        "beneficiary_name",
        "valid_to",
    }


def test_refuses_unknown_entry_type() -> None:
    assert problems_of("loan.cancelled", VALID["loan.drawdown"]) == {
        "type": "unknown entry type 'loan.cancelled'"
    }


@pytest.mark.parametrize("body", [[], "x", None, 1])
def test_refuses_body_that_is_not_an_object(body: Any) -> None:
    assert problems_of("loan.drawdown", body) == {"": "body must be a JSON object"}


def test_refuses_empty_body_listing_every_required_field() -> None:
    problems = problems_of("loan.repayment", {})
    assert problems == {
        name: "required field is missing"
        for name in ("loan_id", "amount", "currency", "date", "source")
    }


def test_refuses_python_float_built_model() -> None:
    with pytest.raises(ValidationError):
        PolicyRegistered.model_validate({**VALID["policy.registered"], "max_liability": 1.5})


def test_body_base_class_is_the_registry_type() -> None:
    assert all(issubclass(model, Body) for model in BODY_MODELS.values())


# --------------------------------------------------------------------------- errors


def test_error_tree() -> None:
    assert issubclass(InvalidBody, Unprocessable)
    for cls in (Forbidden, NotFound, Unprocessable, Conflict):
        assert issubclass(cls, NodeError)


def test_error_messages_carry_the_evidence() -> None:
    problem = FieldProblem("receivable.amount", "must be greater than zero")
    expected = "invalid body: receivable.amount: must be greater than zero"
    assert str(InvalidBody([problem])) == expected
    assert str(Unprocessable([FieldProblem("", "no fx rate")])) == "no fx rate"
    assert str(Forbidden("BANK-A", "bank", "coverage.issued")) == (
        "BANK-A (bank) may not sign coverage.issued"
    )
    assert str(NotFound("loan", "L-1")) == "loan 'L-1' not found"
    assert str(Conflict("duplicate financing")) == "duplicate financing"


def test_refuses_unprocessable_without_problems() -> None:
    with pytest.raises(ValueError):
        InvalidBody([])
