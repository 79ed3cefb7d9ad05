"""Entry bodies: one frozen pydantic model per entry type, and the pure validation layer.

``parse_body(entry_type, body)`` turns the JSON object of an entry's ``body`` into its
typed model or raises ``InvalidBody`` listing one ``FieldProblem`` per bad field,
each named by its dotted path (``"receivable.amount"``, ``"keys.0.public_key"``).
``body_to_json(model)`` turns a model back into JSON-native values. No I/O, no
clock, no database.

Value rules (DESIGN section 3):

- Amounts, ratios, quantities and rates are JSON *strings* of plain decimal digits:
  ``"125000.00"``, ``"0.9"``. No sign, no exponent, no leading zeros
  (``"0.5"`` yes, ``"00.5"``, ``".5"``, ``"5."``, ``"+5"``, ``"1e3"`` no), at most 18
  integer digits. A JSON number is refused, so no float ever enters. An amount is
  > 0 and carries at most its currency's ISO 4217 minor units of fraction digits
  (``"100.5"`` JPY is refused); its currency is a sibling field (for
  coverage.issued's ``declared_amount`` and ``effective_limit``: the receivable's).
  Ratios lie in (0, 1]; rates and ratios carry at most 10 fraction digits.
- Dates are ``"YYYY-MM-DD"`` strings, parsed to ``datetime.date``.
- ``financing.reserved.expires_at`` is an ISO 8601 date-time with seconds and ``Z`` or
  a ``+HH:MM`` offset (up to 6 fraction digits), parsed to an aware ``datetime`` in UTC.
- Identifiers (policy_no, invoice_no, buyer_code, ...) are 1..64 characters, stored
  as given, and must keep at least one letter or digit under ``normalise_id``.
  Org ids are ``[A-Za-z0-9][A-Za-z0-9._-]*`` (<= 64), key ids also allow ``/`` and
  ``:`` (``"BANK-A/1"``). Free text (names, reasons, notes, units) is 1..256
  characters with at least one non-blank one. No string may hold a control
  character (free text may hold newline and tab) or a lone surrogate.

Round-trip. ``body_to_json(parse_body(t, b)) == b`` for every valid ``b``:

- Amounts are held as ``Decimal`` and written back with ``format(d, "f")``. Because the
  accepted grammar has exactly one spelling per (value, number of fraction digits)
  and ``Decimal`` keeps its exponent, that gives back the very string received,
  trailing zeros included (``"100.50"`` stays ``"100.50"``, never ``"100.5"``).
- Dates have one spelling, so ``date.isoformat()`` gives it back.
- ``expires_at`` has several spellings of one instant (``Z`` / ``+00:00`` / ``+08:00``,
  fraction digits), so the model also keeps the text it was parsed from and writes
  that back; a model built in Python writes ``YYYY-MM-DDTHH:MM:SS[.fff[fff]]Z``.
- Optional fields (only ``loan.drawdown.tranche_of``) are written back only when they
  were given: an absent ``tranche_of`` stays absent, an explicit ``null`` stays null.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal, NoReturn, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from node.codes import COUNTRIES, CURRENCY_MINOR_UNITS
from node.errors import FieldProblem, InvalidBody
from node.identifiers import normalise_id, verify_uscc

MAX_ID_LENGTH: Final = 64
MAX_TEXT_LENGTH: Final = 256
MAX_INTEGER_DIGITS: Final = 18
MAX_RATIO_DIGITS: Final = 10
MAX_RATE_DIGITS: Final = 10
MAX_QUANTITY_DIGITS: Final = 10
MAX_CREDIT_DAYS: Final = 720

_DECIMAL_RE: Final = re.compile(r"(?:0|[1-9][0-9]*)(?:\.([0-9]+))?")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_ORG_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_TEXT_CONTROLS_ALLOWED: Final = frozenset("\n\t")
_ED25519_KEY_BYTES: Final = 32


# --------------------------------------------------------------------------- errors


def _fail(message: str) -> NoReturn:
    """Raise the one error type our validators raise; pydantic puts the field path on it."""
    raise PydanticCustomError("pfnode_invalid", "{reason}", {"reason": message})


def _problem(error: ErrorDetails) -> FieldProblem:
    """Translate one pydantic error into a FieldProblem with a plain-language message."""
    loc = error["loc"]
    field = ".".join(str(part) for part in loc)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "pfnode_invalid":
        message = str(ctx["reason"])
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = f"unexpected field {str(loc[-1])!r}"
    elif kind == "string_type":
        message = "must be a string"
    elif kind == "int_type":
        message = "must be an integer"
    elif kind in ("model_type", "dict_type"):
        message = "must be an object"
    elif kind in ("tuple_type", "list_type"):
        message = "must be a list"
    elif kind == "literal_error":
        message = f"must be {ctx['expected']}"
    elif kind == "too_short":
        message = "must not be empty"
    else:
        message = error["msg"]
    return FieldProblem(field, message)


def _problems(exc: ValidationError) -> tuple[FieldProblem, ...]:
    """One FieldProblem per field: several messages for one path are joined."""
    by_field: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        problem = _problem(error)
        messages = by_field.setdefault(problem.field, [])
        if problem.message not in messages:
            messages.append(problem.message)
    return tuple(FieldProblem(field, "; ".join(msgs)) for field, msgs in by_field.items())


# --------------------------------------------------------------------------- strings


def _show(value: object) -> str:
    """repr() of a bad value for a message, cut short: the message must not echo a megabyte."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_no_controls(value: str, allowed: frozenset[str] = frozenset()) -> None:
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            _fail("must not contain a lone surrogate")
        if category == "Cc" and char not in allowed:
            _fail(f"must not contain the control character U+{ord(char):04X}")


