"""Credit information for lenders: exporter consents, indicators, buyer risk lights.

    consent.granted / consent.revoked   the exporter authorises one bank to read its insurance
                                        indicators until a date (定向授权)
    indicators.read                     a bank's read of those indicators, on the ledger
    buyer.rated                         the insurer's light for a buyer (资信红绿灯)

Pure, like node.state: ``CreditState`` lives in ``State.credit``, is changed only by
``observe`` (after an entry's own transition accepted it) and by the consent and read
transitions here, and is rebuilt by replay.

Who signs a consent. The insurer, on the exporter's behalf: the exporter is the insurer's
policyholder, already identified by its 统一社会信用代码 in the policy, and its authorisation is
part of the policy relationship (the insurer keeps the signed paper or e-form). A separate
``exporter`` role with its own keys would mean the regulator registering and revoking keys
for thousands of exporters that sign nothing else; the ledger would gain little, since a bank
must trust the insurer's indicators anyway. An insurer may grant only for an exporter one of
its own policies insures.

The light of a buyer (by its normalised code) is the worst of: the insurer's latest rating,
and the signals the ledger gave since that rating (a rating is the insurer's review of what
came before it)::

    red      rated red; a claim paid on a receivable of the buyer
    yellow   rated yellow; a loss notified; a limit cut (a new limit below the one it
             replaces); a critical flag on a drawdown against the buyer's receivables
    green    otherwise (also: never rated, no signal)

"Since" is the time of the first signal at the current level after the last rating (or of
the rating itself); "why" lists every signal at that level, with its entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from chain.entries import format_ts
from node.domain import EntryContext, Flag, LoanRecord, NoticeRecord
from node.identifiers import normalise_id

Light = Literal["green", "yellow", "red"]
LEVEL: Final[dict[str, int]] = {"green": 0, "yellow": 1, "red": 2}
INDICATOR_SCOPE: Final = "insurance_indicators"


@dataclass(frozen=True)
class ConsentRecord:
    consent_id: str
    exporter_id: str
    bank: str
    insurer: str
    valid_until: date
    granted_hash: str
    granted_index: int
    revoked_hash: str | None = None

    def is_live(self, on: date) -> bool:
        return self.revoked_hash is None and on <= self.valid_until


@dataclass(frozen=True)
class Signal:
    light: Light
    reason: str
    entry_hash: str
    index: int
    ts: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "light": self.light,
            "reason": self.reason,
            "entry_hash": self.entry_hash,
            "index": self.index,
            "ts": format_ts(self.ts),
        }


@dataclass
class BuyerLight:
    buyer_key: str
    buyer_code: str
    country: str | None = None
    rating: Signal | None = None
    signals: list[Signal] = field(default_factory=list)  # since the rating

    def current(self) -> tuple[Light, datetime | None, list[Signal]]:
        """(light, since, why)."""
        considered = ([self.rating] if self.rating else []) + self.signals
        if not considered:
            return "green", None, []
        worst = max(LEVEL[s.light] for s in considered)
        light: Light = ("green", "yellow", "red")[worst]  # type: ignore[assignment]
        why = [s for s in considered if LEVEL[s.light] == worst]
        return light, min(s.ts for s in why), why

    def to_row(self) -> dict[str, Any]:
        light, since, why = self.current()
        return {
            "buyer_key": self.buyer_key,
            "buyer_code": self.buyer_code,
            "country": self.country,
            "light": light,
            "since": format_ts(since) if since else None,
            "why": [s.to_json() for s in why],
        }


@dataclass
class ExporterFacts:
    """What the indicators are computed from, for one exporter (amounts by currency)."""

    covered: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # year -> ccy -> amt
    by_country: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    by_buyer: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    losses: dict[str, Decimal] = field(default_factory=dict)
    losses_count: int = 0
    claims: dict[str, Decimal] = field(default_factory=dict)
    claims_count: int = 0
    loans: dict[tuple[str, str], None] = field(default_factory=dict)  # loan idents


def add_amount(into: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    into[currency] = into.get(currency, Decimal(0)) + amount


class CreditState:
    def __init__(self) -> None:
        self.consents: dict[str, ConsentRecord] = {}
        self.lights: dict[str, BuyerLight] = {}
        self.exporters: dict[str, ExporterFacts] = {}
        self.changed_consents: dict[str, None] = {}
        self.changed_lights: dict[str, None] = {}
        self.changed_exporters: dict[str, None] = {}
        self.reads: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []  # alert events of this drain (node.alerts)
        self._light_before: dict[str, Light] = {}

    # -- reads -----------------------------------------------------------------------

    def light_of(self, buyer_code: str) -> BuyerLight:
        key = normalise_id(buyer_code)
        return self.lights.get(key) or BuyerLight(key, buyer_code)

    def is_red(self, buyer_key: str) -> bool:
        light = self.lights.get(buyer_key)
        return light is not None and light.current()[0] == "red"

    def live_consent(self, bank: str, exporter_id: str, on: date) -> ConsentRecord | None:
        for consent in self.consents.values():
            if consent.bank == bank and consent.exporter_id == exporter_id and consent.is_live(on):
                return consent
        return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "consents": {k: _plain(v) for k, v in sorted(self.consents.items())},
            "lights": {k: v.to_row() for k, v in sorted(self.lights.items())},
            "exporters": {k: _plain(v) for k, v in sorted(self.exporters.items())},
        }

    # -- changes ---------------------------------------------------------------------

    def put_consent(self, consent: ConsentRecord) -> None:
        """Keyed by the normalised id (as consents are looked up); rows keep it as given."""
        key = normalise_id(consent.consent_id)
        self.consents[key] = consent
        self.changed_consents[key] = None

    def alert(self, ctx: EntryContext, kind: str, buyer_code: str, country: str | None,
              exporter_id: str | None, visible_to: Iterable[str], data: dict[str, Any]) -> None:  # fmt: skip
        """An alert event (node.alerts delivers it to the subscriptions it matches).

        ``visible_to``: the organisations that may see it besides the regulator, or
        ``["*"]`` for every member; a flag's event names ``bank`` and ``insurer`` in
        ``data`` and is filtered as flags are (node.visibility.flag_for).
        """
        self.alerts.append(
            {
                "idx": ctx.index,
                "entry_hash": ctx.hash_hex,
                "kind": kind,
                "buyer_key": normalise_id(buyer_code),
                "buyer_code": buyer_code,
                "country": country,
                "exporter_id": exporter_id,
                "visible_to": sorted(set(visible_to)),
                "data": data,
                "ts": format_ts(ctx.ts),
            }
        )

    def _light(self, buyer_key: str, buyer_code: str, country: str | None) -> BuyerLight:
        light = self.lights.get(buyer_key)
        if buyer_key not in self._light_before:
            self._light_before[buyer_key] = light.current()[0] if light else "green"
        if light is None:
            light = self.lights[buyer_key] = BuyerLight(buyer_key, buyer_code, country)
        if country and not light.country:
            light.country = country
        self.changed_lights[buyer_key] = None
        return light

    def rate(self, ctx: EntryContext, buyer_code: str, country: str | None, light: Light,
             reasons: Iterable[str]) -> None:  # fmt: skip
        record = self._light(normalise_id(buyer_code), buyer_code, country)
        reason = "RATED_" + light.upper() + "".join(f":{r}" for r in reasons)
        record.rating = Signal(light, reason, ctx.hash_hex, ctx.index, ctx.ts)
        record.signals = []

    def signal(self, ctx: EntryContext, buyer_key: str, buyer_code: str, light: Light,
               reason: str, country: str | None = None) -> None:  # fmt: skip
        record = self._light(buyer_key, buyer_code, country)
        record.signals.append(Signal(light, reason, ctx.hash_hex, ctx.index, ctx.ts))

    def facts(self, exporter_id: str) -> ExporterFacts:
        self.changed_exporters[exporter_id] = None
        return self.exporters.setdefault(exporter_id, ExporterFacts())

    def add_notice(self, notice: NoticeRecord, country: str | None) -> None:
        facts = self.facts(notice.exporter_id)
        amount, ccy = notice.declared_amount, notice.currency
        add_amount(facts.covered.setdefault(str(notice.invoice_date.year), {}), ccy, amount)
        add_amount(facts.by_country.setdefault(country or "??", {}), ccy, amount)
        add_amount(facts.by_buyer.setdefault(notice.buyer_code, {}), ccy, amount)

    def drain(self, loans: dict[Any, LoanRecord]) -> dict[str, list[dict[str, Any]]]:
        """Rows changed since the last drain, for the projection tables (node.projection)."""
        for key, before in self._light_before.items():
            light = self.lights[key]
            now, since, why = light.current()
            if now != before:
                last = max(why, key=lambda s: s.index) if why else None
                self.alerts.append(
                    {
                        "idx": last.index if last else -1,
                        "entry_hash": last.entry_hash if last else "",
                        "kind": "light",
                        "buyer_key": key,
                        "buyer_code": light.buyer_code,
                        "country": light.country,
                        "exporter_id": None,
                        "visible_to": ["*"],
                        "data": {"light": now, "previous": before, **light.to_row()},
                        "ts": format_ts(last.ts) if last else "",
                    }
                )
        self._light_before = {}
        rows = {
            "alerts": self.alerts,
            "consents": [_consent_row(self.consents[k]) for k in self.changed_consents],
            "lights": [self.lights[k].to_row() for k in self.changed_lights],
            "indicators": [
                {"exporter_id": k, "data": indicators(self.exporters[k], loans)}
                for k in self.changed_exporters
            ],
            "reads": self.reads,
        }
        self.changed_consents, self.changed_lights, self.changed_exporters = {}, {}, {}
        self.reads = []
        self.alerts = []
        return rows


def indicators(facts: ExporterFacts, loans: dict[Any, LoanRecord]) -> dict[str, Any]:
    """The exporter's indicators as a bank with its consent reads them (amounts as strings)."""
    open_total: dict[str, Decimal] = {}
    for ident in facts.loans:
        loan = loans.get(ident)
        if loan is not None and loan.is_open:
            add_amount(open_total, loan.currency, loan.outstanding)
    covered_total: dict[str, Decimal] = {}
    for by_ccy in facts.covered.values():
        for ccy, amount in by_ccy.items():
            add_amount(covered_total, ccy, amount)
    return {
        "insured": {"total": _money(covered_total), "by_year": _nested(facts.covered)},
        "countries": _nested(facts.by_country),
        "buyers": _nested(facts.by_buyer),
        "open_financing": _money(open_total),
        "losses_notified": {"count": facts.losses_count, "amount": _money(facts.losses)},
        "claims_paid": {"count": facts.claims_count, "amount": _money(facts.claims)},
    }


def indicators_empty() -> dict[str, Any]:
    """The indicators of an exporter the ledger knows nothing of."""
    return indicators(ExporterFacts(), {})


def _money(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {ccy: f"{amounts[ccy]:.2f}" for ccy in sorted(amounts)}


def _nested(table: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, str]]:
    return {key: _money(table[key]) for key in sorted(table)}


def _consent_row(c: ConsentRecord) -> dict[str, Any]:
    return {
        "consent_id": c.consent_id,
        "exporter_id": c.exporter_id,
        "bank": c.bank,
        "insurer": c.insurer,
        "valid_until": c.valid_until.isoformat(),
        "status": "revoked" if c.revoked_hash else "granted",
        "granted_hash": c.granted_hash,
        "idx": c.granted_index,
        "revoked_hash": c.revoked_hash,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def red_buyer_flag(light: BuyerLight) -> Flag:
    _, since, why = light.current()
    return Flag(
        "BUYER_RED",
        "warning",
        f"the buyer is red since {format_ts(since) if since else '?'}: "
        + ", ".join(s.reason for s in why),
        tuple(s.entry_hash for s in why),
        {"buyer_code": light.buyer_code, "reasons": [s.reason for s in why]},
    )
