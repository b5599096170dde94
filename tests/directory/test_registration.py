"""Phones register through the emulator's mod_xml_curl client against the real directory (PostgreSQL, HTTP)."""

from __future__ import annotations

from fsd.domain import rules
from fsd.sim.endpoints import Phone
from fsd.store import repos
from tests.directory import captures
from tests.directory.conftest import DOMAIN, Stack, counter, form, post
from tests.helpers import wait_for

PW1 = "Secret-pass-11"
PW2 = "Other-pass-22"


def _employee(world, name="Ivan Petrov", login="ivan", extension="201", password=PW1, **kw):
    emp = world.services.employees.create(world.actor, world.tenant.id, name=name, login=login,
                                          extension=extension, password=password, **kw).employee
    # the creation's NOTIFY has been handled (it evicts; a late one would evict what a test cached)
    wait_for(lambda: (extension, DOMAIN) in world.stack.flushed, 10, message=f"NOTIFY of {login}")
    return emp


def test_right_password_registers_wrong_is_rejected(world):
    emp = _employee(world)
    sw = world.switch
    assert sw.register(Phone("ivan", DOMAIN, PW1, register=False)) is True
    assert sw.register(Phone("ivan", DOMAIN, PW1, register=False), password="Wrong-pass-99") is False
    assert counter(world.metrics, "sip_auth", "found") == 1  # the second REGISTER used the switch's cache
    # what the switch was given: the a1-hash of login:domain:password, never the password
    status, headers, body = post(world.stack.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))
    assert status == 200 and headers["Content-Type"] == "text/xml"
    assert PW1.encode() not in body
    user = captures.xml(body).find(".//user")
    assert user.get("id") == "ivan" and user.get("number-alias") == "201"
    params = {p.get("name"): p.get("value") for p in user.iter("param")}
    assert params["a1-hash"] == rules.sip_a1_hash("ivan", DOMAIN, PW1)
    # user/201@domain reaches the phone registered as "ivan": the user's dial-string names the login
    assert "sofia_contact(*/ivan@${dialed_domain})" in params["dial-string"]
    assert set(params) == {"a1-hash", "dial-string"}
    variables = {v.get("name"): v.get("value") for v in user.iter("variable")}
    assert variables["fsd_employee_id"] == str(emp.id) and variables["fsd_tenant_id"] == str(world.tenant.id)
    assert variables["user_context"] == "fsd-internal" and variables["accountcode"] == str(world.tenant.id)


def test_unknown_user_and_unknown_domain_are_not_found(world):
    _employee(world)
    sw = world.switch
    assert sw.register(Phone("nobody", DOMAIN, PW1, register=False)) is False
    assert sw.register(Phone("ivan", "other.example.com", PW1, register=False)) is False
    assert counter(world.metrics, "sip_auth", "not_found") == 2
    status, _, body = post(world.stack.port, form(action="sip_auth", key="id", user="nobody", domain=DOMAIN))
    assert status == 200 and body == captures.response_body("xmlcurl-07-directory-sip_auth")
    # the captured requests (domain 127.0.0.1, user 2001) are not fsd users either
    for name, _, raw in captures.requests():
        status, _, body = post(world.stack.port, raw)
        assert status == 200, name
        if "sip_auth" in name or "dialplan" in name or "noaction" in name:
            assert body == world.directory.not_found, name


def test_disabled_employee_is_not_found(world):
    _employee(world, name="Anna", login="anna", extension="202", enabled=False)
    emp = _employee(world)
    sw = world.switch
    assert sw.register(Phone("anna", DOMAIN, PW1, register=False)) is False
    assert sw.register(Phone("ivan", DOMAIN, PW1, register=False)) is True
    # disabling a registered employee: evicted everywhere, the next REGISTER is refused
    world.stack.flushed.clear()
    world.services.employees.update(world.actor, world.tenant.id, emp.id, enabled=False)
    wait_for(lambda: ("ivan", DOMAIN) in world.stack.flushed, 10, message="flush of ivan")
    assert sw.register(Phone("ivan", DOMAIN, PW1, register=False)) is False
    status, _, body = post(world.stack.port, form(action="user_call", key="id", user="201", domain=DOMAIN))
    assert body == world.directory.not_found