def _identifier_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        return "must not contain a control character or a lone surrogate"
    if not normalise_id(value):
        return "must contain at least one letter or digit"
    return None


def _check_identifier(value: str) -> str:
    problem = _identifier_problem(value)
    if problem is not None:
        _fail(problem)
    return value


def _check_text(value: str) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        _fail(f"must be at most {MAX_TEXT_LENGTH} characters, got {len(value)}")
    if not value.strip():
        _fail("must not be empty or blank")
    _check_no_controls(value, _TEXT_CONTROLS_ALLOWED)
    return value


def _check_org_id(value: str) -> str:
    if not _ORG_ID_RE.fullmatch(value):
        _fail(
            f"must be an organisation id of 1..{MAX_ID_LENGTH} letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit; got {_show(value)}"
        )
    return value


def _check_key_id(value: str) -> str:
    if not _KEY_ID_RE.fullmatch(value):
        _fail(
            f"must be a key id of 1..{MAX_ID_LENGTH} letters, digits, '.', '_', ':', '/' or '-', "
            f"starting with a letter or digit; got {_show(value)}"
        )
    return value


def _check_uscc(value: str) -> str:
    try:
        verify_uscc(value)
    except ValueError as exc:
        _fail(f"not a valid unified social credit code: {exc}")
    return value


def _check_currency(value: str) -> str:
    if value not in CURRENCY_MINOR_UNITS:
        _fail(f"unknown ISO 4217 currency code {_show(value)}")
    return value


def _check_country(value: str) -> str:
    if value not in COUNTRIES:
        _fail(f"unknown ISO 3166-1 alpha-2 country code {_show(value)}")
    return value


