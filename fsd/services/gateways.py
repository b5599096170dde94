"""Trunk gateways of the external SIP profile: the operator's, not a company's.

FreeSWITCH reads them from the directory (mod_xml_curl, purpose=gateways) when the profile starts or is
rescanned; every change is NOTIFYed (entity "gateway") so the composition root can tell each connected switch
to drop the old definition (`sofia profile <p> killgw <name>`) and load the new one (`sofia profile <p> rescan`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from fsd.errors import ValidationError
from fsd.services.base import Actor, Service
from fsd.store import repos
from fsd.store.models import Gateway

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_CRED = re.compile(r"^[\x21-\x7e]{0,128}\Z")  # printable ASCII, no spaces: SIP digest credentials
_FIELDS = ("proxy", "username", "password", "register", "caller_id_in_from", "enabled")


def validate_proxy(value: str) -> str:
    """host[:port] where host is a DNS name, an IPv4 address or a bracketed IPv6 address."""
    v = (value or "").strip()
    if not v:
        raise ValidationError("proxy: required (host or host:port)")
    host, port = v, None
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            raise ValidationError("proxy: an IPv6 address must be written as [address] or [address]:port")
        host, rest = v[1:end], v[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValidationError(f"proxy: {host!r} is not an IPv6 address") from None
        if rest:
            if not rest.startswith(":"):
                raise ValidationError("proxy: expected :port after the IPv6 address")
            port = rest[1:]
    else:
        if v.count(":") == 1:
            host, port = v.split(":")
        elif ":" in v:
            raise ValidationError("proxy: an IPv6 address must be written as [address] or [address]:port")
        if len(host) > 253 or not all(_LABEL.match(label) for label in host.rstrip(".").split(".")):
            raise ValidationError(f"proxy: {host!r} is not a host name or an IP address")
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValidationError(f"proxy: port {port!r} must be a number from 1 to 65535")
    return v


def _check(values: dict[str, Any], *, current: Gateway | None) -> dict[str, Any]:
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ValidationError(f"unknown gateway field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for k, v in values.items():
        if v is None:
            continue
        if k == "proxy":
            out[k] = validate_proxy(str(v))
        elif k in ("username", "password"):
            if not _CRED.match(str(v)):
                raise ValidationError(f"{k}: printable characters without spaces, at most 128")
            out[k] = str(v)
        else:
            if not isinstance(v, bool):
                raise ValidationError(f"{k}: must be true or false")
            out[k] = v
    merged = {k: getattr(current, k) for k in _FIELDS} if current is not None else {}
    merged.update(out)
    if merged.get("register") and not (merged.get("username") and merged.get("password")):
        raise ValidationError("register: a registering gateway needs a username and a password")
    return out


class GatewayService(Service):
    """Operator-only CRUD of trunk gateways (the cabinet never shows them)."""

    def list(self, actor: Actor) -> list[Gateway]:
        actor.require_operator()
        with self.pool.transaction() as cur:
            return repos.gateway_list(cur, enabled_only=False)

    def get(self, actor: Actor, name: str) -> Gateway:
        actor.require_operator()
        with self.pool.transaction() as cur:
            return repos.gateway_get(cur, name)

    def create(self, actor: Actor, *, name: str, proxy: str, **values) -> Gateway:
        actor.require_operator()
        if not _NAME.match(name or ""):
            raise ValidationError("name: 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        vals = _check({"proxy": proxy, **values}, current=None)
        with self.change(actor, tenant_id=None, action="create", entity="gateway",
                         notify={"name": name}) as ch:
            gw = repos.gateway_insert(ch.cur, name=name, **vals)
            ch.entity_id = name
            ch.details = _audit(vals)
        return gw

    def update(self, actor: Actor, name: str, **values) -> Gateway:
        actor.require_operator()
        with self.change(actor, tenant_id=None, action="update", entity="gateway",
                         notify={"name": name}) as ch:
            current = repos.gateway_get(ch.cur, name, for_update=True)
            vals = _check(values, current=current)
            gw = repos.gateway_update(ch.cur, name, **vals) if vals else current
            ch.entity_id = name
            ch.details = _audit(vals)
        return gw

    def delete(self, actor: Actor, name: str) -> None:
        actor.require_operator()
        with self.change(actor, tenant_id=None, action="delete", entity="gateway",
                         notify={"name": name}) as ch:
            repos.gateway_delete(ch.cur, name)
            ch.entity_id = name


def _audit(vals: dict[str, Any]) -> dict[str, Any]:
    """What changed, without the secret."""
    return {k: ("***" if k == "password" else v) for k, v in vals.items()}
