"""The ``category`` table (migration 0012): the categories offered when a ticket is opened
or edited, managed by admins. Tickets keep their category as free text (the slug)."""

from __future__ import annotations

from piccolo.columns import Boolean, Integer, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Category(Table, tablename="category"):
    """A ticket category: a unique slug, a name, optional English/French labels, whether it
    is offered (``active``) and its place in the lists (``position``, then name)."""

    id = Serial(primary_key=True)
    slug = Varchar(length=100, unique=True)
    name = Varchar(length=200)
    label_en = Varchar(length=200, null=True, default=None)
    label_fr = Varchar(length=200, null=True, default=None)
    active = Boolean(default=True)
    position = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
