"""The domain state and its transition: one ``process_*`` function per entry type.

``process_entry(state, ctx, body, block_time)`` is the state transition. It checks who
signed (``verify_authorised``), then dispatches on the entry type through
``TRANSITIONS`` to a pair of functions: ``check_*`` (pure: raises when the entry must
be refused outright, else returns the verdict) and ``process_*`` (the same checks,
then the change). ``check_entry`` runs only the checks.

Outcomes of an entry:

- refused (``Forbidden`` 403, ``NotFound`` 404, ``Conflict`` 409, ``Unprocessable``
  422): nothing is recorded and the state does not change;
- rejected (a critical flag): a drawdown or reservation is recorded as evidence:
  its flags are stored (open, for the regulator) and it appears in the receivable's
  history, but it holds no key and counts toward no exposure; its loan_id stays free;
- accepted, possibly with warning flags.

Decisions where DESIGN is silent:

- financing.reserved runs the receivable rules of ``node.rules.RESERVATION_RULES``
  (coverage, documents, duplicates incl. another bank's live hold, default). If one
  fires the reservation is rejected (recorded with its flags) and holds nothing;
  otherwise it holds the receivable's K1/K2/K3 for the bank until ``expires_at``.
  A new hold by the same bank replaces its own; an accepted drawdown by the holder
  releases the hold (its loan now holds the keys).
- assignment.registered overlapping another bank's assignment on the same policy is
  accepted with an ASSIGNMENT_CONFLICT *warning*: the assignment is a legal fact that
  happened; the flag alerts the regulator, and drawdowns on the overlapped notices by
  any bank but the assignee meet COVERAGE_INVALID ("indemnity assigned to another bank").
- A drawdown on an unknown notice is recorded and rejected (COVERAGE_INVALID); its K1
  and K4 cannot be computed (the exporter comes from the notice).
- coverage.revoked on a revoked notice, fx.rate for an already published (date, pair)
  and flag.resolved on a resolved flag are ``Conflict``.

Nothing here reads the clock, a database, the network or the environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Final

from chain.entries import format_ts
from node.bodies import (
    BODY_MODELS,
    AssignmentRegistered,
    Body,
    BuyerRated,
    ClaimLossNotified,
    ClaimPaid,
    ConsentGranted,
    ConsentRevoked,
    CoverageIssued,
    CoverageRevoked,
    FinancingReserved,
    FlagResolved,
    FxRate,
    IndicatorsRead,
    LimitApproved,
    LoanDrawdown,
    LoanRepayment,
    OrgAdded,
    PolicyRegistered,
    Receivable,
)
from node.credit import ConsentRecord, CreditState, add_amount, red_buyer_flag
from node.domain import (
    ASSIGNMENT_CONFLICT,
    AssignmentRecord,
    Changes,
    DefaultRecord,
    EntryContext,
    Fingerprint,
    Flag,
    FlagRecord,
    LimitRecord,
    LoanKey,
    LoanRecord,
    NoticeRecord,
    Params,
    PolicyRecord,
    ReceivableEvent,
    ReservationRecord,
    Status,
    Verdict,
    flag_id,
    make_flag,
)
from node.errors import Conflict, FieldProblem, Forbidden, NotFound, Unprocessable
from node.fingerprints import compute_k3, compute_receivable_keys
from node.fx import (
    DECIMAL_CONTEXT,
    compute_converted,
    compute_factor,
    insert_rate,
    is_rate_published,
)
from node.identifiers import normalise_id
from node.rules import Drawing, evaluate_drawdown, evaluate_reservation, is_scope_overlapping

ACCEPTED: Final = Verdict("accepted", ())

ROLE_ENTRY_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "insurer": frozenset(
        t
        for t in BODY_MODELS
        if t.split(".")[0]
        in ("policy", "limit", "assignment", "coverage", "claim", "consent", "buyer")
    ),
    "bank": frozenset({"financing.reserved", "loan.drawdown", "loan.repayment", "indicators.read"}),
    "regulator": frozenset(
        t
        for t in BODY_MODELS
        if t.split(".")[0] in ("org", "key") or t in ("fx.rate", "flag.resolved")
    ),
}
"""Who may sign what (DESIGN section 3); anything else is Forbidden."""


class State:
    """Everything the rules read, kept in memory and rebuilt by replay.

    Receivable indexes are keyed by fingerprints (node.fingerprints), never by
    plaintext invoice or transport document numbers.
    """

    def __init__(self, params: Params, secret: bytes) -> None:
        self.params = params
        self.secret = secret
        self.orgs: dict[str, str] = {}
        self.policies: dict[str, PolicyRecord] = {}
        self.limits: dict[tuple[str, str], LimitRecord] = {}
        self.assignments: dict[str, list[AssignmentRecord]] = {}
        self.notices: dict[Fingerprint, NoticeRecord] = {}
        self.loans: dict[LoanKey, LoanRecord] = {}
        self.loans_by_key: dict[Fingerprint, list[LoanKey]] = {}
        self.loans_by_k4: dict[Fingerprint, list[LoanKey]] = {}
        self.loans_by_k5: dict[Fingerprint, list[LoanKey]] = {}
        self.open_by_policy: dict[str, dict[LoanKey, None]] = {}
        self.open_by_buyer: dict[tuple[str, str], dict[LoanKey, None]] = {}
        self.exposure: dict[tuple[str, ...], Decimal] = {}
        self.exposure_count: dict[tuple[str, ...], int] = {}
        self.reservations: dict[Fingerprint, ReservationRecord] = {}
        self.defaults: dict[Fingerprint, DefaultRecord] = {}
        self.fx_rates: dict[tuple[str, str], list[tuple[date, Decimal]]] = {}
        self.flags: dict[str, FlagRecord] = {}
        self.history: dict[Fingerprint, list[ReceivableEvent]] = {}
        self.credit = CreditState()
        self._changed_loans: dict[LoanKey, None] = {}
        self._changed_flags: dict[str, None] = {}
        self._changed_notices: dict[Fingerprint, None] = {}
        self._events: list[dict[str, Any]] = []

    def set_orgs(self, orgs: Mapping[str, str]) -> None:
        """The consortium's organisations and roles (from genesis)."""
        self.orgs.update(orgs)

    def drain_changes(self) -> Changes:
        """Rows changed since the last drain, for the projection tables."""
        changes = Changes(
            loans=[_loan_row(self.loans[k]) for k in self._changed_loans],
            flags=[_flag_row(self.flags[k]) for k in self._changed_flags],
            receivable_events=self._events,
            notices=[_notice_row(self.notices[k]) for k in self._changed_notices],
            credit=self.credit.drain(self.loans),
        )
        self._changed_loans, self._changed_flags, self._changed_notices = {}, {}, {}
        self._events = []
        return changes

    def snapshot(self) -> dict[str, Any]:
        """The whole state as deterministic JSON-native values (replay comparisons)."""
        parts = {
            "orgs": self.orgs,
            "policies": self.policies,
            "limits": self.limits,
            "assignments": self.assignments,
            "notices": self.notices,
            "loans": self.loans,
            "loans_by_key": self.loans_by_key,
            "loans_by_k4": self.loans_by_k4,
            "loans_by_k5": self.loans_by_k5,
            "open_by_policy": self.open_by_policy,
            "open_by_buyer": self.open_by_buyer,
            "exposure": self.exposure,
            "exposure_count": self.exposure_count,
            "reservations": self.reservations,
            "defaults": self.defaults,
            "fx_rates": self.fx_rates,
            "flags": self.flags,
            "history": self.history,
        }
        return {name: _jsonable(value) for name, value in parts.items()} | {
            "credit": self.credit.snapshot()
        }

    # ----------------------------------------------------------------- changes

    def put_loan(self, loan: LoanRecord) -> None:
        """Add or update a loan, keeping the open-loan indexes and running exposures."""
        previous = self.loans.get(loan.ident)
        if previous is not None:
            self._book_exposure(previous, -1)
        self._book_exposure(loan, +1)
        self.loans[loan.ident] = loan
        self._changed_loans[loan.ident] = None
        policy_open = self.open_by_policy.setdefault(loan.policy_key, {})
        buyer_open = self.open_by_buyer.setdefault((loan.policy_key, loan.buyer_key), {})
        if loan.is_open:
            policy_open[loan.ident] = None
            buyer_open[loan.ident] = None
            return
        policy_open.pop(loan.ident, None)
        buyer_open.pop(loan.ident, None)
        for index, fp in ((self.loans_by_k4, loan.keys.k4), (self.loans_by_k5, loan.keys.k5)):
            if fp is not None and loan.ident in index.get(fp, ()):
                index[fp].remove(loan.ident)  # fuzzy keys only ever match open loans

    def _book_exposure(self, loan: LoanRecord, sign: int) -> None:
        """Running sums of open outstanding per (policy[, buyer], currency) at fixed factors.

        ``exposure_count[scope]`` counts open loans in a scope and
        ``exposure_count[(*scope, currency)]`` those with a factor into ``currency``: when
        they are equal the running sum is the whole exposure (node.rules.get_open_exposure).
        """
        if not loan.is_open:
            return
        for scope in (("policy", loan.policy_key), ("buyer", loan.policy_key, loan.buyer_key)):
            self.exposure_count[scope] = self.exposure_count.get(scope, 0) + sign
            for currency, factor in loan.factors.items():
                key = (*scope, currency)
                amount = compute_converted(loan.outstanding, factor, currency)
                self.exposure[key] = self.exposure.get(key, Decimal(0)) + sign * amount
                self.exposure_count[key] = self.exposure_count.get(key, 0) + sign

    def put_notice(self, notice: NoticeRecord) -> None:
        self.notices[notice.key] = notice
        self._changed_notices[notice.key] = None

    def put_flag(self, record: FlagRecord) -> None:
        self.flags[record.flag_id] = record
        self._changed_flags[record.flag_id] = None

    def add_event(self, fp: Fingerprint, ctx: EntryContext, status: Status) -> None:
        event = ReceivableEvent(ctx.hash_hex, ctx.index, ctx.entry_type, ctx.org, status, ctx.ts)
        self.history.setdefault(fp, []).append(event)
        self._events.append(
            {
                "fingerprint": fp,
                "entry_hash": event.entry_hash,
                "index": event.index,
                "type": event.type,
                "org": event.org,
                "status": event.status,
                "ts": format_ts(event.ts),
            }
        )


