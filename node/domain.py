"""Domain types shared by the state, the rules and the sequencer.

Frozen values only: the context of an entry being processed (``EntryContext``), the
consortium parameters (``Params``), what a rule says (``Flag``) and what the node
decides (``Verdict``), plus the records the state keeps (policies, notices, limits,
assignments, loans, reservations, defaults, flags). No I/O, no clock.

Flag codes, in the order every drawdown rule runs (DESIGN section 3), and their
severities are in ``DRAWDOWN_FLAG_CODES`` and ``SEVERITIES``; ``ASSIGNMENT_CONFLICT``
is raised by assignment.registered, never by a drawdown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Literal, NewType

Severity = Literal["critical", "warning"]
Status = Literal["accepted", "rejected"]
Role = Literal["bank", "insurer", "regulator"]
FlagStatus = Literal["open", "confirmed", "dismissed"]

Fingerprint = NewType("Fingerprint", str)
"""Hex HMAC-SHA-256 of a receivable key (see node.fingerprints)."""
EntryHashHex = NewType("EntryHashHex", str)
LoanKey = tuple[str, str]
"""(bank org, normalised loan_id)."""

COVERAGE_INVALID: Final = "COVERAGE_INVALID"
DOCUMENT_MISMATCH: Final = "DOCUMENT_MISMATCH"
DUPLICATE_FINANCING: Final = "DUPLICATE_FINANCING"
OVER_LIMIT_COVERAGE: Final = "OVER_LIMIT_COVERAGE"
OVER_LIMIT_RECEIVABLE: Final = "OVER_LIMIT_RECEIVABLE"
OVER_LIMIT_BUYER: Final = "OVER_LIMIT_BUYER"
OVER_LIMIT_POLICY: Final = "OVER_LIMIT_POLICY"
RECEIVABLE_IN_DEFAULT: Final = "RECEIVABLE_IN_DEFAULT"
SUSPECTED_DUPLICATE: Final = "SUSPECTED_DUPLICATE"
COVER_LAPSES_BEFORE_MATURITY: Final = "COVER_LAPSES_BEFORE_MATURITY"
MATURITY_BEYOND_DUE: Final = "MATURITY_BEYOND_DUE"
ASSIGNMENT_CONFLICT: Final = "ASSIGNMENT_CONFLICT"

DRAWDOWN_FLAG_CODES: Final = (
    COVERAGE_INVALID,
    DOCUMENT_MISMATCH,
    DUPLICATE_FINANCING,
    OVER_LIMIT_COVERAGE,
    OVER_LIMIT_RECEIVABLE,
    OVER_LIMIT_BUYER,
    OVER_LIMIT_POLICY,
    RECEIVABLE_IN_DEFAULT,
    SUSPECTED_DUPLICATE,
    COVER_LAPSES_BEFORE_MATURITY,
    MATURITY_BEYOND_DUE,
)

SEVERITIES: Final[Mapping[str, Severity]] = MappingProxyType(
    {
        COVERAGE_INVALID: "critical",
        DOCUMENT_MISMATCH: "critical",
        DUPLICATE_FINANCING: "critical",
        OVER_LIMIT_COVERAGE: "critical",
        OVER_LIMIT_RECEIVABLE: "critical",
        OVER_LIMIT_BUYER: "critical",
        OVER_LIMIT_POLICY: "critical",
        RECEIVABLE_IN_DEFAULT: "critical",
        SUSPECTED_DUPLICATE: "warning",
        COVER_LAPSES_BEFORE_MATURITY: "warning",
        MATURITY_BEYOND_DUE: "warning",
        ASSIGNMENT_CONFLICT: "warning",
    }
)


def flag_id(entry_hash: bytes, code: str) -> str:
    """The id of the flag ``code`` raised by the entry ``entry_hash`` (one per code per entry)."""
    return hashlib.sha256(entry_hash + code.encode("ascii")).hexdigest()[:20]


def _empty_data() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Flag:
    """One finding of a rule. ``detail`` and ``data`` never name another institution.

    ``data`` is a plain dict (not a proxy) so that a State can be deep-copied and pickled;
    treat it as read-only.
    """

    code: str
    severity: Severity
    detail: str
    related: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=_empty_data)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "detail": self.detail,
            "related": list(self.related),
            "data": dict(self.data),
        }


def make_flag(
    code: str, detail: str, related: tuple[str, ...] = (), data: Mapping[str, Any] | None = None
) -> Flag:
    """A flag with the severity DESIGN gives its code."""
    return Flag(code, SEVERITIES[code], detail, related, dict(data or {}))


@dataclass(frozen=True)
class Verdict:
    status: Status
    flags: tuple[Flag, ...]

    @classmethod
    def of(cls, flags: tuple[Flag, ...] | list[Flag]) -> Verdict:
        """Rejected if any flag is critical, else accepted with the (warning) flags."""
        flags = tuple(flags)
        critical = any(f.severity == "critical" for f in flags)
        return cls("rejected" if critical else "accepted", flags)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


@dataclass(frozen=True)
class EntryContext:
    entry_hash: bytes
    index: int
    org: str
    role: str
    entry_type: str
    ts: datetime

    @property
    def hash_hex(self) -> str:
        return self.entry_hash.hex()


@dataclass(frozen=True)
class Params:
    """Consortium parameters from genesis ``params`` (pinned by ``rule_version``)."""

    max_financing_ratio: Decimal = Decimal("0.9")
    fuzzy_date_window_days: int = 3
    maturity_grace_days: int = 90
    reservation_ttl_max_minutes: int = 30
    clock_window_seconds: int = 300
    rule_version: str = "1"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Params:
        default = cls()
        ratio = d.get("max_financing_ratio", default.max_financing_ratio)
        return cls(
            max_financing_ratio=Decimal(str(ratio)),
            fuzzy_date_window_days=int(d.get("fuzzy_date_window_days", 3)),
            maturity_grace_days=int(d.get("maturity_grace_days", 90)),
            reservation_ttl_max_minutes=int(d.get("reservation_ttl_max_minutes", 30)),
            clock_window_seconds=int(d.get("clock_window_seconds", 300)),
            rule_version=str(d.get("rule_version", "1")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "max_financing_ratio": format(self.max_financing_ratio, "f"),
            "fuzzy_date_window_days": self.fuzzy_date_window_days,
            "maturity_grace_days": self.maturity_grace_days,
            "reservation_ttl_max_minutes": self.reservation_ttl_max_minutes,
            "clock_window_seconds": self.clock_window_seconds,
            "rule_version": self.rule_version,
        }


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ReceivableKeys:
    """The fingerprints of one receivable. k1/k4 are None when the exporter is unknown."""

    k1: Fingerprint | None
    k2: Fingerprint
    k3: Fingerprint
    k4: Fingerprint | None
    k5: Fingerprint
    invoice_date: date

    @property
    def exact(self) -> tuple[tuple[str, Fingerprint], ...]:
        """(name, fingerprint) of the exact keys K1..K3 that are known."""
        pairs = (("K1", self.k1), ("K2", self.k2), ("K3", self.k3))
        return tuple((name, fp) for name, fp in pairs if fp is not None)


@dataclass(frozen=True)
class PolicyRecord:
    key: str  # normalised policy_no
    policy_no: str
    insurer: str
    exporter_id: str
    currency: str
    valid_from: date
    valid_to: date
    indemnity_ratio: Decimal
    max_liability: Decimal
    entry_hash: str


@dataclass(frozen=True)
class LimitRecord:
    buyer_key: str
    buyer_code: str
    buyer_country: str
    currency: str
    amount: Decimal
    valid_to: date
    entry_hash: str


@dataclass(frozen=True)
class AssignmentRecord:
    bank: str
    kind: str
    scope: str  # "all", "country:XX" or "buyer:<normalised code>"
    entry_hash: str


@dataclass(frozen=True)
class NoticeRecord:
    key: Fingerprint  # K3
    notice_no: str
    policy_key: str
    policy_no: str
    insurer: str
    exporter_id: str
    buyer_key: str
    buyer_code: str
    invoice_no: str
    invoice_date: date
    transport_doc_no: str
    currency: str
    amount: Decimal
    due_date: date
    declared_amount: Decimal
    effective_limit: Decimal
    indemnity_ratio: Decimal
    beneficiary: str
    valid_to: date
    keys: ReceivableKeys
    entry_hash: str
    index: int
    revoked: bool = False


@dataclass(frozen=True)
class LoanRecord:
    """An accepted loan. ``factors`` maps a currency to the rate fixed at drawdown."""

    bank: str
    loan_key: str
    loan_id: str
    group: str  # normalised loan_id of the tranche group's first loan
    tranche_of: str | None
    notice_key: Fingerprint
    notice_no: str
    policy_key: str
    policy_no: str
    insurer: str
    buyer_key: str
    buyer_code: str
    buyer_country: str | None
    keys: ReceivableKeys
    currency: str
    amount: Decimal
    outstanding: Decimal
    factors: Mapping[str, Decimal]
    drawdown_date: date
    maturity_date: date
    entry_hash: str
    index: int
    ts: datetime

    @property
    def ident(self) -> LoanKey:
        return (self.bank, self.loan_key)

    @property
    def is_open(self) -> bool:
        return self.outstanding > 0


@dataclass(frozen=True)
class ReservationRecord:
    bank: str
    expires_at: datetime
    entry_hash: str
    ts: datetime


@dataclass(frozen=True)
class DefaultRecord:
    """A loss notified or a claim paid on a receivable (keyed by its K1/K2/K3)."""

    entry_type: str
    entry_hash: str
    ts: datetime


@dataclass(frozen=True)
class FlagRecord:
    flag_id: str
    flag: Flag
    entry_hash: str
    index: int
    entry_type: str
    bank: str | None
    insurer: str | None
    position: int
    ts: datetime
    status: FlagStatus = "open"
    note: str | None = None


@dataclass(frozen=True)
class ReceivableEvent:
    entry_hash: str
    index: int
    type: str
    org: str
    status: Status
    ts: datetime


@dataclass
class Changes:
    """Rows changed since the last ``State.drain_changes()``, for the projection tables.

    loans and notices are upserts (by (bank, loan_id) and notice_fp), flags upserts by
    flag_id, receivable_events inserts (one row per (fingerprint, entry)).
    """

    loans: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    receivable_events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    credit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # node.credit.drain

    def is_empty(self) -> bool:
        return not (self.loans or self.flags or self.receivable_events or self.notices)