def _check_public_key(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _fail("must be standard base64 (with padding)")
    if len(raw) != _ED25519_KEY_BYTES:
        _fail(f"must encode {_ED25519_KEY_BYTES} bytes (Ed25519), got {len(raw)}")
    if base64.b64encode(raw).decode("ascii") != value:
        _fail("must be canonical base64")
    return value


Identifier = Annotated[str, AfterValidator(_check_identifier)]
"""policy_no, notice_no, invoice_no, buyer_code, loan_id, vessel, ...: matched via normalise_id."""
Text = Annotated[str, AfterValidator(_check_text)]
OrgId = Annotated[str, AfterValidator(_check_org_id)]
KeyId = Annotated[str, AfterValidator(_check_key_id)]
Uscc = Annotated[str, AfterValidator(_check_uscc)]
Currency = Annotated[str, AfterValidator(_check_currency)]
Country = Annotated[str, AfterValidator(_check_country)]
PublicKey = Annotated[str, AfterValidator(_check_public_key)]


# --------------------------------------------------------------------------- decimals


def _parse_decimal(value: Any, info: ValidationInfo, max_fraction_digits: int) -> Decimal:
    """A positive decimal written as a plain-digit JSON string (or a Decimal, from Python)."""
    name = info.field_name or "value"
    if isinstance(value, bool):
        _fail(f"{name} must be a decimal string, not a boolean")
    if isinstance(value, int | float):
        _fail(f"{name} must be a decimal string, not a number")
    if isinstance(value, Decimal):
        if not value.is_finite():
            _fail(f"{name} must be a finite decimal")
        value = format(value, "f")
    if not isinstance(value, str):
        _fail(f"{name} must be a decimal string")
    match = _DECIMAL_RE.fullmatch(value)
    if match is None:
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            parsed = None
        if parsed is not None and parsed.is_finite() and parsed <= 0:
            _fail(f"{name} must be greater than zero, got {_show(value)}")
        _fail(
            f"{name} must be a decimal string of plain digits like '125000.00' "
            f"(no sign, exponent or leading zeros), got {_show(value)}"
        )
    integer_digits = len(value.partition(".")[0])
    if integer_digits > MAX_INTEGER_DIGITS:
        _fail(f"{name} has {integer_digits} integer digits; at most {MAX_INTEGER_DIGITS} allowed")
    fraction_digits = len(match.group(1) or "")
    if fraction_digits > max_fraction_digits:
        _fail(f"{name} has {_places(fraction_digits)}; at most {max_fraction_digits} allowed")
    parsed = Decimal(value)
    if parsed <= 0:
        _fail(f"{name} must be greater than zero, got {_show(value)}")
    return parsed


def _parse_amount(value: Any, info: ValidationInfo) -> Decimal:
    # The currency's own limit is checked by Body._check_amount_scale, which sees the sibling.
    return _parse_decimal(value, info, max(CURRENCY_MINOR_UNITS.values()))


def _parse_ratio(value: Any, info: ValidationInfo) -> Decimal:
    ratio = _parse_decimal(value, info, MAX_RATIO_DIGITS)
    if ratio > 1:
        _fail(f"{info.field_name} must be at most 1, got {format(ratio, 'f')!r}")
    return ratio


def _parse_rate(value: Any, info: ValidationInfo) -> Decimal:
    return _parse_decimal(value, info, MAX_RATE_DIGITS)


def _parse_quantity(value: Any, info: ValidationInfo) -> Decimal:
    return _parse_decimal(value, info, MAX_QUANTITY_DIGITS)


def _dump_decimal(value: Decimal) -> str:
    return format(value, "f")


_DecimalOut = PlainSerializer(_dump_decimal, return_type=str)
Amount = Annotated[Decimal, PlainValidator(_parse_amount), _DecimalOut]
"""> 0, at most the sibling currency's minor units of fraction digits."""
Ratio = Annotated[Decimal, PlainValidator(_parse_ratio), _DecimalOut]
"""In (0, 1]."""
Rate = Annotated[Decimal, PlainValidator(_parse_rate), _DecimalOut]
Quantity = Annotated[Decimal, PlainValidator(_parse_quantity), _DecimalOut]


# --------------------------------------------------------------------------- dates


def _parse_date(value: Any, info: ValidationInfo) -> date:
    name = info.field_name or "value"
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        _fail(f"{name} must be an ISO 8601 date string 'YYYY-MM-DD', got {_show(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{name} is not a calendar date: {_show(value)}")


def _dump_date(value: date) -> str:
    return value.isoformat()


def _parse_instant(value: Any, info: ValidationInfo) -> datetime:
    name = info.field_name or "value"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            _fail(f"{name} must carry a time zone")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _INSTANT_RE.fullmatch(value):
        _fail(
            f"{name} must be an ISO 8601 date-time 'YYYY-MM-DDTHH:MM:SS[.ffffff]' ending in 'Z' "
            f"or '+HH:MM', got {_show(value)}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{name} is not a valid date-time: {_show(value)}")
    return parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """Canonical text of an aware datetime: UTC, ``Z``, milli- or microseconds only if needed."""
    utc = value.astimezone(UTC)
    if utc.microsecond == 0:
        timespec = "seconds"
    elif utc.microsecond % 1000 == 0:
        timespec = "milliseconds"
    else:
        timespec = "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


IsoDate = Annotated[date, PlainValidator(_parse_date), PlainSerializer(_dump_date, return_type=str)]
Instant = Annotated[datetime, PlainValidator(_parse_instant)]


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- base


class Body(BaseModel):
    """Base of every entry body and of its nested objects.

    Subclasses declare, as class variables, which cross-field checks apply; pydantic
    validates fields in declaration order, so a field's reference (the currency of
    an amount, the earlier date) is declared before it and is visible in
    ``info.data`` by then. If the reference itself failed, the dependent check is
    skipped (the reference's own problem is reported).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    # amount field -> path to its currency: ("currency",) or ("receivable", "currency")
    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # date field -> the date field it must be strictly after
    later_than: ClassVar[Mapping[str, str]] = {}
    # date field -> the date field it must not be before
    not_earlier_than: ClassVar[Mapping[str, str]] = {}

    @field_validator("*", mode="after")
    @classmethod
    def _check_cross_field(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name is None:
            return value
        if name in cls.amount_currency:
            currency = _lookup(info.data, cls.amount_currency[name])
            if isinstance(currency, str):
                _check_amount_scale(name, value, currency)
        if name in cls.later_than:
            other = cls.later_than[name]
            earlier = info.data.get(other)
            if isinstance(earlier, date) and value <= earlier:
                _fail(f"{name} ({value}) must be after {other} ({earlier})")
        if name in cls.not_earlier_than:
            other = cls.not_earlier_than[name]
            earlier = info.data.get(other)
            if isinstance(earlier, date) and value < earlier:
                _fail(f"{name} ({value}) must not be before {other} ({earlier})")
        return value


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = data
    for part in path:
        if isinstance(current, Mapping):
            current = current.get(part)
        else:
            current = getattr(current, part, None)
    return current


def _check_amount_scale(name: str, amount: Decimal, currency: str) -> None:
    allowed = CURRENCY_MINOR_UNITS[currency]
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places > allowed:
        limit = "no decimal places" if allowed == 0 else f"at most {_places(allowed)}"
        _fail(f"{name} has {_places(places)}; {currency} allows {limit}")


def _places(n: int) -> str:
    return "1 decimal place" if n == 1 else f"{n} decimal places"


# --------------------------------------------------------------------------- nested


class Shipment(Body):
    """The cargo behind a receivable; vessel + voyage + port + date + quantity is key K5."""

    vessel: Identifier
    voyage: Identifier
    port_of_loading: Identifier
    ship_date: IsoDate
    quantity: Quantity
    unit: Text


class Receivable(Body):
    """The receivable as written in the coverage notice (and repeated in a drawdown)."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}
    not_earlier_than: ClassVar[Mapping[str, str]] = {"due_date": "invoice_date"}

    invoice_no: Identifier
    invoice_date: IsoDate
    transport_doc_no: Identifier
    currency: Currency
    amount: Amount
    due_date: IsoDate
    shipment: Shipment


class OrgKey(Body):
    """One Ed25519 public key of an organisation."""

    key_id: KeyId
    public_key: PublicKey

    @property
    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)


