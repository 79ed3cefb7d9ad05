"""The drawdown rules: pure functions of (state, drawing, block time) -> flags.

One function per flag code of DESIGN section 3, run in the table's order by
``evaluate_drawdown``, which returns every flag that fires (the regulator wants the
whole picture, not the first reason). A rule reads the state through its indexes
and returns a list of at most one ``Flag``; it never changes the state, reads no
clock, no database, no network.

A ``Drawing`` is what a rule sees: the drawing bank, the drawdown (or reservation)
body's figures, the receivable's fingerprints and the notice, policy and buyer limit
it names, resolved by ``node.state`` before the rules run, with the conversion
factors from the drawing's currency fixed at that moment.

Secrecy: a flag's detail and data tell the drawing bank that *another institution*
financed (or reserved, or defaulted on) this receivable, and when; never which
institution, never another bank's plaintext identifiers. Keys are named K1..K5.

Reservations (financing.reserved) run ``RESERVATION_RULES``: the rules that say
"this receivable may not be financed by you" (coverage, documents, duplicates,
default). Amount limits are checked at drawdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, Final

from chain.entries import format_ts
from node.bodies import Receivable
from node.domain import (
    COVER_LAPSES_BEFORE_MATURITY,
    COVERAGE_INVALID,
    DOCUMENT_MISMATCH,
    DUPLICATE_FINANCING,
    MATURITY_BEYOND_DUE,
    OVER_LIMIT_BUYER,
    OVER_LIMIT_COVERAGE,
    OVER_LIMIT_POLICY,
    OVER_LIMIT_RECEIVABLE,
    RECEIVABLE_IN_DEFAULT,
    SUSPECTED_DUPLICATE,
    Flag,
    LimitRecord,
    LoanKey,
    LoanRecord,
    NoticeRecord,
    PolicyRecord,
    ReceivableKeys,
    make_flag,
)
from node.errors import FieldProblem, Unprocessable
from node.fx import DECIMAL_CONTEXT, compute_converted, compute_factor, quantize_cap
from node.identifiers import normalise_id

if TYPE_CHECKING:
    from node.state import State

MAX_LISTED: Final = 10
"""At most this many matching loans are listed in a SUSPECTED_DUPLICATE flag (all are counted)."""

KEY_LABELS: Final = {
    "K1": "K1 exporter+invoice",
    "K2": "K2 transport document",
    "K3": "K3 coverage notice",
}


@dataclass(frozen=True)
class Drawing:
    """A drawdown or reservation, resolved against the state, as the rules see it."""

    bank: str
    entry_type: str
    notice_no: str
    receivable: Receivable
    currency: str
    amount: Decimal
    drawdown_date: date
    maturity_date: date | None  # None for a reservation
    group: str | None  # the tranche group (normalised loan_id of its first loan), if a tranche
    keys: ReceivableKeys
    notice: NoticeRecord | None
    policy: PolicyRecord | None
    limit: LimitRecord | None  # the buyer's current limit, expired or not
    factors: Mapping[str, Decimal]  # currency -> units of it per unit of ``currency``

    @property
    def receivable_currency(self) -> str:
        return self.notice.currency if self.notice is not None else self.receivable.currency

    def amount_in(self, currency: str) -> Decimal:
        """The drawn amount in ``currency`` at the factor fixed for this drawing."""
        return compute_converted(self.amount, self.factors[currency], currency)


Rule = Callable[["State", Drawing, datetime], list[Flag]]


# --------------------------------------------------------------------------- helpers


def _fmt(amount: Decimal) -> str:
    return format(amount, "f")


def _join_keys(names: Iterable[str]) -> str:
    return ", ".join(KEY_LABELS[n] for n in names)


def is_in_group(loan: LoanRecord, drawing: Drawing) -> bool:
    """True if ``loan`` belongs to the tranche group this drawing adds to."""
    return drawing.group is not None and loan.bank == drawing.bank and loan.group == drawing.group


def get_outstanding_in(state: State, loan: LoanRecord, currency: str, on: date) -> Decimal:
    """A loan's outstanding in ``currency``: at its drawdown factor, else the rate on ``on``."""
    factor = loan.factors.get(currency)
    if factor is None:
        factor = compute_factor(state.fx_rates, loan.currency, currency, on)
    if factor is None:
        raise Unprocessable(
            [
                FieldProblem(
                    "currency",
                    f"no fx.rate for {loan.currency}/{currency} on or before {on} "
                    "to value the open financing",
                )
            ]
        )
    return compute_converted(loan.outstanding, factor, currency)


