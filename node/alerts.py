"""Alert subscriptions (资信报警器): who wants which alerts, and getting them there.

node.credit writes one row per alert event into ``node_alert_events`` in the block's own
transaction (kinds ``light``, ``limit``, ``loss``, ``flag``). This module matches those
rows to subscriptions and delivers them on the caller's SSE stream and by webhook.

Operational tables (not projections of the ledger: ``pfnode replay`` leaves them alone)::

    node_subscriptions      one organisation's interest: ``kind`` buyer | country | exporter
                            and its ``value`` (a buyer code, matched after normalise_id;
                            an ISO 3166 alpha-2 code; a USCC), optionally a webhook URL and
                            the webhook's HMAC key (``secret``, shown once, at creation)
    node_alert_deliveries   one row per (alert, webhook subscription): pending | delivered
                            | dead, attempts, next attempt, last error, delivered_at and
                            latency_ms (delivered_at - the alert's ts)
    node_alert_cursor       the last alert id dispatched

Visibility. Any member may subscribe to any buyer, country or exporter; an alert reaches
an organisation only as it may see it (``compute_view``): the regulator every alert; others
an alert whose ``visible_to`` names them or ``"*"``; a flag through
``node.visibility.flag_for``, which hides it from other banks and strips what a bank may not
see. Nothing else of the row is shown (``buyer_key``, the internal matching key, is dropped).

Delivery (``AlertDispatcher``, on the leader only). A thread woken by each commit (and every
``poll_s`` at the latest) reads the events after the cursor, matches them to the active
subscriptions, and in one transaction inserts a pending delivery per matching webhook
subscription and advances the cursor; then it hands each match to the SSE fan-out
(``AlertHub``) and posts due deliveries from a small thread pool. A 2xx answer is delivered;
anything else (or no answer within ``timeout_s``) is retried after 0.2 s, 0.4 s, ... (doubling,
at most 30 s) until ``max_attempts`` (6), then the delivery is ``dead``: the subscriber's
dead-letter list. Outcomes are written back in batches.

Semantics. Webhooks are at least once: the events and the cursor are in the database, so a
crash loses nothing; a delivery sent but not yet recorded as delivered is sent again after a
restart (receivers de-duplicate by ``(id, subscription)``, both in the signed body). There is
no ordering guarantee: first attempts are handed to the senders in alert order but travel in
parallel, and a retry is overtaken by later alerts, so a receiver orders by ``id`` (or the
ledger ``index``). The SSE stream, in alert order, is live only: it carries
the alerts dispatched while the client is connected (a standby process runs ``AlertFeed``,
the same matching without deliveries, for the clients connected to it).

A webhook request: ``POST`` of the canonical JSON (chain.canonical) of the alert as the
subscriber may see it plus ``"subscription"`` (its id); headers ``X-PFNode-Alert`` (the
alert id), ``X-PFNode-Timestamp`` (when sent) and ``X-PFNode-Signature: sha256=<hex
HMAC-SHA256(secret, body)>``, the key being the secret's text as given at creation.
``verify_webhook`` (raises) and ``is_authentic_webhook`` are the receiver's side.

The cursor relies on alert ids growing in commit order, which a single writer (the
sequencer) guarantees. ``pfnode replay`` re-creates the events table: a cursor past its last
id then restarts from that id (replay runs with the node stopped, after every alert was
dispatched).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from chain.canonical import canonical
from chain.entries import format_ts, parse_ts
from node import visibility
from node.clock import Clock
from node.codes import COUNTRIES
from node.errors import FieldProblem, InvalidBody, NodeError, NotFound
from node.identifiers import normalise_id, verify_uscc
from node.projection import T_ALERTS

log = logging.getLogger("pfnode.alerts")

KINDS: Final = ("buyer", "country", "exporter")
MAX_VALUE_LENGTH: Final = 256
MAX_URL_LENGTH: Final = 2048
MAX_ERROR_LENGTH: Final = 512
MAX_ATTEMPTS: Final = 6
BACKOFF_BASE_S: Final = 0.2
BACKOFF_CAP_S: Final = 30.0
POLL_S: Final = 0.15
SEND_TIMEOUT_S: Final = 5.0
SEND_THREADS: Final = 8
EVENT_BATCH: Final = 500
STREAM_QUEUE: Final = 10_000
HIDDEN_FIELDS: Final = ("buyer_key",)
SIGNATURE_HEADER: Final = "X-PFNode-Signature"
ALERT_HEADER: Final = "X-PFNode-Alert"
TIMESTAMP_HEADER: Final = "X-PFNode-Timestamp"

RoleOf = Callable[[str], str | None]


# --------------------------------------------------------------------------- tables


class SubscriptionRow(SQLModel, table=True):
    __tablename__ = "node_subscriptions"
    id: int | None = Field(default=None, primary_key=True)
    org: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)
    value: str = Field(max_length=MAX_VALUE_LENGTH)
    webhook_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    secret: str = Field(max_length=64)
    created: str = Field(max_length=24)
    active: bool = True


class AlertDeliveryRow(SQLModel, table=True):
    __tablename__ = "node_alert_deliveries"
    __table_args__ = (sa.Index("ix_node_alert_deliveries_due", "status", "next_at"),)
    alert_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    subscription_id: int = Field(primary_key=True)
    status: str = Field(max_length=10)
    attempts: int = 0
    next_at: str = Field(max_length=24)
    last_error: str | None = Field(default=None, max_length=MAX_ERROR_LENGTH)
    delivered_at: str | None = Field(default=None, max_length=24)
    latency_ms: int | None = Field(default=None, sa_type=sa.BigInteger)


class AlertCursorRow(SQLModel, table=True):
    __tablename__ = "node_alert_cursor"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_id: int = Field(sa_type=sa.BigInteger)


ALERT_TABLES: Final[tuple[sa.Table, ...]] = tuple(
    t.__table__  # type: ignore[attr-defined,union-attr]
    for t in (SubscriptionRow, AlertDeliveryRow, AlertCursorRow)
)
T_SUBS, T_DELIVERIES, T_CURSOR = ALERT_TABLES
CURSOR_ID: Final = 1


class ForgedWebhook(NodeError):
    """A webhook request whose signature does not verify (``why``)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# --------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class SubscriptionSpec:
    """A validated subscription request (``value`` in its stored form)."""

    kind: str
    value: str
    webhook_url: str | None


