"""Versioned SQL migrations: fsd/store/migrations/NNNN_name.sql, each applied once, in a transaction."""

from __future__ import annotations

import logging
import os
import re

import psycopg2

from fsd.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql\Z")
_LOCK_KEY = 0x0F5D0001  # advisory lock so two processes never migrate at once


def available() -> list[tuple[int, str, str]]:
    out = []
    for fn in sorted(os.listdir(MIGRATIONS_DIR)):
        m = _NAME.match(fn)
        if m:
            out.append((int(m.group(1)), m.group(2), os.path.join(MIGRATIONS_DIR, fn)))
    versions = [v for v, _, _ in out]
    if len(versions) != len(set(versions)):
        raise StoreError("duplicate migration version")
    return out


def migrate(*, dsn: str) -> list[int]:
    """Apply every pending migration; return the versions applied (empty when up to date)."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.Error as e:
        raise StoreError(f"database unreachable: {e}") from e
    applied: list[int] = []
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {r[0] for r in cur.fetchall()}
        conn.autocommit = False
        for version, name, path in available():
            if version in done:
                continue
            with open(path, encoding="utf-8") as f:
                sql = f.read()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                conn.commit()
            except psycopg2.Error as e:
                conn.rollback()
                raise StoreError(f"migration {version:04d}_{name} failed: {e}") from e
            log.info("migration_applied version=%s name=%s", version, name)
            applied.append(version)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()
    return applied


def current_version(*, dsn: str) -> int:
    with psycopg2.connect(dsn, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return cur.fetchone()[0]
