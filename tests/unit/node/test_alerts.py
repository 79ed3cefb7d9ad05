"""node.alerts: subscriptions, what each organisation may see, the webhook signature, and
the dispatcher's retries, dead letters and restarts, every backend (no HTTP: a fake sender).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from chain.storage import make_engine
from node.alerts import (
    ALERT_TABLES,
    AlertDispatcher,
    AlertHub,
    ForgedWebhook,
    SubscriptionStore,
    compute_backoff,
    compute_view,
    is_authentic_webhook,
    parse_subscription,
    verify_webhook,
    webhook_request,
)
from node.clock import FakeClock
from node.errors import InvalidBody, NotFound
from node.identifiers import make_uscc
from node.projection import T_ALERTS

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EXPORTER = make_uscc("91350100M000100Y4")
ROLES = {"BANK-A": "bank", "BANK-B": "bank", "INSURER": "insurer", "REGULATOR": "regulator"}
DEADLINE_S = 30.0


def alert_row(
    kind: str = "light", visible_to: list[str] | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "idx": 7,
        "entry_hash": "ab" * 32,
        "kind": kind,
        "buyer_key": "DEBUYER042",
        "buyer_code": "DE-BUYER-042",
        "country": "DE",
        "exporter_id": EXPORTER,
        "visible_to": ["*"] if visible_to is None else visible_to,
        "data": data or {"light": "red", "previous": "green", "buyer_key": "DEBUYER042"},
        "ts": "2026-11-21T12:00:00.000Z",
    }


def flag_row() -> dict[str, Any]:
    data = {"code": "BUYER_RED", "severity": "warning", "detail": "the buyer is red",
            "related": ["cd" * 32], "data": {}, "flag_id": "F1", "bank": "BANK-A",
            "insurer": "INSURER"}  # fmt: skip
    return alert_row("flag", [], **data)


class FakeSender:
    """Answers each POST with the next scripted status (then the last one); records them."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses) or [200]
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        with self.lock:
            self.calls.append((url, body, headers))
            answer = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    SQLModel.metadata.create_all(eng, tables=[T_ALERTS, *ALERT_TABLES])
    yield eng
    eng.dispose()


def add_alerts(engine: Engine, *rows: dict[str, Any]) -> list[int]:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(sa.insert(T_ALERTS).values(**row))
        ids = conn.execute(sa.select(T_ALERTS.c.id).order_by(T_ALERTS.c.id)).scalars().all()
    return [int(i) for i in ids[-len(rows) :]]


def dispatcher(
    engine: Engine, clock: FakeClock, sender: FakeSender, **options: Any
) -> AlertDispatcher:
    return AlertDispatcher(engine, clock, AlertHub(), ROLES.get, sender=sender, **options)


