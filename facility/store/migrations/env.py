"""Alembic's environment for the ops store, run by `facility.store.migrations` on the connection it
was given (the store's own, holding the upgrade lock), never from an alembic.ini: the package must
upgrade its database wherever it is installed, with no file beside it to configure."""

from __future__ import annotations

from alembic import context

from facility.store.migrations import Progress

config = context.config
progress: Progress = config.attributes["progress"]
context.configure(
    connection=config.attributes["connection"],
    render_as_batch=True,  # SQLite alters a table by copying it: batch mode does that for each ALTER
    on_version_apply=progress.applied,
)
with context.begin_transaction():  # the caller's transaction, which holds the lock: committed by it
    context.run_migrations()
