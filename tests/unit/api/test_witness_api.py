"""POST /v1/witness/add-checkpoint (C2SP tlog-witness) on a minimal app: the router, a
WitnessContext on app.state, a fixed clock, and the ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from api.routes import witness
from chain.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    add_signatures,
    open_checkpoint,
    sign_note,
)
from chain.merkle import MemoryNodeStore, consistency_proof, leaf_hash, root_at
from chain.storage import make_engine
from chain.witness import SplitView, WitnessRecord
from node.clock import FakeClock
from node.migrations import upgrade
from node.witnessing import (
    ADD_CHECKPOINT_PATH,
    MAX_REQUEST_BYTES,
    WitnessContext,
    WitnessStore,
    format_add_checkpoint,
)

ORIGIN = "log.example/pfnode"
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
LOG = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(32)))
W1 = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32))

TREE = MemoryNodeStore()
TREE.append([leaf_hash(b"entry %d" % i) for i in range(40)])
FORK = MemoryNodeStore()
FORK.append([leaf_hash(b"entry %d" % i if i != 20 else b"rewritten") for i in range(40)])


def _note(size: int, tree: MemoryNodeStore = TREE) -> str:
    return sign_note(Checkpoint(ORIGIN, size, root_at(size, tree)).to_text(), [LOG])


NOTE12, NOTE40, FORK40 = _note(12), _note(40), _note(40, FORK)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WitnessStore]:
    url = f"sqlite:///{tmp_path / 'witness.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield WitnessStore(engine)
    engine.dispose()


def _app(context: WitnessContext | None) -> FastAPI:
    app = FastAPI()
    app.include_router(witness.router)
    if context is not None:
        app.state.witness = context
    return app


@pytest.fixture
def alarms() -> list[SplitView]:
    return []


@pytest.fixture
async def client(store: WitnessStore, alarms: list[SplitView]) -> AsyncIterator[httpx.AsyncClient]:
    context = WitnessContext(store, W1, LOG.verifier, ORIGIN, alarms.append, FakeClock(NOW))
    transport = httpx.ASGITransport(app=_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://witness") as c:
        yield c


async def _add(
    client: httpx.AsyncClient, old: int, note: str, proof: list[bytes] | None = None
) -> httpx.Response:
    return await client.post(
        ADD_CHECKPOINT_PATH,
        content=format_add_checkpoint(old, proof or [], note),
        headers={"Content-Type": "text/plain"},
    )


async def test_cosigns_and_the_line_verifies(
    client: httpx.AsyncClient, store: WitnessStore
) -> None:
    r = await _add(client, 0, NOTE12)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text.startswith("\u2014 witness.example/w1 ") and r.text.endswith("\n")
    _, opened = open_checkpoint(add_signatures(NOTE12, [r.text]), [W1.verifier], ORIGIN)
    assert opened.verified == (W1.name,)
    assert opened.timestamps[W1.name] == int(NOW.timestamp())

    r = await _add(client, 12, NOTE40, consistency_proof(12, 40, TREE))
    assert r.status_code == 200
    assert store.record() == WitnessRecord(ORIGIN, 40, TREE.root(), NOTE40)


async def test_refuses_stale_old_size_with_text_tlog_size(client: httpx.AsyncClient) -> None:
    await _add(client, 0, NOTE12)
    r = await _add(client, 0, NOTE40)
    assert r.status_code == 409
    assert r.headers["content-type"] == "text/x.tlog.size"  # exactly: C2SP clients compare it
    assert r.text == "12\n"


async def test_refuses_an_inconsistent_proof_with_422(
    client: httpx.AsyncClient, store: WitnessStore
) -> None:
    await _add(client, 0, NOTE12)
    proof = consistency_proof(12, 40, TREE)
    r = await _add(client, 12, NOTE40, [bytes(32), *proof[1:]])
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Inconsistent checkpoint"
    assert store.record() == WitnessRecord(ORIGIN, 12, root_at(12, TREE), NOTE12)


async def test_refuses_a_split_view_and_keeps_the_evidence(
    client: httpx.AsyncClient, store: WitnessStore, alarms: list[SplitView]
) -> None:
    await _add(client, 0, NOTE40)
    r = await _add(client, 40, FORK40)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (problem["title"], problem["kind"]) == ("Split view", "fork")
    assert "split view" in problem["detail"]
    (evidence,) = store.split_views()
    assert (evidence["note_a"], evidence["note_b"]) == (NOTE40, FORK40)
    assert evidence["detected"] == "2026-11-21T12:00:00.000Z"
    assert [sv.kind for sv in alarms] == ["fork"]


async def test_refuses_an_unsigned_note_with_403(client: httpx.AsyncClient) -> None:
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32))
    forged = sign_note(Checkpoint(ORIGIN, 12, root_at(12, TREE)).to_text(), [impostor])
    r = await _add(client, 0, forged)
    assert r.status_code == 403
    assert r.json()["instance"] == ADD_CHECKPOINT_PATH


async def test_refuses_a_malformed_body_with_400(client: httpx.AsyncClient) -> None:
    r = await client.post(ADD_CHECKPOINT_PATH, content=b"old 01\n\n" + NOTE12.encode())
    assert r.status_code == 400
    assert "old <size>" in r.json()["detail"]
    r = await client.post(ADD_CHECKPOINT_PATH, content=b"\xff\xfe")
    assert r.status_code == 400


async def test_refuses_a_body_over_the_limit_with_413(client: httpx.AsyncClient) -> None:
    r = await client.post(ADD_CHECKPOINT_PATH, content=b"x" * (MAX_REQUEST_BYTES + 1))
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_answers_404_when_the_node_is_not_a_witness() -> None:
    transport = httpx.ASGITransport(app=_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://sequencer") as c:
        r = await _add(c, 0, NOTE12)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["detail"] == "this node is not a witness"
    assert problem["type"].endswith("/not-a-witness")
    assert problem["instance"] == ADD_CHECKPOINT_PATH


def test_path_is_registered_without_authentication_or_openapi() -> None:
    from fastapi.routing import APIRoute

    from api.routes import ROUTERS

    assert witness.router in ROUTERS
    (route,) = witness.router.routes
    assert isinstance(route, APIRoute)
    assert route.dependant.dependencies == []  # the log's signature authenticates
    assert ADD_CHECKPOINT_PATH not in _app(None).openapi().get("paths", {})