# --------------------------------------------------------------------------- entry points


def check_entry(state: State, ctx: EntryContext, body: Body, block_time: datetime) -> Verdict:
    """Pure: the verdict the entry would get now; raises if it must be refused outright."""
    verify_authorised(ctx, body)
    with localcontext(DECIMAL_CONTEXT):
        return TRANSITIONS[ctx.entry_type][0](state, ctx, body, block_time)


def process_entry(state: State, ctx: EntryContext, body: Body, block_time: datetime) -> Verdict:
    """Check the entry, then apply it; a refusal raises and changes nothing."""
    verify_authorised(ctx, body)
    with localcontext(DECIMAL_CONTEXT):
        return TRANSITIONS[ctx.entry_type][1](state, ctx, body, block_time)


def verify_authorised(ctx: EntryContext, body: Body) -> None:
    """The signer's role may sign this entry type, and the body is of that type."""
    if ctx.entry_type not in ROLE_ENTRY_TYPES.get(ctx.role, frozenset()):
        raise Forbidden(ctx.org, ctx.role, ctx.entry_type)
    if not isinstance(body, BODY_MODELS[ctx.entry_type]):
        raise Unprocessable([FieldProblem("type", f"body is not a {ctx.entry_type} body")])


# --------------------------------------------------------------------------- helpers


