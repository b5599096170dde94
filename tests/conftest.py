"""Test-wide fixtures. gevent and psycopg2 are patched before anything else is imported."""

from gevent import monkey

monkey.patch_all()

import psycogreen.gevent  # noqa: E402

psycogreen.gevent.patch_psycopg()

import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

from tests.helpers import free_port, wait_for  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    """argon2 with cheap parameters in-process (hashes stay valid argon2id; only slower to crack)."""
    from fsd.domain import rules

    rules.configure_password_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    rules.configure_password_hasher()


@pytest.fixture(scope="session")
def pg_cluster():
    """A private PostgreSQL cluster for the whole test session, removed afterwards."""
    from fsd.store.cluster import PgCluster

    base = tempfile.mkdtemp(prefix="fsd-pg-")
    cluster = PgCluster(datadir=os.path.join(base, "pg"), port=free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_cluster):
    """A migrated template database; every test database is a cheap copy of it."""
    import psycopg2

    from fsd.store.migrate import migrate

    name = "fsd_template"
    conn = psycopg2.connect(pg_cluster.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    migrate(dsn=pg_cluster.dsn(name))
    return name


@pytest.fixture
def db_dsn(pg_cluster, pg_template):
    """A fresh, migrated database for one test (no order dependence)."""
    import psycopg2

    name = "t_" + uuid.uuid4().hex[:16]
    conn = psycopg2.connect(pg_cluster.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    conn.close()
    yield pg_cluster.dsn(name)
    conn = psycopg2.connect(pg_cluster.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture
def pool(db_dsn):
    from fsd.store.pool import Pool

    p = Pool(dsn=db_dsn, minconn=1, maxconn=8, statement_timeout_ms=5000)
    yield p
    p.close()
