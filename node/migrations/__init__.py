"""Schema migrations: Alembic, configured from code (no alembic.ini).

    HEAD                    the revision this code needs
    upgrade(url) -> str     create the pfnode schema or bring it to HEAD; returns HEAD
    current_revision(url)   the database's revision, None when it has none
    check_schema(url)       raise SchemaMismatch unless the database is at HEAD

URLs are what ``chain.storage.normalise_url`` accepts (a path, ``sqlite:///...``,
``postgresql://...``). The pfnode schema is PFNODE_TABLES (``ledger_*`` from
chain.storage; ``node_*`` from node.projection, visibility, tokens, cluster and
witnessing)
plus Alembic's ``alembic_version``; any other table in the database is left
alone. Revisions live in ``versions/``; ``env.py`` runs them on the connection
this module opens.

``upgrade`` is one transaction, serialised against other upgrades (an advisory
lock on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, whose DDL is made
transactional for it), and puts a SQLite file in WAL mode. A database whose
tables ``create_all`` made before migrations existed (pfnode tables, no
revision) is adopted: when its tables match the models (alembic's
``compare_metadata``) upgrade creates those missing and stamps HEAD; otherwise
it refuses and lists the differences. That compares with the models of this
code, so only a pfnode whose HEAD is still the schema create_all made
(``0001``) can adopt such a database.

Adding a revision: change the model, then let Alembic draft it (AutoString is
rendered as ``sa.String``) and edit the draft into a frozen, hand-checked file::

    m = Migrations()
    with m.connect(url_at_head) as conn:
        command.revision(m.config(conn), "what changed", autogenerate=True, rev_id="0002")

tests/unit/node/test_migrations.py fails while a model and HEAD disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from chain.errors import StorageError
from chain.replica import REPLICA_TABLES
from chain.storage import LEDGER_TABLES, make_engine, normalise_url
from node.alerts import ALERT_TABLES
from node.anchoring import ANCHOR_TABLES
from node.cluster import T_LEADER
from node.projection import NODE_TABLES
from node.tokens import T_TOKEN
from node.visibility import T_PARTY
from node.witnessing import WITNESS_TABLES

__all__ = [
    "HEAD",
    "PFNODE_TABLES",
    "Migrations",
    "SchemaMismatch",
    "check_schema",
    "context_options",
    "current_revision",
    "upgrade",
]

PACKAGE_DIR: Final = Path(__file__).resolve().parent
PFNODE_TABLES: Final[tuple[sa.Table, ...]] = (
    *LEDGER_TABLES,
    *NODE_TABLES,
    T_PARTY,
    T_TOKEN,
    T_LEADER,
    *WITNESS_TABLES,
    *REPLICA_TABLES,
    *ANCHOR_TABLES,
    *ALERT_TABLES,
)
TABLE_NAMES: Final = frozenset(t.name for t in PFNODE_TABLES)
MIGRATION_LOCK_KEY: Final = 0x7066_6D69_6772  # "pfmigr", apart from the writer's lock
UPGRADE_HINT: Final = "run `pfnode db upgrade --db URL`"
SQLITE_LOCKED_RETRY_S: Final = 30.0


class SchemaMismatch(StorageError):
    """The database's schema is not at the revision this node needs (``found``, ``needed``)."""

    def __init__(self, message: str, *, found: str | None, needed: str) -> None:
        super().__init__(message)
        self.found = found
        self.needed = needed


# --------------------------------------------------------------------------- what env.py sees


