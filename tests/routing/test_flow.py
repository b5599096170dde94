import xml.etree.ElementTree as ET  # parsing our own output, not untrusted input
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fsd.errors import ValidationError
from fsd.queue.noanswer import NoAnswerAction
from fsd.queue.strategy import DepartmentPolicy
from fsd.queue.waiting import ImpatientConfig
from fsd.routing.flow import (
    DepartmentInfo,
    Destination,
    NumberConfig,
    OutOfHours,
    describe_flow,
    render_svg,
    route_call,
)
from fsd.routing.ivr import IvrAction, IvrItem, IvrMenu
from fsd.routing.schedule import Interval, Schedule, WeeklyInterval
from fsd.routing.steps import (
    EnterIvr,
    Forward,
    Hangup,
    PlayGreetingWhileRinging,
    PlayMessage,
    RingDepartment,
    RingEmployee,
    Voicemail,
)

MSK = ZoneInfo("Europe/Moscow")
OFFICE = Schedule(
    timezone="Europe/Moscow",
    weekly=tuple(WeeklyInterval(weekday=d, interval=Interval.parse("09:00-18:00")) for d in range(5)),
)
OPEN = datetime(2026, 11, 26, 12, 0, tzinfo=MSK)
CLOSED = datetime(2026, 11, 28, 12, 0, tzinfo=MSK)  # Saturday
SVG = "{http://www.w3.org/2000/svg}"


def cfg(dest, **kw):
    return NumberConfig(number="+74951234567", destination=dest, **kw)


def test_in_hours_destinations_and_greeting():
    dep = Destination(kind="department", ref=3)
    plan = route_call(cfg(dep, mode="schedule", greeting="hello.wav"), OFFICE, OPEN)
    assert plan.in_hours
    assert plan.steps == (PlayGreetingWhileRinging(prompt="hello.wav"), RingDepartment(department_id=3))
    assert route_call(cfg(dep), None, CLOSED).steps == (RingDepartment(department_id=3),)  # 24/7
    emp = route_call(cfg(Destination(kind="employee", ref=7), greeting="g.wav"), None, OPEN).steps
    assert emp == (PlayGreetingWhileRinging(prompt="g.wav"), RingEmployee(employee_id=7))
    ivr = route_call(cfg(Destination(kind="ivr", ref="main"), greeting="g.wav"), None, OPEN).steps
    assert ivr == (PlayMessage(prompt="g.wav"), EnterIvr(menu_id="main"))
    vm = route_call(cfg(Destination(kind="voicemail"), greeting="g.wav"), None, OPEN).steps
    assert vm == (Voicemail(box_kind="company", box_id=None),)
    vm = route_call(cfg(Destination(kind="voicemail", ref=("employee", 7))), None, OPEN).steps
    assert vm == (Voicemail(box_kind="employee", box_id=7),)


def test_out_of_hours_actions():
    dep = Destination(kind="department", ref=3)
    plan = route_call(cfg(dep, mode="schedule", greeting="hello.wav"), OFFICE, CLOSED)
    assert not plan.in_hours and plan.steps == (Voicemail(box_kind="company"),)
    plan = route_call(
        cfg(dep, mode="schedule", out_of_hours=OutOfHours(action="voicemail", prompt="closed_vm.wav")), OFFICE, CLOSED
    )
    assert plan.steps == (Voicemail(box_kind="company", greeting="closed_vm.wav"),)
    plan = route_call(
        cfg(dep, mode="schedule", out_of_hours=OutOfHours(action="message_hangup", prompt="closed.wav")),
        OFFICE,
        CLOSED,
    )
    assert plan.steps == (PlayMessage(prompt="closed.wav"), Hangup())
    plan = route_call(
        cfg(dep, mode="schedule", out_of_hours=OutOfHours(action="forward", target="+79001234567")), OFFICE, CLOSED
    )
    assert plan.steps == (
        Forward(number="+79001234567", timeout_s=30.0, on_no_answer=(Voicemail(box_kind="company"),)),
    )
    duty = OutOfHours(action="destination", target=Destination(kind="employee", ref=9))
    plan = route_call(cfg(dep, mode="schedule", out_of_hours=duty, greeting="hello.wav"), OFFICE, CLOSED)
    assert plan.steps == (RingEmployee(employee_id=9),)