def get_own_policy(state: State, ctx: EntryContext, policy_no: str) -> PolicyRecord:
    """The policy, which the signing insurer must have registered."""
    policy = state.policies.get(normalise_id(policy_no))
    if policy is None:
        raise NotFound("policy", policy_no)
    if policy.insurer != ctx.org:
        raise Forbidden(ctx.org, ctx.role, ctx.entry_type)
    return policy


def get_own_notice(state: State, ctx: EntryContext, notice_no: str) -> NoticeRecord:
    """The notice, which the signing insurer must have issued."""
    notice = state.notices.get(compute_k3(state.secret, notice_no))
    if notice is None:
        raise NotFound("notice", notice_no)
    if notice.insurer != ctx.org:
        raise Forbidden(ctx.org, ctx.role, ctx.entry_type)
    return notice


def get_limit_in_force(state: State, notice: NoticeRecord, on: date) -> LimitRecord | None:
    limit = state.limits.get((notice.policy_key, notice.buyer_key))
    return limit if limit is not None and limit.valid_to >= on else None


def record_flags(
    state: State, ctx: EntryContext, flags: tuple[Flag, ...], bank: str | None, insurer: str | None
) -> None:
    for position, flag in enumerate(flags):
        ident = flag_id(ctx.entry_hash, flag.code)
        record = FlagRecord(
            ident, flag, ctx.hash_hex, ctx.index, ctx.entry_type, bank, insurer, position, ctx.ts
        )
        state.put_flag(record)


def record_events(
    state: State, ctx: EntryContext, fps: tuple[tuple[str, Fingerprint], ...], status: Status
) -> None:
    for _, fp in fps:
        state.add_event(fp, ctx, status)


def _unprocessable(field: str, message: str) -> Unprocessable:
    return Unprocessable([FieldProblem(field, message)])


# --------------------------------------------------------------------------- insurer


def check_policy_registered(
    state: State, ctx: EntryContext, body: PolicyRegistered, block_time: datetime
) -> Verdict:
    if normalise_id(body.policy_no) in state.policies:
        raise Conflict(f"policy {body.policy_no!r} is already registered")
    return ACCEPTED


def process_policy_registered(
    state: State, ctx: EntryContext, body: PolicyRegistered, block_time: datetime
) -> Verdict:
    verdict = check_policy_registered(state, ctx, body, block_time)
    key = normalise_id(body.policy_no)
    state.policies[key] = PolicyRecord(
        key, body.policy_no, ctx.org, body.exporter_id, body.currency, body.valid_from,
        body.valid_to, body.indemnity_ratio, body.max_liability, ctx.hash_hex,
    )  # fmt: skip
    return verdict


def check_limit_approved(
    state: State, ctx: EntryContext, body: LimitApproved, block_time: datetime
) -> Verdict:
    get_own_policy(state, ctx, body.policy_no)
    return ACCEPTED


def process_limit_approved(
    state: State, ctx: EntryContext, body: LimitApproved, block_time: datetime
) -> Verdict:
    verdict = check_limit_approved(state, ctx, body, block_time)
    buyer_key = normalise_id(body.buyer_code)
    previous = state.limits.get((normalise_id(body.policy_no), buyer_key))
    cut = (
        previous is not None
        and previous.currency == body.currency
        and body.amount < previous.amount
    )
    if cut:
        state.credit.signal(
            ctx, buyer_key, body.buyer_code, "yellow", "LIMIT_CUT", body.buyer_country
        )
    policy = state.policies[normalise_id(body.policy_no)]
    state.credit.alert(
        ctx, "limit", body.buyer_code, body.buyer_country, policy.exporter_id, [ctx.org],
        {"policy_no": body.policy_no, "currency": body.currency, "amount": str(body.amount),
         "previous": str(previous.amount) if previous else None, "cut": cut},
    )  # fmt: skip
    state.limits[(normalise_id(body.policy_no), buyer_key)] = LimitRecord(
        buyer_key, body.buyer_code, body.buyer_country, body.currency, body.amount,
        body.valid_to, ctx.hash_hex,
    )  # fmt: skip
    return verdict