@dataclass(frozen=True)
class Subscription:
    id: int
    org: str
    kind: str
    value: str
    webhook_url: str | None
    secret: str

    @property
    def match_key(self) -> str:
        return normalise_id(self.value) if self.kind == "buyer" else self.value


def parse_subscription(body: Mapping[str, Any]) -> SubscriptionSpec:
    """Validate ``{kind, value, webhook_url?}``; InvalidBody names every bad field."""
    fields = ("kind", "value", "webhook_url")
    problems = [FieldProblem(k, f"unexpected field {k!r}") for k in body if k not in fields]
    kind, value, url = body.get("kind"), body.get("value"), body.get("webhook_url")
    if kind not in KINDS:
        problems.append(FieldProblem("kind", f"must be one of {', '.join(KINDS)}"))
    stored: str | None = None
    if not isinstance(value, str) or not value.strip():
        problems.append(FieldProblem("value", "must be a non-empty string"))
    elif len(value) > MAX_VALUE_LENGTH:
        problems.append(FieldProblem("value", f"must be at most {MAX_VALUE_LENGTH} characters"))
    elif kind in KINDS:
        stored, why = compute_value(str(kind), value)
        if why:
            problems.append(FieldProblem("value", why))
    if url is not None and (why := compute_url_problem(url)):
        problems.append(FieldProblem("webhook_url", why))
    if problems:
        raise InvalidBody(problems)
    if stored is None:  # unreachable: no problem means a value was computed
        raise InvalidBody([FieldProblem("value", "must be a non-empty string")])
    return SubscriptionSpec(str(kind), stored, url)


