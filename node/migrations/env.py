"""Alembic's environment for pfnode, run by node.migrations (see its docstring).

Online only, on the connection node.migrations opened and passed in
``config.attributes["connection"]``, inside its transaction: an upgrade, an
adoption or a stamp commits whole or not at all. Offline (``--sql``) mode is
not supported.
"""

from __future__ import annotations

from alembic import context
from alembic.util import CommandError

from node.migrations import context_options

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise CommandError("pfnode migrations run through node.migrations, on a connection it opens")

context.configure(connection=connection, **context_options())
with context.begin_transaction():
    context.run_migrations()
