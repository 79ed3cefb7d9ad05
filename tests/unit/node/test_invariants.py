"""Invariants of the domain under random sequences of entries (hypothesis stateful).

A ``RuleBasedStateMachine`` drives the pure state (node.state, node.rules) through
random policies, buyer limits, assignments, coverage notices, revocations,
reservations, drawdowns (tranches, other currencies), repayments, claims, reference
rates and the passing of time, over small pools of identifiers so that receivables
collide (the same invoice, the same bill of lading, the same notice, spelled
differently). Beside it runs ``Model``: what was accepted, kept independently of the
node's indexes (its own normalisation, fx lookup and sums), from which it checks:

- a refused entry changes nothing (the whole ``State.snapshot()``);
- no exact receivable key (K1 exporter + invoice, K2 transport document, K3 notice)
  is held by accepted loans of two tranche groups, open or repaid;
- at each accepted drawdown every cap holds with it: the notice's cover, the
  receivable's financing ratio, the buyer's limit, the policy's maximum liability;
- exposure = drawdowns - repayments per loan, per bank, and per buyer and policy (the
  running sums at the factors fixed at drawdown, and their loan counts);
- replaying every recorded entry (accepted or rejected) into a new state gives the
  same state.

Default: ``DEFAULT_EXAMPLES`` sequences of up to ``STEPS`` steps; ``-m slow`` runs more.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chain.entries import format_ts
from node.errors import NodeError
from tests.unit.node.domain_helpers import EXPORTER, EXPORTER_2, World

DEFAULT_EXAMPLES = 100
SLOW_EXAMPLES = 1000
STEPS = 40
CONTEXT = Context(prec=50, rounding=ROUND_HALF_EVEN)
MINOR_UNITS = {"USD": 2, "EUR": 2, "JPY": 0}
FINANCING_RATIO = Decimal("0.9")  # Params() default

BANKS = ("BANK-A", "BANK-B")
INSURERS = ("INSURER", "INSURER-2")
POLICIES = (  # policy_no, insurer, exporter
    ("SCI-2026-0001", "INSURER", EXPORTER),
    ("SCI-2026-0002", "INSURER-2", EXPORTER_2),
)
BUYERS = (("USA/123456", "US"), ("DE-777", "DE"))
RECEIVABLES = (  # invoice, bill of lading, amount, vessel: 0/1 share the invoice, 0/2 the B/L
    ("INV-0", "BL-0", "100000.00", "COSCO ARIES"),
    ("INV-0", "BL-1", "100000.00", "EVER GIVEN"),
    ("INV-2", "BL-0", "80000.00", "MAERSK ALABAMA"),
    ("INV-3", "BL-3", "60000.00", "CMA CGM NERVAL"),
)
AMOUNTS = ("1000.00", "20000.00", "45000.00", "53999.99", "54000.00", "72000.01", "90000.00")


# --------------------------------------------------------------------------- the model


def key_of(text: str) -> str:
    """The matching form of an identifier, as DESIGN states it: NFKC, upper case,
    nothing but letters, digits and combining marks."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).upper())
    return "".join(c for c in folded if unicodedata.category(c)[0] in "LNM")


def spell(text: str, how: int) -> str:
    """One of several spellings of the same identifier."""
    if how == 1:
        return text.lower()
    if how == 2:
        return text.replace("-", " ")
    if how == 3:  # fullwidth forms
        return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in text)
    return text


