"""Static checks of fsd's FreeSWITCH configuration (freeswitch-conf/).

Pure module: stdlib only (xml.etree, glob, ipaddress), plus fsd.errors. `check(conf_dir, expected)` returns a
list of problems (empty when the configuration is fine); scripts/check-freeswitch-conf prints them.

The configuration is read the way FreeSWITCH 1.10 reads it (src/switch_xml.c, `preprocess`):
  * line by line; `$${var}` is expanded on every line first (an unset variable becomes empty);
  * a line containing `<include>`, `</include>` or `<?` is dropped whole;
  * a line containing `<X-PRE-PROCESS cmd=... data=.../>` is replaced by the directive's effect (`set` a
    variable, `include` a glob relative to the including file's folder); the rest of that line is dropped.
    Directives run even inside ordinary XML comments, as in FreeSWITCH;
  * the result, starting at freeswitch.xml, is one XML document.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

#: Values fsd expects; check() merges the caller's `expected` over these. They match freeswitch-conf/vars.xml.
DEFAULT_EXPECTED: dict = {
    "fsd_host": "127.0.0.1",
    "outbound_port": 8084,
    "http_port": 8080,
    "esl_port": 8021,
    "esl_password": "ClueCon",
    "xmlcurl_user": "freeswitch",
    "xmlcurl_password": "change-me-xmlcurl",
}

#: Modules fsd relies on; mod_xml_curl must also come before mod_sofia.
REQUIRED_MODULES = (
    "mod_console",
    "mod_logfile",
    "mod_xml_curl",
    "mod_event_socket",
    "mod_sofia",
    "mod_loopback",
    "mod_commands",
    "mod_dptools",
    "mod_db",
    "mod_hash",
    "mod_dialplan_xml",
    "mod_sndfile",
    "mod_native_file",
    "mod_tone_stream",
)

#: The dialplan contexts the SIP profiles send calls to.
REQUIRED_CONTEXTS = ("fsd-public", "fsd-internal")

#: Global variables FreeSWITCH's core sets before reading the configuration (values are stand-ins).
CORE_VARIABLES = {
    "hostname": "localhost",
    "switch_serial": "0",
    "local_ip_v4": "127.0.0.1",
    "local_mask_v4": "255.0.0.0",
    "local_ip_v6": "::1",
    "base_dir": "/usr",
    "conf_dir": "/etc/freeswitch",
    "log_dir": "/var/log/freeswitch",
    "run_dir": "/var/run/freeswitch",
    "db_dir": "/var/lib/freeswitch/db",
    "mod_dir": "/usr/lib/freeswitch/mod",
    "htdocs_dir": "/usr/share/freeswitch/htdocs",
    "script_dir": "/usr/share/freeswitch/scripts",
    "temp_dir": "/tmp",  # noqa: S108 (a stand-in value, nothing is written there)
    "grammar_dir": "/usr/share/freeswitch/grammar",
    "fonts_dir": "/usr/share/freeswitch/fonts",
    "images_dir": "/var/lib/freeswitch/images",
    "certs_dir": "/etc/freeswitch/tls",
    "storage_dir": "/var/lib/freeswitch/storage",
    "cache_dir": "/var/cache/freeswitch",
    "recordings_dir": "/var/lib/freeswitch/recordings",
    "sounds_dir": "/usr/share/freeswitch/sounds",
    "core_uuid": "00000000-0000-0000-0000-000000000000",
    "zrtp_enabled": "false",
    "nat_public_addr": "127.0.0.1",
    "nat_private_addr": "127.0.0.1",
    "nat_type": "",
}

_TRUE = {"yes", "on", "true", "t", "enabled", "enable", "allow", "active"}
_VAR_RE = re.compile(r"\$\$\{")
_CMD_RE = re.compile(r'cmd[^"]*?=[^"]*?"([^"]*)"(.*)', re.IGNORECASE | re.DOTALL)
_DATA_RE = re.compile(r'data[^"]*?=[^"]*?"([^"]*)"', re.IGNORECASE | re.DOTALL)


def switch_true(value: str | None) -> bool:
    """FreeSWITCH's switch_true(): yes/on/true/t/enabled/enable/allow/active, or a non-zero number."""
    if value is None:
        return False
    v = value.strip().lower()
    if v in _TRUE:
        return True
    try:
        return int(v) != 0
    except ValueError:
        return False


