"""A small JSON-schema subset (the part our OpenAPI document uses) to check request bodies before
they reach the services, so a wrong type is a 400 with the field named, never a crash."""

from __future__ import annotations

from typing import Any

from fsd.errors import ValidationError

MAX_INT = 2**53


def string(max_length: int = 1000, **kw) -> dict:
    return {"type": "string", "maxLength": max_length, **kw}


def integer(lo: int | None = None, hi: int | None = None, **kw) -> dict:
    d: dict = {"type": "integer", **kw}
    if lo is not None:
        d["minimum"] = lo
    if hi is not None:
        d["maximum"] = hi
    return d


def ident(**kw) -> dict:
    return integer(1, MAX_INT, **kw)


def boolean(**kw) -> dict:
    return {"type": "boolean", **kw}


def enum(values, **kw) -> dict:
    return {"type": "string", "enum": list(values), **kw}


def nullable(sch: dict) -> dict:
    return {**sch, "nullable": True}


def array(items: dict, max_items: int = 1000) -> dict:
    return {"type": "array", "items": items, "maxItems": max_items}


def obj(props: dict, required=(), **kw) -> dict:
    d = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        d["required"] = list(required)
    d.update(kw)
    return d


def _where(path: str) -> str | None:
    return path.split(".")[0].split("[")[0] or None


def check(sch: dict, value: Any, path: str) -> None:
    name = path or "body"
    fld = _where(path)
    if value is None:
        if sch.get("nullable"):
            return
        raise ValidationError(f"{name} must not be null", field=fld)
    if "\x00" in str(value) if isinstance(value, str) else False:
        raise ValidationError(f"{name} must not contain NUL characters", field=fld)
    t = sch.get("type")
    if t == "object":
        if not isinstance(value, dict):
            raise ValidationError(f"{name} must be a JSON object", field=fld)
        props = sch.get("properties", {})
        for k in sch.get("required", ()):
            if k not in value:
                raise ValidationError(f"{k} is required", field=k if not path else fld)
        for k, v in value.items():
            if k not in props:
                if sch.get("additionalProperties", True) is False:
                    raise ValidationError(f"unknown field {k}"[:100], field=str(k)[:50] if not path else fld)
                continue
            check(props[k], v, f"{path}.{k}" if path else k)
    elif t == "array":
        if not isinstance(value, list):
            raise ValidationError(f"{name} must be a list", field=fld)
        if len(value) > sch.get("maxItems", 1000):
            raise ValidationError(f"{name} has too many items", field=fld)
        for i, v in enumerate(value):
            check(sch["items"], v, f"{path}[{i}]")
    elif t == "string":
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string", field=fld)
        if len(value) > sch.get("maxLength", 10000):
            raise ValidationError(f"{name} must be at most {sch.get('maxLength')} characters long", field=fld)
        if "enum" in sch and value not in sch["enum"]:
            raise ValidationError(f"{name} must be one of: {', '.join(sch['enum'])}", field=fld)
    elif t == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{name} must be a whole number", field=fld)
        lo, hi = sch.get("minimum", -MAX_INT), sch.get("maximum", MAX_INT)
        if not lo <= value <= hi:
            raise ValidationError(f"{name} must be from {lo} to {hi}", field=fld)
    elif t == "boolean":
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false", field=fld)
    elif t == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{name} must be a number", field=fld)


def coerce_query(sch: dict, raw: str, name: str) -> Any:
    """A query-string value converted by its schema (integers parsed, then checked)."""
    if sch.get("type") == "integer":
        text = raw.strip()
        if not text.lstrip("-").isdigit() or len(text) > 18:
            raise ValidationError(f"{name} must be a whole number", field=name)
        value: Any = int(text)
    elif sch.get("type") == "boolean":
        value = raw.strip().lower() in ("1", "true", "yes", "on")
    else:
        value = raw
    if value == "" and sch.get("type") == "string":
        return None
    check(sch, value, name)
    return value


def _field_schema(type_text: str) -> dict:
    t = str(type_text).replace(" ", "")
    nullable = t.endswith("|None") or t.startswith("None|")
    t = t.replace("|None", "").replace("None|", "")
    if t == "int":
        out: dict = {"type": "integer"}
    elif t == "bool":
        out = {"type": "boolean"}
    elif t in ("float", "Decimal"):
        out = {"type": "number"}
    elif t == "datetime":
        out = {"type": "string", "format": "date-time"}
    elif t == "date":
        out = {"type": "string", "format": "date"}
    elif t.startswith("dict"):
        out = {"type": "object"}
    elif t.startswith("tuple") or t.startswith("list"):
        out = {"type": "array", "items": {}}
    else:
        out = {"type": "string"}
    if nullable:
        out["nullable"] = True
    return out


def model(cls, *, drop=(), extra: dict | None = None, items: dict | None = None) -> dict:
    """The response schema of a store dataclass (as the API serialises it)."""
    import dataclasses

    props = {f.name: _field_schema(f.type) for f in dataclasses.fields(cls) if f.name not in drop}
    for name, sch in (items or {}).items():
        props[name] = {"type": "array", "items": sch}
    props.update(extra or {})
    return {"type": "object", "properties": props, "required": sorted(props)}


def list_of(sch: dict) -> dict:
    return {"type": "array", "items": sch}


def number(**kw) -> dict:
    return {"type": "number", **kw}
