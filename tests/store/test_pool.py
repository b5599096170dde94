"""fsd.store.pool.Pool: the unit-of-work context managers."""

import psycopg2
import pytest

from fsd.errors import StoreError
from fsd.store.pool import Pool


@pytest.fixture
def small_pool(db_dsn):
    p = Pool(dsn=db_dsn, maxconn=1)
    yield p
    p.close()


def _count(pool, table):
    with pool.transaction() as cur:
        cur.execute(f"SELECT count(*) AS n FROM {table}")  # noqa: S608 - test table name
        return cur.fetchone()["n"]


def test_autocommit_statements_commit_on_their_own(small_pool):
    with small_pool.transaction() as cur:
        cur.execute("CREATE TABLE t_auto (id int PRIMARY KEY)")
    with small_pool.autocommit() as cur:
        cur.execute("INSERT INTO t_auto VALUES (1) RETURNING id")
        assert cur.fetchone()["id"] == 1
        # committed already: another connection would see it; the session is not in a transaction
        assert cur.connection.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert _count(small_pool, "t_auto") == 1


def test_autocommit_hands_back_an_ordinary_connection(small_pool):
    with small_pool.autocommit() as cur:
        cur.execute("SELECT 1")
    # the only connection of the pool: transaction() gets it back with autocommit off again
    with small_pool.transaction() as cur:
        assert cur.connection.autocommit is False
        cur.execute("CREATE TABLE t_back (id int)")
        cur.execute("INSERT INTO t_back VALUES (1)")
    with pytest.raises(RuntimeError), small_pool.transaction() as cur:
        cur.execute("INSERT INTO t_back VALUES (2)")
        raise RuntimeError("rolled back")
    assert _count(small_pool, "t_back") == 1


def test_autocommit_error_discards_the_connection_and_a_dead_server_is_a_store_error(small_pool):
    with pytest.raises(psycopg2.errors.UndefinedTable), small_pool.autocommit() as cur:
        cur.execute("SELECT * FROM no_such_table")
    with small_pool.autocommit() as cur:  # a fresh connection
        cur.execute("SELECT 1 AS ok")
        assert cur.fetchone()["ok"] == 1
        pid = cur.connection.get_backend_pid()
    other = Pool(dsn=small_pool.dsn, maxconn=1)  # the server ends the pooled idle connection
    try:
        with other.transaction() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        other.close()
    with pytest.raises(StoreError), small_pool.autocommit() as cur:
        cur.execute("SELECT 1")
