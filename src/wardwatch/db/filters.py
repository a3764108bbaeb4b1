"""Query conditions that stay cheap for long lists of values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType


def one_of(s: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL as ``column = ANY(:array)``.

    An ``IN`` list is one bound parameter per value, each compiled, converted and sent on
    its own: for the hundreds of keys of an ingest batch that is milliseconds of Python per
    query. An array is one parameter whatever its length, and the statement compiles once.
    For plain columns (text, integers), whose type PostgreSQL can hold in an array.
    """
    wanted = list(values)
    if s.get_bind().dialect.name == "postgresql":
        # A foreign-key column may not have taken its target's type yet: those are text here.
        item = String() if isinstance(column.type, NullType) else column.type
        return column == any_(bindparam(None, wanted, type_=ARRAY(item)))  # type: ignore[no-any-return]
    return column.in_(wanted)  # type: ignore[no-any-return]
