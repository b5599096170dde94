"""freeswitch-conf/ passes fsd.fsconf.check(); each rule catches a mutated copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fsd.fsconf import DEFAULT_EXPECTED, check, preprocess, switch_true

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "freeswitch-conf"
SCRIPT = ROOT / "scripts" / "check-freeswitch-conf"


@pytest.fixture
def conf(tmp_path):
    dst = tmp_path / "conf"
    shutil.copytree(CONF, dst)
    return dst


def mutate(conf_dir: Path, rel: str, old: str, new: str, count: int = 1) -> None:
    path = conf_dir / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def only(problems: list[str], fragment: str) -> list[str]:
    hits = [p for p in problems if fragment in p]
    assert hits, f"no problem mentions {fragment!r}: {problems}"
    return hits


# -- the shipped configuration ----------------------------------------------------------------------------


def test_shipped_configuration_passes():
    assert check(CONF) == []
    assert check(CONF, DEFAULT_EXPECTED) == []


def test_shipped_configuration_has_the_expected_shape():
    pre = preprocess(CONF)
    assert pre.problems == []
    v = pre.variables
    assert (v["fsd_host"], v["fsd_outbound_port"], v["fsd_http_port"]) == ("127.0.0.1", "8084", "8080")
    assert v["esl_password"] == DEFAULT_EXPECTED["esl_password"]
    assert v["fsd_xmlcurl_user"] == DEFAULT_EXPECTED["xmlcurl_user"]
    assert v["fsd_xmlcurl_password"] == DEFAULT_EXPECTED["xmlcurl_password"]
    text = pre.text
    assert 'name="max-sessions" value="5000"' in text
    assert 'name="sessions-per-second" value="200"' in text
    assert '<domain name="all" alias="false" parse="true"/>' in text
    # every fallback prompt the dialplan plays exists in the shipped prompts
    assert "/usr/share/fsd/prompts/ru/service_unavailable.wav" in text
    assert (ROOT / "prompts" / "ru" / "service_unavailable.wav").is_file()


def test_script_passes_on_shipped_config_and_fails_on_a_bad_one(conf):
    ok = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok" in ok.stdout
    mutate(conf, "autoload_configs/event_socket.conf.xml", "$${esl_listen_ip}", "0.0.0.0")
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), str(conf), "--esl-password", "other"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert "listen-ip '0.0.0.0' is not a loopback address" in bad.stdout
    assert "password does not match" in bad.stdout
    assert "other" not in bad.stdout  # secrets are never printed


def test_script_reads_expected_values_from_the_environment(conf):
    env = {"PATH": "/usr/bin:/bin", "FSD_CHECK_OUTBOUND_PORT": "9999"}
    r = subprocess.run([sys.executable, str(SCRIPT), str(conf)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "expected '127.0.0.1:9999 async full'" in r.stdout


# -- pre-processing as FreeSWITCH does it -----------------------------------------------------------------


def test_preprocess_runs_directives_in_comments_and_drops_include_lines(tmp_path):
    (tmp_path / "freeswitch.xml").write_text(
        '<?xml version="1.0"?>\n'
        "<document>\n"
        '  <X-PRE-PROCESS cmd="set" data="a = one"/>\n'
        '  <!-- even here: <X-PRE-PROCESS cmd="set" data="b=two"/> -->\n'
        '  <x a="$${a}" b="$${b}"/>\n'
        '  <X-PRE-PROCESS cmd="include" data="sub/*.xml"/>\n'
        "</document>\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "2.xml").write_text('<include>\n  <y n="2" ip="$${local_ip_v4}"/>\n</include>\n')
    (tmp_path / "sub" / "1.xml").write_text('<include>\n  <y n="1"/>\n</include>\n')
    pre = preprocess(tmp_path)
    assert pre.problems == []
    assert pre.variables["a"] == "one" and pre.variables["b"] == "two"
    assert '<x a="one" b="two"/>' in pre.text
    assert pre.text.index('n="1"') < pre.text.index('n="2"')  # globs are sorted
    assert "<include>" not in pre.text and "<?xml" not in pre.text
    assert 'ip="127.0.0.1"' in pre.text


def test_variables_are_only_known_after_they_are_set(tmp_path):
    (tmp_path / "freeswitch.xml").write_text(
        '<document>\n  <x v="$${late}"/>\n  <X-PRE-PROCESS cmd="set" data="late=1"/>\n</document>\n'
    )
    pre = preprocess(tmp_path)
    assert '<x v=""/>' in pre.text
    only(pre.problems, "$${late} is not set")


def test_switch_true():
    assert all(switch_true(v) for v in ("true", "YES", "on", "1", "42", "enabled"))
    assert not any(switch_true(v) for v in ("false", "no", "0", "", None, "maybe"))


# -- rules: each mutation is caught with the right message ------------------------------------------------


def test_missing_freeswitch_xml(tmp_path):
    only(check(tmp_path), "no freeswitch.xml")


def test_malformed_file(conf):
    mutate(conf, "sip_profiles/internal.xml", "</settings>", "")
    problems = check(conf)
    only(problems, "sip_profiles/internal.xml: not well-formed XML")
    only(problems, "preprocessed configuration is not well-formed XML")


def test_include_that_matches_nothing(conf):
    mutate(conf, "freeswitch.xml", 'data="dialplan/*.xml"', 'data="dialplans/*.xml"')
    problems = check(conf)
    only(problems, "include 'dialplans/*.xml' matches no file")
    only(problems, "dialplan: context fsd-public is missing")


def test_unset_variable(conf):
    mutate(conf, "autoload_configs/xml_curl.conf.xml", "$${fsd_http_port}", "$${fsd_htp_port}")
    problems = check(conf)
    only(problems, "$${fsd_htp_port} is not set")
    only(problems, "gateway-url is 'http://127.0.0.1:/freeswitch/directory'")


def test_unsupported_preprocessor_command(conf):
    mutate(
        conf,
        "vars.xml",
        '<X-PRE-PROCESS cmd="set" data="console_loglevel=info"/>',
        '<X-PRE-PROCESS cmd="exec-set" data="console_loglevel=echo info"/>',
    )
    only(check(conf), "pre-processor command 'exec-set' is not supported")


def test_xml_curl_after_sofia(conf):
    mutate(conf, "autoload_configs/modules.conf.xml", '<load module="mod_xml_curl"/>', "")
    mutate(
        conf,
        "autoload_configs/modules.conf.xml",
        '<load module="mod_loopback"/>',
        '<load module="mod_loopback"/>\n    <load module="mod_xml_curl"/>',
    )
    only(check(conf), "mod_xml_curl must be loaded before mod_sofia")


def test_required_module_missing(conf):
    mutate(conf, "autoload_configs/modules.conf.xml", '<load module="mod_event_socket"/>', "")
    only(check(conf), "required module mod_event_socket is not loaded")


def test_modules_conf_missing(conf):
    (conf / "autoload_configs" / "modules.conf.xml").unlink()
    only(check(conf), "modules.conf: missing")


def test_xml_curl_without_timeout(conf):
    mutate(conf, "autoload_configs/xml_curl.conf.xml", '<param name="timeout" value="$${fsd_xmlcurl_timeout}"/>', "")
    only(check(conf), "directory binding has no timeout")


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_xml_curl_zero_or_bad_timeout(conf, value):
    mutate(conf, "vars.xml", "fsd_xmlcurl_timeout=2", f"fsd_xmlcurl_timeout={value}")
    only(check(conf), f"timeout '{value}' is not a positive number of seconds")


def test_xml_curl_without_credentials(conf):
    mutate(conf, "autoload_configs/xml_curl.conf.xml", 'name="gateway-credentials"', 'name="gateway-credentialz"')
    only(check(conf), "directory binding has no gateway-credentials")


def test_xml_curl_credentials_mismatch_names_the_user_not_the_password(conf):
    problems = check(conf, {"xmlcurl_password": "s3cret-other"})
    hit = only(problems, "gateway-credentials (user 'freeswitch') do not match")[0]
    assert "change-me-xmlcurl" not in hit and "s3cret-other" not in hit
    only(check(conf, {"xmlcurl_user": "fs"}), "do not match")


def test_xml_curl_wrong_url(conf):
    only(check(conf, {"http_port": 9090}), "expected 'http://127.0.0.1:9090/freeswitch/directory'")


def test_xml_curl_not_bound_to_directory(conf):
    mutate(conf, "autoload_configs/xml_curl.conf.xml", 'bindings="directory"', 'bindings="dialplan"')
    only(check(conf), "no binding serves the directory section")


def test_event_socket_not_on_loopback(conf):
    mutate(conf, "vars.xml", "esl_listen_ip=127.0.0.1", "esl_listen_ip=::")
    only(check(conf), "listen-ip '::' is not a loopback address")


def test_event_socket_password_and_port(conf):
    problems = check(conf, {"esl_password": "another", "esl_port": 8022})
    hit = only(problems, "event_socket.conf: password does not match fsd's ESL password")[0]
    assert "ClueCon" not in hit and "another" not in hit
    only(problems, "listen-port is '8021', expected 8022")


def test_event_socket_without_acl(conf):
    mutate(
        conf, "autoload_configs/event_socket.conf.xml", '<param name="apply-inbound-acl" value="loopback.auto"/>', ""
    )
    only(check(conf), "no apply-inbound-acl")


def test_event_socket_acl_must_be_loopback_only(conf):
    mutate(conf, "autoload_configs/event_socket.conf.xml", 'value="loopback.auto"', 'value="fsd"')
    assert check(conf) == []  # the shipped fsd list is loopback only
    mutate(
        conf,
        "autoload_configs/acl.conf.xml",
        '<node type="allow" cidr="::1/128"/>',
        '<node type="allow" cidr="::1/128"/>\n      <node type="allow" cidr="10.0.0.0/8"/>',
    )
    only(check(conf), "apply-inbound-acl 'fsd' allows non-loopback addresses (10.0.0.0/8)")


def test_event_socket_acl_default_allow_and_undefined(conf):
    mutate(conf, "autoload_configs/event_socket.conf.xml", 'value="loopback.auto"', 'value="fsd"')
    mutate(
        conf, "autoload_configs/acl.conf.xml", '<list name="fsd" default="deny">', '<list name="fsd" default="allow">'
    )
    only(check(conf), "(default is not deny)")
    mutate(conf, "autoload_configs/event_socket.conf.xml", 'value="fsd"', 'value="nosuch"')
    only(check(conf), "apply-inbound-acl 'nosuch' is not defined in acl.conf")


def test_dialplan_socket_without_async_full(conf):
    mutate(conf, "dialplan/fsd.xml", ":$${fsd_outbound_port} async full", ":$${fsd_outbound_port} async", count=2)
    problems = check(conf)
    only(problems, "dialplan context fsd-public: socket data is '127.0.0.1:8084 async'")
    only(problems, "dialplan context fsd-internal: socket data is '127.0.0.1:8084 async'")


def test_dialplan_socket_to_wrong_port(conf):
    only(check(conf, {"outbound_port": 8085}), "expected '127.0.0.1:8085 async full'")


def test_dialplan_without_fallback(conf):
    path = conf / "dialplan" / "fsd.xml"
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if '<context name="fsd-internal">' in line)
    kept = lines[: start + 1]
    for line in lines[start + 1 :]:
        if "<action" in line and "socket" not in line:
            continue
        kept.append(line)
    path.write_text("\n".join(kept) + "\n")
    problems = check(conf)
    assert only(problems, "no fallback after the socket action") == [
        "dialplan context fsd-internal: no fallback after the socket action"
    ]


def test_dialplan_public_fallback_may_be_in_a_later_condition(conf):
    # the shipped fsd-public has its fallback in the second condition only: removing it is caught
    path = conf / "dialplan" / "fsd.xml"
    text = path.read_text()
    start = text.index('<condition field="${fsd_fallback_dialstring}"')
    end = text.index("</condition>", start) + len("</condition>")
    path.write_text(text[:start] + text[end:])
    only(check(conf), "dialplan context fsd-public: no fallback after the socket action")


RESUME = '<action application="set" data="socket_resume=true"/>'
RESUME_PROBLEM = "socket_resume=true is not set before the socket action"


def test_dialplan_sets_socket_resume_before_each_socket():
    text = (CONF / "dialplan" / "fsd.xml").read_text()
    for ctx in ("fsd-public", "fsd-internal"):
        body = text[text.index(f'<context name="{ctx}">') :]
        assert body.index(RESUME) < body.index('application="socket"'), ctx


def test_dialplan_without_socket_resume(conf):
    path = conf / "dialplan" / "fsd.xml"
    text = path.read_text()
    start = text.index('<context name="fsd-internal">')
    path.write_text(text[:start] + text[start:].replace(RESUME, "", 1))
    assert only(check(conf), RESUME_PROBLEM) == [
        f"dialplan context fsd-internal: {RESUME_PROBLEM} (when fsd dies, callers in a ring-back, a prompt or a "
        "bridge application would never reach the fallback)"
    ]
    r = subprocess.run([sys.executable, str(SCRIPT), str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and RESUME_PROBLEM in r.stdout


@pytest.mark.parametrize("value", ["false", "", "${maybe}"])
def test_dialplan_socket_resume_not_true(conf, value):
    mutate(conf, "dialplan/fsd.xml", 'data="socket_resume=true"', f'data="socket_resume={value}"', count=2)
    problems = only(check(conf), RESUME_PROBLEM)
    assert len(problems) == 2  # both contexts


def test_dialplan_socket_resume_set_after_the_socket_does_not_count(conf):
    path = conf / "dialplan" / "fsd.xml"
    text = path.read_text().replace(f"        {RESUME}\n", "")
    text = text.replace('async full"/>\n', f'async full"/>\n        {RESUME}\n')
    path.write_text(text)
    assert len(only(check(conf), RESUME_PROBLEM)) == 2


def test_dialplan_socket_resume_false_later_wins(conf):
    mutate(conf, "dialplan/fsd.xml", RESUME, RESUME + '<action application="export" data="socket_resume=off"/>',
           count=2)
    assert len(only(check(conf), RESUME_PROBLEM)) == 2


def test_dialplan_socket_resume_from_a_global_variable(conf):
    # switch_channel_get_variable falls back to global variables: a pre-processor set is honoured too
    mutate(conf, "dialplan/fsd.xml", RESUME, "", count=2)
    host = '<X-PRE-PROCESS cmd="set" data="fsd_host=127.0.0.1"/>'
    mutate(conf, "vars.xml", host, host + '\n  <X-PRE-PROCESS cmd="set" data="socket_resume=yes"/>')
    assert check(conf) == []


def test_dialplan_without_socket(conf):
    mutate(conf, "dialplan/fsd.xml", 'application="socket"', 'application="park"', count=2)
    only(check(conf), "dialplan context fsd-internal: no socket action hands calls to fsd")


def test_dialplan_context_missing(conf):
    mutate(conf, "dialplan/fsd.xml", '<context name="fsd-public">', '<context name="public">')
    only(check(conf), "dialplan: context fsd-public is missing")


@pytest.mark.parametrize("replacement", ["", '<param name="max-reg-threads" value="0"/>'])
def test_reg_threads_without_max_reg_threads(conf, replacement):
    mutate(conf, "autoload_configs/sofia.conf.xml", '<param name="max-reg-threads" value="8"/>', replacement)
    only(check(conf), "profile internal sets inbound-reg-in-new-thread but global max-reg-threads is not set")


def test_no_reg_threads_needed_without_inbound_reg_in_new_thread(conf):
    mutate(conf, "autoload_configs/sofia.conf.xml", '<param name="max-reg-threads" value="8"/>', "")
    mutate(
        conf,
        "sip_profiles/internal.xml",
        '"inbound-reg-in-new-thread" value="true"',
        '"inbound-reg-in-new-thread" value="false"',
    )
    assert check(conf) == []


def test_internal_profile_must_authenticate_calls(conf):
    mutate(
        conf,
        "sip_profiles/internal.xml",
        '<param name="auth-calls" value="true"/>',
        '<param name="auth-calls" value="false"/>',
    )
    only(check(conf), "profile internal must set auth-calls true")


def test_profile_contexts(conf):
    mutate(conf, "sip_profiles/internal.xml", 'value="fsd-internal"', 'value="default"')
    mutate(conf, "sip_profiles/external.xml", 'value="fsd-public"', 'value="public"')
    problems = check(conf)
    only(problems, "profile internal context is 'default', expected 'fsd-internal'")
    only(problems, "profile external context is 'public', expected 'fsd-public'")


def test_external_profile_takes_gateways_from_directory(conf):
    mutate(conf, "sip_profiles/external.xml", 'alias="false" parse="true"', 'alias="false" parse="false"')
    only(check(conf), "profile external does not take gateways from the directory")


def test_profiles_missing(conf):
    (conf / "sip_profiles" / "external.xml").unlink()
    only(check(conf), "no external profile")


def test_static_directory_users(conf):
    mutate(
        conf,
        "directory/default.xml",
        "  </domain>",
        '    <groups><group name="default"><users>\n'
        '      <user id="1000"><params><param name="password" value="1234"/></params></user>\n'
        "    </users></group></groups>\n  </domain>",
    )
    only(check(conf), "static users found (1000@127.0.0.1)")


def test_static_user_in_an_extra_directory_file(conf):
    (conf / "directory" / "extra.xml").write_text(
        '<include>\n  <domain name="example.com">\n    <user id="1001"/>\n  </domain>\n</include>\n'
    )
    only(check(conf), "1001@example.com")


@pytest.mark.parametrize("value", ["true", "contact", "call-id", "on", "yes"])
def test_multiple_registrations_are_refused(conf, value):
    mutate(conf, "sip_profiles/internal.xml", '"multiple-registrations" value="false"',
           f'"multiple-registrations" value="{value}"')
    only(check(conf), "profile internal enables multiple-registrations")


def test_manage_shared_appearance_is_refused(conf):
    mutate(conf, "sip_profiles/internal.xml", '<param name="multiple-registrations" value="false"/>',
           '<param name="manage-shared-appearance" value="true"/>')
    only(check(conf), "manage-shared-appearance")


def test_single_registration_is_the_default_without_the_param(conf):
    mutate(conf, "sip_profiles/internal.xml", '<param name="multiple-registrations" value="false"/>', "")
    assert check(conf) == []
