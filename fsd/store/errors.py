"""Translate PostgreSQL integrity errors into fsd errors with messages that name the rule."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2
import psycopg2.errors

from fsd.errors import Conflict, NotFound, StoreError, ValidationError

# constraint name -> (error class, message, field)
_MESSAGES: dict[str, tuple[type, str, str | None]] = {
    "tenants_domain_key": (Conflict, "a company with this SIP domain already exists", "domain"),
    "extensions_pkey": (Conflict, "extension is already in use in this company", "extension"),
    "employees_tenant_id_login_key": (Conflict, "login is already in use in this company", "login"),
    "employees_tenant_id_extension_key": (Conflict, "extension is already in use in this company", "extension"),
    "employees_tariff": (ValidationError, "", "max_users"),
    "departments_tenant_id_name_key": (Conflict, "a department with this name already exists", "name"),
    "departments_tenant_id_extension_key": (Conflict, "extension is already in use in this company",
                                            "extension"),
    "numbers_did_key": (Conflict, "this number is already connected", "did"),
    "numbers_one_main": (Conflict, "the company already has a main number", "is_main"),
    "ivr_menus_tenant_id_name_key": (Conflict, "an IVR menu with this name already exists", "name"),
    "prompts_tenant_id_name_key": (Conflict, "a prompt with this name already exists", "name"),
    "department_members_pkey": (Conflict, "employee is listed twice in the department", "members"),
    "gateways_name_key": (Conflict, "a gateway with this name already exists", "name"),
}


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Run SQL; turn constraint violations into Conflict / ValidationError / NotFound."""
    try:
        yield
    except psycopg2.errors.UniqueViolation as e:
        name = e.diag.constraint_name or ""
        cls, msg, field = _MESSAGES.get(name, (Conflict, "duplicate value", None))
        err = cls(msg, field=field) if cls is ValidationError else cls(msg)
        err.field = field
        raise err from e
    except psycopg2.errors.ForeignKeyViolation as e:
        detail = (e.diag.message_detail or "").lower()
        if "is still referenced" in detail:
            table = (e.diag.table_name or "").rstrip("s") or "object"
            raise Conflict(f"it is still used by a {table}") from e
        raise NotFound("a referenced object does not exist") from e
    except psycopg2.errors.CheckViolation as e:
        name = e.diag.constraint_name or ""
        if name == "employees_tariff":
            raise ValidationError(e.diag.message_primary or "tariff limit reached", field="max_users") from e
        raise ValidationError(f"value breaks rule {name or 'check'}", field=None) from e
    except psycopg2.errors.NotNullViolation as e:
        raise ValidationError(f"{e.diag.column_name} is required", field=e.diag.column_name) from e
    except psycopg2.errors.InvalidTextRepresentation as e:
        raise ValidationError("malformed value") from e
    except psycopg2.errors.QueryCanceled as e:
        raise StoreError("database statement timed out") from e