def _scope_key(body: AssignmentRegistered) -> str:
    if body.scope_kind == "buyer":
        return f"buyer:{normalise_id(body.scope_value or '')}"
    return body.scope


def check_assignment_registered(
    state: State, ctx: EntryContext, body: AssignmentRegistered, block_time: datetime
) -> Verdict:
    policy = get_own_policy(state, ctx, body.policy_no)
    if state.orgs.get(body.bank) != "bank":
        raise _unprocessable("bank", f"{body.bank!r} is not a bank of the consortium")
    scope = _scope_key(body)
    overlapping = [
        a for a in state.assignments.get(policy.key, ())
        if a.bank != body.bank and is_scope_overlapping(state, policy.key, a.scope, scope)
    ]  # fmt: skip
    if not overlapping:
        return ACCEPTED
    detail = (
        f"another bank already holds an assignment on this policy overlapping scope {body.scope}"
    )
    data = {"scope": body.scope, "overlaps": [a.scope for a in overlapping]}
    related = tuple(a.entry_hash for a in overlapping)
    return Verdict.of([make_flag(ASSIGNMENT_CONFLICT, detail, related, data)])


def process_assignment_registered(
    state: State, ctx: EntryContext, body: AssignmentRegistered, block_time: datetime
) -> Verdict:
    verdict = check_assignment_registered(state, ctx, body, block_time)
    policy_key = normalise_id(body.policy_no)
    record = AssignmentRecord(body.bank, body.kind, _scope_key(body), ctx.hash_hex)
    state.assignments.setdefault(policy_key, []).append(record)
    record_flags(state, ctx, verdict.flags, body.bank, ctx.org)
    return verdict


def check_coverage_issued(
    state: State, ctx: EntryContext, body: CoverageIssued, block_time: datetime
) -> Verdict:
    policy = get_own_policy(state, ctx, body.policy_no)
    if compute_k3(state.secret, body.notice_no) in state.notices:
        raise Conflict(f"coverage notice {body.notice_no!r} is already issued")
    if normalise_id(body.exporter_id) != normalise_id(policy.exporter_id):
        raise _unprocessable("exporter_id", "must be the exporter of the policy")
    if state.orgs.get(body.beneficiary) != "bank":
        raise _unprocessable("beneficiary", f"{body.beneficiary!r} is not a bank of the consortium")
    buyer_key = normalise_id(body.buyer_code)
    if state.credit.is_red(buyer_key) and not body.red_buyer_override:
        light = state.credit.lights[buyer_key]
        raise Conflict(
            f"buyer {body.buyer_code!r} is red ({red_buyer_flag(light).detail}): "
            "give red_buyer_override with the reason to cover it anyway",
            field="buyer_code",
        )
    return ACCEPTED


def process_coverage_issued(
    state: State, ctx: EntryContext, body: CoverageIssued, block_time: datetime
) -> Verdict:
    verdict = check_coverage_issued(state, ctx, body, block_time)
    r = body.receivable
    keys = compute_receivable_keys(
        state.secret, body.notice_no, r, body.exporter_id, body.buyer_code
    )
    state.put_notice(
        NoticeRecord(
            keys.k3,
            body.notice_no,
            normalise_id(body.policy_no),
            body.policy_no,
            ctx.org,
            body.exporter_id,
            normalise_id(body.buyer_code),
            body.buyer_code,
            r.invoice_no,
            r.invoice_date,
            r.transport_doc_no,
            r.currency,
            r.amount,
            r.due_date,
            body.declared_amount,
            body.effective_limit,
            body.indemnity_ratio,
            body.beneficiary,
            body.valid_to,
            keys,
            ctx.hash_hex,
            ctx.index,
        )  # fmt: skip
    )
    limit = state.limits.get((normalise_id(body.policy_no), normalise_id(body.buyer_code)))
    state.credit.add_notice(state.notices[keys.k3], limit.buyer_country if limit else None)
    record_events(state, ctx, keys.exact, "accepted")
    return verdict


def check_coverage_revoked(
    state: State, ctx: EntryContext, body: CoverageRevoked, block_time: datetime
) -> Verdict:
    notice = get_own_notice(state, ctx, body.notice_no)
    if notice.revoked:
        raise Conflict(f"coverage notice {body.notice_no!r} is already revoked")
    return ACCEPTED


def process_coverage_revoked(
    state: State, ctx: EntryContext, body: CoverageRevoked, block_time: datetime
) -> Verdict:
    verdict = check_coverage_revoked(state, ctx, body, block_time)
    notice = get_own_notice(state, ctx, body.notice_no)
    state.put_notice(dataclasses.replace(notice, revoked=True))
    record_events(state, ctx, notice.keys.exact, "accepted")
    return verdict


def check_claim(
    state: State, ctx: EntryContext, body: ClaimLossNotified | ClaimPaid, block_time: datetime
) -> Verdict:
    get_own_notice(state, ctx, body.notice_no)
    return ACCEPTED


