"""Directory XML documents rendered with jinja2 from templates/directory/*.xml.j2.

Autoescape is on and undefined names are errors (StrictUndefined). Characters XML 1.0 cannot carry
(control characters, lone surrogates) are dropped from every value before it is escaped, so any
name renders into a well-formed document. Documents are returned as UTF-8 bytes, ready to send.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import jinja2
from markupsafe import Markup

from fsd.paths import TEMPLATES

# The default dial-string of FreeSWITCH's vanilla directory: the user's registered contacts on any profile.
DIAL_STRING = ("{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
               "${sofia_contact(*/${dialed_user}@${dialed_domain})}")

_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _finalize(value):
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return _XML_INVALID.sub("", value)


def make_env(path: str | None = None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(path or os.path.join(TEMPLATES, "directory")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


class Renderer:
    """Renders the documents fsd answers mod_xml_curl with."""

    def __init__(self, *, user_context: str = "fsd-internal", toll_allow: str = "local,domestic,international",
                 cacheable_ms: int = 300_000, dial_string: str = DIAL_STRING,
                 gateways_domain: str = "gateways.fsd.invalid", templates_dir: str | None = None):
        self.env = make_env(templates_dir)
        self.common = {"user_context": user_context, "toll_allow": toll_allow, "cacheable_ms": int(cacheable_ms),
                       "dial_string": dial_string, "gateways_domain": gateways_domain}
        self._user = self.env.get_template("user.xml.j2")
        self._domain = self.env.get_template("domain.xml.j2")
        self._group = self.env.get_template("group.xml.j2")
        self._gateways = self.env.get_template("gateways.xml.j2")
        self.not_found: bytes = self.env.get_template("not_found.xml.j2").render().encode("utf-8")

    def user(self, user) -> bytes:
        """A domain with one user (fsd.store.directory_repo.DirectoryUser or anything with its attributes)."""
        return self._user.render(user=user, **self.common).encode("utf-8")

    def domain(self, domain) -> bytes:
        """A domain without users (network-list and plain domain lookups)."""
        return self._domain.render(domain=domain, **self.common).encode("utf-8")

    def group(self, group, group_name: str) -> bytes:
        """A department as a group named as FreeSWITCH asked for it (group_call)."""
        return self._group.render(group=group, group_name=group_name, **self.common).encode("utf-8")

    def gateways(self, domains: Iterable, gateways: Iterable) -> bytes:
        """sofia's purpose=gateways answer: every domain (no users), plus the trunk gateways if given."""
        return self._gateways.render(domains=list(domains), gateways=list(gateways), **self.common).encode("utf-8")
