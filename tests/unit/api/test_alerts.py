"""Alert subscriptions over the API: SSE and signed webhooks, only what visibility allows,
retries, dead letters, and a restart that loses nothing; every backend.

Webhooks go to a real HTTP server on 127.0.0.1 (``Receiver``). The SSE stream is read
through the ASGI interface itself (``SseReader``): httpx's ASGI transport waits for a
response to end, and an event stream never does. The node runs on a fake clock: tests that
wait for a retry move it forward (``eventually(..., clock=...)``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from api.app import create_app
from node.alerts import AlertHub, is_authentic_webhook, verify_webhook
from node.clock import FakeClock
from tests.unit.api.story import (
    BUYER,
    EXPORTER,
    POLICY_NO,
    Story,
    limit_body,
    make_node,
    read_tokens,
    serving,
)

DEADLINE_S = 30.0  # generous: the machine may be slow and busy


def rating(light: str, *reasons: str) -> dict[str, Any]:
    return {"buyer_code": BUYER, "buyer_country": "DE", "light": light, "reasons": list(reasons)}


# --------------------------------------------------------------------------- helpers


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def alert(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers each request with the next scripted status
    (the last one repeats) and records what it got."""

    statuses: list[int] = field(default_factory=lambda: [200])
    hooks: list[Hook] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, hook: Hook) -> int:
        with self.lock:  # requests arrive on several threads at once
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            self.hooks.append(hook)
            self.answered.append(status)
        return status

    def received(self, path: str) -> list[dict[str, Any]]:
        """The alerts delivered to ``path``, in alert order (webhooks may arrive out of it)."""
        with self.lock:
            pairs = list(zip(self.hooks, self.answered, strict=True))
        got = [h.alert for h, s in pairs if h.path == path and 200 <= s < 300]
        return sorted(got, key=lambda a: int(a["id"]))


