"""The FastAPI app of one node.

``create_app(node)`` builds the app around a ``Node``: its lifespan starts the
sequencer on the running loop and closes the node on shutdown. ``app_from_env()`` is
the factory for uvicorn (``uvicorn --factory api.app:app_from_env``), reading
PFNODE_DATA (default ./data) and PFNODE_DB (a database URL; default SQLite under the
data directory).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import problems
from api.metrics import Metrics, RequestMetrics
from api.routes import ROUTERS
from api.schemas import body_components
from node.anchorer import AnchorConfig
from node.service import Node, NodeConfig

DESCRIPTION = """\
Policy-financing verification node: one signed, hash-chained ledger of coverage
notices, loan drawdowns and repayments that flags duplicate and over-limit
financing of a receivable the moment the second drawdown arrives.

Authenticate with `Authorization: Bearer <token>` (one token per organisation).
Every error is RFC 9457 `application/problem+json`; a 422 lists one
`{field, message}` per bad field in `errors`. The body of each POST that makes an
entry is that entry type's body, field for field: amounts are decimal strings,
dates `YYYY-MM-DD`, currencies ISO 4217. Every write answers with its receipt and
an inclusion proof against the log root of its block.
"""


def version() -> str:
    try:
        return importlib.metadata.version("pfnode")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def create_app(node: Node) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            node.close()

    app = FastAPI(title="pfnode", version=version(), description=DESCRIPTION, lifespan=lifespan)
    app.state.node = node
    app.state.metrics = Metrics()
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.state.routes = [route for router in ROUTERS for route in router.routes]
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the entry body schemas, problems as problem+json."""
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    doc.setdefault("components", {}).setdefault("schemas", {}).update(body_components())
    problem_ref = "#/components/schemas/Problem"
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                # FastAPI files error models under the route's own media type (application/json,
                # or text/plain for a PlainTextResponse route); every problem is problem+json.
                content = response.get("content", {})
                for media_type in list(content):
                    if content[media_type].get("schema", {}).get("$ref") == problem_ref:
                        content[problems.PROBLEM_MEDIA_TYPE] = content.pop(media_type)
    return doc


def app_from_env() -> FastAPI:
    """For uvicorn workers: PFNODE_DATA, PFNODE_DB, PFNODE_MAX_QUEUE, PFNODE_INTERNAL_HOST."""
    data = Path(os.environ.get("PFNODE_DATA", "data"))
    db_url = os.environ.get("PFNODE_DB") or None
    config = NodeConfig(data, db_url)
    if os.environ.get("PFNODE_MAX_QUEUE"):
        config.max_queue = int(os.environ["PFNODE_MAX_QUEUE"])
    if os.environ.get("PFNODE_INTERNAL_HOST"):
        config.internal_host = os.environ["PFNODE_INTERNAL_HOST"]
    if os.environ.get("PFNODE_WITNESSES"):  # ORG=URL,ORG=URL
        pairs = (item.split("=", 1) for item in os.environ["PFNODE_WITNESSES"].split(","))
        config.witnesses = {org: url for org, url in pairs}
    if os.environ.get("PFNODE_ANCHOR"):  # embedded | RPC URL
        config.anchor = AnchorConfig(
            chain=os.environ["PFNODE_ANCHOR"],
            contract=os.environ.get("PFNODE_ANCHOR_CONTRACT") or None,
            account_key=os.environ.get("PFNODE_ANCHOR_KEY") or None,
            every_blocks=int(os.environ.get("PFNODE_ANCHOR_EVERY_BLOCKS") or 100),
            every_seconds=float(os.environ.get("PFNODE_ANCHOR_EVERY_SECONDS") or 60),
        )
    return create_app(Node(config))