@dataclass
class Preprocessed:
    """The expanded document, the variables set while expanding it, and what went wrong on the way."""

    lines: list[str] = field(default_factory=list)
    origins: list[tuple[str, int]] = field(default_factory=list)  # (file relative to conf_dir, line number)
    variables: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _expand(line: str, variables: dict[str, str], where: str, problems: list[str]) -> str:
    """$${name} -> value; unset -> empty (with a problem). Braces nest, as switch_find_end_paren does."""
    out = []
    i = 0
    while True:
        m = _VAR_RE.search(line, i)
        if not m:
            out.append(line[i:])
            return "".join(out)
        out.append(line[i : m.start()])
        depth, j = 1, m.end()
        while j < len(line) and depth:
            if line[j] == "{":
                depth += 1
            elif line[j] == "}":
                depth -= 1
            j += 1
        if depth:
            problems.append(f"{where}: unterminated $${{var}}")
            out.append(line[m.start() :])
            return "".join(out)
        name = line[m.end() : j - 1]
        if name in variables:
            out.append(variables[name])
        else:
            problems.append(f"{where}: $${{{name}}} is not set (FreeSWITCH would use an empty value)")
        i = j


def preprocess(
    conf_dir: str | Path, *, root_file: str = "freeswitch.xml", variables: dict | None = None
) -> Preprocessed:
    """Expand `root_file` under `conf_dir` as FreeSWITCH's pre-processor does."""
    conf_dir = Path(conf_dir)
    result = Preprocessed(variables=dict(CORE_VARIABLES if variables is None else variables))
    result.variables.setdefault("conf_dir", str(conf_dir))
    _preprocess_file(conf_dir, conf_dir / root_file, result, 0)
    return result


def _rel(conf_dir: Path, path: Path) -> str:
    try:
        return str(path.relative_to(conf_dir))
    except ValueError:
        return str(path)


def _preprocess_file(conf_dir: Path, path: Path, result: Preprocessed, depth: int) -> None:
    rel = _rel(conf_dir, path)
    if depth > 100:
        result.problems.append(f"{rel}: include nesting deeper than 100 (FreeSWITCH stops there)")
        return
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        result.problems.append(f"{rel}: cannot be read: {exc.strerror or exc}")
        return
    in_hash_comment = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        where = f"{rel}:{lineno}"
        line = _expand(raw, result.variables, where, result.problems)
        if "<include>" in line or "</include>" in line or "<?" in line:
            continue
        if in_hash_comment:
            end = line.find("-->")
            if end < 0:
                continue
            in_hash_comment = False
            line = line[end + 3 :]
        idx = line.lower().find("x-pre-process")
        if idx >= 0:
            if idx == 0 or line[idx - 1] != "<":
                continue  # FreeSWITCH drops such a line
            _directive(conf_dir, path, line[idx:], where, result, depth)
            continue
        hc = line.find("<!--#")
        if hc >= 0:
            end = line.find("-->", hc)
            if end < 0:
                in_hash_comment = True
                line = line[:hc]
            else:
                line = line[:hc] + line[end + 3 :]
            result.problems.append(f"{where}: <!--# pre-processor comments are not supported by this check")
        result.lines.append(line)
        result.origins.append((rel, lineno))


def _directive(conf_dir: Path, path: Path, tag: str, where: str, result: Preprocessed, depth: int) -> None:
    m = _CMD_RE.search(tag)
    if not m:
        return
    cmd, rest = m.group(1), m.group(2)
    d = _DATA_RE.search(rest)
    if not d:
        return
    data = d.group(1)
    cmd_l = cmd.lower()
    if cmd_l == "set":
        name, sep, value = data.partition("=")
        if sep:
            result.variables[name.rstrip(" ")] = value.lstrip(" ")
    elif cmd_l == "include":
        pattern = data if os.path.isabs(data) else str(path.parent / data)
        matches = sorted(glob.glob(pattern))
        if not matches:
            result.problems.append(f"{where}: include {data!r} matches no file")
        for match in matches:
            _preprocess_file(conf_dir, Path(match), result, depth + 1)
    else:
        result.problems.append(f"{where}: pre-processor command {cmd!r} is not supported by this check")


# -- helpers over the parsed document -------------------------------------------------------------------


def _params(elem: ET.Element | None) -> list[tuple[str, str]]:
    if elem is None:
        return []
    return [(p.get("name", ""), p.get("value", "")) for p in elem.findall("param")]