def get_exact_matches(state: State, drawing: Drawing) -> dict[LoanKey, list[str]]:
    """Accepted loans (open or repaid) holding K1, K2 or K3 of the drawing -> key names."""
    matches: dict[LoanKey, list[str]] = {}
    for name, fp in drawing.keys.exact:
        for ident in state.loans_by_key.get(fp, ()):
            matches.setdefault(ident, []).append(name)
    return dict(sorted(matches.items(), key=lambda item: state.loans[item[0]].index))


def get_open_receivable_financing(state: State, drawing: Drawing, currency: str) -> Decimal:
    total = Decimal(0)
    for ident in get_exact_matches(state, drawing):
        loan = state.loans[ident]
        if loan.is_open:
            total += get_outstanding_in(state, loan, currency, drawing.drawdown_date)
    return total


def _sum_open(state: State, idents: Iterable[LoanKey], currency: str, on: date) -> Decimal:
    total = Decimal(0)
    for ident in idents:
        total += get_outstanding_in(state, state.loans[ident], currency, on)
    return total


def get_open_exposure(
    state: State, scope: tuple[str, ...], idents: Iterable[LoanKey], currency: str, on: date
) -> Decimal:
    """Open outstanding in a scope (("policy", p) or ("buyer", p, b)) in ``currency``.

    The running sum when every open loan of the scope has a factor fixed into
    ``currency`` (O(1)); else the loans are valued one by one.
    """
    count = state.exposure_count.get(scope, 0)
    if count == state.exposure_count.get((*scope, currency), 0):
        return state.exposure.get((*scope, currency), Decimal(0)) if count else Decimal(0)
    return _sum_open(state, idents, currency, on)


def is_scope_overlapping(state: State, policy_key: str, scope_a: str, scope_b: str) -> bool:
    """Two assignment scopes on one policy overlap (all overlaps everything)."""
    if scope_a == "all" or scope_b == "all" or scope_a == scope_b:
        return True
    kinds = {scope_a.partition(":")[0], scope_b.partition(":")[0]}
    if kinds != {"country", "buyer"}:
        return False
    country_scope, buyer_scope = (
        (scope_a, scope_b) if scope_a.startswith("country:") else (scope_b, scope_a)
    )
    limit = state.limits.get((policy_key, buyer_scope.partition(":")[2]))
    return limit is not None and limit.buyer_country == country_scope.partition(":")[2]


def is_notice_in_scope(state: State, notice: NoticeRecord, scope: str) -> bool:
    """The notice's receivable falls under an assignment scope of its policy."""
    return is_scope_overlapping(state, notice.policy_key, scope, f"buyer:{notice.buyer_key}")


def is_assigned_elsewhere(state: State, notice: NoticeRecord, bank: str) -> bool:
    """Another bank holds a claims/receivables assignment covering the notice."""
    return any(
        a.bank != bank and is_notice_in_scope(state, notice, a.scope)
        for a in state.assignments.get(notice.policy_key, ())
    )


# --------------------------------------------------------------------------- rules