def _is_pfnode_name(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic's include_name: pfnode's tables in the default schema, nothing else."""
    if type_ == "schema":
        return name is None
    if type_ == "table":
        return name in TABLE_NAMES
    return True


def _render_sqlmodel_type(type_: str, obj: Any, _ctx: AutogenContext) -> str | Literal[False]:
    """Alembic's render_item: draft SQLModel's AutoString as plain ``sa.String``."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def context_options() -> dict[str, Any]:
    """Options for ``context.configure`` (env.py) and for comparing a database with the models."""
    return {
        "target_metadata": SQLModel.metadata,
        "include_name": _is_pfnode_name,
        "render_item": _render_sqlmodel_type,
        "render_as_batch": True,
        "compare_type": True,
    }


# --------------------------------------------------------------------------- the database


@dataclass(frozen=True)
class Found:
    """What a database holds: its recorded revision and which pfnode tables exist."""

    revision: str | None
    tables: frozenset[str]


def get_found(conn: Connection, shown: str) -> Found:
    """The revision `conn`'s database records and its pfnode tables."""
    heads = MigrationContext.configure(conn).get_current_heads()
    tables = frozenset(sa.inspect(conn).get_table_names()) & TABLE_NAMES
    if len(heads) > 1:
        raise StorageError(
            f"database {shown} records several schema revisions ({', '.join(heads)}); "
            "pfnode keeps one: repair its alembic_version table"
        )
    return Found(heads[0] if heads else None, tables)


def _parse(url: str) -> sa.URL:
    try:
        return sa.make_url(normalise_url(url))
    except ArgumentError as exc:  # not echoed: it may hold a password
        raise StorageError("--db is not a path, sqlite:/// or postgresql:// URL") from exc


def _shown_url(url: str) -> str:
    """The database's URL for messages: no driver, no password."""
    parsed = _parse(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def _sqlite_file_missing(url: str) -> bool:
    """True for a SQLite file that does not exist (connecting would create it)."""
    parsed = _parse(url)
    db = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or db in ("", ":memory:") or db.startswith("file:"):
        return False
    return not Path(db).exists()


def _migrating_engine(url: str) -> Engine:
    """make_engine's engine; for SQLite, with transactional DDL and BEGIN IMMEDIATE."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_take_over_transactions)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_take_over_transactions(dbapi_conn: Any, _record: Any) -> None:
    """WAL (as Ledger.open(create=True) sets), and stop pysqlite running DDL outside BEGIN."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()
    dbapi_conn.isolation_level = None


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _lock(conn: Connection) -> None:
    """Serialise upgrades on PostgreSQL (SQLite: BEGIN IMMEDIATE already did)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})


# --------------------------------------------------------------------------- the revisions


class Migrations:
    """The revisions of one script directory: this package's, or a test's copy of it."""

    def __init__(self, location: Path = PACKAGE_DIR) -> None:
        self.location = Path(location)
        script = ScriptDirectory.from_config(self.config())
        head = script.get_current_head()  # CommandError if the history has branched
        if head is None:
            raise CommandError(f"{self.location} holds no revisions")
        self.head: str = head
        self.revisions = frozenset(s.revision for s in script.walk_revisions())

    def config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.location).replace("%", "%%"))
        config.attributes["connection"] = connection
        return config

    @contextmanager
    def connect(self, url: str) -> Iterator[Connection]:
        """One transaction on a migrating engine, holding the upgrade lock."""
        engine = _migrating_engine(url)
        try:
            with engine.begin() as conn:
                _lock(conn)
                yield conn
        finally:
            engine.dispose()

    # -- reading -------------------------------------------------------------------

    def current_revision(self, url: str) -> str | None:
        return self._read(url).revision

    def check_schema(self, url: str) -> None:
        problem = self.compute_mismatch(self._read(url), _shown_url(url))
        if problem is not None:
            raise problem

    def _read(self, url: str) -> Found:
        shown = _shown_url(url)
        if _sqlite_file_missing(url):
            return Found(None, frozenset())
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                return get_found(conn, shown)
        except (SQLAlchemyError, ArgumentError) as exc:
            raise StorageError(f"database {shown} cannot be read: {_cause(exc)}") from exc
        finally:
            engine.dispose()

    def compute_mismatch(self, found: Found, shown: str) -> SchemaMismatch | None:
        """Why a database with `found` cannot serve this node, or None when it can."""
        revision, head = found.revision, self.head
        if revision == head:
            return None
        if revision is None and not found.tables:
            message = f"database {shown} has no pfnode schema: {UPGRADE_HINT} (or `pfnode init`)"
        elif revision is None:
            message = (
                f"database {shown} has pfnode tables but no schema revision (they were "
                f"created before pfnode had migrations): {UPGRADE_HINT} to adopt them at {head}"
            )
        elif revision in self.revisions:
            message = f"database schema is at revision {revision}, this node needs {head}: "
            message += UPGRADE_HINT
        else:
            return self._unknown(revision)
        return SchemaMismatch(message, found=revision, needed=head)

    def _unknown(self, revision: str) -> SchemaMismatch:
        return SchemaMismatch(
            f"database schema revision {revision} is unknown to this pfnode "
            "(a newer version wrote it); upgrade pfnode",
            found=revision,
            needed=self.head,
        )

    # -- upgrading -----------------------------------------------------------------

    def upgrade(self, url: str) -> str:
        """One transaction; on SQLite, repeated while another upgrader holds the file.

        SQLite answers "database is locked" at once, without its busy wait, when two
        connections race to change the journal mode or to escalate their locks (it would
        otherwise deadlock); the transaction changed nothing then, so it is run again.
        """
        deadline = time.monotonic() + SQLITE_LOCKED_RETRY_S
        while True:
            try:
                return self._upgrade_once(url)
            except StorageError as exc:
                locked = isinstance(exc.__cause__, OperationalError) and (
                    "database is locked" in str(exc.__cause__)
                )
                if not locked or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _upgrade_once(self, url: str) -> str:
        shown = _shown_url(url)
        try:
            with self.connect(url) as conn:
                found = get_found(conn, shown)
                if found.revision is not None and found.revision not in self.revisions:
                    raise self._unknown(found.revision)
                if found.revision is None and found.tables:
                    self._adopt(conn, shown)
                elif found.revision != self.head:
                    command.upgrade(self.config(conn), "head")
                revision = get_found(conn, shown).revision
        except (SQLAlchemyError, ArgumentError, CommandError) as exc:
            raise StorageError(f"database {shown} was not upgraded: {_cause(exc)}") from exc
        if revision != self.head:
            raise StorageError(f"database {shown} is at {revision} after upgrading to {self.head}")
        return revision

    def _adopt(self, conn: Connection, shown: str) -> None:
        """Stamp HEAD on tables create_all made, if they are the models' (create the missing)."""
        context = MigrationContext.configure(conn, opts=context_options())
        diffs = compare_metadata(context, SQLModel.metadata)
        missing = {d[1].name for d in diffs if isinstance(d, tuple) and d[0] == "add_table"}
        blocking = [d for d in diffs if not _is_creation_of(d, missing)]
        if blocking:
            raise SchemaMismatch(
                f"database {shown} has pfnode tables but no schema revision, and they differ "
                f"from revision {self.head}: {'; '.join(_describe(d) for d in blocking)}. "
                "pfnode will not adopt them: make them match by hand (or re-create the "
                f"database), then {UPGRADE_HINT}",
                found=None,
                needed=self.head,
            )
        SQLModel.metadata.create_all(conn, tables=[t for t in PFNODE_TABLES if t.name in missing])
        command.stamp(self.config(conn), "head")


def _cause(exc: Exception) -> object:
    """The driver's message, without SQLAlchemy's statement and background link."""
    return getattr(exc, "orig", None) or exc


def _is_creation_of(diff: Any, missing: set[str]) -> bool:
    if not isinstance(diff, tuple):
        return False
    if diff[0] == "add_table":
        return True
    return diff[0] == "add_index" and diff[1].table.name in missing


def _describe(diff: Any) -> str:
    """One line for one compare_metadata difference."""
    if isinstance(diff, list):  # modify_*: [(op, schema, table, column, info, old, new)]
        return "; ".join(f"{d[0]} {d[2]}.{d[3]}: {d[-2]!s} -> {d[-1]!s}" for d in diff)
    op, obj = diff[0], diff[-1]  # the table, column, index or constraint is last
    table = getattr(obj, "table", None)
    name = getattr(obj, "name", None) or ",".join(c.name for c in getattr(obj, "columns", ()))
    return f"{op} {table.name}.{name}" if isinstance(table, sa.Table) else f"{op} {name}"


# --------------------------------------------------------------------------- this node's API

_PFNODE: Final = Migrations()
HEAD: Final[str] = _PFNODE.head


def upgrade(url: str) -> str:
    """Create the pfnode schema in `url`, or bring it to HEAD; a no-op at HEAD. Returns HEAD."""
    return _PFNODE.upgrade(url)


def current_revision(url: str) -> str | None:
    """The revision `url` records, or None (no schema, or tables made before migrations)."""
    return _PFNODE.current_revision(url)


def check_schema(url: str) -> None:
    """Raise SchemaMismatch, saying what to run, unless `url` is at HEAD."""
    _PFNODE.check_schema(url)
