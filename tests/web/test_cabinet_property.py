"""Every cabinet page and form, fed arbitrary query strings and form values (with a valid CSRF token),
answers without a 5xx and changes nothing it should not."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.conftest import build_world, csrf_from, seed_objects

FIELDS = ["name", "login", "password", "position", "role", "extension", "email", "mobile", "forward_mode",
          "forward_delay", "enabled", "strategy", "step_delay", "ring_timeout", "no_answer_action",
          "no_answer_number", "no_answer_employee_id", "no_answer_department_id", "voicemail_prompt_id",
          "impatient_enabled", "impatient_threshold", "members", "mode", "dest_kind", "dest_department_id",
          "dest_employee_id", "dest_ivr_id", "offhours_action", "offhours_number", "offhours_dest_kind",
          "greeting_prompt_id", "timeout_s", "max_repeats", "ext_digits", "fallback_kind", "fallback_target",
          "action_0", "target_0", "day_0", "exceptions", "kind", "since", "until", "employee_id",
          "department_id", "result", "status", "next", "lang"]
VALUES = st.text(max_size=30) | st.sampled_from(
    ["", "0", "1", "-1", "99999999999999999999", "admin", "voicemail", "department", "menu:1", "employee:999",
     "09:00-18:00", "25:00-26:00", "2026-13-01", "9999-12-31", "<script>", "'; --", "\x00", "//evil.example",
     "simultaneous", "forward_external", "schedule", "destination", "on"])


def test_cabinet_never_answers_5xx(pool):
    world = build_world(pool)
    objs = seed_objects(world)
    clients = {"admin": world.client("admin"), "limited": world.client("limited")}
    token = csrf_from(clients["admin"].get("/tokens").get_data(as_text=True))
    ltoken = csrf_from(clients["limited"].get("/tokens").get_data(as_text=True))
    id_for = {"employee_id": objs.ids["employee"], "department_id": objs.ids["department"],
              "number_id": objs.ids["number"], "menu_id": objs.ids["menu"], "prompt_id": objs.ids["prompt"],
              "callback_id": objs.ids["callback"], "letter_id": objs.ids["letter"], "token_id": objs.ids["token"],
              "code": "en"}
    rules = []
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.endpoint == "static" or "logout" in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rules.append((method, rule.rule))

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        method, rule = data.draw(st.sampled_from(rules), label="page")
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(data.draw(
            st.sampled_from([id_for[m.group(1)], objs.other.get(m.group(1).removesuffix("_id"), 1), 0]),
            label=m.group(1))), rule)
        who = data.draw(st.sampled_from(["admin", "limited"]), label="who")
        c = clients[who]
        fields = data.draw(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8), label="fields")
        if method == "GET":
            r = c.get(url, query_string=fields)
        else:
            r = c.post(url, data={**fields, "csrf_token": token if who == "admin" else ltoken})
        assert r.status_code < 500, (method, url, fields, r.status_code, r.get_data(as_text=True)[:500])
        if r.status_code in (301, 302, 303):
            loc = r.headers["Location"]
            assert loc.startswith("/") and not loc.startswith("//"), loc  # no open redirect

    run()
