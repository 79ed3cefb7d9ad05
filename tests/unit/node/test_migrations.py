"""Schema migrations, every backend: upgrade, adoption of create_all databases, refusals.

``test_migrated_schema_matches_the_models`` is the one that fails when a table
changes without a revision in node/migrations/versions.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import api
import chain
import node
from chain.log import LogWriter, make_genesis
from chain.storage import Ledger, make_engine
from chain.verify import verify_database
from node.migrations import (
    HEAD,
    PACKAGE_DIR,
    PFNODE_TABLES,
    Migrations,
    SchemaMismatch,
    check_schema,
    context_options,
    current_revision,
    upgrade,
)
from node.tokens import TokenStore
from tests.ledger_helpers import T0, TestLedger, org, seeded_key

PFNODE_NAMES = {t.name for t in PFNODE_TABLES}

NOOP_REVISION = '''"""A later revision that changes nothing.

Revision ID: 9999
Revises: {head}
"""

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


# --------------------------------------------------------------------------- helpers


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def execute(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def differences(url: str) -> list[Any]:
    """What alembic's autogenerate would change to make `url` match the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=context_options())
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def create_all(url: str) -> None:
    """The schema as pfnode made it before migrations: create_all, no alembic_version."""
    engine = make_engine(url)
    try:
        SQLModel.metadata.create_all(engine, tables=list(PFNODE_TABLES))
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    """`url` with a password in it (PostgreSQL; trust auth ignores it)."""
    if not url.startswith("postgresql://"):
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.split("@", 1)
    return f"{scheme}://{credentials.split(':')[0]}:s3cret@{host}"


def newer_pfnode(tmp_path: Path) -> Migrations:
    """A copy of this package's revisions with one more (0004) on top."""
    location = tmp_path / "migrations"
    shutil.copytree(PACKAGE_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "9999_noop.py").write_text(NOOP_REVISION.format(head=HEAD))
    return Migrations(location)


def open_test_ledger(url: str) -> TestLedger:
    """A writer on an upgraded database (no create=True), with its genesis written."""
    keys = {"BANK-A": seeded_key("BANK-A/1"), "REGULATOR": seeded_key("REGULATOR/1")}
    seq = seeded_key("REGULATOR/seq-1")
    genesis = make_genesis(
        origin="pfnode.test/migrations",
        orgs=[
            org("BANK-A", "bank", keys["BANK-A"]),
            org("REGULATOR", "regulator", keys["REGULATOR"]),
        ],
        sequencer=seq,
        created=T0,
    )
    ledger = Ledger.open(url, writer=True)
    ledger.init(genesis)
    return TestLedger(ledger, LogWriter(ledger, seq), keys, genesis)


# --------------------------------------------------------------------------- upgrading


def test_upgrade_creates_every_pfnode_table_at_head(db_url: str) -> None:
    assert upgrade(db_url) == HEAD
    assert current_revision(db_url) == HEAD
    assert table_names(db_url) == PFNODE_NAMES | {"alembic_version"}
    check_schema(db_url)


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    """Fails when a SQLModel table changed and no revision in versions/ brings it about."""
    upgrade(db_url)
    assert differences(db_url) == []


