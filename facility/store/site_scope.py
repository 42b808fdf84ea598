"""Every ops record carries its estate's site id, and a store's sessions see their own estate only.

One ops database may serve many estates (docs/scale-out.md): each process opens its `OpsStore` for
one site, and every query that process makes must be blind to the others'. Rather than trust each
of the stores' hundred queries to say `WHERE site = ...`, the store's sessions say it for them:

- every ORM SELECT, UPDATE and DELETE a session runs gets the condition `site = <its site>` on each
  site-scoped table it reaches (`with_loader_criteria`, SQLAlchemy's own way of a global filter);
- every row a session adds gets its site before the flush, so no store has to set it.

What must read another estate (the company view) opens a session of that estate:
`ops.sessions(info={"site": other})` (facility.store.reads.view.open_view), and reads it with the
same queries, limited as the estate's own are.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import String, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, UOWTransaction, mapped_column, with_loader_criteria

Row = TypeVar("Row")


class SiteColumn:
    """The column every ops record but a user's has: the site id of the estate it belongs to."""

    site: Mapped[str] = mapped_column(String(200), server_default="")


class SiteSession(Session):
    """A session of one estate's ops store: `info["site"]` is the site id its queries are limited to."""


def _site_of(session: Session) -> str:
    site = session.info.get("site")
    if not isinstance(site, str) or not site:
        raise RuntimeError("an ops store session without a site: open it from OpsStore(url, site=...)")
    return site


@event.listens_for(SiteSession, "do_orm_execute")
def _only_this_site(state: ORMExecuteState) -> None:
    """Limit each statement to the session's site."""
    if state.is_column_load or state.is_relationship_load:
        return  # a lazy or deferred load follows a row already limited to the site
    if not (state.is_select or state.is_update or state.is_delete):
        return
    site = _site_of(state.session)
    state.statement = state.statement.options(
        with_loader_criteria(SiteColumn, lambda row: row.site == site, include_aliases=True)
    )


@event.listens_for(SiteSession, "before_flush")
def _stamp_new_rows(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    """Give every new row the session's site: a record never lands without its estate."""
    site = _site_of(session)
    for row in session.new:
        if isinstance(row, SiteColumn):
            row.site = site


async def by_key(session: AsyncSession, row: type[Row], *, lock: bool = False, **key: str) -> Row | None:
    """The row of `row`'s table with that key in the session's estate: for the tables keyed by a
    device id, whose key begins with the site (which the session's condition supplies), so that no
    store has to spell the key's order. `lock`: FOR UPDATE, until the transaction ends (PostgreSQL)."""
    query = select(row).filter_by(**key)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).first()