def test_config_validation():
    with pytest.raises(ValidationError):
        Destination(kind="department")
    with pytest.raises(ValidationError):
        Destination(kind="fax", ref=1)
    with pytest.raises(ValidationError):
        OutOfHours(action="message_hangup")
    with pytest.raises(ValidationError):
        OutOfHours(action="forward")
    with pytest.raises(ValidationError):
        OutOfHours(action="destination", target=5)
    with pytest.raises(ValidationError):
        cfg(Destination(kind="voicemail"), mode="nightly")
    with pytest.raises(ValidationError):
        route_call(cfg(Destination(kind="voicemail"), mode="schedule"), None, OPEN)


def full_setup():
    departments = {
        1: DepartmentInfo(
            name="Sales",
            policy=DepartmentPolicy(strategy="in_order", step_delay_s=15, ring_timeout_s=60),
            members=("Ivan", "Olga"),
            impatient=ImpatientConfig(enabled=True, threshold_s=20),
            no_answer=NoAnswerAction(kind="forward_external", target="+79005556677"),
        ),
        2: DepartmentInfo(
            name="Support",
            policy=DepartmentPolicy(strategy="evenly"),
            no_answer=NoAnswerAction(kind="transfer_department", target=1),
        ),
    }
    menus = {
        "main": IvrMenu(
            menu_id="main",
            name="Main",
            prompt="main.wav",
            items=(
                IvrItem(digit="1", action=IvrAction(kind="department", target=1)),
                IvrItem(digit="2", action=IvrAction(kind="department", target=2)),
                IvrItem(digit="3", action=IvrAction(kind="dial_extension")),
                IvrItem(digit="4", action=IvrAction(kind="menu", target="sub")),
                IvrItem(digit="9", action=IvrAction(kind="employee", target=42)),
            ),
            fallback=IvrAction(kind="voicemail"),
        ),
        "sub": IvrMenu(
            menu_id="sub",
            prompt="sub.wav",
            items=(
                IvrItem(digit="0", action=IvrAction(kind="menu", target="main")),
                IvrItem(digit="1", action=IvrAction(kind="hangup")),
            ),
        ),
    }
    config = cfg(
        Destination(kind="ivr", ref="main"),
        mode="schedule",
        greeting="hello.wav",
        out_of_hours=OutOfHours(action="message_hangup", prompt="closed.wav"),
    )
    return config, departments, menus


def edges_of(g):
    return {(e.source, e.target, e.label) for e in g.edges}