def run_until(d: AlertDispatcher, clock: FakeClock, done: Callable[[], bool]) -> None:
    """Step the dispatcher (a second of fake time per step) until ``done``; generous deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        d.step()
        time.sleep(0.01)
        clock.advance(seconds=1)
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError("the dispatcher did not get there in time")


def delivery(engine: Engine) -> dict[str, Any]:
    rows = SubscriptionStore(engine, FakeClock(NOW), ROLES.get).deliveries()
    assert len(rows) == 1, rows
    return rows[0]


# --------------------------------------------------------------------------- subscriptions


def test_a_subscription_is_parsed_into_its_stored_form() -> None:
    assert parse_subscription({"kind": "country", "value": "de"}).value == "DE"
    spec = parse_subscription(
        {"kind": "exporter", "value": EXPORTER.lower(), "webhook_url": "https://x.test/h"}
    )
    assert (spec.value, spec.webhook_url) == (EXPORTER, "https://x.test/h")
    assert parse_subscription({"kind": "buyer", "value": "de-buyer 042"}).value == "de-buyer 042"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "bank", "value": "BANK-A"}, "kind"),
        ({"kind": "buyer"}, "value"),
        ({"kind": "buyer", "value": "--"}, "value"),
        ({"kind": "buyer", "value": "x" * 257}, "value"),
        ({"kind": "country", "value": "XX"}, "value"),
        ({"kind": "exporter", "value": "91350100M000100Y5"}, "value"),
        ({"kind": "buyer", "value": "B", "webhook_url": "ftp://x.test/"}, "webhook_url"),
        ({"kind": "buyer", "value": "B", "webhook_url": "https:///nohost"}, "webhook_url"),
        ({"kind": "buyer", "value": "B", "webhook_url": "http://x.test:99999/"}, "webhook_url"),
        ({"kind": "buyer", "value": "B", "webhook_url": 5}, "webhook_url"),
        ({"kind": "buyer", "value": "B", "secret": "mine"}, "secret"),
    ],
)
def test_refuses_an_invalid_subscription_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        parse_subscription(body)
    assert [p.field for p in caught.value.problems] == [field]


def test_subscriptions_belong_to_their_organisation(engine: Engine) -> None:
    store = SubscriptionStore(engine, FakeClock(NOW), ROLES.get)
    made = store.create("BANK-A", {"kind": "buyer", "value": "DE-BUYER-042"})
    assert len(made["secret"]) == 64 and made["webhook_url"] is None
    assert [s["id"] for s in store.list_for("BANK-A")] == [made["id"]]
    assert store.list_for("BANK-B") == []
    with pytest.raises(NotFound):
        store.deactivate("BANK-B", made["id"])
    store.deactivate("BANK-A", made["id"])
    assert store.list_for("BANK-A") == []
    with pytest.raises(NotFound):
        store.deactivate("BANK-A", made["id"])


# --------------------------------------------------------------------------- visibility


def with_id(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": 1, **row}


def test_an_alert_for_everyone_is_shown_without_internal_keys() -> None:
    view = compute_view(with_id(alert_row()), "BANK-B", "bank")
    assert view is not None
    assert view["data"] == {"light": "red", "previous": "green"}
    assert "buyer_key" not in view


def test_a_named_alert_reaches_only_those_named_and_the_regulator() -> None:
    limit = with_id(alert_row("limit", ["INSURER"], amount="1.00"))
    assert compute_view(limit, "INSURER", "insurer") is not None
    assert compute_view(limit, "REGULATOR", "regulator") is not None
    assert compute_view(limit, "BANK-A", "bank") is None
    assert compute_view(limit, "INSURER-2", "insurer") is None
    assert compute_view(limit, "GONE", None) is None  # no longer a member


def test_a_flag_alert_is_filtered_as_flags_are() -> None:
    flag = with_id(flag_row())
    assert compute_view(flag, "BANK-B", "bank") is None
    own = compute_view(flag, "BANK-A", "bank")
    assert own is not None
    assert own["data"]["related"] == [] and "insurer" not in own["data"]
    insurer = compute_view(flag, "INSURER", "insurer")
    assert insurer is not None and insurer["data"]["related"] == ["cd" * 32]
    assert compute_view(flag, "INSURER-2", "insurer") is None


# --------------------------------------------------------------------------- signatures


def signed() -> tuple[bytes, dict[str, str]]:
    view = compute_view(with_id(alert_row()), "BANK-B", "bank")
    assert view is not None
    return webhook_request(view, 3, "s3cret", NOW)


def test_the_receiver_accepts_a_real_webhook() -> None:
    body, headers = signed()
    verify_webhook("s3cret", body, {k.lower(): v for k, v in headers.items()})
    assert is_authentic_webhook("s3cret", body, headers)


@pytest.mark.parametrize(
    "forge",
    [
        lambda body, headers: ("other", body, headers),
        lambda body, headers: ("s3cret", body.replace(b'"red"', b'"green"'), headers),
        lambda body, headers: ("s3cret", body, {**headers, "X-PFNode-Signature": "sha256=00"}),
        lambda body, headers: ("s3cret", body, {**headers, "X-PFNode-Alert": "2"}),
        lambda body, headers: (
            "s3cret",
            body,
            {k: v for k, v in headers.items() if k != "X-PFNode-Signature"},
        ),
    ],
    ids=["wrong-secret", "tampered-body", "bad-signature", "other-alert", "unsigned"],
)
def test_refuses_a_forged_webhook(forge: Callable[..., tuple[str, bytes, dict[str, str]]]) -> None:
    secret, body, headers = forge(*signed())
    with pytest.raises(ForgedWebhook):
        verify_webhook(secret, body, headers)
    assert not is_authentic_webhook(secret, body, headers)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [compute_backoff(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.6, 3.2]
    assert compute_backoff(20) == 30.0


# --------------------------------------------------------------------------- dispatching


def test_a_webhook_failing_twice_is_delivered_on_the_third_attempt(engine: Engine) -> None:
    clock = FakeClock(NOW)
    store = SubscriptionStore(engine, clock, ROLES.get)
    sub = store.create(
        "BANK-B", {"kind": "buyer", "value": "de buyer 042", "webhook_url": "http://r.test/"}
    )
    store.create("BANK-A", {"kind": "country", "value": "FR", "webhook_url": "http://r.test/a"})
    (alert_id,) = add_alerts(engine, alert_row())
    sender = FakeSender(500, ConnectionError("refused"), 204)
    d = dispatcher(engine, clock, sender)
    try:
        run_until(d, clock, lambda: delivery(engine)["status"] != "pending")
    finally:
        d.stop()
    row = delivery(engine)
    assert (row["alert_id"], row["subscription_id"]) == (alert_id, sub["id"])
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 3, None)
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    assert len(sender.calls) == 3 and len({c[1] for c in sender.calls}) == 1  # same body
    assert all(is_authentic_webhook(sub["secret"], c[1], c[2]) for c in sender.calls)


def test_a_webhook_that_always_fails_is_dead_after_max_attempts(engine: Engine) -> None:
    clock = FakeClock(NOW)
    store = SubscriptionStore(engine, clock, ROLES.get)
    store.create("INSURER", {"kind": "buyer", "value": "DE-BUYER-042", "webhook_url": "http://r/"})
    add_alerts(engine, alert_row("limit", ["INSURER"]))
    sender = FakeSender(500)
    d = dispatcher(engine, clock, sender, max_attempts=4)
    try:
        run_until(d, clock, lambda: delivery(engine)["status"] == "dead")
        for _ in range(3):  # nothing more is sent
            d.step()
            clock.advance(seconds=60)
    finally:
        d.stop()
    assert (delivery(engine)["attempts"], delivery(engine)["last_error"]) == (4, "HTTP 500")
    assert len(sender.calls) == 4
    letters = store.dead_letters("INSURER")
    assert [(x["attempts"], x["last_error"]) for x in letters] == [(4, "HTTP 500")]
    assert letters[0]["alert"]["kind"] == "limit"
    assert store.dead_letters("BANK-A") == []


def test_no_delivery_for_an_alert_the_subscriber_may_not_see(engine: Engine) -> None:
    clock = FakeClock(NOW)
    store = SubscriptionStore(engine, clock, ROLES.get)
    for org in ("BANK-A", "BANK-B"):
        store.create(org, {"kind": "exporter", "value": EXPORTER, "webhook_url": "http://r/"})
    add_alerts(engine, flag_row())
    sender = FakeSender(200)
    d = dispatcher(engine, clock, sender)
    try:
        run_until(d, clock, lambda: len(sender.calls) == 1)
        d.step()
    finally:
        d.stop()
    rows = store.deliveries()
    assert len(rows) == 1 and rows[0]["status"] == "delivered"
    assert b"BANK-A" in sender.calls[0][1] and b"INSURER" not in sender.calls[0][1]


def statuses(store: SubscriptionStore) -> list[str]:
    return [r["status"] for r in store.deliveries()]


def test_a_new_dispatcher_sends_what_the_last_left_pending_and_undispatched(
    engine: Engine,
) -> None:
    """A crash loses nothing: the cursor and the pending deliveries are in the database."""
    clock = FakeClock(NOW)
    store = SubscriptionStore(engine, clock, ROLES.get)
    sub = store.create(
        "BANK-B", {"kind": "buyer", "value": "DE-BUYER-042", "webhook_url": "http://r/"}
    )
    first_id, _ = add_alerts(engine, alert_row(), alert_row())
    down = FakeSender(ConnectionError("refused"))
    d = dispatcher(engine, clock, down)
    d.step()  # dispatched both (cursor advanced), first attempts under way
    deadline = time.monotonic() + DEADLINE_S
    while len(down.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    d.stop()  # "crash" after the first attempts; the retries are not due yet
    (third_id,) = add_alerts(engine, alert_row())  # committed while no dispatcher ran

    up = FakeSender(200)
    again = dispatcher(engine, clock, up)
    try:
        run_until(again, clock, lambda: statuses(store) == ["delivered"] * 3)
    finally:
        again.stop()
    got = sorted((r["alert_id"], r["subscription_id"], r["attempts"]) for r in store.deliveries())
    assert got == [(first_id, sub["id"], 2), (first_id + 1, sub["id"], 2), (third_id, sub["id"], 1)]
    assert sorted(int(c[2]["X-PFNode-Alert"]) for c in up.calls) == [
        first_id,
        first_id + 1,
        third_id,
    ]


def test_a_deleted_subscription_drops_its_pending_deliveries(engine: Engine) -> None:
    clock = FakeClock(NOW)
    store = SubscriptionStore(engine, clock, ROLES.get)
    sub = store.create(
        "BANK-B", {"kind": "buyer", "value": "DE-BUYER-042", "webhook_url": "http://r/"}
    )
    add_alerts(engine, alert_row())
    sender = FakeSender(503)
    d = dispatcher(engine, clock, sender)
    try:
        run_until(d, clock, lambda: delivery(engine)["attempts"] >= 1)
        store.deactivate("BANK-B", sub["id"])
        sent = len(sender.calls)
        for _ in range(5):
            d.step()
            clock.advance(seconds=60)
    finally:
        d.stop()
    assert store.deliveries() == [] and len(sender.calls) <= sent + 1  # one may be in flight