def process_claim(
    state: State, ctx: EntryContext, body: ClaimLossNotified | ClaimPaid, block_time: datetime
) -> Verdict:
    """A loss notified or claim paid puts the receivable (K1, K2, K3) in default."""
    verdict = check_claim(state, ctx, body, block_time)
    notice = get_own_notice(state, ctx, body.notice_no)
    for _, fp in notice.keys.exact:
        state.defaults.setdefault(fp, DefaultRecord(ctx.entry_type, ctx.hash_hex, ctx.ts))
    record_events(state, ctx, notice.keys.exact, "accepted")
    facts = state.credit.facts(notice.exporter_id)
    if isinstance(body, ClaimPaid):
        facts.claims_count += 1
        add_amount(facts.claims, body.currency, body.amount)
        light, reason = "red", "CLAIM_PAID"
    else:
        facts.losses_count += 1
        add_amount(facts.losses, body.currency, body.amount)
        light, reason = "yellow", "LOSS_NOTIFIED"
        limit = state.limits.get((notice.policy_key, notice.buyer_key))
        state.credit.alert(
            ctx, "loss", notice.buyer_code, limit.buyer_country if limit else None,
            notice.exporter_id, [notice.insurer, notice.beneficiary],
            {"notice_no": notice.notice_no, "currency": body.currency,
             "amount": str(body.amount), "date": body.date.isoformat()},
        )  # fmt: skip
    state.credit.signal(ctx, notice.buyer_key, notice.buyer_code, light, reason)  # type: ignore[arg-type]
    return verdict


# --------------------------------------------------------------------------- bank


def get_factors(state: State, currency: str, targets: list[str], on: date) -> dict[str, Decimal]:
    """Conversion factors from ``currency`` into each target; refuses a missing rate."""
    factors: dict[str, Decimal] = {}
    for target in dict.fromkeys(targets):
        factor = compute_factor(state.fx_rates, currency, target, on)
        if factor is None:
            raise _unprocessable(
                "currency",
                f"no fx.rate for {currency}/{target} (or {target}/{currency}) on or before {on}",
            )
        factors[target] = factor
    return factors


def get_tranche_group(state: State, ctx: EntryContext, body: LoanDrawdown) -> str | None:
    """The tranche group a drawdown adds to: an open loan of this bank on the same notice."""
    if body.tranche_of is None:
        return None
    parent = state.loans.get((ctx.org, normalise_id(body.tranche_of)))
    if parent is None:
        raise _unprocessable("tranche_of", f"no loan {body.tranche_of!r} of this bank")
    if parent.notice_key != compute_k3(state.secret, body.notice_no):
        raise _unprocessable("tranche_of", f"loan {body.tranche_of!r} is on another notice")
    if not parent.is_open:
        raise _unprocessable("tranche_of", f"loan {body.tranche_of!r} is repaid (closed)")
    return parent.group


def get_drawing(
    state: State,
    ctx: EntryContext,
    body: LoanDrawdown | FinancingReserved,
    on: date,
    maturity: date | None,
    group: str | None,
) -> Drawing:
    """Resolve a drawdown or reservation against the state for the rules."""
    notice = state.notices.get(compute_k3(state.secret, body.notice_no))
    policy = state.policies.get(notice.policy_key) if notice is not None else None
    limit = state.limits.get((notice.policy_key, notice.buyer_key)) if notice is not None else None
    targets = [notice.currency if notice is not None else body.receivable.currency]
    in_force = get_limit_in_force(state, notice, on) if notice is not None else None
    targets += [in_force.currency] if in_force is not None else []
    targets += [policy.currency] if policy is not None else []
    factors = get_factors(state, body.currency, targets, on)
    exporter = notice.exporter_id if notice is not None else None
    buyer = notice.buyer_code if notice is not None else None
    keys = compute_receivable_keys(state.secret, body.notice_no, body.receivable, exporter, buyer)
    return Drawing(
        ctx.org, ctx.entry_type, body.notice_no, body.receivable, body.currency, body.amount,
        on, maturity, group, keys, notice, policy, limit, factors,
    )  # fmt: skip


def get_loan_drawing(state: State, ctx: EntryContext, body: LoanDrawdown) -> Drawing:
    if (ctx.org, normalise_id(body.loan_id)) in state.loans:
        raise _loan_id_conflict(body.loan_id)
    group = get_tranche_group(state, ctx, body)
    return get_drawing(state, ctx, body, body.drawdown_date, body.maturity_date, group)


def _loan_id_conflict(loan_id: str) -> Conflict:
    return Conflict(f"loan_id {loan_id!r} is already used by this bank")


def check_loan_drawdown(
    state: State, ctx: EntryContext, body: LoanDrawdown, block_time: datetime
) -> Verdict:
    drawing = get_loan_drawing(state, ctx, body)
    return drawdown_verdict(state, drawing, block_time)


def drawdown_verdict(state: State, drawing: Drawing, block_time: datetime) -> Verdict:
    """The rules' verdict, with a BUYER_RED warning when the notice's buyer is red."""
    flags = list(evaluate_drawdown(state, drawing, block_time))
    notice = drawing.notice
    if notice is not None and state.credit.is_red(notice.buyer_key):
        flags.append(red_buyer_flag(state.credit.lights[notice.buyer_key]))
    return Verdict.of(flags)