def compute_value(kind: str, value: str) -> tuple[str, str | None]:
    """(the value as stored, why it is refused or None)."""
    if kind == "buyer":
        return value, None if normalise_id(value) else "a buyer code needs a letter or digit"
    if kind == "country":
        code = value.upper()
        return code, None if code in COUNTRIES else "must be an ISO 3166-1 alpha-2 code"
    code = value.upper()
    try:
        verify_uscc(code)
    except ValueError as exc:
        return code, f"not a unified social credit code: {exc}"
    return code, None


def compute_url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a webhook, or None."""
    if not isinstance(url, str):
        return "must be a string (an http or https URL)"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "must name a host"
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        return "must not contain spaces or control characters"
    return None


def is_match(sub: Subscription, alert: Mapping[str, Any]) -> bool:
    """True when the alert is about what the subscription names."""
    if sub.kind == "buyer":
        return bool(alert["buyer_key"] == sub.match_key)
    if sub.kind == "country":
        return bool(alert["country"] == sub.match_key)
    return bool(alert["exporter_id"] == sub.match_key)


def compute_view(alert: Mapping[str, Any], org: str, role: str | None) -> dict[str, Any] | None:
    """The alert as ``org`` (of ``role``) may see it, or None when it may not."""
    if role is None:
        return None
    if alert["kind"] == "flag":
        data = visibility.flag_for(org, role, {**alert["data"]})
    elif role == "regulator" or {org, visibility.EVERYONE} & set(alert["visible_to"]):
        data = dict(alert["data"])
    else:
        data = None
    if data is None:
        return None
    return {
        "id": alert["id"],
        "kind": alert["kind"],
        "index": alert["idx"],
        "entry_hash": alert["entry_hash"],
        "buyer_code": alert["buyer_code"],
        "country": alert["country"],
        "exporter_id": alert["exporter_id"],
        "ts": alert["ts"],
        "data": {k: v for k, v in data.items() if k not in HIDDEN_FIELDS},
    }


def compute_backoff(
    attempts: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S
) -> float:
    """Seconds before attempt ``attempts + 1``: base, 2 base, 4 base, ... at most cap."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


def compute_signature(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_request(
    view: Mapping[str, Any], subscription_id: int, secret: str, sent: datetime
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one webhook delivery."""
    body = canonical({**view, "subscription": subscription_id})
    headers = {
        "Content-Type": "application/json",
        ALERT_HEADER: str(view["id"]),
        TIMESTAMP_HEADER: format_ts(sent),
        SIGNATURE_HEADER: compute_signature(secret, body),
    }
    return body, headers


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """The receiver's check: raise ForgedWebhook unless ``body`` was signed with ``secret``
    and ``X-PFNode-Alert`` names the alert the body carries. Constant-time comparison."""
    lower = {k.lower(): v for k, v in headers.items()}
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not given.startswith("sha256="):
        raise ForgedWebhook(f"no {SIGNATURE_HEADER}: sha256=<hex> header")
    expected = compute_signature(secret, body)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ForgedWebhook("the signature does not match the body")
    try:
        alert_id = json.loads(body)["id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ForgedWebhook("the signed body is not an alert") from exc
    if lower.get(ALERT_HEADER.lower()) != str(alert_id):
        raise ForgedWebhook(f"{ALERT_HEADER} does not name the alert in the body")


def is_authentic_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when ``verify_webhook`` accepts the request."""
    try:
        verify_webhook(secret, body, headers)
    except ForgedWebhook:
        return False
    return True


# --------------------------------------------------------------------------- storage


def _insert_ignore(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(table).on_conflict_do_nothing(), rows)


def _subscription(row: Any) -> Subscription:
    return Subscription(row.id, row.org, row.kind, row.value, row.webhook_url, row.secret)


def get_active_subscriptions(conn: Connection) -> list[Subscription]:
    query = sa.select(T_SUBS).where(T_SUBS.c.active).order_by(T_SUBS.c.id)
    return [_subscription(r) for r in conn.execute(query)]


def get_alerts_after(conn: Connection, after: int, limit: int) -> list[dict[str, Any]]:
    query = sa.select(T_ALERTS).where(T_ALERTS.c.id > after).order_by(T_ALERTS.c.id).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_last_alert_id(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(T_ALERTS.c.id))).scalar() or 0)