def quantize(amount: Decimal, currency: str, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    exponent = Decimal(1).scaleb(-MINOR_UNITS[currency])
    return amount.quantize(exponent, rounding=rounding, context=CONTEXT)


@dataclass
class ModelLoan:
    bank: str
    loan_key: str
    group: str
    notice: str  # key of the notice number
    policy: str
    buyer: str
    keys: frozenset[tuple[str, str]]  # ("K1", exporter|invoice), ("K2", b/l), ("K3", notice)
    currency: str
    amount: Decimal
    outstanding: Decimal
    factors: dict[str, Decimal]

    @property
    def is_open(self) -> bool:
        return self.outstanding > 0

    def value_in(self, currency: str, fallback: Decimal | None) -> Decimal:
        factor = self.factors.get(currency, fallback)
        assert factor is not None, f"no factor {self.currency}->{currency}"
        return quantize(CONTEXT.multiply(self.outstanding, factor), currency)


@dataclass
class Model:
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    limits: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)
    loans: dict[tuple[str, str], ModelLoan] = field(default_factory=dict)
    rates: dict[tuple[str, str], dict[date, Decimal]] = field(default_factory=dict)
    drawn: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    repaid: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def factor(self, source: str, target: str, on: date) -> Decimal | None:
        """The latest rate on or before ``on``, direct or inverse; the later date wins,
        the direct pair on the same date."""
        if source == target:
            return Decimal(1)
        direct = [(d, r) for d, r in self.rates.get((source, target), {}).items() if d <= on]
        inverse = [(d, r) for d, r in self.rates.get((target, source), {}).items() if d <= on]
        best_direct, best_inverse = max(direct, default=None), max(inverse, default=None)
        if best_direct and (not best_inverse or best_direct[0] >= best_inverse[0]):
            return best_direct[1]
        if best_inverse:
            return CONTEXT.divide(Decimal(1), best_inverse[1])
        return None

    def open_loans(self, **scope: str) -> list[ModelLoan]:
        return [
            loan
            for loan in self.loans.values()
            if loan.is_open and all(getattr(loan, k) == v for k, v in scope.items())
        ]


# --------------------------------------------------------------------------- the machine


