"""mod_xml_curl client side of the emulator: directory lookups over HTTP POST.

Hook points used by Switch:
  XmlCurlDirectory.check_register(phone, password) -> bool   (REGISTER digest, action=sip_auth)
  XmlCurlDirectory.lookup_user(user, domain, action="user_call") -> Phone | None
  XmlCurlDirectory.flush(arg) -> int                           (api xml_flush_cache)

Requests carry the same form fields FreeSWITCH 1.10 sends (see xmlcurl/*.request.http): hostname,
section, tag_name, key_name, key_value, the REQUEST_PARAMS event headers, then the lookup's own fields.
The answer's a1-hash (or password) is used to verify the digest the simulated phone computes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import urllib.request
import uuid as uuidlib
import xml.etree.ElementTree as ET

from fsd.sim.wire import url_encode

log = logging.getLogger(__name__)


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8")).hexdigest()  # noqa: S324 - SIP digest is MD5 by definition


CALLING = {
    "sip_auth": ("sofia_reg.c", "sofia_reg_parse_auth", "3124"),
    "user_call": ("mod_dptools.c", "user_outgoing_channel", "4366"),
    None: ("switch_xml.c", "switch_xml_locate_user", "2220"),
}


_CONTACT_RE = re.compile(r"sofia_contact\((?:[^/)]*/)?([^@)]+)@")


class DirectoryUser:
    def __init__(
        self,
        *,
        user,
        domain,
        a1_hash=None,
        password=None,
        params=None,
        variables=None,
        cacheable=0,
        number_alias=None,
        domain_variables=None,
    ):
        self.user = user
        self.domain = domain
        self.a1_hash = a1_hash
        self.password = password
        self.params = params or {}
        self.variables = variables or {}
        self.cacheable = cacheable
        self.number_alias = number_alias
        self.domain_variables = domain_variables or {}


def parse_directory(xml_text: str, user: str, domain: str) -> DirectoryUser | None:
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - the directory server is fsd itself
    except ET.ParseError:
        return None
    for sec in root.iter("section"):
        if sec.get("name") == "result":
            return None
    for dom in root.iter("domain"):
        dname = dom.get("name", domain)
        for u in dom.iter("user"):
            if u.get("id") != user and u.get("number-alias") != user:
                continue
            params = {}
            variables = {}
            domain_vars = {}
            dvars = dom.find("variables")
            if dvars is not None:
                for v in dvars.iter("variable"):
                    domain_vars[v.get("name")] = v.get("value", "")
            for p in u.iter("param"):
                params[p.get("name")] = p.get("value", "")
            for v in u.iter("variable"):
                variables[v.get("name")] = v.get("value", "")
            cacheable = u.get("cacheable") or dom.get("cacheable") or "0"
            try:
                cache_ms = int(cacheable) if cacheable not in ("true",) else -1
            except ValueError:
                cache_ms = 0
            return DirectoryUser(
                user=u.get("id"),
                domain=dname,
                a1_hash=params.get("a1-hash"),
                password=params.get("password"),
                params=params,
                variables=variables,
                cacheable=cache_ms,
                number_alias=u.get("number-alias"),
                domain_variables=domain_vars,
            )
    return None


class XmlCurlDirectory:
    def __init__(self, *, switch, url: str, credentials: tuple[str, str] | None = None, timeout: float = 2.0):
        self.switch = switch
        self.url = url
        self.credentials = credentials
        self.timeout = timeout
        self.cache: dict[str, tuple[DirectoryUser, float]] = {}
        self.requests: list[dict] = []

    # ------------------------------------------------------------------ HTTP
    def _body(self, *, section, tag_name, key_name, key_value, calling, params) -> str:
        ev = self.switch.new_event("REQUEST_PARAMS", calling=calling)
        fields = [
            ("hostname", self.switch.hostname),
            ("section", section),
            ("tag_name", tag_name),
            ("key_name", key_name),
            ("key_value", key_value),
        ]
        fields += ev.headers + list(params)
        return "&".join(f"{k}={url_encode(v)}" for k, v in fields)

    def request(self, *, section="directory", tag_name="", key_name="", key_value="", calling=None, params=()):
        body = self._body(
            section=section,
            tag_name=tag_name,
            key_name=key_name,
            key_value=key_value,
            calling=calling or ("sofia_reg.c", "sofia_reg_parse_auth", "3124"),
            params=params,
        )
        self.requests.append({"section": section, "params": dict(params), "body": body})
        req = urllib.request.Request(self.url, data=body.encode("utf-8"), method="POST")  # noqa: S310
        req.add_header("User-Agent", "freeswitch-xml/1.0")
        req.add_header("Accept", "*/*")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if self.credentials:
            token = base64.b64encode(f"{self.credentials[0]}:{self.credentials[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return resp.read().decode("utf-8", "replace")
        except OSError as e:
            log.warning("sim_xmlcurl_failed url=%s error=%s", self.url, e)
            return None

    # ------------------------------------------------------------------ lookups
    def _cached(self, user, domain):
        hit = self.cache.get(f"{user}@{domain}")
        if hit is None:
            return None
        entry, expires = hit
        if expires >= 0 and self.switch.clock.now() > expires:
            self.cache.pop(f"{user}@{domain}", None)
            return None
        return entry

    def _store(self, entry: DirectoryUser, user: str, domain: str) -> None:
        # FreeSWITCH caches under the name it was asked for (switch_xml_user_cache: key+user_name+domain_name),
        # so a user looked up by login and by number-alias has two entries, each flushed on its own.
        if entry.cacheable:
            expires = -1 if entry.cacheable < 0 else self.switch.clock.now() + entry.cacheable / 1000.0
            self.cache[f"{user}@{domain}"] = (entry, expires)

    def fetch_user(self, user: str, domain: str, action: str | None, extra=()) -> DirectoryUser | None:
        cached = self._cached(user, domain)
        if cached is not None:
            return cached
        params = []
        if action == "user_call":
            params.append(("as_channel", "true"))
        if action:
            params.append(("action", action))
        params += list(extra) + [("key", "id"), ("user", user), ("domain", domain)]
        calling = CALLING.get(action, CALLING[None])
        if action == "sip_auth":
            params.append(("ip", "127.0.0.1"))
        text = self.request(tag_name="domain", key_name="name", key_value=domain, params=params, calling=calling)
        if text is None:
            return None
        entry = parse_directory(text, user, domain)
        if entry is not None:
            self._store(entry, user, domain)
        return entry

    def check_register(self, phone, password: str) -> bool:
        nonce = str(uuidlib.uuid4())
        cnonce = uuidlib.uuid4().hex[:8]
        uri = f"sip:{phone.domain}:5060"
        ha1 = _md5(f"{phone.user}:{phone.domain}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        extra = [
            ("sip_profile", "internal"),
            ("sip_user_agent", phone.user_agent),
            ("sip_auth_username", phone.user),
            ("sip_auth_realm", phone.domain),
            ("sip_auth_nonce", nonce),
            ("sip_auth_uri", uri),
            ("sip_contact_user", phone.user),
            ("sip_contact_host", "127.0.0.1"),
            ("sip_to_user", phone.user),
            ("sip_to_host", phone.domain),
            ("sip_via_protocol", "udp"),
            ("sip_from_user", phone.user),
            ("sip_from_host", phone.domain),
            ("sip_call_id", phone.call_id or ""),
            ("sip_request_host", phone.domain),
            ("sip_auth_qop", "auth"),
            ("sip_auth_cnonce", cnonce),
            ("sip_auth_nc", "00000001"),
            ("sip_auth_response", response),
            ("sip_auth_method", "REGISTER"),
            ("client_port", str(phone.port or 5060)),
        ]
        entry = self.fetch_user(phone.user, phone.domain, "sip_auth", extra=extra[:])
        if entry is None:
            return False
        a1 = entry.a1_hash or (_md5(f"{phone.user}:{phone.domain}:{entry.password}") if entry.password else None)
        if a1 is None:
            return False
        expected = _md5(f"{a1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        if expected == response:
            phone.variables.update(entry.domain_variables)
            phone.variables.update(entry.variables)
            if entry.number_alias:
                phone.number_alias = entry.number_alias
            return True
        return False

    def lookup_user(self, user: str, domain: str, *, action: str | None = "user_call"):
        """A user/ dial or user_exists for a user that is not a local Phone: ask the directory.
        Returns a Phone (unregistered, so user/ dials give USER_NOT_REGISTERED) or None."""
        from fsd.sim.endpoints import Phone

        entry = self.fetch_user(user, domain, action)
        if entry is None:
            return None
        # FreeSWITCH dials the user's (or domain's) dial-string with dialed_user = the name dialled; a
        # dial-string naming the contact explicitly (user/EXT reaching the phone registered as LOGIN)
        # is followed to that registration, as sofia_contact() would
        m = _CONTACT_RE.search(entry.params.get("dial-string", ""))
        if m:
            contact = m.group(1).replace("${dialed_user}", user)
            registered = self.switch.phones.get(f"{contact}@{domain}")
            if contact != user and registered is not None:
                return registered
        phone = Phone(
            user, domain, entry.password or "", register=False, variables={**entry.domain_variables, **entry.variables}
        )
        phone.number_alias = entry.number_alias
        self.switch.phones.setdefault(phone.key, phone)
        return self.switch.phones[phone.key]

    def flush(self, arg: str) -> int:
        parts = arg.split()
        if len(parts) >= 3:
            key = f"{parts[1]}@{parts[2]}"
            return 1 if self.cache.pop(key, None) is not None else 0
        n = len(self.cache)
        self.cache.clear()
        return n
