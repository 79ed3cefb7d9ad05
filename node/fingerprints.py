"""Keyed fingerprints of receivable keys.

A receivable is matched across banks by five keys (DESIGN section 3)::

    K1 exporter_id + invoice_no          exact
    K2 transport_doc_no                  exact
    K3 notice_no                         exact
    K4 exporter_id + buyer_code + currency + amount   fuzzy (invoice dates within a window)
    K5 vessel + voyage + port_of_loading + ship_date + quantity   fuzzy

Every part is normalised (``node.identifiers.normalise_id`` for identifiers; amounts
and quantities as ``Decimal.normalize`` strings, so "100.50" and "100.5" are one
value; dates ISO) and the fingerprint is::

    HMAC-SHA-256(secret, b"pfnode/fp/v1\\n" + kind + b"\\n" + "\\x1f".join(parts)) -> hex

with the consortium's secret, so a table of fingerprints reveals no invoice number
to whoever reads it without the key. The state and every flag hold fingerprints,
never another bank's plaintext identifiers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Final

from node.bodies import Receivable
from node.domain import Fingerprint, ReceivableKeys
from node.identifiers import normalise_id

FP_PREFIX: Final = b"pfnode/fp/v1\n"
PART_SEPARATOR: Final = "\x1f"


def compute_fingerprint(secret: bytes, kind: str, parts: Sequence[str]) -> Fingerprint:
    """HMAC-SHA-256 of already-normalised ``parts`` under ``kind`` ("K1".."K5"), as hex."""
    message = FP_PREFIX + kind.encode("ascii") + b"\n" + PART_SEPARATOR.join(parts).encode()
    return Fingerprint(hmac.new(secret, message, hashlib.sha256).hexdigest())


def normalise_decimal(value: Decimal) -> str:
    """One spelling per value: "100.50", "100.5" and "100.500" -> "100.5"; "1E+2" -> "100"."""
    return format(value.normalize(), "f")


def compute_k1(secret: bytes, exporter_id: str, invoice_no: str) -> Fingerprint:
    return compute_fingerprint(secret, "K1", [normalise_id(exporter_id), normalise_id(invoice_no)])


def compute_k2(secret: bytes, transport_doc_no: str) -> Fingerprint:
    return compute_fingerprint(secret, "K2", [normalise_id(transport_doc_no)])


def compute_k3(secret: bytes, notice_no: str) -> Fingerprint:
    return compute_fingerprint(secret, "K3", [normalise_id(notice_no)])


def compute_k4(
    secret: bytes, exporter_id: str, buyer_code: str, currency: str, amount: Decimal
) -> Fingerprint:
    parts = [normalise_id(exporter_id), normalise_id(buyer_code), currency.upper()]
    return compute_fingerprint(secret, "K4", [*parts, normalise_decimal(amount)])


def compute_k5(
    secret: bytes, vessel: str, voyage: str, port: str, ship_date: date, quantity: Decimal
) -> Fingerprint:
    parts = [normalise_id(vessel), normalise_id(voyage), normalise_id(port)]
    return compute_fingerprint(
        secret, "K5", [*parts, ship_date.isoformat(), normalise_decimal(quantity)]
    )


def compute_receivable_keys(
    secret: bytes,
    notice_no: str,
    receivable: Receivable,
    exporter_id: str | None,
    buyer_code: str | None,
) -> ReceivableKeys:
    """K1..K5 of a receivable; K1 and K4 need the exporter (and K4 the buyer) of its notice."""
    k1 = k4 = None
    if exporter_id is not None:
        k1 = compute_k1(secret, exporter_id, receivable.invoice_no)
        if buyer_code is not None:
            k4 = compute_k4(secret, exporter_id, buyer_code, receivable.currency, receivable.amount)
    ship = receivable.shipment
    k5 = compute_k5(
        secret, ship.vessel, ship.voyage, ship.port_of_loading, ship.ship_date, ship.quantity
    )
    return ReceivableKeys(
        k1=k1,
        k2=compute_k2(secret, receivable.transport_doc_no),
        k3=compute_k3(secret, notice_no),
        k4=k4,
        k5=k5,
        invoice_date=receivable.invoice_date,
    )