def compute_coverage_invalid(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """Notice unknown, revoked or expired, policy invalid, another beneficiary or assignee."""
    today = block_time.date()
    notice, policy = drawing.notice, drawing.policy
    reasons: list[tuple[str, str]] = []
    if notice is None:
        reasons.append(("notice_unknown", "no coverage notice with this number"))
    else:
        if notice.revoked:
            reasons.append(("notice_revoked", "the coverage notice was revoked"))
        if notice.valid_to < today:
            reasons.append(("notice_expired", f"the coverage notice expired on {notice.valid_to}"))
        if policy is None:
            reasons.append(("policy_unknown", "the notice's policy is unknown"))
        elif not policy.valid_from <= today <= policy.valid_to:
            reasons.append(("policy_not_in_force", "the policy is not in force at block time"))
        if notice.beneficiary != drawing.bank:
            reasons.append(("not_beneficiary", "the notice names another bank as beneficiary"))
        if is_assigned_elsewhere(state, notice, drawing.bank):
            reasons.append(("assigned_elsewhere", "indemnity assigned to another bank"))
    if not reasons:
        return []
    detail = "; ".join(text for _, text in reasons)
    return [make_flag(COVERAGE_INVALID, detail, data={"reasons": [code for code, _ in reasons]})]


def _receivable_differences(drawn: Receivable, notice: NoticeRecord) -> list[str]:
    fields: list[str] = []
    if normalise_id(drawn.invoice_no) != normalise_id(notice.invoice_no):
        fields.append("receivable.invoice_no")
    if normalise_id(drawn.transport_doc_no) != normalise_id(notice.transport_doc_no):
        fields.append("receivable.transport_doc_no")
    if drawn.amount != notice.amount:
        fields.append("receivable.amount")
    if drawn.currency != notice.currency:
        fields.append("receivable.currency")
    if drawn.invoice_date != notice.invoice_date:
        fields.append("receivable.invoice_date")
    if drawn.due_date != notice.due_date:
        fields.append("receivable.due_date")
    return fields


def compute_document_mismatch(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """The drawdown's receivable differs from the notice's (or the notice from its policy)."""
    notice = drawing.notice
    if notice is None:
        return []
    fields = _receivable_differences(drawing.receivable, notice)
    if drawing.keys.k5 != notice.keys.k5:
        fields.append("receivable.shipment")
    policy = drawing.policy
    if policy is not None and normalise_id(policy.exporter_id) != normalise_id(notice.exporter_id):
        fields.append("exporter_id")
    if not fields:
        return []
    detail = "the drawdown differs from the coverage notice in: " + ", ".join(fields)
    return [make_flag(DOCUMENT_MISMATCH, detail, data={"fields": fields})]


def compute_duplicate_financing(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """K1/K2/K3 held by another accepted loan (open or repaid), or reserved by another bank."""
    holders: list[dict[str, Any]] = []
    related: list[str] = []
    texts: list[str] = []
    for ident, names in get_exact_matches(state, drawing).items():
        loan = state.loans[ident]
        if is_in_group(loan, drawing):
            continue
        when = format_ts(loan.ts)
        status = "open" if loan.is_open else "repaid"
        holders.append({"keys": names, "when": when, "status": status})
        related.append(loan.entry_hash)
        who = (
            f"this bank's loan {loan.loan_id}"
            if loan.bank == drawing.bank
            else "another institution"
        )
        texts.append(
            f"this receivable ({_join_keys(names)}) was already financed by {who} at {when}"
        )
    reserved = _get_foreign_reservations(state, drawing, block_time)
    if reserved is not None:
        texts.append(
            f"this receivable ({_join_keys(reserved['keys'])}) is reserved by another "
            f"institution until {reserved['expires_at']}"
        )
        related.append(reserved.pop("entry_hash"))
    if not texts:
        return []
    data: dict[str, Any] = {"keys": sorted({k for h in holders for k in h["keys"]})}
    if holders:
        data["when"] = holders[0]["when"]
        data["holders"] = holders
    if reserved is not None:
        data["reserved"] = reserved
    return [make_flag(DUPLICATE_FINANCING, "; ".join(texts), tuple(dict.fromkeys(related)), data)]


def _get_foreign_reservations(
    state: State, drawing: Drawing, block_time: datetime
) -> dict[str, Any] | None:
    names: list[str] = []
    first = None
    for name, fp in drawing.keys.exact:
        held = state.reservations.get(fp)
        if held is not None and held.bank != drawing.bank and held.expires_at > block_time:
            names.append(name)
            first = first or held
    if first is None:
        return None
    return {
        "keys": names,
        "when": format_ts(first.ts),
        "expires_at": format_ts(first.expires_at),
        "entry_hash": first.entry_hash,
    }


def compute_over_limit_coverage(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """(Tranche group's outstanding +) amount > min(declared, effective limit) x ratio."""
    notice = drawing.notice
    if notice is None:
        return []
    currency = notice.currency
    cover = quantize_cap(
        min(notice.declared_amount, notice.effective_limit) * notice.indemnity_ratio, currency
    )
    group = [
        ident
        for ident in state.loans_by_key.get(drawing.keys.k3, ())
        if state.loans[ident].is_open and is_in_group(state.loans[ident], drawing)
    ]
    drawn = _sum_open(state, group, currency, drawing.drawdown_date)
    total = drawn + drawing.amount_in(currency)
    if total <= cover:
        return []
    detail = (
        f"{_fmt(total)} {currency} exceeds the cover of {_fmt(cover)} "
        f"{currency} (min(declared amount, effective limit) x indemnity ratio)"
    )
    data = {"total": _fmt(total), "cap": _fmt(cover), "currency": currency}
    return [make_flag(OVER_LIMIT_COVERAGE, detail, data=data)]


def compute_over_limit_receivable(
    state: State, drawing: Drawing, block_time: datetime
) -> list[Flag]:
    """Open financing on the receivable + amount > invoice amount x max_financing_ratio."""
    currency = drawing.receivable_currency
    invoice = drawing.notice.amount if drawing.notice is not None else drawing.receivable.amount
    cap = quantize_cap(invoice * state.params.max_financing_ratio, currency)
    open_amount = get_open_receivable_financing(state, drawing, currency)
    total = open_amount + drawing.amount_in(currency)
    if total <= cap:
        return []
    detail = (
        f"open financing on this receivable ({_fmt(open_amount)} {currency}) plus this "
        f"drawdown exceeds {_fmt(cap)} {currency} "
        f"({_fmt(state.params.max_financing_ratio)} of the invoice amount)"
    )
    data = {"open": _fmt(open_amount), "total": _fmt(total), "cap": _fmt(cap), "currency": currency}
    return [make_flag(OVER_LIMIT_RECEIVABLE, detail, data=data)]


def compute_over_limit_buyer(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """Open financing on (policy, buyer) + amount > buyer limit x policy indemnity ratio."""
    notice, policy, limit = drawing.notice, drawing.policy, drawing.limit
    if notice is None or policy is None:
        return []
    if limit is None or limit.valid_to < block_time.date():
        return [make_flag(OVER_LIMIT_BUYER, "no buyer limit in force", data={"reason": "no_limit"})]
    currency = limit.currency
    cap = quantize_cap(limit.amount * policy.indemnity_ratio, currency)
    idents = state.open_by_buyer.get((notice.policy_key, notice.buyer_key), {})
    scope = ("buyer", notice.policy_key, notice.buyer_key)
    open_amount = get_open_exposure(state, scope, idents, currency, drawing.drawdown_date)
    total = open_amount + drawing.amount_in(currency)
    if total <= cap:
        return []
    detail = (
        f"open financing on this buyer under the policy plus this drawdown ({_fmt(total)} "
        f"{currency}) exceeds the buyer limit x indemnity ratio "
        f"({_fmt(cap)} {currency})"
    )
    data = {"open": _fmt(open_amount), "total": _fmt(total), "cap": _fmt(cap), "currency": currency}
    return [make_flag(OVER_LIMIT_BUYER, detail, data=data)]


def compute_over_limit_policy(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """Open financing on the policy + amount > max_liability (policy currency)."""
    policy = drawing.policy
    if policy is None:
        return []
    currency = policy.currency
    idents = state.open_by_policy.get(policy.key, {})
    scope = ("policy", policy.key)
    open_amount = get_open_exposure(state, scope, idents, currency, drawing.drawdown_date)
    total = open_amount + drawing.amount_in(currency)
    if total <= policy.max_liability:
        return []
    detail = (
        f"open financing on the policy plus this drawdown ({_fmt(total)} {currency}) exceeds "
        f"its maximum liability ({_fmt(policy.max_liability)} {currency})"
    )
    data = {
        "open": _fmt(open_amount),
        "total": _fmt(total),
        "cap": _fmt(policy.max_liability),
        "currency": currency,
    }
    return [make_flag(OVER_LIMIT_POLICY, detail, data=data)]


def compute_receivable_in_default(
    state: State, drawing: Drawing, block_time: datetime
) -> list[Flag]:
    """A loss was notified or a claim paid on the receivable (by K1, K2 or K3)."""
    pairs = list(drawing.keys.exact)
    if drawing.notice is not None:
        pairs += [p for p in drawing.notice.keys.exact if p not in pairs]
    hits = [(name, state.defaults[fp]) for name, fp in pairs if fp in state.defaults]
    if not hits:
        return []
    first = min((record for _, record in hits), key=lambda r: r.ts)
    what = "a claim was paid" if first.entry_type == "claim.paid" else "a loss was notified"
    names = list(dict.fromkeys(name for name, _ in hits))
    detail = f"{what} on this receivable ({_join_keys(names)}) at {format_ts(first.ts)}"
    related = tuple(dict.fromkeys(record.entry_hash for _, record in hits))
    data = {"keys": names, "when": format_ts(first.ts), "event": first.entry_type}
    return [make_flag(RECEIVABLE_IN_DEFAULT, detail, related, data)]


def compute_k4_score(days_apart: int, window: int) -> Decimal:
    """1 for the same invoice date, falling linearly to 1/(window+1) at the window's edge."""
    with localcontext(DECIMAL_CONTEXT):
        return (1 - Decimal(days_apart) / Decimal(window + 1)).quantize(Decimal("0.01"))


def _get_fuzzy_matches(state: State, drawing: Drawing) -> list[tuple[str, Decimal, LoanRecord]]:
    exact = set(get_exact_matches(state, drawing))
    window = state.params.fuzzy_date_window_days
    found: list[tuple[str, Decimal, LoanRecord]] = []
    candidates: list[tuple[str, LoanKey]] = []
    if drawing.keys.k4 is not None:
        candidates += [("K4", i) for i in state.loans_by_k4.get(drawing.keys.k4, ())]
    candidates += [("K5", i) for i in state.loans_by_k5.get(drawing.keys.k5, ())]
    for name, ident in candidates:
        loan = state.loans[ident]
        if ident in exact or not loan.is_open or is_in_group(loan, drawing):
            continue
        if name == "K5":
            found.append((name, Decimal("1.00"), loan))
            continue
        days = abs((loan.keys.invoice_date - drawing.keys.invoice_date).days)
        if days <= window:
            found.append((name, compute_k4_score(days, window), loan))
    return found


def compute_suspected_duplicate(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """K4 (renumbered invoice) or K5 (same cargo) matches an open financing."""
    found = _get_fuzzy_matches(state, drawing)
    if not found:
        return []
    key, best, loan = max(found, key=lambda match: match[1])  # the first of the best
    texts = {
        "K4": "a receivable of the same exporter, buyer, currency and amount, invoiced within "
        f"{state.params.fuzzy_date_window_days} days (K4)",
        "K5": "the same cargo (K5 vessel, voyage, port, ship date, quantity)",
    }
    names = list(dict.fromkeys(name for name, _, _ in found))
    detail = (
        " and ".join(texts[n] for n in names)
        + f" is already financed by an open loan since {format_ts(loan.ts)}"
    )
    listed = found[:MAX_LISTED]
    matches = [{"key": n, "score": _fmt(s), "when": format_ts(m.ts)} for n, s, m in listed]
    data = {
        "key": key, "score": _fmt(best), "keys": names, "matches": matches, "count": len(found),
    }  # fmt: skip
    related = tuple(dict.fromkeys(m.entry_hash for _, _, m in listed))
    return [make_flag(SUSPECTED_DUPLICATE, detail, related, data)]


def compute_cover_lapses_before_maturity(
    state: State, drawing: Drawing, block_time: datetime
) -> list[Flag]:
    """maturity_date after the notice's or the policy's valid_to."""
    maturity = drawing.maturity_date
    if maturity is None:
        return []
    lapses: list[str] = []
    if drawing.notice is not None and maturity > drawing.notice.valid_to:
        lapses.append(f"the coverage notice ends on {drawing.notice.valid_to}")
    if drawing.policy is not None and maturity > drawing.policy.valid_to:
        lapses.append(f"the policy ends on {drawing.policy.valid_to}")
    if not lapses:
        return []
    detail = f"the loan matures on {maturity} but " + " and ".join(lapses)
    data = {"maturity_date": maturity.isoformat(), "lapses": len(lapses)}
    return [make_flag(COVER_LAPSES_BEFORE_MATURITY, detail, data=data)]


def compute_maturity_beyond_due(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """maturity_date > receivable due_date + maturity_grace_days."""
    maturity = drawing.maturity_date
    if maturity is None:
        return []
    due = drawing.notice.due_date if drawing.notice is not None else drawing.receivable.due_date
    limit = due + timedelta(days=state.params.maturity_grace_days)
    if maturity <= limit:
        return []
    detail = (
        f"the loan matures on {maturity}, more than {state.params.maturity_grace_days} days "
        f"after the receivable's due date {due}"
    )
    data = {"maturity_date": maturity.isoformat(), "due_date": due.isoformat()}
    return [make_flag(MATURITY_BEYOND_DUE, detail, data=data)]


DRAWDOWN_RULES: Final[tuple[Rule, ...]] = (
    compute_coverage_invalid,
    compute_document_mismatch,
    compute_duplicate_financing,
    compute_over_limit_coverage,
    compute_over_limit_receivable,
    compute_over_limit_buyer,
    compute_over_limit_policy,
    compute_receivable_in_default,
    compute_suspected_duplicate,
    compute_cover_lapses_before_maturity,
    compute_maturity_beyond_due,
)
"""Every rule, in DESIGN section 3's order."""

RESERVATION_RULES: Final[tuple[Rule, ...]] = (
    compute_coverage_invalid,
    compute_document_mismatch,
    compute_duplicate_financing,
    compute_receivable_in_default,
)


def evaluate_drawdown(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """Run every drawdown rule in order; return all the flags that fire."""
    return _run(DRAWDOWN_RULES, state, drawing, block_time)


def evaluate_reservation(state: State, drawing: Drawing, block_time: datetime) -> list[Flag]:
    """Run the receivable rules of a reservation in order; return the flags that fire."""
    return _run(RESERVATION_RULES, state, drawing, block_time)


def _run(
    rules: tuple[Rule, ...], state: State, drawing: Drawing, block_time: datetime
) -> list[Flag]:
    flags: list[Flag] = []
    with localcontext(DECIMAL_CONTEXT):
        for rule in rules:
            flags.extend(rule(state, drawing, block_time))
    return flags