class Ledger(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.model = Model()
        self.recorded: list[tuple[int, datetime, str, str, dict[str, Any]]] = []
        self.accepted_drawdowns = 0

    # ----------------------------------------------------------------- plumbing

    def submit(self, org: str, entry_type: str, body: dict[str, Any]) -> str | None:
        """The verdict's status, or None when the entry is refused (and nothing changed)."""
        state = self.world.state
        state.drain_changes()
        before = state.snapshot()
        index, now = self.world.index, self.world.now
        try:
            verdict = self.world.submit(org, entry_type, body)
        except NodeError:
            assert state.snapshot() == before, f"refused {entry_type} changed the state"
            assert state.drain_changes().is_empty()
            return None
        self.recorded.append((index, now, org, entry_type, body))
        return verdict.status

    @property
    def today(self) -> date:
        return self.world.now.date()

    # ----------------------------------------------------------------- insurer

    @initialize(
        liabilities=st.tuples(*[st.sampled_from(["100000.00", "1000000.00"])] * 2),
        limits=st.tuples(*[st.sampled_from(["50000.00", "120000.00", "400000.00"])] * 4),
        currencies=st.tuples(*[st.sampled_from(["USD", "USD", "EUR"])] * 4),
        notices=st.lists(
            st.tuples(
                st.integers(0, 1),
                st.integers(0, 1),
                st.sampled_from(BANKS),
                st.integers(0, 3),
                st.sampled_from(["0.9", "0.5", "1"]),
            ),
            min_size=1,
            max_size=4,
        ),  # fmt: skip
    )
    def start(
        self,
        liabilities: tuple[str, ...],
        limits: tuple[str, ...],
        currencies: tuple[str, ...],
        notices: list[tuple[int, int, str, int, str]],
    ) -> None:
        """Both policies, a limit for each buyer, and a few notices: most sequences then
        reach drawdowns."""
        for p in (0, 1):
            self.register_policy(p, liabilities[p])
            for b in (0, 1):
                self.approve_limit(p, b, limits[2 * p + b], currencies[2 * p + b], "2026-12-31")
        for n, (p, b, bank, r, ratio) in enumerate(notices):
            self.issue_notice(n, p, b, bank, r, n % 4, ratio, "full", "2026-12-31")

    def register_policy(self, p: int, liability: str) -> None:
        policy_no, insurer, exporter = POLICIES[p]
        body = {
            "policy_no": policy_no, "exporter_id": exporter, "exporter_name": "Exporter",
            "product": "comprehensive", "currency": "USD", "valid_from": "2026-01-01",
            "valid_to": "2026-12-31", "indemnity_ratio": "0.9", "max_liability": liability,
            "max_credit_days": 180,
        }  # fmt: skip
        if self.submit(insurer, "policy.registered", body) == "accepted":
            self.model.policies[key_of(policy_no)] = {
                "currency": "USD", "ratio": Decimal("0.9"), "max": Decimal(liability),
                "exporter": key_of(exporter),
            }  # fmt: skip

    @rule(
        p=st.integers(0, 1),
        b=st.integers(0, 1),
        amount=st.sampled_from(["50000.00", "120000.00", "400000.00"]),
        currency=st.sampled_from(["USD", "USD", "EUR"]),
        valid_to=st.sampled_from(["2026-12-31", "2026-03-03"]),
    )
    def approve_limit(self, p: int, b: int, amount: str, currency: str, valid_to: str) -> None:
        policy_no, insurer, _ = POLICIES[p]
        buyer, country = BUYERS[b]
        body = {
            "policy_no": policy_no, "buyer_code": buyer, "buyer_name": "Buyer",
            "buyer_country": country, "currency": currency, "amount": amount,
            "valid_to": valid_to,
        }  # fmt: skip
        if self.submit(insurer, "limit.approved", body) == "accepted":
            self.model.limits[(key_of(policy_no), key_of(buyer))] = {
                "amount": Decimal(amount), "currency": currency,
                "valid_to": date.fromisoformat(valid_to),
            }  # fmt: skip

    @rule(
        p=st.integers(0, 1),
        bank=st.sampled_from(BANKS),
        scope=st.sampled_from(["buyer:DE-777", "country:US", "buyer:USA/123456", "all"]),
    )
    def assign(self, p: int, bank: str, scope: str) -> None:
        policy_no, insurer, _ = POLICIES[p]
        body = {"policy_no": policy_no, "bank": bank, "kind": "claims", "scope": scope}
        self.submit(insurer, "assignment.registered", body)

    @rule(
        n=st.integers(0, 5),
        p=st.integers(0, 1),
        b=st.integers(0, 1),
        bank=st.sampled_from(BANKS),
        r=st.integers(0, 3),
        how=st.integers(0, 3),
        ratio=st.sampled_from(["0.9", "0.5", "1"]),
        cover=st.sampled_from(["full", "less"]),
        valid_to=st.sampled_from(["2026-12-31", "2026-03-02"]),
    )
    def issue_notice(
        self, n: int, p: int, b: int, bank: str, r: int, how: int, ratio: str, cover: str,
        valid_to: str,
    ) -> None:  # fmt: skip
        policy_no, insurer, exporter = POLICIES[p]
        invoice, bl, amount, _ = RECEIVABLES[r]
        declared = amount if cover == "full" else "40000.00"
        body = {
            "notice_no": f"N-{n}", "policy_no": policy_no, "exporter_id": exporter,
            "buyer_code": BUYERS[b][0], "receivable": self.receivable(r, how),
            "declared_amount": declared, "effective_limit": amount, "indemnity_ratio": ratio,
            "beneficiary": bank, "valid_to": valid_to,
        }  # fmt: skip
        if self.submit(insurer, "coverage.issued", body) == "accepted":
            self.model.notices[key_of(f"N-{n}")] = {
                "policy": key_of(policy_no), "buyer": key_of(BUYERS[b][0]),
                "exporter": key_of(exporter), "invoice": key_of(invoice), "bl": key_of(bl),
                "amount": Decimal(amount), "currency": "USD", "r": r, "bank": bank,
                "cover": quantize(min(Decimal(declared), Decimal(amount)) * Decimal(ratio),
                                  "USD", ROUND_DOWN),
            }  # fmt: skip

    def receivable(self, r: int, how: int) -> dict[str, Any]:
        invoice, bl, amount, vessel = RECEIVABLES[r]
        return {
            "invoice_no": spell(invoice, how), "invoice_date": "2026-02-10",
            "transport_doc_no": spell(bl, (how + 1) % 4), "currency": "USD", "amount": amount,
            "due_date": "2026-05-10",
            "shipment": {"vessel": vessel, "voyage": "042E", "port_of_loading": "CNXMN",
                         "ship_date": "2026-02-09", "quantity": "1200", "unit": "MT"},
        }  # fmt: skip

    @rule(
        n=st.integers(0, 5),
        event=st.sampled_from(["revoked", "loss", "paid"]),
        insurer=st.sampled_from(INSURERS),
    )
    def insurer_event(self, n: int, event: str, insurer: str) -> None:
        """A notice revoked, a loss notified or a claim paid (by its insurer, or not)."""
        if event == "revoked":
            body: dict[str, Any] = {"notice_no": f"N-{n}", "reason": "unpaid"}
            self.submit(insurer, "coverage.revoked", body)
            return
        body = {"notice_no": f"N-{n}", "currency": "USD", "amount": "9000.00",
                "date": self.today.isoformat()}  # fmt: skip
        if event == "paid":
            body["bank"] = "BANK-A"
        self.submit(insurer, "claim.paid" if event == "paid" else "claim.loss_notified", body)

    # ----------------------------------------------------------------- regulator and time

    @rule(
        days_back=st.integers(0, 3),
        pair=st.sampled_from([("EUR", "USD"), ("USD", "EUR")]),
        rate=st.sampled_from(["1.0825", "0.95", "1.2", "0.8333333333"]),
    )
    def publish_rate(self, days_back: int, pair: tuple[str, str], rate: str) -> None:
        on = self.today - timedelta(days=days_back)
        body = {"date": on.isoformat(), "base": pair[0], "quote": pair[1], "rate": rate}
        if self.submit("REGULATOR", "fx.rate", body) == "accepted":
            self.model.rates.setdefault(pair, {})[on] = Decimal(rate)

    @rule(minutes=st.sampled_from([1, 10, 31, 60 * 24, 60 * 24 * 3]))
    def wait(self, minutes: int) -> None:
        self.world.now += timedelta(minutes=minutes)

    # ----------------------------------------------------------------- bank

    @rule(
        bank=st.sampled_from(BANKS),
        n=st.integers(0, 5),
        r=st.integers(0, 3),
        how=st.integers(0, 3),
        minutes=st.sampled_from([1, 15, 30, 31]),
    )
    def reserve(self, bank: str, n: int, r: int, how: int, minutes: int) -> None:
        notice = self.model.notices.get(key_of(f"N-{n}"))
        if notice is not None and r != 3:  # mostly the notice's own receivable and bank
            r, bank = notice["r"], notice["bank"]
        body = {
            "bank": bank, "notice_no": f"N-{n}", "receivable": self.receivable(r, how),
            "currency": "USD", "amount": "10000.00",
            "expires_at": format_ts(self.world.now + timedelta(minutes=minutes)),
        }  # fmt: skip
        self.submit(bank, "financing.reserved", body)

    @rule(
        bank=st.sampled_from(BANKS),
        loan=st.integers(0, 5),
        n=st.integers(0, 5),
        stray=st.integers(0, 3),
        how=st.integers(0, 3),
        amount=st.sampled_from(AMOUNTS),
        currency=st.sampled_from(["USD", "USD", "EUR"]),
    )
    def draw(
        self, bank: str, loan: int, n: int, stray: int, how: int, amount: str, currency: str
    ) -> None:
        """Mostly by the beneficiary of an issued notice, on its receivable; one time in
        four (``stray`` 3) by ``bank`` on N-n (issued or not) with receivable n of the pool,
        as a tranche of L-n (which may not be).
        """
        issued = sorted(self.model.notices)
        if stray != 3 and issued:
            key = issued[n % len(issued)]
            notice = self.model.notices[key]
            number, bank, r = int(key.removeprefix("N")), notice["bank"], notice["r"]
            self.draw_on(bank, loan, number, r, how, amount, currency, None)
        else:
            self.draw_on(bank, loan, n, n % 4, how, amount, currency, n if how == 3 else None)

    @rule(bank=st.sampled_from(BANKS), loan=st.integers(0, 5), amount=st.sampled_from(AMOUNTS))
    def draw_tranche(self, bank: str, loan: int, amount: str) -> None:
        """Another drawdown on the notice of one of the bank's loans, as its tranche."""
        own = sorted(k for b, k in self.model.loans if b == bank)
        if not own:
            return
        parent = self.model.loans[(bank, own[loan % len(own)])]
        n = int(parent.notice.removeprefix("N"))
        r = self.model.notices[parent.notice]["r"]
        number = int(parent.loan_key.removeprefix("L"))
        self.draw_on(bank, (number + 1 + loan) % 6, n, r, loan % 4, amount, "USD", number)

    def draw_on(
        self, bank: str, loan: int, n: int, r: int, how: int, amount: str, currency: str,
        tranche: int | None,
    ) -> None:  # fmt: skip
        notice = self.model.notices.get(key_of(f"N-{n}"))
        body = {
            "loan_id": f"L-{loan}", "notice_no": spell(f"N-{n}", how), "currency": currency,
            "receivable": self.receivable(r, how), "amount": amount,
            "drawdown_date": self.today.isoformat(),
            "maturity_date": (self.today + timedelta(days=60)).isoformat(),
        }  # fmt: skip
        if tranche is not None:
            body["tranche_of"] = f"L-{tranche}"
        if self.submit(bank, "loan.drawdown", body) == "accepted":
            assert notice is not None, "a drawdown on an unknown notice was accepted"
            self.book(bank, body, notice)

    def book(self, bank: str, body: dict[str, Any], notice: dict[str, Any]) -> None:
        model, today = self.model, self.today
        loan_key = key_of(body["loan_id"])
        group = loan_key
        if "tranche_of" in body:
            group = model.loans[(bank, key_of(body["tranche_of"]))].group
        policy = model.policies[notice["policy"]]
        limit = model.limits.get((notice["policy"], notice["buyer"]))
        targets = [notice["currency"], policy["currency"]]
        if limit is not None and limit["valid_to"] >= today:
            targets.append(limit["currency"])
        factors = {}
        for target in targets:
            factor = model.factor(body["currency"], target, today)
            assert factor is not None, f"accepted without a {body['currency']}/{target} rate"
            factors[target] = factor
        keys = frozenset(
            {("K1", f"{notice['exporter']}|{key_of(body['receivable']['invoice_no'])}"),
             ("K2", key_of(body["receivable"]["transport_doc_no"])),
             ("K3", key_of(body["notice_no"]))}
        )  # fmt: skip
        amount = Decimal(body["amount"])
        new = ModelLoan(
            bank, loan_key, group, key_of(body["notice_no"]), notice["policy"], notice["buyer"],
            keys, body["currency"], amount, amount, factors,
        )  # fmt: skip
        model.loans[(bank, loan_key)] = new
        model.drawn[(bank, body["currency"])] += amount
        self.accepted_drawdowns += 1
        self.check_caps(new, notice, policy, limit)

    def check_caps(
        self,
        new: ModelLoan,
        notice: dict[str, Any],
        policy: dict[str, Any],
        limit: dict[str, Any] | None,
    ) -> None:
        """Every cap holds with the drawdown just accepted (DESIGN section 3's table)."""
        model, today = self.model, self.today

        def total(loans: list[ModelLoan], currency: str) -> Decimal:
            return sum(
                (x.value_in(currency, model.factor(x.currency, currency, today)) for x in loans),
                Decimal(0),
            )

        group = model.open_loans(bank=new.bank, group=new.group, notice=new.notice)
        assert total(group, "USD") <= notice["cover"], "OVER_LIMIT_COVERAGE let through"
        same = [x for x in model.open_loans() if x.keys & new.keys]
        cap = quantize(notice["amount"] * FINANCING_RATIO, "USD", ROUND_DOWN)
        assert total(same, "USD") <= cap, "OVER_LIMIT_RECEIVABLE let through"
        assert limit is not None and limit["valid_to"] >= today, "no buyer limit in force"
        buyer_cap = quantize(limit["amount"] * policy["ratio"], limit["currency"], ROUND_DOWN)
        on_buyer = model.open_loans(policy=new.policy, buyer=new.buyer)
        assert total(on_buyer, limit["currency"]) <= buyer_cap, "OVER_LIMIT_BUYER let through"
        on_policy = model.open_loans(policy=new.policy)
        assert total(on_policy, "USD") <= policy["max"], "OVER_LIMIT_POLICY let through"

    @rule(
        bank=st.sampled_from(BANKS),
        loan=st.integers(0, 5),
        part=st.sampled_from(["half", "all", "cent", "over", "fixed"]),
        stray=st.integers(0, 3),
    )
    def repay(self, bank: str, loan: int, part: str, stray: int) -> None:
        """Mostly on a booked loan by its bank; one time in four (``stray`` 3) by ``bank``
        on L-n (booked or not, its bank's or not) in the other currency."""
        booked = sorted(self.model.loans)
        loan_id = f"L-{loan}"
        if stray != 3 and booked:
            bank, loan_id = booked[loan % len(booked)]
        known = self.model.loans.get((bank, key_of(loan_id)))
        outstanding = known.outstanding if known is not None else Decimal("1000.00")
        amount = {
            "all": outstanding,
            "half": quantize(outstanding / 2, "USD", ROUND_DOWN),
            "cent": Decimal("0.01"),
            "over": outstanding + Decimal("0.01"),
            "fixed": Decimal("5000.00"),
        }[part]
        currency = known.currency if known is not None else "USD"
        if stray == 3:
            currency = "EUR" if currency == "USD" else "USD"
        body = {"loan_id": loan_id, "currency": currency, "amount": format(amount, "f"),
                "date": self.today.isoformat(), "source": "buyer"}  # fmt: skip
        if amount <= 0:
            return
        if self.submit(bank, "loan.repayment", body) == "accepted":
            assert known is not None, "a repayment of an unknown loan was accepted"
            assert Decimal(0) < amount <= known.outstanding and currency == known.currency
            known.outstanding -= amount
            self.model.repaid[(bank, currency)] += amount

    # ----------------------------------------------------------------- invariants

    @invariant()
    def no_receivable_financed_by_two_groups(self) -> None:
        holders: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        for loan in self.model.loans.values():  # accepted loans, open or repaid
            for k in loan.keys:
                holders[k].add((loan.bank, loan.group))
        for k, groups in holders.items():
            assert len(groups) == 1, f"{k} financed by {sorted(groups)}"

    @invariant()
    def exposure_is_drawdowns_minus_repayments(self) -> None:
        state, model = self.world.state, self.model
        assert set(state.loans) == set(model.loans)
        for ident, loan in model.loans.items():
            assert state.loans[ident].outstanding == loan.outstanding, ident
            assert state.loans[ident].factors == loan.factors, ident
        banks: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for (bank, _), record in state.loans.items():
            banks[(bank, record.currency)] += record.outstanding
        for pair in set(banks) | set(model.drawn):
            assert banks[pair] == model.drawn[pair] - model.repaid[pair], pair
        expected: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
        counts: dict[tuple[str, ...], int] = defaultdict(int)
        for loan in model.open_loans():
            for scope in (("policy", loan.policy), ("buyer", loan.policy, loan.buyer)):
                counts[scope] += 1
                for currency in loan.factors:
                    expected[(*scope, currency)] += loan.value_in(currency, None)
                    counts[(*scope, currency)] += 1
        running = {k: v for k, v in state.exposure.items() if state.exposure_count.get(k)}
        assert running == {k: v for k, v in expected.items() if counts[k]}
        assert {k: v for k, v in state.exposure_count.items() if v} == dict(counts)

    def teardown(self) -> None:
        """Replay every recorded entry, at its index and time, into a new state."""
        replica = World()
        for index, now, org, entry_type, body in self.recorded:
            replica.index, replica.now = index, now
            replica.submit(org, entry_type, body)
        assert replica.state.snapshot() == self.world.state.snapshot()


def run(examples: int) -> None:
    Ledger.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    Ledger.TestCase().runTest()


def test_invariants_hold_under_random_sequences() -> None:
    run(DEFAULT_EXAMPLES)


@pytest.mark.slow
def test_invariants_hold_under_long_random_sequences() -> None:
    run(SLOW_EXAMPLES)


def test_the_machine_reaches_accepted_drawdowns_and_refusals() -> None:
    """The sequences are not all refused: a fixed sequence books, tranches and repays."""
    machine = Ledger()
    machine.register_policy(0, "1000000.00")
    machine.approve_limit(0, 0, "400000.00", "USD", "2026-12-31")
    machine.issue_notice(0, 0, 0, "BANK-A", 0, 0, "0.9", "full", "2026-12-31")
    machine.issue_notice(1, 0, 0, "BANK-B", 1, 1, "0.9", "full", "2026-12-31")  # same invoice
    machine.publish_rate(0, ("EUR", "USD"), "1.0825")
    machine.draw_on("BANK-A", 0, 0, 0, 0, "45000.00", "EUR", None)
    machine.draw_on("BANK-A", 1, 0, 0, 2, "20000.00", "USD", 0)  # a tranche, another spelling
    machine.draw_on("BANK-B", 0, 1, 1, 3, "1000.00", "USD", None)  # K1: the same invoice
    machine.repay("BANK-A", 0, "half", 0)  # the first booked loan: BANK-A's L0
    machine.repay("BANK-A", 1, "over", 0)  # refused
    machine.no_receivable_financed_by_two_groups()
    machine.exposure_is_drawdowns_minus_repayments()
    assert machine.accepted_drawdowns == 2
    assert [e[3] for e in machine.recorded].count("loan.drawdown") == 3  # one rejected
    assert [e[3] for e in machine.recorded].count("loan.repayment") == 1
    outstanding = {k: v.outstanding for k, v in machine.model.loans.items()}
    assert outstanding == {
        ("BANK-A", "L0"): Decimal("22500.00"),
        ("BANK-A", "L1"): Decimal("20000.00"),
    }
    machine.teardown()
