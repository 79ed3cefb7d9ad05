"""Fixtures: a demo consortium in tmp_path behind the API, with a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.api.story import Story, running_story


@pytest.fixture
async def story(tmp_path: Path, backend: str | None) -> AsyncIterator[Story]:
    """The same API tests on SQLite and on PostgreSQL."""
    async with running_story(tmp_path, backend) as s:
        yield s