def process_loan_drawdown(
    state: State, ctx: EntryContext, body: LoanDrawdown, block_time: datetime
) -> Verdict:
    drawing = get_loan_drawing(state, ctx, body)
    verdict = drawdown_verdict(state, drawing, block_time)
    notice = drawing.notice
    insurer = notice.insurer if notice is not None else None
    record_flags(state, ctx, verdict.flags, ctx.org, insurer)
    record_events(state, ctx, drawing.keys.exact, verdict.status)
    if notice is not None and not verdict.accepted:
        state.credit.signal(ctx, notice.buyer_key, notice.buyer_code, "yellow", "CRITICAL_FLAG")
    if notice is not None:
        limit = state.limits.get((notice.policy_key, notice.buyer_key))
        for flag in verdict.flags:
            state.credit.alert(
                ctx, "flag", notice.buyer_code, limit.buyer_country if limit else None,
                notice.exporter_id, [],
                {**flag.to_json(), "flag_id": flag_id(ctx.entry_hash, flag.code),
                 "bank": ctx.org, "insurer": notice.insurer},
            )  # fmt: skip
    if verdict.accepted:
        apply_loan(state, ctx, body, drawing)
        assert notice is not None
        state.credit.facts(notice.exporter_id).loans[(ctx.org, normalise_id(body.loan_id))] = None
    return verdict


def apply_loan(state: State, ctx: EntryContext, body: LoanDrawdown, drawing: Drawing) -> None:
    """Add an accepted loan to the indexes and release this bank's holds on its keys."""
    notice, keys = drawing.notice, drawing.keys
    if notice is None:  # an unknown notice is always rejected (COVERAGE_INVALID)
        raise ValueError("cannot book a loan on an unknown notice")
    loan_key = normalise_id(body.loan_id)
    limit = drawing.limit
    loan = LoanRecord(
        ctx.org, loan_key, body.loan_id, drawing.group or loan_key, body.tranche_of,
        keys.k3, notice.notice_no, notice.policy_key, notice.policy_no, notice.insurer,
        notice.buyer_key, notice.buyer_code, limit.buyer_country if limit else None, keys,
        body.currency, body.amount, body.amount, dict(drawing.factors), body.drawdown_date,
        body.maturity_date, ctx.hash_hex, ctx.index, ctx.ts,
    )  # fmt: skip
    state.put_loan(loan)
    for _, fp in keys.exact:
        state.loans_by_key.setdefault(fp, []).append(loan.ident)
        held = state.reservations.get(fp)
        if held is not None and held.bank == ctx.org:
            del state.reservations[fp]
    if keys.k4 is not None:
        state.loans_by_k4.setdefault(keys.k4, []).append(loan.ident)
    state.loans_by_k5.setdefault(keys.k5, []).append(loan.ident)


def get_own_loan(state: State, ctx: EntryContext, loan_id: str) -> LoanRecord:
    """A loan of the signing bank; another bank's loan is as unknown as a missing one."""
    loan = state.loans.get((ctx.org, normalise_id(loan_id)))
    if loan is None:
        raise NotFound("loan", loan_id)
    return loan


def check_loan_repayment(
    state: State, ctx: EntryContext, body: LoanRepayment, block_time: datetime
) -> Verdict:
    loan = get_own_loan(state, ctx, body.loan_id)
    if body.currency != loan.currency:
        raise _unprocessable("currency", f"must be the loan's currency {loan.currency}")
    if body.amount > loan.outstanding:
        raise _unprocessable(
            "amount", f"exceeds the outstanding {format(loan.outstanding, 'f')} {loan.currency}"
        )
    return ACCEPTED


def process_loan_repayment(
    state: State, ctx: EntryContext, body: LoanRepayment, block_time: datetime
) -> Verdict:
    verdict = check_loan_repayment(state, ctx, body, block_time)
    loan = get_own_loan(state, ctx, body.loan_id)
    state.put_loan(dataclasses.replace(loan, outstanding=loan.outstanding - body.amount))
    record_events(state, ctx, loan.keys.exact, "accepted")
    notice = state.notices.get(loan.notice_key)
    if notice is not None:
        state.credit.facts(notice.exporter_id)  # its open financing changed
    return verdict


def get_reservation_drawing(
    state: State, ctx: EntryContext, body: FinancingReserved, block_time: datetime
) -> Drawing:
    if body.bank != ctx.org:
        raise Forbidden(ctx.org, ctx.role, ctx.entry_type)
    ttl = state.params.reservation_ttl_max_minutes
    if not block_time < body.expires_at <= block_time + timedelta(minutes=ttl):
        raise _unprocessable(
            "expires_at",
            f"must be after the block time {format_ts(block_time)} and at most {ttl} minutes "
            "after it",
        )
    return get_drawing(state, ctx, body, block_time.date(), None, None)


def check_financing_reserved(
    state: State, ctx: EntryContext, body: FinancingReserved, block_time: datetime
) -> Verdict:
    drawing = get_reservation_drawing(state, ctx, body, block_time)
    return Verdict.of(evaluate_reservation(state, drawing, block_time))


