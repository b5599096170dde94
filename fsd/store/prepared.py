"""Server-side prepared statements for the hot statements of a call (reserve, release, history...).

A ``Statement`` is written once with ``%s`` placeholders and the PostgreSQL types of its parameters.
``run(cur, stmt, params)`` executes it:

- on an autocommit cursor of a pooled connection that allows it (``Pool(prepare=True)``, the
  default): ``PREPARE`` once per connection (lazily, the first time that connection runs it), then
  ``EXECUTE name (...)``: the server parses and plans the statement once per session instead of once
  per call. Which statements a connection has prepared is kept on the connection object itself, so a
  discarded or reconnected connection starts with none. A session whose statements were dropped
  behind our back (``DEALLOCATE ALL``, ``DISCARD ALL``) is noticed by the error of the next
  ``EXECUTE``: the statement is prepared again and run once more (safe: in autocommit mode the failed
  ``EXECUTE`` changed nothing).
- anywhere else (inside ``Pool.transaction()``, a connection not from a Pool, a pool with
  ``prepare=False`` for PgBouncer in transaction mode): as plain SQL, exactly as before.

Parameters are still sent as literals by psycopg2 (``EXECUTE`` takes expressions); the declared types
make a ``NULL`` or an empty array as well-typed as in the plain statement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg2
import psycopg2.errors

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


class Statement:
    __slots__ = ("name", "sql", "prepare_sql", "execute_sql", "nparams")

    def __init__(self, *, name: str, sql: str, types: Sequence[str]):
        if not _NAME.match(name):
            raise ValueError(f"bad prepared statement name {name!r}")
        n = sql.count("%s")
        if "%%" in sql or n != len(types):
            raise ValueError(f"statement {name}: {n} placeholders, {len(types)} types")
        self.name = name
        self.nparams = n
        self.sql = sql
        numbered = sql % tuple(f"${i + 1}" for i in range(n))
        typed = f" ({', '.join(types)})" if n else ""
        self.prepare_sql = f"PREPARE {name}{typed} AS {numbered}"
        self.execute_sql = f"EXECUTE {name} ({', '.join(['%s'] * n)})" if n else f"EXECUTE {name}"

    def __repr__(self) -> str:
        return f"Statement({self.name})"


def prepared_names(conn) -> set[str] | None:
    """The statements this connection has prepared, or None when it must not prepare any."""
    return getattr(conn, "prepared", None)


def run(cur, stmt: Statement, params: Sequence[Any]) -> None:
    """Execute ``stmt`` on ``cur``; read the result from the cursor as after ``cur.execute``."""
    conn = cur.connection
    names = getattr(conn, "prepared", None)
    if names is None or not conn.autocommit:
        cur.execute(stmt.sql, params)
        return
    if stmt.name not in names:
        _prepare(cur, stmt, names)
    try:
        cur.execute(stmt.execute_sql, params)
    except psycopg2.errors.InvalidSqlStatementName:
        # the session lost its prepared statements (DEALLOCATE ALL / DISCARD ALL): prepare again
        names.clear()
        _prepare(cur, stmt, names)
        cur.execute(stmt.execute_sql, params)


def _prepare(cur, stmt: Statement, names: set[str]) -> None:
    try:
        cur.execute(stmt.prepare_sql)
    except psycopg2.errors.DuplicatePreparedStatement:
        pass  # prepared already (this process lost track of it): the same name is the same statement
    names.add(stmt.name)
