"""Parsing of mod_xml_curl's form POSTs (pure).

FreeSWITCH 1.10 sends `hostname=..&section=..&tag_name=..&key_name=..&key_value=..` (these five are
NOT URL-encoded by mod_xml_curl), then every header of the request-params event, URL-encoded with
switch_url_encode ('+' is sent as %2B, so '+' is never a space), then the lookup's own fields
(action, key, user, domain, purpose, profile, group_name, ...). A field may repeat (group_call adds
`domain` twice); the first occurrence wins.

Only the fields the directory needs are decoded; the ~20 event headers are skipped unread. Anything
that is not such a form is a `BadRequest` (the HTTP layer answers 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from fsd.errors import ProtocolError

MAX_VALUE = 255  # longer user, domain, group or action values are refused

# lookup kinds
USER = "user"
GROUP = "group"
DOMAIN = "domain"
GATEWAYS = "gateways"
NETWORK_LIST = "network-list"
UNSUPPORTED = "unsupported"

# The metric label of a request (fsd.metrics.XMLCURL_ACTIONS).
KNOWN_ACTIONS = frozenset({"sip_auth", "user_call", "message-count", "voicemail-lookup", "reverse-auth-lookup",
                           "group_call"})

_WANTED = frozenset({"section", "tag_name", "key_name", "key_value", "action", "purpose", "profile", "key", "user",
                     "domain", "group_name", "group"})
# '&name=value' for the wanted names (the value runs to the next '&')
_FIELD = re.compile("&(" + "|".join(sorted(_WANTED, key=len, reverse=True)) + ")=([^&]*)")
_NOT_SEPARATORS = bytes(c for c in range(256) if c not in b"&=")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadRequest(ProtocolError):
    """The POST body is not a mod_xml_curl form."""


@dataclass(frozen=True, slots=True)
class DirectoryRequest:
    section: str
    kind: str
    action: str = ""
    purpose: str = ""
    profile: str = ""
    key: str = ""
    user: str = ""
    domain: str = ""
    group: str = ""

    @property
    def metric_action(self) -> str:
        if self.action in KNOWN_ACTIONS:
            return self.action
        if self.purpose == "gateways":
            return "gateways"
        return "other"


def _decode(name: str, value: str) -> str:
    if "%" in value:
        if _BAD_ESCAPE.search(value):
            raise BadRequest(f"field {name}: bad percent-escape")
        try:
            value = unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"field {name}: not UTF-8") from None
    if len(value) > MAX_VALUE:
        raise BadRequest(f"field {name}: longer than {MAX_VALUE} characters")
    if not value.isprintable() if value.isascii() else _CONTROL.search(value):  # ASCII: printable = no control
        raise BadRequest(f"field {name}: control characters")
    return value


def parse_form(body: bytes) -> dict[str, str]:
    """The fields the directory needs from an x-www-form-urlencoded body (first occurrence of each)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    if not text:
        raise BadRequest("empty body")
    # Every &-separated pair must be name=value with a non-empty name. Checked on the body's '&' and '='
    # alone ('&' and '=' are ASCII: never part of a UTF-8 sequence): a pair without '=' leaves an empty
    # run between two '&' (or at either end), a pair with an empty name starts with '='.
    marks = body.translate(None, _NOT_SEPARATORS)
    if not marks or marks[0] == 0x26 or marks[-1] == 0x26 or b"&&" in marks or body[0] == 0x3D or b"&=" in body:
        raise BadRequest("body is not a form (name=value pairs joined by &)")
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall("&" + text):
        if name not in fields:
            # the usual value (plain printable ASCII, short, no escape) is taken as it is
            plain = value.isascii() and value.isprintable() and "%" not in value and len(value) <= MAX_VALUE
            fields[name] = value if plain else _decode(name, value)
    return fields


# The last body parsed and its request, by identity: fsd.web.fastlane parses a request to see whether
# the directory can answer it at once, then hands the same bytes object to XmlCurlApp.respond, which
# parses it again. (A DirectoryRequest is immutable; the memo holds a reference, so `is` cannot be
# fooled by a reused address.)
_last: tuple[bytes, DirectoryRequest] | None = None


def parse(body: bytes) -> DirectoryRequest:
    """Classify a mod_xml_curl POST. Raises BadRequest when it is not one."""
    global _last
    last = _last
    if last is not None and last[0] is body:
        return last[1]
    req = _parse(body)
    _last = (body, req)
    return req


def _parse(body: bytes) -> DirectoryRequest:
    f = parse_form(body)
    section = f.get("section")
    if not section:
        raise BadRequest("no section")
    if section != "directory":
        return DirectoryRequest(section=section, kind=UNSUPPORTED)
    action = f.get("action", "")
    purpose = f.get("purpose", "")
    # The domain: the lookup's own field, else the domain tag FreeSWITCH is locating.
    domain = f.get("domain", "")
    if not domain and f.get("tag_name") == "domain" and f.get("key_name") == "name":
        domain = f.get("key_value", "")
    domain = domain.lower()
    common = {"section": section, "action": action, "purpose": purpose, "profile": f.get("profile", ""),
              "key": f.get("key", ""), "domain": domain}
    if purpose == "gateways":
        return DirectoryRequest(kind=GATEWAYS, **common)
    if purpose == "network-list":
        return DirectoryRequest(kind=NETWORK_LIST if domain else UNSUPPORTED, **common)
    if action == "group_call":
        group = f.get("group_name") or f.get("group", "")
        return DirectoryRequest(kind=GROUP if group and domain else UNSUPPORTED, group=group, **common)
    user = f.get("user", "")
    if user:
        return DirectoryRequest(kind=USER if domain else UNSUPPORTED, user=user.lower(), **common)
    if domain:
        return DirectoryRequest(kind=DOMAIN, **common)
    return DirectoryRequest(kind=UNSUPPORTED, **common)
