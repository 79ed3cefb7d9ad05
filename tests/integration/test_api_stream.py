"""Server-sent flags over a real uvicorn server (in a thread, on a free port).

The regulator and BANK-B subscribe to /v1/flags/stream; BANK-A draws, BANK-B draws
against the same receivable and is rejected: the DUPLICATE_FINANCING flag arrives on
both streams, BANK-B's without related hashes and without naming BANK-A.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from tests.unit.api.story import Story, make_node, read_tokens

WAIT_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving_in_thread(app: FastAPI) -> Iterator[str]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def until(condition: Callable[[], bool], seconds: float = WAIT_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


Events = asyncio.Queue[tuple[str, dict[str, Any]]]


async def listen(client: httpx.AsyncClient, token: str, out: Events) -> None:
    """Put each (event name, data) of the caller's flag stream on ``out``."""
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(WAIT_S, read=None)
    async with client.stream("GET", "/v1/flags/stream", headers=headers, timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                await out.put((event, json.loads(line.removeprefix("data:"))))


async def next_flag(events: Events, entry_hash: str, code: str) -> dict[str, Any]:
    """The first flag ``code`` on ``entry_hash`` from a stream, within WAIT_S."""

    async def wanted() -> dict[str, Any]:
        while True:
            event, flag = await events.get()
            if event == "flag" and flag.get("entry_hash") == entry_hash and flag["code"] == code:
                return flag

    return await asyncio.wait_for(wanted(), WAIT_S)


async def test_flag_stream_delivers_the_duplicate_flag(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    tokens = read_tokens(tmp_path)
    with serving_in_thread(create_app(node)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=WAIT_S) as client:
            events: dict[str, Events] = {"REGULATOR": asyncio.Queue(), "BANK-B": asyncio.Queue()}
            listeners = [
                asyncio.create_task(listen(client, tokens[org], queue))
                for org, queue in events.items()
            ]
            try:
                await until(lambda: len(node.hub.subscribers) == 2)
                story = Story(client, node, tokens, tmp_path)
                first, second = await story.duplicate_story()
                assert second.status_code == 409
                rejected = second.json()["receipt"]["entry_hash"]

                seen = await next_flag(events["REGULATOR"], rejected, "DUPLICATE_FINANCING")
                assert seen["severity"] == "critical"
                assert seen["bank"] == "BANK-B"
                assert seen["related"] == [first["entry_hash"]]

                own = await next_flag(events["BANK-B"], rejected, "DUPLICATE_FINANCING")
                assert own["related"] == []
                assert "BANK-A" not in json.dumps(own)
            finally:
                for task in listeners:
                    task.cancel()
                await asyncio.gather(*listeners, return_exceptions=True)
            await until(lambda: not node.hub.subscribers)  # a closed stream unsubscribes