def test_describe_flow_full_graph():
    config, departments, menus = full_setup()
    g = describe_flow(config, departments=departments, menus=menus, employees={}, schedule=OFFICE)
    ids = {n.id for n in g.nodes}
    assert g.root == "number"
    e = edges_of(g)
    assert ("number", "schedule", "") in e
    assert g.node("schedule").details == ("Mon-Fri 09:00-18:00", "Sat-Sun closed", "timezone Europe/Moscow")
    assert ("schedule", "greeting", "in hours") in e
    assert ("schedule", "ooh:message", "out of hours") in e
    assert ("ooh:message", "hangup:0", "") in e
    assert ("ivr:sub", "hangup:1", "press 1") in e and g.node("hangup:1").kind == "hangup"
    assert ("greeting", "ivr:main", "") in e
    assert ("ivr:main", "dept:1", "press 1") in e
    assert ("ivr:main", "dept:2", "press 2") in e
    assert ("ivr:main", "dialext:main", "press 3") in e
    assert ("ivr:main", "ivr:sub", "press 4") in e
    assert ("ivr:sub", "ivr:main", "press 0") in e  # loop back to the main menu
    assert ("ivr:main", "vm:company", "no input / invalid") in e
    assert ("ivr:main", "emp:42", "press 9") in e and g.node("emp:42").kind == "missing"
    # department with strategy, impatient offer and forward -> 30 s -> voicemail
    sales = g.node("dept:1")
    assert sales.label == "Department Sales"
    assert "strategy: in order" in sales.details and "step 15 s" in sales.details
    assert "members: Ivan, Olga" in sales.details
    assert ("dept:1", "offer:1", "waiting 20 s") in e
    assert ("offer:1", "callback:1", "1") in e
    assert ("offer:1", "dept:1", "2 / no input: stay") in e
    assert ("offer:1", "vm:department:1", "3") in e
    assert ("dept:1", "fwd:+79005556677", "no answer in 1 min") in e
    assert ("fwd:+79005556677", "vm:department:1", "no answer in 30 s") in e
    assert ("dept:2", "dept:1", "no answer in 1 min: transfer") in e
    assert g.node("callback:1").details == ("3 attempts, 5 min apart",)
    assert {"hangup:0", "vm:company"} <= ids
    # every edge references existing nodes
    for src, dst, _ in e:
        assert src in ids and dst in ids


def test_describe_flow_24_7_and_missing_department():
    g = describe_flow(cfg(Destination(kind="department", ref=77)))
    assert g.node("number").details == ("24/7",)
    assert g.node("dept:77").kind == "missing"
    assert edges_of(g) == {("number", "dept:77", "")}


def test_render_svg_well_formed_and_complete():
    config, departments, menus = full_setup()
    g = describe_flow(config, departments=departments, menus=menus, employees={42: "Boss"}, schedule=OFFICE)
    svg = render_svg(g)
    root = ET.fromstring(svg.encode())  # noqa: S314
    assert root.tag == f"{SVG}svg"
    groups = root.findall(f"{SVG}g")
    assert {grp.get("data-id") for grp in groups} == {n.id for n in g.nodes}
    assert len(root.findall(f"{SVG}path")) == len(g.edges)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Department Sales" in texts and "press 4" in texts and "Employee Boss" in texts
    # top-to-bottom: the number is above the schedule, which is above the greeting
    ys = {grp.get("data-id"): float(grp.find(f"{SVG}rect").get("y")) for grp in groups}
    assert ys["number"] < ys["schedule"] < ys["greeting"] < ys["ivr:main"] < ys["dept:1"]
    # boxes in one layer do not overlap
    rows = {}
    for r in root.iter(f"{SVG}rect"):
        rows.setdefault(float(r.get("y")), []).append((float(r.get("x")), float(r.get("width"))))
    for row in rows.values():
        row.sort()
        for (x1, w1), (x2, _) in zip(row, row[1:], strict=False):
            assert x1 + w1 <= x2


def test_render_svg_escapes_hostile_labels():
    evil = "<script>alert('x')</script>&\"'"
    departments = {
        1: DepartmentInfo(name=evil, members=(evil,), no_answer=NoAnswerAction(kind="voicemail", greeting=evil))
    }
    g = describe_flow(
        NumberConfig(number=evil, destination=Destination(kind="department", ref=1), greeting="x\x00\x07y"),
        departments=departments,
    )
    svg = render_svg(g)
    assert "<script" not in svg
    assert "\x00" not in svg and "\x07" not in svg
    root = ET.fromstring(svg.encode())  # noqa: S314
    assert root.find(f".//{SVG}script") is None
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert f"Department {evil}" in texts  # round-trips exactly through the escaping
    assert f"members: {evil}" in texts
    assert f"Incoming call to {evil}" in texts
    assert "xy (instead of ring-back)" in texts


def test_render_svg_single_node():
    g = describe_flow(cfg(Destination(kind="voicemail")))
    root = ET.fromstring(render_svg(g).encode())  # noqa: S314
    assert len(root.findall(f"{SVG}g")) == 2