def get_cursor(conn: Connection) -> int:
    """The last alert id dispatched (0 at first); past the table's end (it was rebuilt by
    replay), the table's end."""
    last = conn.execute(sa.select(T_CURSOR.c.last_id).where(T_CURSOR.c.id == CURSOR_ID)).scalar()
    if last is None:
        return 0
    end = get_last_alert_id(conn)
    return min(int(last), end)


def process_cursor(conn: Connection, last_id: int) -> None:
    updated = conn.execute(
        sa.update(T_CURSOR).where(T_CURSOR.c.id == CURSOR_ID).values(last_id=last_id)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(T_CURSOR).values(id=CURSOR_ID, last_id=last_id))


_RECORD_OUTCOME: Final = (
    sa.update(T_DELIVERIES)
    .where(
        T_DELIVERIES.c.alert_id == sa.bindparam("k_alert"),
        T_DELIVERIES.c.subscription_id == sa.bindparam("k_sub"),
        T_DELIVERIES.c.status == "pending",
    )
    .values(
        status=sa.bindparam("v_status"),
        attempts=sa.bindparam("v_attempts"),
        next_at=sa.bindparam("v_next_at"),
        last_error=sa.bindparam("v_error"),
        delivered_at=sa.bindparam("v_delivered_at"),
        latency_ms=sa.bindparam("v_latency_ms"),
    )
)