def process_financing_reserved(
    state: State, ctx: EntryContext, body: FinancingReserved, block_time: datetime
) -> Verdict:
    drawing = get_reservation_drawing(state, ctx, body, block_time)
    verdict = Verdict.of(evaluate_reservation(state, drawing, block_time))
    insurer = drawing.notice.insurer if drawing.notice is not None else None
    record_flags(state, ctx, verdict.flags, ctx.org, insurer)
    record_events(state, ctx, drawing.keys.exact, verdict.status)
    if verdict.accepted:
        hold = ReservationRecord(ctx.org, body.expires_at, ctx.hash_hex, ctx.ts)
        for _, fp in drawing.keys.exact:
            state.reservations[fp] = hold
    return verdict


# --------------------------------------------------------------------------- regulator


def check_fx_rate(state: State, ctx: EntryContext, body: FxRate, block_time: datetime) -> Verdict:
    if is_rate_published(state.fx_rates, body.base, body.quote, body.date):
        raise Conflict(f"fx.rate {body.base}/{body.quote} for {body.date} is already published")
    return ACCEPTED


def process_fx_rate(state: State, ctx: EntryContext, body: FxRate, block_time: datetime) -> Verdict:
    verdict = check_fx_rate(state, ctx, body, block_time)
    insert_rate(state.fx_rates, body.base, body.quote, body.date, body.rate)
    return verdict


def check_flag_resolved(
    state: State, ctx: EntryContext, body: FlagResolved, block_time: datetime
) -> Verdict:
    record = state.flags.get(body.flag_id)
    if record is None:
        raise NotFound("flag", body.flag_id)
    if record.status != "open":
        raise Conflict(f"flag {body.flag_id!r} is already resolved ({record.status})")
    return ACCEPTED


def process_flag_resolved(
    state: State, ctx: EntryContext, body: FlagResolved, block_time: datetime
) -> Verdict:
    verdict = check_flag_resolved(state, ctx, body, block_time)
    record = state.flags[body.flag_id]
    state.put_flag(dataclasses.replace(record, status=body.outcome, note=body.note))
    return verdict


def check_membership(state: State, ctx: EntryContext, body: Body, block_time: datetime) -> Verdict:
    """org.*/key.*: key validity is the chain keyring's business; here only roles matter."""
    return ACCEPTED


def process_membership(
    state: State, ctx: EntryContext, body: Body, block_time: datetime
) -> Verdict:
    if isinstance(body, OrgAdded):
        state.orgs[body.org_id] = body.role
    return ACCEPTED


# --------------------------------------------------------------------------- credit information


def check_consent_granted(
    state: State, ctx: EntryContext, body: ConsentGranted, block_time: datetime
) -> Verdict:
    if normalise_id(body.consent_id) in state.credit.consents:
        raise Conflict(f"consent {body.consent_id!r} is already granted", field="consent_id")
    if state.orgs.get(body.bank) != "bank":
        raise _unprocessable("bank", f"{body.bank!r} is not a bank of the consortium")
    exporter = normalise_id(body.exporter_id)
    if not any(
        p.insurer == ctx.org and normalise_id(p.exporter_id) == exporter
        for p in state.policies.values()
    ):
        raise _unprocessable(
            "exporter_id", "no policy of this insurer insures that exporter: it cannot consent"
        )
    if body.valid_until < block_time.date():
        raise _unprocessable("valid_until", "is in the past")
    return ACCEPTED


def process_consent_granted(
    state: State, ctx: EntryContext, body: ConsentGranted, block_time: datetime
) -> Verdict:
    verdict = check_consent_granted(state, ctx, body, block_time)
    state.credit.put_consent(
        ConsentRecord(
            body.consent_id,
            body.exporter_id,
            body.bank,
            ctx.org,
            body.valid_until,
            ctx.hash_hex,
            ctx.index,
        )  # fmt: skip
    )
    return verdict


def get_own_consent(state: State, ctx: EntryContext, consent_id: str) -> ConsentRecord:
    consent = state.credit.consents.get(normalise_id(consent_id))
    if consent is None:
        raise NotFound("consent", consent_id)
    if consent.insurer != ctx.org:
        raise Forbidden(ctx.org, ctx.role, ctx.entry_type)
    return consent


def check_consent_revoked(
    state: State, ctx: EntryContext, body: ConsentRevoked, block_time: datetime
) -> Verdict:
    if get_own_consent(state, ctx, body.consent_id).revoked_hash is not None:
        raise Conflict(f"consent {body.consent_id!r} is already revoked", field="consent_id")
    return ACCEPTED


def process_consent_revoked(
    state: State, ctx: EntryContext, body: ConsentRevoked, block_time: datetime
) -> Verdict:
    verdict = check_consent_revoked(state, ctx, body, block_time)
    consent = get_own_consent(state, ctx, body.consent_id)
    state.credit.put_consent(dataclasses.replace(consent, revoked_hash=ctx.hash_hex))
    return verdict


def check_buyer_rated(
    state: State, ctx: EntryContext, body: BuyerRated, block_time: datetime
) -> Verdict:
    return ACCEPTED


def process_buyer_rated(
    state: State, ctx: EntryContext, body: BuyerRated, block_time: datetime
) -> Verdict:
    state.credit.rate(ctx, body.buyer_code, body.buyer_country, body.light, body.reasons)
    return ACCEPTED