# --------------------------------------------------------------------------- insurer


class PolicyRegistered(Body):
    """policy.registered: a short-term export credit insurance policy."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"max_liability": ("currency",)}
    later_than: ClassVar[Mapping[str, str]] = {"valid_to": "valid_from"}

    policy_no: Identifier
    exporter_id: Uscc
    exporter_name: Text
    product: Literal["comprehensive", "sme", "micro"]
    currency: Currency
    valid_from: IsoDate
    valid_to: IsoDate
    indemnity_ratio: Ratio
    max_liability: Amount
    max_credit_days: Annotated[int, Field(ge=1, le=MAX_CREDIT_DAYS)]


class LimitApproved(Body):
    """limit.approved: the buyer's credit limit under a policy (replaces the previous one)."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}

    policy_no: Identifier
    buyer_code: Identifier
    buyer_name: Text
    buyer_country: Country
    currency: Currency
    amount: Amount
    valid_to: IsoDate


def _check_scope(value: str) -> str:
    if value == "all":
        return value
    kind, sep, rest = value.partition(":")
    if sep and kind == "country":
        if rest not in COUNTRIES:
            _fail(f"unknown ISO 3166-1 alpha-2 country code {rest!r} in scope")
        return value
    if sep and kind == "buyer":
        problem = _identifier_problem(rest)
        if problem is not None:
            _fail(f"buyer code in scope {problem}")
        return value
    _fail(f"must be 'all', 'country:XX' or 'buyer:CODE', got {_show(value)}")


