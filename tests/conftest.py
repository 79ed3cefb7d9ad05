"""Shared fixtures: one storage suite, every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PG_URL = os.environ.get("PFNODE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def shared_vectors(name: str) -> Path:
    path = SHARED / "vectors" / name
    if not path.is_dir():
        pytest.skip(f"shared test vectors not found at {path} (a clone without ../shared)")
    return path


def _pg_available() -> bool:
    try:
        engine = sa.create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped at the end."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}; CI must start it")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    admin = sa.create_engine(
        "postgresql+psycopg://" + PG_URL.split("://", 1)[1], isolation_level="AUTOCOMMIT"
    )
    name = f"pfnode_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_pg(url: str) -> None:
    """Empty the test database (drop and recreate its public schema)."""
    engine = sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_server")
    reset_pg(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """A node's database: None (SQLite under its data directory) or a fresh PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_server")
    reset_pg(url)
    return url
