"""The reservations table after the hot-path schema change (migration 0002): rows found by node without an
index on it, and an employee's reservations deleted with the employee (or its tenant) by the foreign key's
ON DELETE CASCADE."""

from __future__ import annotations

from fsd.store import calls_repo, recovery_repo
from tests.faults.support import Company


def _reserve(pool, emp: int, call: str, node: str) -> None:
    with pool.autocommit() as cur:
        assert calls_repo.reserve(cur, [emp], call_uuid=call, node=node, ttl_s=900) == {emp}


def _held(pool) -> dict[int, str]:
    with pool.transaction() as cur:
        return calls_repo.reserved_members(cur)


def test_deleting_an_employee_deletes_only_their_reservations(pool):
    co = Company(pool)
    a, b = co.employee("Anna", "201").id, co.employee("Boris", "202").id
    _reserve(pool, a, "call-a", "n1")
    _reserve(pool, b, "call-b", "n1")
    with pool.transaction() as cur:
        cur.execute("DELETE FROM employees WHERE id = %s", (a,))
    assert _held(pool) == {b: "call-b"}


def test_deleting_a_tenant_deletes_its_members_reservations(pool):
    gone, kept = Company(pool), Company(pool)
    a = gone.employee("Anna", "201").id
    b = kept.employee("Boris", "201").id
    _reserve(pool, a, "call-a", "n1")
    _reserve(pool, b, "call-b", "n2")
    with pool.transaction() as cur:
        cur.execute("DELETE FROM tenants WHERE id = %s", (gone.tid,))
    assert _held(pool) == {b: "call-b"}


def test_a_rolled_back_employee_delete_keeps_the_reservation(pool):
    co = Company(pool)
    a = co.employee("Anna", "201").id
    _reserve(pool, a, "call-a", "n1")
    try:
        with pool.transaction() as cur:
            cur.execute("DELETE FROM employees WHERE id = %s", (a,))
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    assert _held(pool) == {a: "call-a"}


def test_reservations_are_found_by_node(pool):
    co = Company(pool)
    ids = [co.employee(f"Member {i}", str(301 + i)).id for i in range(4)]
    for i, e in enumerate(ids):
        _reserve(pool, e, f"call-{i}", "n1" if i % 2 else "n2")
    with pool.transaction() as cur:
        assert [r["employee_id"] for r in recovery_repo.reservations_of(cur, ["n1"])] == [ids[1], ids[3]]
        assert calls_repo.release_node(cur, "n2") == 2
    assert _held(pool) == {ids[1]: "call-1", ids[3]: "call-3"}