def test_every_pfnode_model_is_in_the_migrated_schema() -> None:
    """A new ledger_*, node_* or replica_* table must join PFNODE_TABLES (with a revision)."""
    for package in (chain, node, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.startswith("node.migrations."):
                importlib.import_module(module.name)
    prefixes = ("ledger_", "node_", "replica_")
    models = {name for name in SQLModel.metadata.tables if name.startswith(prefixes)}
    assert models == PFNODE_NAMES


def test_upgrade_at_head_is_a_no_op(db_url: str) -> None:
    upgrade(db_url)
    execute(db_url, "INSERT INTO ledger_meta (key, value) VALUES ('probe', 'kept')")
    assert upgrade(db_url) == HEAD
    assert execute(db_url, "SELECT value FROM ledger_meta WHERE key = 'probe'") == [("kept",)]
    assert execute(db_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]


def test_upgrade_leaves_other_tables_alone(db_url: str) -> None:
    execute(db_url, "CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)")
    upgrade(db_url)
    assert "someone_elses" in table_names(db_url)
    assert differences(db_url) == []


def test_concurrent_upgrades_make_one_schema(db_url: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(upgrade(db_url))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [HEAD, HEAD, HEAD]
    assert execute(db_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]


def test_upgrade_puts_a_sqlite_ledger_in_wal_mode(tmp_path: Path) -> None:
    url = str(tmp_path / "ledger.db")
    upgrade(url)
    assert execute(url, "PRAGMA journal_mode") == [("wal",)]


def test_downgrade_to_base_removes_every_pfnode_table(db_url: str) -> None:
    migrations = Migrations()
    upgrade(db_url)
    with migrations.connect(db_url) as conn:
        command.downgrade(migrations.config(conn), "base")
    assert table_names(db_url) == {"alembic_version"}
    assert current_revision(db_url) is None
    assert upgrade(db_url) == HEAD


def test_a_ledger_opens_and_appends_after_upgrade(db_url: str) -> None:
    upgrade(db_url)
    t = open_test_ledger(db_url)
    try:
        entries = t.append(4)
        t.append(2, start=4)
        stored = t.ledger.get_entry(entries[2].hash)
        assert stored is not None and (stored.index, stored.height) == (2, 0)
        assert verify_database(t.ledger).entries == 6
        tokens = TokenStore(t.ledger.engine)
        assert tokens.org_for(tokens.create("BANK-A", "test")) == "BANK-A"
    finally:
        t.ledger.close()
    check_schema(db_url)


# --------------------------------------------------------------------------- refusing


def test_refuses_an_empty_database(db_url: str) -> None:
    assert current_revision(db_url) is None
    with pytest.raises(SchemaMismatch, match="has no pfnode schema") as caught:
        check_schema(db_url)
    assert "run `pfnode db upgrade --db URL` (or `pfnode init`)" in str(caught.value)
    assert (caught.value.found, caught.value.needed) == (None, HEAD)


def test_refuses_a_missing_sqlite_file_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(SchemaMismatch, match="pfnode db upgrade"):
        check_schema(str(path))
    assert current_revision(f"sqlite:///{path}") is None
    assert not path.exists()


def test_refuses_a_revision_newer_than_this_pfnode(db_url: str) -> None:
    upgrade(db_url)
    execute(db_url, "UPDATE alembic_version SET version_num = 'deadbeef'")
    assert current_revision(db_url) == "deadbeef"
    message = "schema revision deadbeef is unknown to this pfnode .*; upgrade pfnode"
    with pytest.raises(SchemaMismatch, match=message):
        check_schema(db_url)
    with pytest.raises(SchemaMismatch, match=message):
        upgrade(db_url)
    assert current_revision(db_url) == "deadbeef"


def test_refuses_an_older_revision_until_upgraded(db_url: str, tmp_path: Path) -> None:
    newer = newer_pfnode(tmp_path)
    assert newer.head == "9999"
    upgrade(db_url)
    with pytest.raises(SchemaMismatch) as caught:
        newer.check_schema(db_url)
    assert str(caught.value) == (
        f"database schema is at revision {HEAD}, this node needs 9999: "
        "run `pfnode db upgrade --db URL`"
    )
    assert newer.upgrade(db_url) == "9999"
    newer.check_schema(db_url)
    with pytest.raises(SchemaMismatch, match="revision 9999 is unknown .*upgrade pfnode"):
        check_schema(db_url)


def test_messages_name_the_database_without_its_password(db_url: str) -> None:
    url = with_password(db_url)
    with pytest.raises(SchemaMismatch) as caught:
        check_schema(url)
    assert "s3cret" not in str(caught.value)
    assert db_url.rsplit("/", 1)[1] in str(caught.value)


# --------------------------------------------------------------------------- adopting


def test_adopts_a_database_made_by_create_all(db_url: str) -> None:
    create_all(db_url)
    execute(db_url, "INSERT INTO ledger_meta (key, value) VALUES ('probe', 'kept')")
    assert current_revision(db_url) is None
    with pytest.raises(SchemaMismatch, match="pfnode tables but no schema revision.*db upgrade"):
        check_schema(db_url)
    assert upgrade(db_url) == HEAD
    check_schema(db_url)
    assert execute(db_url, "SELECT value FROM ledger_meta WHERE key = 'probe'") == [("kept",)]
    assert differences(db_url) == []


def test_adopts_a_ledger_only_database_and_adds_the_node_tables(db_url: str) -> None:
    with Ledger.open(db_url, writer=True, create=True) as ledger:
        ledger.init({"origin": "pfnode.test/adopt"})
    assert upgrade(db_url) == HEAD
    assert table_names(db_url) == PFNODE_NAMES | {"alembic_version"}
    assert differences(db_url) == []
    with Ledger.open(db_url) as reader:
        assert reader.genesis == {"origin": "pfnode.test/adopt"}


def test_refuses_to_adopt_tables_that_differ_from_head(db_url: str) -> None:
    create_all(db_url)
    execute(db_url, "DROP INDEX ix_node_flags_ts")
    execute(db_url, "ALTER TABLE node_tokens ADD COLUMN extra VARCHAR(8)")
    with pytest.raises(SchemaMismatch, match="differ from revision") as caught:
        upgrade(db_url)
    assert "node_flags.ix_node_flags_ts" in str(caught.value)
    assert "node_tokens.extra" in str(caught.value)
    assert "alembic_version" not in table_names(db_url)
    assert current_revision(db_url) is None