def _param(elem: ET.Element | None, name: str) -> str | None:
    value = None
    for n, v in _params(elem):
        if n.lower() == name.lower():
            value = v  # the last one wins, as FreeSWITCH's loops overwrite
    return value


def _configuration(doc: ET.Element, name: str) -> ET.Element | None:
    for section in doc.findall("section"):
        if section.get("name") == "configuration":
            for conf in section.findall("configuration"):
                if conf.get("name") == name:
                    return conf
    return None


def _section(doc: ET.Element, name: str) -> ET.Element | None:
    for section in doc.findall("section"):
        if section.get("name") == name:
            return section
    return None


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_only_cidr(cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return net.network_address.is_loopback and net.broadcast_address.is_loopback


# -- the rules --------------------------------------------------------------------------------------------


def _check_files(conf_dir: Path) -> list[str]:
    problems = []
    for path in sorted(conf_dir.rglob("*.xml")):
        try:
            ET.parse(path)  # noqa: S314 (the operator's own config files; expat, no external entities)
        except ET.ParseError as exc:
            problems.append(f"{_rel(conf_dir, path)}: not well-formed XML: {exc}")
    return problems


def _check_modules(doc: ET.Element) -> list[str]:
    conf = _configuration(doc, "modules.conf")
    if conf is None:
        return ["modules.conf: missing (autoload_configs/modules.conf.xml)"]
    loaded = [m.get("module", "") for m in conf.iter("load")]
    problems = [f"modules.conf: required module {m} is not loaded" for m in REQUIRED_MODULES if m not in loaded]
    if "mod_xml_curl" in loaded and "mod_sofia" in loaded:
        if loaded.index("mod_xml_curl") > loaded.index("mod_sofia"):
            problems.append(
                "modules.conf: mod_xml_curl must be loaded before mod_sofia "
                "(otherwise sofia's start-up gateway lookups never reach fsd)"
            )
    return problems


def _check_xml_curl(doc: ET.Element, exp: dict) -> list[str]:
    conf = _configuration(doc, "xml_curl.conf")
    if conf is None:
        return ["xml_curl.conf: missing (autoload_configs/xml_curl.conf.xml)"]
    binding = None
    url = None
    for b in conf.iter("binding"):
        for p in b.findall("param"):
            if p.get("name") == "gateway-url":
                sections = [s.strip() for s in (p.get("bindings") or "").split("|") if s.strip()]
                if not sections or "directory" in sections:  # no bindings attribute means all sections
                    binding, url = b, p.get("value", "")
    if binding is None:
        return ["xml_curl.conf: no binding serves the directory section"]
    problems = []
    want_url = f"http://{exp['fsd_host']}:{exp['http_port']}/freeswitch/directory"
    if url != want_url:
        problems.append(f"xml_curl.conf: directory gateway-url is {url!r}, expected {want_url!r}")
    timeout = _param(binding, "timeout")
    if timeout is None or not timeout.strip():
        problems.append("xml_curl.conf: directory binding has no timeout (mod_xml_curl's default is none)")
    else:
        try:
            seconds = int(timeout)
        except ValueError:
            seconds = -1
        if seconds <= 0:
            problems.append(
                f"xml_curl.conf: directory binding timeout {timeout!r} is not a positive number of seconds "
                "(0 means no timeout)"
            )
    creds = _param(binding, "gateway-credentials")
    if not creds:
        problems.append("xml_curl.conf: directory binding has no gateway-credentials")
    elif creds != f"{exp['xmlcurl_user']}:{exp['xmlcurl_password']}":
        user = creds.partition(":")[0]
        problems.append(
            f"xml_curl.conf: gateway-credentials (user {user!r}) do not match fsd's xml_curl user and password"
        )
    return problems


def _acl_lists(doc: ET.Element) -> dict[str, ET.Element]:
    conf = _configuration(doc, "acl.conf")
    if conf is None:
        return {}
    return {lst.get("name", ""): lst for lst in conf.iter("list")}


def _acl_loopback_only(name: str, lists: dict[str, ET.Element]) -> str | None:
    """None if ACL `name` allows only loopback addresses, else why not."""
    if name == "loopback.auto":
        return None
    if name not in lists:
        return f"apply-inbound-acl {name!r} is not defined in acl.conf"
    lst = lists[name]
    if (lst.get("default") or "").lower() != "deny":
        return f"apply-inbound-acl {name!r} allows non-loopback addresses (default is not deny)"
    for node in lst.findall("node"):
        if (node.get("type") or "").lower() != "allow":
            continue
        if node.get("domain") or not _loopback_only_cidr(node.get("cidr", "")):
            what = node.get("cidr") or node.get("domain") or "?"
            return f"apply-inbound-acl {name!r} allows non-loopback addresses ({what})"
    return None


def _check_event_socket(doc: ET.Element, exp: dict) -> list[str]:
    conf = _configuration(doc, "event_socket.conf")
    if conf is None:
        return ["event_socket.conf: missing (autoload_configs/event_socket.conf.xml)"]
    settings = conf.find("settings")
    problems = []
    ip = _param(settings, "listen-ip")
    if not ip or not _is_loopback(ip):
        problems.append(f"event_socket.conf: listen-ip {ip!r} is not a loopback address")
    port = _param(settings, "listen-port")
    if port != str(exp["esl_port"]):
        problems.append(f"event_socket.conf: listen-port is {port!r}, expected {exp['esl_port']}")
    if _param(settings, "password") != exp["esl_password"]:
        problems.append("event_socket.conf: password does not match fsd's ESL password")
    acls = [v for n, v in _params(settings) if n.lower() == "apply-inbound-acl" and v]
    if not acls:
        problems.append("event_socket.conf: no apply-inbound-acl (loopback.auto expected)")
    lists = _acl_lists(doc)
    for acl in acls:
        why = _acl_loopback_only(acl, lists)
        if why:
            problems.append(f"event_socket.conf: {why}")
    return problems


_SET_APPS = ("set", "export")


def _socket_resume_before(conditions: list[ET.Element], ci: int, ai: int) -> str | None:
    """The socket_resume value the dialplan sets before the socket action (conditions[ci], action ai):
    the last `set`/`export socket_resume=...` among the actions of the earlier conditions of the extension
    and the earlier actions of the same condition; None if none sets it."""
    before = [a for c in conditions[:ci] for a in c.findall("action")] + conditions[ci].findall("action")[:ai]
    value = None
    for act in before:
        if act.get("application") not in _SET_APPS:
            continue
        name, sep, val = (act.get("data") or "").partition("=")
        if sep and name.strip().removeprefix("nolocal:") == "socket_resume":
            value = val.strip()
    return value


def _check_dialplan(doc: ET.Element, exp: dict, variables: dict | None = None) -> list[str]:
    section = _section(doc, "dialplan")
    contexts = {c.get("name"): c for c in section.findall("context")} if section is not None else {}
    want = f"{exp['fsd_host']}:{exp['outbound_port']} async full"
    problems = []
    for name in REQUIRED_CONTEXTS:
        ctx = contexts.get(name)
        if ctx is None:
            problems.append(f"dialplan: context {name} is missing")
            continue
        sockets = 0
        for ext in ctx.findall("extension"):
            conditions = ext.findall("condition")
            for ci, cond in enumerate(conditions):
                actions = cond.findall("action")
                for ai, act in enumerate(actions):
                    if act.get("application") != "socket":
                        continue
                    sockets += 1
                    data = " ".join((act.get("data") or "").split())
                    if data != want:
                        problems.append(f"dialplan context {name}: socket data is {data!r}, expected {want!r}")
                    after = actions[ai + 1 :] + [
                        a for c in conditions[ci + 1 :] for a in c if a.tag in ("action", "anti-action")
                    ]
                    if not after:
                        problems.append(f"dialplan context {name}: no fallback after the socket action")
                    resume = _socket_resume_before(conditions, ci, ai)
                    if resume is None:
                        # a channel without the variable reads the global one (switch_channel_get_variable)
                        resume = (variables or {}).get("socket_resume")
                    if not switch_true(resume):
                        problems.append(
                            f"dialplan context {name}: socket_resume=true is not set before the socket action "
                            "(when fsd dies, callers in a ring-back, a prompt or a bridge application would "
                            "never reach the fallback)"
                        )
        if not sockets:
            problems.append(f"dialplan context {name}: no socket action hands calls to fsd")
    return problems


def _check_sofia(doc: ET.Element) -> list[str]:
    conf = _configuration(doc, "sofia.conf")
    if conf is None:
        return ["sofia.conf: missing (autoload_configs/sofia.conf.xml)"]
    problems = []
    profiles = {p.get("name"): p for p in conf.iter("profile")}
    threads = _param(conf.find("global_settings"), "max-reg-threads")
    try:
        threads_ok = threads is not None and int(threads) > 0
    except ValueError:
        threads_ok = False
    for pname, prof in profiles.items():
        if switch_true(_param(prof.find("settings"), "inbound-reg-in-new-thread")) and not threads_ok:
            problems.append(
                f"sofia.conf: profile {pname} sets inbound-reg-in-new-thread but global max-reg-threads is not "
                "set above 0 (the setting does nothing without it)"
            )
    internal = profiles.get("internal")
    if internal is None:
        problems.append("sofia.conf: no internal profile (for phones)")
    else:
        if not switch_true(_param(internal.find("settings"), "auth-calls")):
            problems.append("sofia.conf: profile internal must set auth-calls true")
        ctx = _param(internal.find("settings"), "context")
        if ctx != "fsd-internal":
            problems.append(f"sofia.conf: profile internal context is {ctx!r}, expected 'fsd-internal'")
        problems += _check_single_registration(internal)
    external = profiles.get("external")
    if external is None:
        problems.append("sofia.conf: no external profile (for the trunk)")
    else:
        ctx = _param(external.find("settings"), "context")
        if ctx != "fsd-public":
            problems.append(f"sofia.conf: profile external context is {ctx!r}, expected 'fsd-public'")
        parses = any(d.get("name") == "all" and switch_true(d.get("parse")) for d in external.findall("domains/domain"))
        if not parses:
            problems.append(
                "sofia.conf: profile external does not take gateways from the directory "
                '(<domains><domain name="all" parse="true"/></domains>)'
            )
    return problems


def _multireg(value: str | None) -> bool:
    """mod_sofia's reading of multiple-registrations: ``call-id``, ``contact`` or any true value enables it."""
    return value is not None and (value.lower() in ("call-id", "contact") or switch_true(value))


def _check_single_registration(internal: ET.Element) -> list[str]:
    """One registration per login. With multiple registrations FreeSWITCH forks a member's ``user/`` leg over
    every device: the fork that gets fsd's origination_uuid may lose the race to another device (LOSE_RACE),
    and fsd, which follows the leg by that uuid, would neither see that answer nor bridge it (the member
    would hear silence). manage-shared-appearance turns multiple registrations on too."""
    settings = internal.find("settings")
    problems = []
    if _multireg(_param(settings, "multiple-registrations")):
        problems.append(
            "sofia.conf: profile internal enables multiple-registrations; fsd follows one leg per member ring "
            "and needs one registration per login (a forked leg answered on another device would not be bridged)"
        )
    if switch_true(_param(settings, "manage-shared-appearance")):
        problems.append(
            "sofia.conf: profile internal sets manage-shared-appearance, which enables multiple registrations "
            "(fsd needs one registration per login)"
        )
    return problems


def _check_directory(doc: ET.Element) -> list[str]:
    section = _section(doc, "directory")
    if section is None:
        return []
    users = []
    for domain in section.iter("domain"):
        for user in domain.iter("user"):
            users.append(f"{user.get('id') or user.get('number-alias') or '?'}@{domain.get('name')}")
    if users:
        return [
            "directory: static users found (" + ", ".join(users[:10]) + "); FreeSWITCH falls back to them "
            "when fsd answers not found, so ship none"
        ]
    return []


def check(conf_dir: str | Path, expected: dict | None = None) -> list[str]:
    """Every problem found in the FreeSWITCH configuration at `conf_dir`; [] when it is fine.

    `expected` overrides DEFAULT_EXPECTED: fsd_host, outbound_port, http_port, esl_port, esl_password,
    xmlcurl_user, xmlcurl_password.
    """
    conf_dir = Path(conf_dir)
    exp = {**DEFAULT_EXPECTED, **(expected or {})}
    if not (conf_dir / "freeswitch.xml").is_file():
        return [f"{conf_dir}: no freeswitch.xml"]
    problems = _check_files(conf_dir)
    pre = preprocess(conf_dir)
    problems += pre.problems
    try:
        doc = ET.fromstring(pre.text)  # noqa: S314 (as above)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        origin = pre.origins[line - 1] if 0 < line <= len(pre.origins) else ("?", 0)
        problems.append(f"preprocessed configuration is not well-formed XML near {origin[0]}:{origin[1]}: {exc}")
        return problems
    problems += _check_modules(doc)
    problems += _check_xml_curl(doc, exp)
    problems += _check_event_socket(doc, exp)
    problems += _check_dialplan(doc, exp, pre.variables)
    problems += _check_sofia(doc)
    problems += _check_directory(doc)
    return problems