def process_outcomes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record attempts (rows of ``AlertDispatcher.compute_outcome``) in one statement; a
    delivery no longer pending (its subscription was deleted) is left alone."""
    if rows:
        conn.execute(_RECORD_OUTCOME, rows)


SHOWN: Final = tuple(
    T_SUBS.c[k] for k in ("id", "kind", "value", "webhook_url", "created", "active")
)


class SubscriptionStore:
    """Subscriptions and their dead letters, as their organisation manages them."""

    def __init__(self, engine: Engine, clock: Clock, role_of: RoleOf) -> None:
        self.engine = engine
        self.clock = clock
        self.role_of = role_of

    def create(self, org: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A new subscription; the answer holds its webhook secret (never shown again)."""
        spec = parse_subscription(body)
        row = {
            "org": org,
            "kind": spec.kind,
            "value": spec.value,
            "webhook_url": spec.webhook_url,
            "secret": secrets.token_hex(32),
            "created": format_ts(self.clock.now()),
            "active": True,
        }
        with self.engine.begin() as conn:
            key = conn.execute(sa.insert(T_SUBS).values(**row)).inserted_primary_key
        new_id = int(key[0]) if key is not None else None
        shown = ("kind", "value", "webhook_url", "secret", "created", "active")
        return {"id": new_id, **{k: row[k] for k in shown}}

    def list_for(self, org: str) -> list[dict[str, Any]]:
        """``org``'s active subscriptions (never their secrets)."""
        query = sa.select(*SHOWN).where(T_SUBS.c.org == org, T_SUBS.c.active).order_by(T_SUBS.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def deactivate(self, org: str, subscription_id: int) -> dict[str, Any]:
        """Stop a subscription of ``org`` (NotFound for another's, or one already stopped);
        its pending deliveries are dropped, its delivered and dead ones kept. Returns it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(T_SUBS)
                .where(
                    T_SUBS.c.id == subscription_id,
                    T_SUBS.c.org == org,
                    T_SUBS.c.active,
                )
                .values(active=False)
            )
            if done.rowcount != 1:
                raise NotFound("subscription", str(subscription_id))
            conn.execute(
                sa.delete(T_DELIVERIES).where(
                    T_DELIVERIES.c.subscription_id == subscription_id,
                    T_DELIVERIES.c.status == "pending",
                )
            )
            row = conn.execute(sa.select(*SHOWN).where(T_SUBS.c.id == subscription_id)).one()
        return dict(row._mapping)

    def dead_letters(self, org: str, limit: int = 100) -> list[dict[str, Any]]:
        """``org``'s dead deliveries, newest alert first, each with the alert as it may see it."""
        d, s, a = T_DELIVERIES, T_SUBS, T_ALERTS
        query = (
            sa.select(
                d.c.alert_id,
                d.c.subscription_id,
                d.c.attempts,
                d.c.last_error,
                d.c.next_at,
                s.c.webhook_url,
                a,
            )
            .join(s, s.c.id == d.c.subscription_id)
            .join(a, a.c.id == d.c.alert_id)
            .where(s.c.org == org, d.c.status == "dead")
            .order_by(d.c.alert_id.desc(), d.c.subscription_id)
            .limit(limit)
        )
        role = self.role_of(org)
        out = []
        with self.engine.connect() as conn:
            for row in map(dict, conn.execute(query).mappings()):
                out.append(
                    {
                        "alert_id": row["alert_id"],
                        "subscription_id": row["subscription_id"],
                        "webhook_url": row["webhook_url"],
                        "attempts": row["attempts"],
                        "last_error": row["last_error"],
                        "last_attempt": row["next_at"],
                        "alert": compute_view(row, org, role),
                    }
                )
        return out

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        """Delivery rows (every organisation's), for tests and operators."""
        query = sa.select(T_DELIVERIES).order_by(
            T_DELIVERIES.c.alert_id, T_DELIVERIES.c.subscription_id
        )
        if alert_id is not None:
            query = query.where(T_DELIVERIES.c.alert_id == alert_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


# --------------------------------------------------------------------------- SSE fan-out


@dataclass
class AlertHub:
    """Fan-out of matched alerts to the SSE subscribers of each organisation."""

    subscribers: set[tuple[str, asyncio.Queue[dict[str, Any]]]] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None

    def publish(self, matched: list[tuple[str, dict[str, Any]]]) -> None:
        """(org, view) pairs; called from the dispatching thread."""
        loop = self.loop
        if loop is None or not matched or not self.subscribers:
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, matched)
        except RuntimeError:  # the loop closed (shutting down)
            return

    def _fan_out(self, matched: list[tuple[str, dict[str, Any]]]) -> None:
        for org, queue_ in list(self.subscribers):
            for to, view in matched:
                if to != org:
                    continue
                try:
                    queue_.put_nowait(view)
                except asyncio.QueueFull:
                    log.warning(
                        "alert stream of %s is %d behind: alert %s dropped",
                        org,
                        STREAM_QUEUE,
                        view["id"],
                    )

    async def stream(self, org: str) -> AsyncIterator[dict[str, Any]]:
        queue_: asyncio.Queue[dict[str, Any]] = asyncio.Queue(STREAM_QUEUE)
        item = (org, queue_)
        self.subscribers.add(item)
        try:
            while True:
                yield await queue_.get()
        finally:
            self.subscribers.discard(item)


# --------------------------------------------------------------------------- dispatching


class Sender(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST; the status code, or an exception when there was no answer."""
        ...


class HttpSender:
    """Webhook POSTs over one pooled httpx client (no redirects followed)."""

    def __init__(self) -> None:
        self.client = httpx.Client(follow_redirects=False, trust_env=False)

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        return self.client.post(url, content=body, headers=headers, timeout=timeout).status_code

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Attempt:
    """One webhook attempt to make: the alert as the subscriber may see it (``view``) and
    the attempts ``done`` before this one."""

    alert_id: int
    alert_ts: str
    sub: Subscription
    done: int
    view: dict[str, Any] | None


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: delivered (2xx) or the error."""

    alert_id: int
    subscription_id: int
    attempts: int
    error: str | None
    at: datetime
    alert_ts: str


class AlertFeed:
    """Polls the alert events, matches them to subscriptions, feeds the SSE hub.

    On its own (a standby process) it keeps its cursor in memory, starting at the end of
    the table; ``AlertDispatcher`` adds the durable cursor and the webhooks.
    """

    name = "pfnode-alert-feed"

    def __init__(
        self, engine: Engine, clock: Clock, hub: AlertHub, role_of: RoleOf, poll_s: float = POLL_S
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.hub = hub
        self.role_of = role_of
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor: int | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the step: a commit during it wakes the next at once
            try:
                self.step()
            except Exception:  # the database may be restarting: try again next tick
                log.exception("alert dispatch failed")
            self._wake.wait(self.poll_s)

    def step(self) -> None:
        """One round: the new events to the SSE hub."""
        with self.engine.connect() as conn:
            if self._cursor is None:
                self._cursor = get_last_alert_id(conn)
            alerts = get_alerts_after(conn, self._cursor, EVENT_BATCH)
            subs = get_active_subscriptions(conn) if alerts else []
        if alerts:
            self._cursor = alerts[-1]["id"]
            self.hub.publish(self.compute_matches(alerts, subs)[0])

    def compute_matches(
        self, alerts: list[dict[str, Any]], subs: list[Subscription]
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[Attempt]]:
        """(org, view with its matching subscription ids) for the streams, and the first
        attempt of each webhook to send."""
        streamed: list[tuple[str, dict[str, Any]]] = []
        hooks: list[Attempt] = []
        for alert in alerts:
            by_org: dict[str, list[Subscription]] = {}
            for sub in subs:
                if is_match(sub, alert):
                    by_org.setdefault(sub.org, []).append(sub)
            for org, matched in by_org.items():
                view = compute_view(alert, org, self.role_of(org))
                if view is None:
                    continue
                streamed.append((org, {**view, "subscriptions": [s.id for s in matched]}))
                hooks += [
                    Attempt(alert["id"], alert["ts"], s, 0, view) for s in matched if s.webhook_url
                ]
        return streamed, hooks


class AlertDispatcher(AlertFeed):
    """The leader's dispatcher: durable cursor, deliveries, webhooks with retries."""

    name = "pfnode-alerts"

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        hub: AlertHub,
        role_of: RoleOf,
        *,
        poll_s: float = POLL_S,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        timeout_s: float = SEND_TIMEOUT_S,
        threads: int = SEND_THREADS,
        sender: Sender | None = None,
    ) -> None:
        super().__init__(engine, clock, hub, role_of, poll_s)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.timeout_s = timeout_s
        self._own_sender = HttpSender() if sender is None else None
        self.sender: Sender = sender or self._own_sender  # type: ignore[assignment]
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pfnode-webhook")
        self._threads = threads
        self._inflight: dict[tuple[int, int], Future[None]] = {}
        self._outcomes: queue.Queue[Outcome] = queue.Queue()

    def stop(self) -> None:
        """Stop dispatching; wait for the webhooks in flight (at most their timeout) and
        record their outcomes (what is not recorded stays pending: the next leader sends it)."""
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        wait(list(self._inflight.values()), timeout=self.timeout_s + 1)
        try:
            self.process_round(self._take_outcomes(), dispatch=False)
        except Exception:
            log.exception("webhook outcomes not recorded at shutdown: they will be resent")
        if self._own_sender is not None:
            self._own_sender.close()

    def step(self) -> None:
        """One round: record the finished attempts and dispatch the events after the cursor
        (one transaction); then feed the streams and send what is due."""
        outcomes = self._take_outcomes()
        try:
            streamed, hooks = self.process_round(outcomes)
        except Exception:
            for outcome in outcomes:  # recorded next round; until then they stay in flight
                self._outcomes.put(outcome)
            raise
        for outcome in outcomes:
            self._inflight.pop((outcome.alert_id, outcome.subscription_id), None)
        self.hub.publish(streamed)
        self._submit(hooks)  # due now: no need to read them back
        self.process_due()

    def process_round(
        self, outcomes: list[Outcome], dispatch: bool = True
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[Attempt]]:
        """In one transaction: the attempts' outcomes, and (``dispatch``) a pending delivery
        per webhook the events after the cursor match, with the cursor moved past them.
        Returns what to stream and the first attempts to make."""
        now = format_ts(self.clock.now())
        with self.engine.begin() as conn:
            process_outcomes(conn, [self.compute_outcome(o) for o in outcomes])
            cursor = get_cursor(conn)
            alerts = get_alerts_after(conn, cursor, EVENT_BATCH) if dispatch else []
            if not alerts:
                return [], []
            streamed, hooks = self.compute_matches(alerts, get_active_subscriptions(conn))
            rows = [
                {
                    "alert_id": hook.alert_id,
                    "subscription_id": hook.sub.id,
                    "status": "pending",
                    "attempts": 0,
                    "next_at": now,
                }
                for hook in hooks
            ]
            _insert_ignore(conn, T_DELIVERIES, rows)
            process_cursor(conn, alerts[-1]["id"])
        return streamed, hooks

    def process_due(self) -> int:
        """Hand the due pending deliveries to the sending threads; returns how many."""
        room = self._room()
        if room <= 0:
            return 0
        d, s, a = T_DELIVERIES, T_SUBS, T_ALERTS
        query = (
            sa.select(
                d.c.alert_id,
                d.c.subscription_id,
                d.c.attempts,
                s.c.org,
                s.c.kind.label("sub_kind"),
                s.c.value.label("sub_value"),
                s.c.webhook_url,
                s.c.secret,
                a,
            )
            .join(s, s.c.id == d.c.subscription_id)
            .join(a, a.c.id == d.c.alert_id)
            .where(d.c.status == "pending", d.c.next_at <= format_ts(self.clock.now()))
            .where(s.c.active)
            .order_by(d.c.next_at, d.c.alert_id, d.c.subscription_id)
            .limit(room + len(self._inflight))
        )
        with self.engine.connect() as conn:
            rows = [
                r
                for r in map(dict, conn.execute(query).mappings())
                if (r["alert_id"], r["subscription_id"]) not in self._inflight
            ][:room]
        attempts = []
        for row in rows:
            sub = Subscription(
                row["subscription_id"],
                row["org"],
                row["sub_kind"],
                row["sub_value"],
                row["webhook_url"],
                row["secret"],
            )
            view = compute_view(row, sub.org, self.role_of(sub.org))
            attempts.append(Attempt(row["alert_id"], row["ts"], sub, row["attempts"], view))
        return self._submit(attempts)

    def _submit(self, attempts: list[Attempt]) -> int:
        """Hand attempts to the sending threads, as many as there is room for (the others
        stay pending); returns how many."""
        room = self._room()
        handed = 0
        for attempt in attempts:
            key = (attempt.alert_id, attempt.sub.id)
            if handed >= room or key in self._inflight:
                continue
            try:
                self._inflight[key] = self._pool.submit(self._send, attempt)
            except RuntimeError:  # shutting down: it stays pending
                break
            handed += 1
        return handed

    def _room(self) -> int:
        """How many more attempts the senders take (finished ones wait only to be recorded)."""
        return self._threads * 4 - sum(1 for f in self._inflight.values() if not f.done())

    def _send(self, attempt: Attempt) -> None:
        """On a sending thread: one attempt; its outcome queued for the dispatching thread."""
        error: str | None
        sub, view = attempt.sub, attempt.view
        if view is None or sub.webhook_url is None:
            error = "no longer visible to the subscriber"
        else:
            body, headers = webhook_request(view, sub.id, sub.secret, self.clock.now())
            try:
                status = self.sender(sub.webhook_url, body, headers, self.timeout_s)
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except Exception as exc:  # any failure to get an answer is a failed attempt
                error = f"{type(exc).__name__}: {exc}"
        self._outcomes.put(
            Outcome(
                attempt.alert_id,
                sub.id,
                attempt.done + 1,
                error,
                self.clock.now(),
                attempt.alert_ts,
            )
        )

    def _take_outcomes(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                return outcomes

    def compute_outcome(self, outcome: Outcome) -> dict[str, Any]:
        """The delivery row's key and new values after an attempt (bind names of
        ``process_outcomes``)."""
        at = format_ts(outcome.at)
        row: dict[str, Any] = {
            "k_alert": outcome.alert_id,
            "k_sub": outcome.subscription_id,
            "v_attempts": outcome.attempts,
            "v_error": None,
            "v_status": "delivered",
            "v_next_at": at,
            "v_delivered_at": None,
            "v_latency_ms": None,
        }
        if outcome.error is None:
            if outcome.alert_ts:
                elapsed = outcome.at - parse_ts(outcome.alert_ts)
                row["v_latency_ms"] = round(elapsed.total_seconds() * 1000)
            return {**row, "v_delivered_at": at}
        row.update(v_error=outcome.error[:MAX_ERROR_LENGTH], v_status="pending")
        if outcome.attempts >= self.max_attempts:
            return {**row, "v_status": "dead"}
        delay = compute_backoff(outcome.attempts, self.backoff_s, self.backoff_cap_s)
        return {**row, "v_next_at": format_ts(outcome.at + timedelta(seconds=delay))}


# --------------------------------------------------------------------------- the node's side


class Alerts:
    """What the node holds: the subscriptions, the SSE hub, and the feed of this process
    (the dispatcher when it leads, a feed for its own streams when it stands by)."""

    def __init__(self, engine: Engine, clock: Clock, role_of: RoleOf, **dispatcher: Any) -> None:
        self.engine = engine
        self.clock = clock
        self.role_of = role_of
        self.store = SubscriptionStore(engine, clock, role_of)
        self.hub = AlertHub()
        self.options = dispatcher
        self.feed: AlertFeed | None = None

    def start(self, loop: asyncio.AbstractEventLoop, leading: bool) -> None:
        self.hub.loop = loop
        self._run(leading)

    def lead(self) -> None:
        """This process took the writer lock: dispatch durably from now on."""
        self._run(leading=True)

    def _run(self, leading: bool) -> None:
        if self.feed is not None:
            self.feed.stop()
        if leading:
            self.feed = AlertDispatcher(
                self.engine, self.clock, self.hub, self.role_of, **self.options
            )
        else:
            self.feed = AlertFeed(self.engine, self.clock, self.hub, self.role_of)
        self.feed.start()

    def wake(self) -> None:
        """A block committed: look for its alerts now."""
        feed = self.feed
        if feed is not None:
            feed.wake()

    def close(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None

    # -- the API's operations ------------------------------------------------------

    def subscribe(self, org: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.store.create(org, body)

    def subscriptions(self, org: str) -> list[dict[str, Any]]:
        return self.store.list_for(org)

    def unsubscribe(self, org: str, subscription_id: int) -> dict[str, Any]:
        return self.store.deactivate(org, subscription_id)

    def dead_letters(self, org: str, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.dead_letters(org, limit)

    def stream(self, org: str) -> AsyncIterator[dict[str, Any]]:
        return self.hub.stream(org)