def test_login_and_extension_lookups(world):
    _employee(world)
    sw = world.switch
    # dialling user/201@domain finds the employee by number-alias
    phone = sw.lookup_user("201", DOMAIN)
    assert phone is not None and phone.variables["effective_caller_id_number"] == "201"
    assert phone.variables["user_context"] == "fsd-internal"
    for user in ("ivan", "201", "IVAN"):
        status, _, body = post(world.stack.port, form(as_channel="true", action="user_call", key="id", user=user,
                                                      domain=DOMAIN))
        u = captures.xml(body).find(".//user")
        assert (u.get("id"), u.get("number-alias")) == ("ivan", "201"), user
    # REGISTER with the login works; with the extension as SIP username the digest cannot match the
    # a1-hash (it covers login:domain:password), exactly as in FreeSWITCH
    assert sw.register(Phone("ivan", DOMAIN, PW1, register=False)) is True
    assert sw.register(Phone("201", DOMAIN, PW1, register=False)) is False
    assert counter(world.metrics, "user_call", "found") >= 3


def test_password_change_applies_to_the_next_register(world, pool, db_dsn):
    emp = _employee(world)
    other = Stack(pool=pool, dsn=db_dsn)  # a second fsd process
    try:
        sw = world.switch
        assert sw.register(Phone("ivan", DOMAIN, PW1, register=False)) is True
        assert sw.lookup_user("201", DOMAIN) is not None  # cached by FreeSWITCH under "201" too
        assert post(other.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))[0] == 200
        assert world.directory.cached(DOMAIN, "ivan") and other.directory.cached(DOMAIN, "ivan")
        assert {"ivan@" + DOMAIN, "201@" + DOMAIN} <= set(sw.xmlcurl.cache)

        world.stack.flushed.clear()
        other.flushed.clear()
        world.services.employees.reset_password(world.actor, world.tenant.id, emp.id, password=PW2)

        # every process evicts, and FreeSWITCH is told to drop the login and the extension
        wait_for(lambda: not world.directory.cached(DOMAIN, "ivan") and not other.directory.cached(DOMAIN, "ivan"),
                 10, message="eviction in both processes")
        wait_for(lambda: {("ivan", DOMAIN), ("201", DOMAIN)} <= set(world.stack.flushed), 10, message="flush")
        assert {("ivan", DOMAIN), ("201", DOMAIN)} <= set(other.flushed)
        assert "ivan@" + DOMAIN not in sw.xmlcurl.cache and "201@" + DOMAIN not in sw.xmlcurl.cache
        assert world.metrics.registry.get_sample_value("fsd_directory_cache_evictions_total") >= 1
        assert world.metrics.registry.get_sample_value("fsd_directory_flush_commands_total",
                                                       {"result": "ok"}) >= 2

        assert sw.register(Phone("ivan", DOMAIN, PW2, register=False)) is True
        assert sw.register(Phone("ivan", DOMAIN, PW1, register=False)) is False
        assert sw.lookup_user("201", DOMAIN) is not None
    finally:
        other.stop()


def test_new_employee_after_not_found_registers_at_once(world):
    sw = world.switch
    assert sw.register(Phone("late", DOMAIN, PW1, register=False)) is False  # cached as unknown for a moment
    _employee(world, name="Late Comer", login="late", extension="230")  # waits for its NOTIFY
    assert sw.register(Phone("late", DOMAIN, PW1, register=False)) is True


def test_hostile_name_is_escaped(world):
    name = "<script>&\"' O'Brien"
    _employee(world, name=name)
    status, _, body = post(world.stack.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))
    assert b"<script>" not in body
    variables = {v.get("name"): v.get("value") for v in captures.xml(body).iter("variable")}
    assert variables["effective_caller_id_name"] == name
    phone = Phone("ivan", DOMAIN, PW1, register=False)
    assert world.switch.register(phone) is True
    assert phone.variables["effective_caller_id_name"] == name


def test_main_number_is_the_outbound_caller_id_and_follows_changes(world):
    _employee(world)
    world.stack.flushed.clear()  # (the employee's own flush is there already)
    num = world.services.numbers.create(world.actor, world.tenant.id, did="+74951112233")
    wait_for(lambda: world.stack.flushed, 10, message="flush after number change")
    _, _, body = post(world.stack.port, form(action="user_call", key="id", user="ivan", domain=DOMAIN))
    variables = {v.get("name"): v.get("value") for v in captures.xml(body).iter("variable")}
    assert variables["outbound_caller_id_number"] == "+74951112233"
    assert world.directory.cached(DOMAIN, "ivan")
    world.stack.flushed.clear()
    world.services.numbers.delete(world.actor, world.tenant.id, num.id)
    wait_for(lambda: not world.directory.cached(DOMAIN, "ivan"), 10, message="eviction after number delete")
    wait_for(lambda: {("ivan", DOMAIN), ("201", DOMAIN)} <= set(world.stack.flushed), 10, message="tenant flush")
    _, _, body = post(world.stack.port, form(action="user_call", key="id", user="ivan", domain=DOMAIN))
    variables = {v.get("name"): v.get("value") for v in captures.xml(body).iter("variable")}
    assert "outbound_caller_id_number" not in variables