class AssignmentRegistered(Body):
    """assignment.registered: the indemnity for ``scope`` is payable to ``bank``."""

    policy_no: Identifier
    bank: OrgId
    kind: Literal["claims", "receivables"]
    scope: Annotated[str, AfterValidator(_check_scope)]

    @property
    def scope_kind(self) -> Literal["all", "country", "buyer"]:
        kind = self.scope.partition(":")[0]
        if kind == "country":
            return "country"
        if kind == "buyer":
            return "buyer"
        return "all"

    @property
    def scope_value(self) -> str | None:
        """The country code or buyer code of the scope; None for ``all``."""
        return None if self.scope == "all" else self.scope.partition(":")[2]


class CoverageIssued(Body):
    """coverage.issued: the coverage notice (承保通知书) for one receivable."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "declared_amount": ("receivable", "currency"),
        "effective_limit": ("receivable", "currency"),
    }

    notice_no: Identifier
    policy_no: Identifier
    exporter_id: Uscc
    buyer_code: Identifier
    receivable: Receivable
    declared_amount: Amount
    effective_limit: Amount
    indemnity_ratio: Ratio
    beneficiary: OrgId
    valid_to: IsoDate
    red_buyer_override: Text | None = None  # the insurer's reason to cover a red buyer


class CoverageRevoked(Body):
    """coverage.revoked: a notice no longer covers its receivable."""

    notice_no: Identifier
    reason: Text


class ClaimLossNotified(Body):
    """claim.loss_notified: a loss was notified on the notice's receivable."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}

    notice_no: Identifier
    currency: Currency
    amount: Amount
    date: IsoDate


class ClaimPaid(Body):
    """claim.paid: the insurer paid an indemnity on the notice, to ``bank``."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}

    notice_no: Identifier
    currency: Currency
    amount: Amount
    date: IsoDate
    bank: OrgId


# --------------------------------------------------------------------------- bank


class FinancingReserved(Body):
    """financing.reserved: a short hold on a receivable's keys for one bank.

    ``expires_at`` is an aware datetime in UTC; the text it was parsed from is kept
    and written back by ``body_to_json``. That it lies within 30 minutes of the
    entry's time is a rule, not a schema check (it needs the block time).
    """

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}

    bank: OrgId
    notice_no: Identifier
    receivable: Receivable
    currency: Currency
    amount: Amount
    expires_at: Instant

    # The text expires_at was parsed from, and the instant it denotes; written back only
    # while expires_at still is that instant (model_copy(update=...) copies private state).
    _expires_at_source: tuple[str, datetime] | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_expires_at_text(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        if isinstance(data, Mapping) and isinstance(data.get("expires_at"), str):
            model._expires_at_source = (data["expires_at"], model.expires_at)
        return model

    @field_serializer("expires_at")
    def _dump_expires_at(self, value: datetime) -> str:
        source = self._expires_at_source
        if source is not None and source[1] == value:
            return source[0]
        return format_instant(value)


class LoanDrawdown(Body):
    """loan.drawdown: a bank lends against the notice's receivable."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}
    later_than: ClassVar[Mapping[str, str]] = {"maturity_date": "drawdown_date"}

    loan_id: Identifier
    notice_no: Identifier
    receivable: Receivable
    currency: Currency
    amount: Amount
    drawdown_date: IsoDate
    maturity_date: IsoDate
    tranche_of: Identifier | None = None


class LoanRepayment(Body):
    """loan.repayment: money back on a loan, from the buyer, a claim or the exporter."""

    amount_currency: ClassVar[Mapping[str, tuple[str, ...]]] = {"amount": ("currency",)}

    loan_id: Identifier
    currency: Currency
    amount: Amount
    date: IsoDate
    source: Literal["buyer", "claim", "exporter"]


# --------------------------------------------------------------------------- regulator


