"""Helpers for tests of refusals: a problem+json answer, and a node left exactly as it was.

"Exactly as it was" is checked on the node itself: its log size and its whole domain
state (``State.snapshot()``: policies, notices, loans, exposures, holds, flags,
receivable histories).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.unit.api.story import Story

PROBLEM = "application/problem+json"


def node_state(story: Story) -> tuple[int, dict[str, Any]]:
    sequencer = story.node.sequencer
    assert sequencer is not None
    return story.node.ledger.size, copy.deepcopy(sequencer.state.snapshot())


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 body of ``r``, which must have ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    assert body["instance"] == r.request.url.path
    return body


def fields(answer: dict[str, Any]) -> list[str]:
    return [e["field"] for e in answer["errors"]]


async def refused(
    story: Story, send: Callable[[], Awaitable[httpx.Response]], status: int
) -> dict[str, Any]:
    """Send; the answer must be a ``status`` problem and the node exactly as before."""
    before = node_state(story)
    answer = problem(await send(), status)
    assert node_state(story) == before
    return answer