def test_group_call_department_as_group(world):
    _employee(world)
    _employee(world, name="Anna", login="anna", extension="202")
    _employee(world, name="Off", login="off", extension="203", enabled=False)
    world.services.departments.create(world.actor, world.tenant.id, name="Sales", extension="500",
                                      members=["anna", "ivan", "off"])
    for group in ("500", "Sales"):
        status, _, body = post(world.stack.port, form(group=group, domain=DOMAIN, action="group_call",
                                                      group_name=group))
        g = captures.xml(body).find(".//groups/group")
        assert g.get("name") == group
        assert [u.get("id") for u in g.iter("user")] == ["anna", "ivan"]
    assert counter(world.metrics, "group_call", "found") == 2
    _, _, body = post(world.stack.port, form(group="nosuch", domain=DOMAIN, action="group_call", group_name="nosuch"))
    assert body == world.directory.not_found
    # a membership change reaches the cached group
    world.services.departments.update(world.actor, world.tenant.id,
                                      world.services.departments.find(world.actor, world.tenant.id, "500").id,
                                      members=["ivan"])

    def members():
        _, _, b = post(world.stack.port, form(group="500", domain=DOMAIN, action="group_call", group_name="500"))
        return [u.get("id") for u in captures.xml(b).iter("user")] == ["ivan"]

    wait_for(members, 10, message="group updated")


def test_gateways_and_network_list(world, pool):
    with pool.transaction() as cur:
        repos.gateway_upsert(cur, name="carrier", proxy="sip.carrier.example:5060", username="acct",
                             password="p&ss", register=True)
    for body in (captures.request_body("xmlcurl-02-directory-gateways"),
                 captures.request_body("xmlcurl-14-directory-gateways")):
        status, _, doc = post(world.stack.port, body)
        root = captures.xml(doc)
        gw = root.find(".//gateways/gateway")
        assert gw.get("name") == "carrier"
        assert {p.get("name"): p.get("value") for p in gw.iter("param")}["password"] == "p&ss"
        assert DOMAIN in [d.get("name") for d in root.iter("domain")]
    status, _, doc = post(world.stack.port, captures.request_body("xmlcurl-01-directory-gateways"))
    root = captures.xml(doc)
    assert root.find(".//gateway") is None and [d.get("name") for d in root.iter("domain")] == [DOMAIN]
    assert counter(world.metrics, "gateways", "found") == 3
    # network-list: a known domain without users; an unknown one is not found (FreeSWITCH then uses its static one)
    _, _, doc = post(world.stack.port, captures.request_body("xmlcurl-03-directory-network-list"))
    assert doc == world.directory.not_found
    _, _, doc = post(world.stack.port, form(domain=DOMAIN, purpose="network-list"))
    root = captures.xml(doc)
    assert [d.get("name") for d in root.iter("domain")] == [DOMAIN] and root.find(".//user") is None


def test_message_count_voicemail_and_reverse_auth_lookups(world):
    _employee(world)
    for action in ("message-count", "voicemail-lookup", "reverse-auth-lookup"):
        status, _, body = post(world.stack.port, form(action=action, key="id", user="ivan", domain=DOMAIN))
        assert captures.xml(body).find(".//user").get("id") == "ivan", action
        assert counter(world.metrics, action, "found") == 1


def test_listener_reconnect_rereads_everything(world, pool):
    emp = _employee(world)
    assert post(world.stack.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))[0] == 200
    # a change the listener never heard (written without NOTIFY, as if sent while it was disconnected)
    with pool.transaction() as cur:
        repos.employee_update(cur, world.tenant.id, emp.id, name="Renamed Quietly")

    def name():
        _, _, body = post(world.stack.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))
        return {v.get("name"): v.get("value") for v in captures.xml(body).iter("variable")}["effective_caller_id_name"]

    assert name() == "Ivan Petrov"  # served from the cache: nothing said it changed
    world.directory.on_reconnect()
    assert name() == "Renamed Quietly"


def test_flush_never_sends_unsafe_names(world):
    world.stack.flushed.clear()
    world.directory.on_change({"entity": "employee", "op": "update", "tenant_id": world.tenant.id, "id": 1,
                               "domain": DOMAIN, "login": "x y", "extension": "201\nxml_flush_cache"})
    world.directory.on_change({"entity": "employee", "op": "update", "tenant_id": world.tenant.id, "id": 2,
                               "domain": DOMAIN, "login": "fine"})
    wait_for(lambda: world.stack.flushed, 10, message="the safe flush")
    assert world.stack.flushed == [("fine", DOMAIN)]