class FxRate(Body):
    """fx.rate: the regulator's reference rate: 1 ``base`` = ``rate`` ``quote``."""

    date: IsoDate
    base: Currency
    quote: Currency
    rate: Rate

    @field_validator("quote", mode="after")
    @classmethod
    def _check_distinct(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("base") == value:
            _fail(f"quote must differ from base ({value})")
        return value


class FlagResolved(Body):
    """flag.resolved: the regulator confirms or dismisses a flag."""

    flag_id: Identifier
    outcome: Literal["confirmed", "dismissed"]
    note: Text


def _check_unique_key_ids(keys: tuple[OrgKey, ...]) -> tuple[OrgKey, ...]:
    seen: set[str] = set()
    for key in keys:
        if key.key_id in seen:
            _fail(f"key_id {key.key_id!r} appears twice")
        seen.add(key.key_id)
    return keys


class OrgAdded(Body):
    """org.added: a new member of the consortium, with at least one key."""

    org_id: OrgId
    name: Text
    role: Literal["bank", "insurer", "regulator"]
    keys: Annotated[
        tuple[OrgKey, ...],
        BeforeValidator(_as_tuple),
        Field(min_length=1),
        AfterValidator(_check_unique_key_ids),
    ]


class KeyAdded(Body):
    """key.added: a new signing key for an existing member."""

    org_id: OrgId
    key_id: KeyId
    public_key: PublicKey

    @property
    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)


class KeyRevoked(Body):
    """key.revoked: a member's key may sign no more."""

    org_id: OrgId
    key_id: KeyId
    reason: Text


# --------------------------------------------------------------------------- credit information


def _check_reason_code(value: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,31}", value):
        _fail(f"a reason code is 1-32 of A-Z, 0-9, _ (starting with a letter), got {_show(value)}")
    return value


ReasonCode = Annotated[str, AfterValidator(_check_reason_code)]


class ConsentGranted(Body):
    """consent.granted: the exporter authorises `bank` to read its insurance indicators
    until `valid_until` (signed by its insurer on its behalf; see node.credit)."""

    consent_id: Identifier
    exporter_id: Uscc
    bank: OrgId
    scope: Literal["insurance_indicators"]
    valid_until: IsoDate


class ConsentRevoked(Body):
    """consent.revoked: the exporter withdraws a consent before its end."""

    consent_id: Identifier
    reason: Text


class BuyerRated(Body):
    """buyer.rated: the insurer's risk light for a buyer, with reason codes."""

    buyer_code: Identifier
    buyer_country: Country
    light: Literal["green", "yellow", "red"]
    reasons: Annotated[
        tuple[ReasonCode, ...], BeforeValidator(_as_tuple), Field(min_length=1, max_length=8)
    ]
    note: Text | None = None


class IndicatorsRead(Body):
    """indicators.read: a bank read an exporter's indicators under a consent (the access log)."""

    exporter_id: Uscc
    consent_id: Identifier


# --------------------------------------------------------------------------- registry

BODY_MODELS: Final[Mapping[str, type[Body]]] = MappingProxyType(
    {
        "policy.registered": PolicyRegistered,
        "limit.approved": LimitApproved,
        "assignment.registered": AssignmentRegistered,
        "coverage.issued": CoverageIssued,
        "coverage.revoked": CoverageRevoked,
        "financing.reserved": FinancingReserved,
        "loan.drawdown": LoanDrawdown,
        "loan.repayment": LoanRepayment,
        "claim.loss_notified": ClaimLossNotified,
        "claim.paid": ClaimPaid,
        "fx.rate": FxRate,
        "flag.resolved": FlagResolved,
        "org.added": OrgAdded,
        "key.added": KeyAdded,
        "key.revoked": KeyRevoked,
        "consent.granted": ConsentGranted,
        "consent.revoked": ConsentRevoked,
        "buyer.rated": BuyerRated,
        "indicators.read": IndicatorsRead,
    }
)
"""Entry type name -> the model of its body."""


def parse_body(entry_type: str, body: Mapping[str, Any]) -> Body:
    """Validate an entry body against its type; raise ``InvalidBody`` naming every bad field.

    An unknown type is reported on field ``"type"``; a body that is not a JSON object
    on field ``""``.
    """
    model = BODY_MODELS.get(entry_type)
    if model is None:
        raise InvalidBody([FieldProblem("type", f"unknown entry type {entry_type!r}")])
    if not isinstance(body, Mapping):
        raise InvalidBody([FieldProblem("", "body must be a JSON object")])
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidBody(_problems(exc)) from exc


def body_to_json(model: BaseModel) -> dict[str, Any]:
    """JSON-native form of a body: decimals and dates as strings, never a float.

    Fields left out when the model was made (an absent optional) stay out, so that
    ``body_to_json(parse_body(t, b)) == b`` for every valid ``b``.
    """
    return model.model_dump(mode="json", exclude_unset=True)
