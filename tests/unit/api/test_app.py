"""The app's life: the lifespan runs the sequencer; uvicorn's factory reads the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import app_from_env, create_app
from node.genesis import init_demo
from tests.unit.api.story import NOW, make_node, serving


async def test_lifespan_starts_and_stops_the_sequencer(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    app = create_app(node)
    assert not node.sequencer.is_alive()
    async with serving(app) as client:
        assert node.sequencer.is_alive()
        assert (await client.get("/healthz")).json()["status"] == "ok"
    assert not node.sequencer.is_alive()


def test_app_from_env_opens_the_node_of_pfnode_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_demo(tmp_path, None, NOW)
    monkeypatch.setenv("PFNODE_DATA", str(tmp_path))
    monkeypatch.delenv("PFNODE_DB", raising=False)
    app = app_from_env()
    node = app.state.node
    try:
        assert node.config.data_dir == tmp_path
        assert node.config.url == f"sqlite:///{(tmp_path / 'ledger.db').resolve()}"
        assert app.title == "pfnode"
    finally:
        node.close()


def test_app_from_env_takes_a_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    init_demo(tmp_path, url, NOW)
    monkeypatch.setenv("PFNODE_DATA", str(tmp_path))
    monkeypatch.setenv("PFNODE_DB", url)
    node = app_from_env().state.node
    try:
        assert node.config.url == url
    finally:
        node.close()