@contextmanager
def receiving(*statuses: int) -> Iterator[Receiver]:
    receiver = Receiver(list(statuses) or [200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = receiver.answer(Hook(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class SseReader:
    """GET an event stream through the app's ASGI interface; events land in ``events``."""

    def __init__(self, app: FastAPI, path: str, token: str, subscribed: Callable[[], bool]) -> None:
        self.app, self.path, self.token, self.subscribed = app, path, token, subscribed
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self._buffer = b""
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseReader:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": self.path, "raw_path": self.path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("pfnode.test", 80),
            "headers": [(b"host", b"pfnode.test"),
                        (b"authorization", f"Bearer {self.token}".encode())],
        }  # fmt: skip
        self._task = asyncio.create_task(self.app(scope, self._receive, self._send))
        await eventually(lambda: self.status is not None and self.subscribed())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._gone.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, DEADLINE_S)

    async def _receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self._buffer += message.get("body", b"")
            while b"\r\n\r\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
                lines = dict(line.split(": ", 1) for line in raw.decode().splitlines()
                             if ": " in line)  # fmt: skip
                if lines.get("event") == "alert":
                    self.events.append(json.loads(lines["data"]))


async def eventually(
    done: Callable[[], bool], clock: FakeClock | None = None, seconds: float = DEADLINE_S
) -> None:
    """Wait until ``done()``; with a clock, move it a second forward each round (retries)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("not done before the deadline")
        if clock is not None:
            clock.advance(seconds=1)
        await asyncio.sleep(0.05)


@dataclass
class World:
    story: Story
    app: FastAPI

    @property
    def clock(self) -> FakeClock:
        clock = self.story.node.clock
        assert isinstance(clock, FakeClock)
        return clock

    async def subscribe(self, org: str, kind: str, value: str, url: str | None = None) -> Any:
        body = {"kind": kind, "value": value, **({"webhook_url": url} if url else {})}
        r = await self.story.post(org, "/v1/subscriptions", body)
        assert r.status_code == 201, r.text
        return r.json()

    def deliveries(self) -> list[dict[str, Any]]:
        return self.story.node.alerts.store.deliveries()

    def sse(self, org: str) -> SseReader:
        hub = self.story.node.alerts.hub
        before = streams_of(hub, org)
        return SseReader(
            self.app,
            "/v1/alerts/stream",
            self.story.tokens[org],
            lambda: streams_of(hub, org) > before,
        )


def streams_of(hub: AlertHub, org: str) -> int:
    """How many event streams of ``org`` the hub feeds."""
    return sum(1 for who, _ in list(hub.subscribers) if who == org)


@asynccontextmanager
async def running(data: Path, backend: str | None) -> AsyncIterator[World]:
    node = make_node(data, backend)
    app = create_app(node)
    async with serving(app) as client:
        yield World(Story(client, node, read_tokens(data), data), app)


@pytest.fixture
async def world(tmp_path: Path, backend: str | None) -> AsyncIterator[World]:
    async with running(tmp_path, backend) as w:
        yield w


# --------------------------------------------------------------------------- delivery


async def test_a_buyer_subscription_gets_the_red_light_on_sse_and_by_webhook(
    world: World,
) -> None:
    story = world.story
    await story.insure("CN-1", "BANK-A")
    with receiving(200) as receiver:
        sub = await world.subscribe("BANK-B", "buyer", BUYER.lower(), receiver.url + "/b")
        assert set(sub) >= {"id", "kind", "value", "webhook_url", "secret"}
        async with world.sse("BANK-B") as stream:
            receipt = await story.ok("INSURER", "/v1/buyer-ratings", rating("red", "INSOLVENCY"))
            await eventually(lambda: bool(stream.events) and bool(receiver.received("/b")))
        assert stream.status == 200
        (streamed,) = stream.events
        assert streamed["kind"] == "light" and streamed["subscriptions"] == [sub["id"]]
        assert streamed["data"]["light"] == "red" and streamed["data"]["previous"] == "green"
        assert streamed["entry_hash"] == receipt["entry_hash"]
        assert streamed["buyer_code"] == BUYER and streamed["country"] == "DE"

        (hook,) = receiver.hooks
        assert hook.alert == {
            **{k: v for k, v in streamed.items() if k != "subscriptions"},
            "subscription": sub["id"],
        }
        assert hook.headers["X-PFNode-Alert"] == str(streamed["id"])
        verify_webhook(sub["secret"], hook.body, hook.headers)
        # the receiver helper: a wrong secret or a changed body is refused
        assert not is_authentic_webhook("0" * 64, hook.body, hook.headers)
        tampered = hook.body.replace(b'"red"', b'"green"', 1)
        assert tampered != hook.body
        assert not is_authentic_webhook(sub["secret"], tampered, hook.headers)

    await eventually(lambda: [d["status"] for d in world.deliveries()] == ["delivered"])
    (row,) = world.deliveries()
    assert row["attempts"] == 1 and row["latency_ms"] is not None and row["delivered_at"]


async def test_each_subscriber_gets_only_what_it_may_see(world: World) -> None:
    """A limit reaches the insurer's subscription, not a bank's; BANK-A's drawdown flag
    reaches BANK-A (without the insurer or other entries) and the insurer, never BANK-B; the
    light reaches everyone; the regulator, subscribed by country, gets everything."""
    story = world.story
    with receiving(200) as receiver:
        for org in ("BANK-A", "BANK-B", "INSURER"):
            await world.subscribe(org, "buyer", BUYER, f"{receiver.url}/{org}")
        await world.subscribe("REGULATOR", "country", "de", f"{receiver.url}/REGULATOR")
        await world.subscribe("BANK-B", "exporter", EXPORTER, f"{receiver.url}/BANK-B")
        async with world.sse("BANK-B") as b_stream, world.sse("BANK-A") as a_stream:
            rec = await story.insure("CN-1", "BANK-A")  # policy, limit, notice
            await story.ok("INSURER", "/v1/buyer-ratings", rating("red", "PAYMENT_DEFAULT"))
            drawn = await story.draw("BANK-A", "A-1", "CN-1", rec)
            assert [f["code"] for f in drawn.json()["flags"]] == ["BUYER_RED"]
            await eventually(lambda: len(receiver.received("/REGULATOR")) == 3)
            await eventually(lambda: len(receiver.received("/INSURER")) == 3)
            await eventually(lambda: len(receiver.received("/BANK-A")) == 2)
            await asyncio.sleep(0.3)  # anything more would have been sent with the rest

        def kinds(org: str) -> list[str]:
            return [a["kind"] for a in receiver.received(f"/{org}")]

        assert kinds("REGULATOR") == ["limit", "light", "flag"]
        assert kinds("INSURER") == ["limit", "light", "flag"]
        assert kinds("BANK-A") == ["light", "flag"]
        # BANK-B: the light (by buyer; a light names no exporter), and not the flag, which
        # its subscription by exporter matches but it may not see
        assert kinds("BANK-B") == ["light"]
        assert [(e["kind"], len(e["subscriptions"])) for e in b_stream.events] == [("light", 1)]
        assert [e["kind"] for e in a_stream.events] == ["light", "flag"]

        a_flag = receiver.received("/BANK-A")[1]
        assert a_flag["data"]["code"] == "BUYER_RED" and a_flag["data"]["related"] == []
        assert "insurer" not in a_flag["data"]
        assert a_flag["entry_hash"] == drawn.json()["entry_hash"]
        insurer_flag = receiver.received("/INSURER")[2]
        assert insurer_flag["data"]["bank"] == "BANK-A"
        everything_b_got = json.dumps(receiver.received("/BANK-B") + b_stream.events)
        assert (
            "BANK-A" not in everything_b_got and drawn.json()["entry_hash"] not in everything_b_got
        )
    assert all(d["status"] == "delivered" for d in world.deliveries())


async def test_a_webhook_failing_twice_is_delivered_on_the_third_attempt(world: World) -> None:
    with receiving(500, 503, 200) as receiver:
        sub = await world.subscribe("BANK-A", "buyer", BUYER, receiver.url + "/a")
        await world.story.ok("INSURER", "/v1/buyer-ratings", rating("yellow", "WATCH"))
        await eventually(lambda: bool(receiver.received("/a")), clock=world.clock)
    assert receiver.answered == [500, 503, 200]
    assert len({h.body for h in receiver.hooks}) == 1  # the same signed body each time
    assert all(is_authentic_webhook(sub["secret"], h.body, h.headers) for h in receiver.hooks)
    await eventually(lambda: [d["status"] for d in world.deliveries()] == ["delivered"])
    (row,) = world.deliveries()
    assert (row["attempts"], row["subscription_id"]) == (3, sub["id"])
    assert (await world.story.get("BANK-A", "/v1/subscriptions/dead-letters")).json() == []


async def test_a_webhook_that_always_fails_is_a_dead_letter_of_its_subscriber(
    world: World,
) -> None:
    with receiving(500) as receiver:
        sub = await world.subscribe("BANK-A", "buyer", BUYER, receiver.url + "/a")
        await world.story.ok("INSURER", "/v1/buyer-ratings", rating("red", "INSOLVENCY"))
        await eventually(
            lambda: [d["status"] for d in world.deliveries()] == ["dead"], clock=world.clock
        )
    assert receiver.answered == [500] * 6
    letters = (await world.story.get("BANK-A", "/v1/subscriptions/dead-letters")).json()
    assert len(letters) == 1
    (letter,) = letters
    assert (letter["subscription_id"], letter["attempts"]) == (sub["id"], 6)
    assert letter["last_error"] == "HTTP 500" and letter["webhook_url"] == receiver.url + "/a"
    assert letter["alert"]["kind"] == "light" and letter["alert"]["data"]["light"] == "red"
    for other in ("BANK-B", "INSURER", "REGULATOR"):
        assert (await world.story.get(other, "/v1/subscriptions/dead-letters")).json() == []


async def test_a_restarted_node_delivers_what_was_pending(
    tmp_path: Path, backend: str | None
) -> None:
    with receiving(503) as receiver:
        async with running(tmp_path, backend) as first:
            await first.subscribe("BANK-B", "country", "DE", receiver.url + "/b")
            await first.story.ok("INSURER", "/v1/buyer-ratings", rating("red", "INSOLVENCY"))
            await eventually(lambda: [d["attempts"] for d in first.deliveries()] == [1])
        assert receiver.received("/b") == []  # the node stopped with the webhook pending
        receiver.statuses = [200]
        async with running(tmp_path, backend) as second:
            await eventually(lambda: len(receiver.received("/b")) == 1, clock=second.clock)
            await eventually(lambda: [d["status"] for d in second.deliveries()] == ["delivered"])
            (row,) = second.deliveries()
            assert row["attempts"] == 2
    assert receiver.received("/b")[0]["data"]["light"] == "red"


async def test_a_standby_streams_alerts_and_sends_the_pending_webhooks_once_it_leads(
    tmp_path: Path, backend: str | None
) -> None:
    with receiving(503) as receiver:
        async with running(tmp_path, backend) as leader:
            standby = make_node(tmp_path, backend)
            await standby.start()
            try:
                assert not standby.is_leader
                await leader.subscribe("BANK-B", "buyer", BUYER, receiver.url + "/b")
                stream = standby.alerts.stream("BANK-B")
                first = asyncio.ensure_future(anext(stream))
                await eventually(lambda: streams_of(standby.alerts.hub, "BANK-B") == 1)
                await leader.story.ok("INSURER", "/v1/buyer-ratings", rating("red", "INSOLVENCY"))
                streamed = await asyncio.wait_for(first, DEADLINE_S)
                assert streamed["kind"] == "light" and streamed["data"]["light"] == "red"
                await eventually(lambda: [d["attempts"] for d in leader.deliveries()] == [1])
            except BaseException:
                standby.close()
                raise
        try:  # the leader is gone: the standby takes over and dispatches what was pending
            receiver.statuses = [200]
            clock = standby.clock
            assert isinstance(clock, FakeClock)
            await eventually(lambda: bool(receiver.received("/b")), clock=clock)
            assert standby.is_leader
            assert receiver.received("/b")[0]["id"] == streamed["id"]
            await stream.aclose()
        finally:
            standby.close()


# --------------------------------------------------------------------------- managing


async def test_subscriptions_are_listed_and_deleted_by_their_owner_only(world: World) -> None:
    story = world.story
    mine = await world.subscribe("BANK-A", "exporter", EXPORTER)
    theirs = await world.subscribe("BANK-B", "buyer", BUYER, "https://bank-b.example/hooks")
    listed = (await story.get("BANK-A", "/v1/subscriptions")).json()
    assert [s["id"] for s in listed] == [mine["id"]]
    assert "secret" not in listed[0]

    r = await story.client.delete(f"/v1/subscriptions/{theirs['id']}", headers=story.auth("BANK-A"))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert [s["id"] for s in (await story.get("BANK-B", "/v1/subscriptions")).json()] == [
        theirs["id"]
    ]
    r = await story.client.delete(f"/v1/subscriptions/{mine['id']}", headers=story.auth("BANK-A"))
    assert r.status_code == 200
    assert r.json() == {**{k: mine[k] for k in listed[0]}, "active": False}
    assert (await story.get("BANK-A", "/v1/subscriptions")).json() == []
    r = await story.client.delete(f"/v1/subscriptions/{mine['id']}", headers=story.auth("BANK-A"))
    assert r.status_code == 404
    r = await story.client.delete("/v1/subscriptions/99999999999", headers=story.auth("BANK-A"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "subscription_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "receivable", "value": "INV-1"}, "kind"),
        ({"kind": "country", "value": "Germany"}, "value"),
        ({"kind": "exporter", "value": "not-a-uscc"}, "value"),
        ({"kind": "buyer", "value": BUYER, "webhook_url": "file:///etc/passwd"}, "webhook_url"),
        ({"kind": "buyer", "value": BUYER, "webhook_url": "javascript:alert(1)"}, "webhook_url"),
        ({"kind": "buyer", "value": BUYER, "secret": "chosen"}, "secret"),
    ],
)
async def test_refuses_an_invalid_subscription_with_a_problem_naming_the_field(
    story: Story, body: dict[str, Any], field: str
) -> None:
    r = await story.post("BANK-A", "/v1/subscriptions", body)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert (await story.get("BANK-A", "/v1/subscriptions")).json() == []


async def test_refuses_subscriptions_and_streams_without_a_token(story: Story) -> None:
    assert (
        await story.post(None, "/v1/subscriptions", {"kind": "buyer", "value": BUYER})
    ).status_code == 401
    assert (await story.get(None, "/v1/alerts/stream")).status_code == 401
    assert (await story.get(None, "/v1/subscriptions/dead-letters")).status_code == 401


async def test_a_limit_cut_alert_names_the_previous_limit(world: World) -> None:
    story = world.story
    with receiving(200) as receiver:
        await world.subscribe("INSURER", "buyer", BUYER, receiver.url + "/i")
        await world.subscribe("BANK-A", "buyer", BUYER, receiver.url + "/a")
        await story.insure("CN-1", "BANK-A")
        await story.ok(
            "INSURER", f"/v1/policies/{POLICY_NO}/limits", limit_body(amount="400000.00")
        )
        await eventually(lambda: len(receiver.received("/i")) == 3)
        await eventually(lambda: len(receiver.received("/a")) == 1)
    first, cut, light = receiver.received("/i")
    assert (first["kind"], cut["kind"], light["kind"]) == ("limit", "limit", "light")
    assert cut["data"]["cut"] is True and cut["data"]["previous"] == "1000000.00"
    assert [a["kind"] for a in receiver.received("/a")] == ["light"]  # no limit for a bank
