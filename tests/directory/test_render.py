"""Rendering the directory documents (pure): escaping, well-formedness, secrets, FreeSWITCH's not-found document."""

from __future__ import annotations

import jinja2
import pytest

from fsd.directory.render import DIAL_STRING, Renderer
from fsd.store.directory_repo import DirectoryDomain, DirectoryGroup, DirectoryUser
from fsd.store.models import Gateway
from tests.directory import captures

NASTY = "<script>&\"' </user><!-- ]]> \x01\x1b\ufffe Иван"


def _user(**kw) -> DirectoryUser:
    base = dict(employee_id=7, tenant_id=3, login="ivan.petrov", extension="201", name="Ivan Petrov",
                a1_hash="dfed158e63dda0dbaf2261776c349151", domain="acme.example.com", tenant_name="Acme",
                main_number="+74951234567")
    base.update(kw)
    return DirectoryUser(**base)


def _vars(el) -> dict[str, str]:
    return {v.get("name"): v.get("value") for v in el.iter("variable")}


def test_not_found_is_freeswitchs_standard_document():
    expected = captures.response_body("xmlcurl-07-directory-sip_auth")
    assert Renderer().not_found == expected
    assert b'<result status="not found" />' in expected


def test_user_document():
    doc = Renderer(toll_allow="local,domestic", cacheable_ms=60000).user(_user())
    root = captures.xml(doc)
    assert root.tag == "document" and root.get("type") == "freeswitch/xml"
    section = root.find("section")
    assert section.get("name") == "directory"
    domain = section.find("domain")
    assert domain.get("name") == "acme.example.com"
    assert domain.find("params/param").attrib == {"name": "dial-string", "value": DIAL_STRING}
    users = domain.findall("groups/group/users/user")
    assert len(users) == 1
    u = users[0]
    assert (u.get("id"), u.get("number-alias"), u.get("cacheable")) == ("ivan.petrov", "201", "60000")
    assert {p.get("name"): p.get("value") for p in u.iter("param")} == {
        "a1-hash": "dfed158e63dda0dbaf2261776c349151",
        # dialling user/201@domain must reach the contact registered by the login
        "dial-string": "{^^:sip_invite_domain=${dialed_domain}:presence_id=ivan.petrov@${dialed_domain}}"
                       "${sofia_contact(*/ivan.petrov@${dialed_domain})}",
    }
    assert _vars(u) == {
        "user_context": "fsd-internal", "effective_caller_id_name": "Ivan Petrov",
        "effective_caller_id_number": "201", "outbound_caller_id_name": "Acme",
        "outbound_caller_id_number": "+74951234567", "accountcode": "3", "toll_allow": "local,domestic",
        "fsd_tenant_id": "3", "fsd_employee_id": "7",
    }
    assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n')


def test_no_main_number_no_outbound_caller_id():
    u = captures.xml(Renderer().user(_user(main_number=None))).find(".//user")
    assert "outbound_caller_id_number" not in _vars(u)


def test_hostile_names_are_escaped_and_well_formed():
    doc = Renderer().user(_user(name=NASTY, tenant_name=NASTY))
    assert b"<script>" not in doc and b"</user><!--" not in doc
    root = captures.xml(doc)  # well-formed
    v = _vars(root.find(".//user"))
    # XML 1.0 cannot carry control characters or U+FFFE: they are dropped; everything else survives
    clean = "<script>&\"' </user><!-- ]]>  Иван"
    assert v["effective_caller_id_name"] == clean
    assert v["outbound_caller_id_name"] == clean
    assert len(root.findall(".//user")) == 1


def test_group_document_lists_members_with_their_own_params():
    d = DirectoryDomain(tenant_id=3, domain="acme.example.com", name="Acme")
    g = DirectoryGroup(domain=d, department_id=9, name="Sales & <Support>", extension="500",
                       members=(_user(), _user(employee_id=8, login="anna", extension="202", name=NASTY)))
    root = captures.xml(Renderer().group(g, "500"))
    group = root.find(".//groups/group")
    assert group.get("name") == "500"
    users = group.findall("users/user")
    assert [u.get("id") for u in users] == ["ivan.petrov", "anna"]
    assert all(u.find("params/param").get("name") == "a1-hash" for u in users)


def test_domain_and_gateways_documents():
    r = Renderer()
    d1 = DirectoryDomain(tenant_id=1, domain="a.example.com", name="A")
    d2 = DirectoryDomain(tenant_id=2, domain="b.example.com", name="B")
    root = captures.xml(r.domain(d1))
    assert [x.get("name") for x in root.iter("domain")] == ["a.example.com"]
    assert root.findall(".//user") == []
    gw = Gateway(id=1, name="trunk", proxy="sip.carrier.example:5060", username="u&1", password="p<w>\"", register=True)
    root = captures.xml(r.gateways([d1, d2], [gw]))
    names = [x.get("name") for x in root.iter("domain")]
    assert names[:2] == ["a.example.com", "b.example.com"]
    g = root.find(".//gateways/gateway")
    assert g.get("name") == "trunk"
    params = {p.get("name"): p.get("value") for p in g.iter("param")}
    assert params == {"proxy": "sip.carrier.example:5060", "register": "true", "caller-id-in-from": "true",
                      "username": "u&1", "password": "p<w>\""}
    # the gateways user can never register or be dialled
    assert root.find(".//gateways/..").get("type") == "pointer"
    # without gateways (internal profile): only the domains
    root = captures.xml(r.gateways([d1], []))
    assert [x.get("name") for x in root.iter("domain")] == ["a.example.com"] and root.find(".//gateway") is None


def test_strict_undefined():
    class Incomplete:
        login = "x"

    with pytest.raises(jinja2.UndefinedError):
        Renderer().user(Incomplete())