def check_indicators_read(
    state: State, ctx: EntryContext, body: IndicatorsRead, block_time: datetime
) -> Verdict:
    consent = state.credit.consents.get(normalise_id(body.consent_id))
    live = (
        consent is not None
        and consent.bank == ctx.org
        and normalise_id(consent.exporter_id) == normalise_id(body.exporter_id)
        and consent.is_live(block_time.date())
    )
    if not live:
        raise Forbidden(
            ctx.org, ctx.role, ctx.entry_type,
            detail=f"no live consent of exporter {body.exporter_id} for {ctx.org}: "
            "the exporter's insurer must record consent.granted first",
        )  # fmt: skip
    return ACCEPTED


def process_indicators_read(
    state: State, ctx: EntryContext, body: IndicatorsRead, block_time: datetime
) -> Verdict:
    verdict = check_indicators_read(state, ctx, body, block_time)
    state.credit.reads.append(
        {
            "entry_hash": ctx.hash_hex,
            "bank": ctx.org,
            "exporter_id": body.exporter_id,
            "consent_id": body.consent_id,
            "idx": ctx.index,
            "ts": format_ts(ctx.ts),
        }
    )
    return verdict


Transition = Callable[[State, EntryContext, Any, datetime], Verdict]

TRANSITIONS: Final[Mapping[str, tuple[Transition, Transition]]] = {
    "policy.registered": (check_policy_registered, process_policy_registered),
    "limit.approved": (check_limit_approved, process_limit_approved),
    "assignment.registered": (check_assignment_registered, process_assignment_registered),
    "coverage.issued": (check_coverage_issued, process_coverage_issued),
    "coverage.revoked": (check_coverage_revoked, process_coverage_revoked),
    "claim.loss_notified": (check_claim, process_claim),
    "claim.paid": (check_claim, process_claim),
    "financing.reserved": (check_financing_reserved, process_financing_reserved),
    "loan.drawdown": (check_loan_drawdown, process_loan_drawdown),
    "loan.repayment": (check_loan_repayment, process_loan_repayment),
    "fx.rate": (check_fx_rate, process_fx_rate),
    "flag.resolved": (check_flag_resolved, process_flag_resolved),
    "org.added": (check_membership, process_membership),
    "key.added": (check_membership, process_membership),
    "key.revoked": (check_membership, process_membership),
    "consent.granted": (check_consent_granted, process_consent_granted),
    "consent.revoked": (check_consent_revoked, process_consent_revoked),
    "buyer.rated": (check_buyer_rated, process_buyer_rated),
    "indicators.read": (check_indicators_read, process_indicators_read),
}
"""Entry type -> (check_*, process_*)."""


# --------------------------------------------------------------------------- rows


def _loan_row(loan: LoanRecord) -> dict[str, Any]:
    return {
        "bank": loan.bank,
        "loan_key": loan.loan_key,
        "loan_id": loan.loan_id,
        "entry_hash": loan.entry_hash,
        "notice_fp": loan.notice_key,
        "notice_no": loan.notice_no,
        "policy_no": loan.policy_no,
        "insurer": loan.insurer,
        "buyer_code": loan.buyer_code,
        "buyer_country": loan.buyer_country,
        "currency": loan.currency,
        "amount": format(loan.amount, "f"),
        "outstanding": format(loan.outstanding, "f"),
        "status": "open" if loan.is_open else "repaid",
        "drawdown_date": loan.drawdown_date.isoformat(),
        "maturity_date": loan.maturity_date.isoformat(),
        "tranche_of": loan.tranche_of,
        "index": loan.index,
        "ts": format_ts(loan.ts),
    }


def _flag_row(record: FlagRecord) -> dict[str, Any]:
    flag = record.flag
    return {
        "flag_id": record.flag_id,
        "entry_hash": record.entry_hash,
        "index": record.index,
        "position": record.position,
        "entry_type": record.entry_type,
        "code": flag.code,
        "severity": flag.severity,
        "bank": record.bank,
        "insurer": record.insurer,
        "detail": flag.detail,
        "related": list(flag.related),
        "data": _jsonable(flag.data),
        "status": record.status,
        "note": record.note,
        "ts": format_ts(record.ts),
    }


def _notice_row(notice: NoticeRecord) -> dict[str, Any]:
    return {
        "notice_fp": notice.key,
        "notice_no": notice.notice_no,
        "policy_no": notice.policy_no,
        "insurer": notice.insurer,
        "beneficiary": notice.beneficiary,
        "exporter_id": notice.exporter_id,
        "buyer_code": notice.buyer_code,
        "currency": notice.currency,
        "amount": format(notice.amount, "f"),
        "status": "revoked" if notice.revoked else "issued",
        "valid_to": notice.valid_to.isoformat(),
        "entry_hash": notice.entry_hash,
        "index": notice.index,
    }


def _jsonable(value: Any) -> Any:
    """Deterministic JSON-native form: records as objects, tuple keys joined by '|'."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        items = {_key(k): _jsonable(v) for k, v in value.items()}
        return dict(sorted(items.items()))
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Receivable):
        return value.model_dump(mode="json")
    return value


def _key(key: Any) -> str:
    if isinstance(key, tuple):
        return "|".join(str(part) for part in key)
    if isinstance(key, date):
        return key.isoformat()
    return str(key)
