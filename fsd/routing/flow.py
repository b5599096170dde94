"""Incoming-number routing: the plan for one call, the flow graph of a number, and its SVG scheme.

Pure code: no I/O, no clock reads (``now`` is passed in).

:func:`route_call` decides what the call driver does with a call to a DID (spec §4):

- mode ``always`` (24/7) is always "in hours"; mode ``schedule`` asks the company schedule;
- in hours, by destination kind:
  ``department`` -> ``[PlayGreetingWhileRinging(greeting)?, RingDepartment(id)]``,
  ``employee``   -> ``[PlayGreetingWhileRinging(greeting)?, RingEmployee(id)]``,
  ``ivr``        -> ``[PlayMessage(greeting)?, EnterIvr(id)]`` (nothing rings while a menu plays,
  so the greeting is played before the menu),
  ``voicemail``  -> ``[Voicemail(box)]`` (the box's own greeting applies; the number greeting is
  for ringing destinations);
- out of hours, by action:
  ``voicemail``      -> ``[Voicemail(company box, greeting=prompt)]``,
  ``message_hangup`` -> ``[PlayMessage(prompt), Hangup()]``,
  ``forward``        -> ``[Forward(number, 30 s, on_no_answer=[Voicemail(company box)])]``,
  ``destination``    -> the in-hours steps of another destination, without the greeting.

:func:`describe_flow` returns the whole flow of a number as a graph (schedule branches, greeting,
IVR digits, departments with their strategy, impatient offer, no-answer fallbacks, transfers) and
:func:`render_svg` draws it as a self-contained SVG for the cabinet.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fsd.errors import ValidationError
from fsd.queue.callback import CallbackPolicy
from fsd.queue.noanswer import NoAnswerAction
from fsd.queue.strategy import DepartmentPolicy
from fsd.queue.waiting import ImpatientConfig
from fsd.routing.ivr import IvrAction, IvrMenu
from fsd.routing.schedule import Schedule, is_open
from fsd.routing.steps import (
    FORWARD_TIMEOUT_S,
    EnterIvr,
    Forward,
    Hangup,
    PlayGreetingWhileRinging,
    PlayMessage,
    RingDepartment,
    RingEmployee,
    Voicemail,
)

NUMBER_MODES = ("always", "schedule")
DESTINATION_KINDS = ("department", "employee", "ivr", "voicemail")
OUT_OF_HOURS_ACTIONS = ("voicemail", "message_hangup", "forward", "destination")


@dataclass(frozen=True, kw_only=True)
class Destination:
    """Where calls go. ``ref`` is the department/employee/menu id; for ``voicemail`` it is an
    employee or department box id as ``("employee", id)``/``("department", id)``, or None for the
    company box."""

    kind: str
    ref: Hashable | None = None

    def __post_init__(self):
        if self.kind not in DESTINATION_KINDS:
            raise ValidationError(f"destination must be one of {DESTINATION_KINDS}", field="destination")
        if self.kind != "voicemail" and self.ref is None:
            raise ValidationError(f"destination {self.kind} needs a reference", field="destination")


@dataclass(frozen=True, kw_only=True)
class OutOfHours:
    """``target``: the number for ``forward``, a :class:`Destination` for ``destination``.
    ``prompt``: the message for ``message_hangup``, the voicemail greeting for ``voicemail``."""

    action: str = "voicemail"
    target: Hashable | Destination | None = None
    prompt: str | None = None

    def __post_init__(self):
        if self.action not in OUT_OF_HOURS_ACTIONS:
            raise ValidationError(f"out-of-hours action must be one of {OUT_OF_HOURS_ACTIONS}", field="out_of_hours")
        if self.action == "message_hangup" and not self.prompt:
            raise ValidationError("message and hang up needs a message", field="out_of_hours")
        if self.action == "forward" and not self.target:
            raise ValidationError("out-of-hours forward needs a number", field="out_of_hours")
        if self.action == "destination" and not isinstance(self.target, Destination):
            raise ValidationError("out-of-hours destination needs a destination", field="out_of_hours")


@dataclass(frozen=True, kw_only=True)
class NumberConfig:
    number: str
    destination: Destination
    mode: str = "always"
    out_of_hours: OutOfHours = OutOfHours()
    greeting: str | None = None

    def __post_init__(self):
        if self.mode not in NUMBER_MODES:
            raise ValidationError(f"number mode must be one of {NUMBER_MODES}", field="mode")


@dataclass(frozen=True, kw_only=True)
class CallPlan:
    steps: tuple
    in_hours: bool


def _voicemail_step(dest: Destination, greeting: str | None = None) -> Voicemail:
    if isinstance(dest.ref, tuple) and len(dest.ref) == 2:
        return Voicemail(box_kind=dest.ref[0], box_id=dest.ref[1], greeting=greeting)
    return Voicemail(box_kind="company", box_id=None, greeting=greeting)


def destination_steps(dest: Destination, greeting: str | None = None) -> tuple:
    """Steps that deliver a call to ``dest`` (see the module doc for the greeting rule)."""
    if dest.kind == "department":
        head = (PlayGreetingWhileRinging(prompt=greeting),) if greeting else ()
        return (*head, RingDepartment(department_id=dest.ref))
    if dest.kind == "employee":
        head = (PlayGreetingWhileRinging(prompt=greeting),) if greeting else ()
        return (*head, RingEmployee(employee_id=dest.ref))
    if dest.kind == "ivr":
        head = (PlayMessage(prompt=greeting),) if greeting else ()
        return (*head, EnterIvr(menu_id=dest.ref))
    return (_voicemail_step(dest),)


def route_call(config: NumberConfig, schedule: Schedule | None, now: datetime) -> CallPlan:
    """The plan for a call to ``config.number`` arriving at the aware instant ``now``.

    ``schedule`` is the company schedule (may be None when ``config.mode == 'always'``).
    """
    if config.mode == "always":
        in_hours = True
    else:
        if schedule is None:
            raise ValidationError("number routed by schedule but the company has none", field="schedule")
        in_hours = is_open(schedule, now)
    if in_hours:
        return CallPlan(steps=destination_steps(config.destination, config.greeting), in_hours=True)
    ooh = config.out_of_hours
    if ooh.action == "voicemail":
        steps = (Voicemail(box_kind="company", box_id=None, greeting=ooh.prompt),)
    elif ooh.action == "message_hangup":
        steps = (PlayMessage(prompt=ooh.prompt), Hangup())
    elif ooh.action == "forward":
        steps = (
            Forward(
                number=str(ooh.target),
                timeout_s=FORWARD_TIMEOUT_S,
                on_no_answer=(Voicemail(box_kind="company", box_id=None),),
            ),
        )
    else:
        steps = destination_steps(ooh.target)
    return CallPlan(steps=steps, in_hours=False)


# ---- flow graph ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DepartmentInfo:
    """What the scheme needs to know about a department."""

    name: str
    policy: DepartmentPolicy = DepartmentPolicy()
    members: tuple[str, ...] = ()
    impatient: ImpatientConfig | None = None
    no_answer: NoAnswerAction = NoAnswerAction()
    callback: CallbackPolicy = CallbackPolicy()


@dataclass(frozen=True, kw_only=True)
class FlowNode:
    id: str
    kind: str
    label: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FlowEdge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class FlowGraph:
    root: str
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]

    def node(self, node_id: str) -> FlowNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def out_edges(self, node_id: str) -> list[FlowEdge]:
        return [e for e in self.edges if e.source == node_id]


STRATEGY_LABELS = {
    "simultaneous": "all at once",
    "evenly": "evenly (longest idle first)",
    "in_order": "in order",
    "cascade": "cascade (growing)",
}


def _secs(s: float) -> str:
    s = float(s)
    if s >= 60 and s % 60 == 0:
        return f"{int(s // 60)} min"
    return f"{s:g} s"


@dataclass
class _Builder:
    departments: Mapping
    menus: Mapping
    employees: Mapping
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)

    def add(self, node_id, kind, label, details=()) -> str:
        if node_id not in self.nodes:
            self.nodes[node_id] = FlowNode(id=node_id, kind=kind, label=label, details=tuple(details))
        return node_id

    def edge(self, src, dst, label=""):
        e = FlowEdge(source=src, target=dst, label=label)
        if e not in self.edges:
            self.edges.append(e)

    def hangup(self) -> str:
        # One "Hang up" box per use: an end of the flow, not a shared place, so the scheme has no
        # long arrows converging on it.
        return self.add(f"hangup:{sum(1 for k in self.nodes if k.startswith('hangup'))}", "hangup", "Hang up")

    def voicemail(self, box_kind, box_id=None, greeting=None) -> str:
        if box_kind == "company" or box_id is None:
            nid, label = "vm:company", "Voicemail (company box)"
        elif box_kind == "department":
            info = self.departments.get(box_id)
            name = info.name if info else f"#{box_id}"
            nid, label = f"vm:department:{box_id}", f"Voicemail: {name}"
        else:
            name = self.employees.get(box_id, f"#{box_id}")
            nid, label = f"vm:employee:{box_id}", f"Voicemail: {name}"
        details = (f"greeting: {greeting}" if greeting else "standard greeting",)
        return self.add(nid, "voicemail", label, details)

    def forward(self, number, timeout_s, on_no_answer_node) -> str:
        nid = self.add(f"fwd:{number}", "forward", f"Forward to {number}")
        self.edge(nid, on_no_answer_node, f"no answer in {_secs(timeout_s)}")
        return nid

    def employee(self, emp_id) -> str:
        name = self.employees.get(emp_id)
        if name is None:
            return self.add(f"emp:{emp_id}", "missing", f"Employee #{emp_id} (missing)")
        return self.add(f"emp:{emp_id}", "employee", f"Employee {name}")

    def destination(self, dest: Destination) -> str:
        if dest.kind == "department":
            return self.department(dest.ref)
        if dest.kind == "employee":
            return self.employee(dest.ref)
        if dest.kind == "ivr":
            return self.ivr(dest.ref)
        step = _voicemail_step(dest)
        return self.voicemail(step.box_kind, step.box_id)

    def department(self, dept_id) -> str:
        nid = f"dept:{dept_id}"
        if nid in self.nodes:
            return nid
        info = self.departments.get(dept_id)
        if info is None:
            return self.add(nid, "missing", f"Department #{dept_id} (missing)")
        p = info.policy
        details = [f"strategy: {STRATEGY_LABELS[p.strategy]}"]
        if p.strategy in ("evenly", "in_order", "cascade"):
            details.append(f"step {_secs(p.step_delay_s)}")
        details.append("members: " + (", ".join(info.members) if info.members else "none"))
        self.add(nid, "department", f"Department {info.name}", details)
        if info.impatient is not None and info.impatient.enabled:
            offer = self.add(
                f"offer:{dept_id}",
                "offer",
                "Impatient-caller offer",
                ("1 callback, 2 stay, 3 voicemail",),
            )
            self.edge(nid, offer, f"waiting {_secs(info.impatient.threshold_s)}")
            cb = self.add(
                f"callback:{dept_id}",
                "callback",
                "Callback request",
                (f"{info.callback.max_attempts} attempts, {_secs(info.callback.retry_interval_s)} apart",),
            )
            self.edge(offer, cb, "1")
            self.edge(offer, nid, "2 / no input: stay")
            self.edge(offer, self.voicemail("department", dept_id, info.no_answer.greeting), "3")
        na = info.no_answer
        label = f"no answer in {_secs(p.ring_timeout_s)}"
        if na.kind == "voicemail":
            self.edge(nid, self.voicemail("department", dept_id, na.greeting), label)
        elif na.kind == "forward_external":
            vm = self.voicemail("department", dept_id, na.greeting)
            self.edge(nid, self.forward(na.target, na.forward_timeout_s, vm), label)
        elif na.kind == "transfer_employee":
            self.edge(nid, self.employee(na.target), label)
        else:
            self.edge(nid, self.department(na.target), label + ": transfer")
        return nid

    def ivr(self, menu_id) -> str:
        nid = f"ivr:{menu_id}"
        if nid in self.nodes:
            return nid
        menu: IvrMenu | None = self.menus.get(menu_id)
        if menu is None:
            return self.add(nid, "missing", f"IVR menu #{menu_id} (missing)")
        title = menu.name or str(menu_id)
        self.add(
            nid,
            "ivr",
            f"IVR menu {title}",
            (f"prompt: {menu.prompt}", f"timeout {_secs(menu.timeout_s)}, {menu.max_repeats} repeats"),
        )
        for item in menu.items:
            self.edge(nid, self.ivr_action(menu, item.action), f"press {item.digit}")
        self.edge(nid, self.ivr_action(menu, menu.fallback), "no input / invalid")
        return nid

    def ivr_action(self, menu: IvrMenu, action: IvrAction) -> str:
        if action.kind == "department":
            return self.department(action.target)
        if action.kind == "employee":
            return self.employee(action.target)
        if action.kind == "menu":
            return self.ivr(action.target)
        if action.kind == "hangup":
            return self.hangup()
        if action.kind == "voicemail":
            if isinstance(action.target, tuple) and len(action.target) == 2:
                return self.voicemail(action.target[0], action.target[1])
            return self.voicemail("company")
        return self.add(
            f"dialext:{menu.menu_id}",
            "dial_extension",
            "Dial by extension",
            (f"{menu.extension_digits} digits",),
        )


def describe_flow(
    config: NumberConfig,
    *,
    departments: Mapping[Hashable, DepartmentInfo] | None = None,
    menus: Mapping[Hashable, IvrMenu] | None = None,
    employees: Mapping[Hashable, str] | None = None,
    schedule: Schedule | None = None,
) -> FlowGraph:
    """The whole flow of calls to ``config.number`` as nodes and labelled edges.

    ``departments``/``menus``/``employees`` (id -> info/menu/display name) resolve references;
    unknown references become ``missing`` nodes rather than errors, so a half-configured number
    still draws. Each department, menu, employee and voicemail box is one node, so transfers and
    sub-menus that loop show up as edges back to an existing node.
    """
    b = _Builder(departments=departments or {}, menus=menus or {}, employees=employees or {})
    root = b.add("number", "number", f"Incoming call to {config.number}")
    entry = root
    in_label = ""
    if config.mode == "schedule":
        details: tuple = ()
        if schedule is not None:
            # Weekly hours only when the caller passed them (a bare Schedule(timezone=...) has none).
            hours = schedule.summary() if (schedule.weekly or schedule.exceptions) else ()
            details = (*hours, f"timezone {schedule.timezone}")
        sched = b.add("schedule", "schedule", "Company schedule", details)
        b.edge(root, sched)
        entry, in_label = sched, "in hours"
        ooh = config.out_of_hours
        if ooh.action == "voicemail":
            target = b.voicemail("company", greeting=ooh.prompt)
        elif ooh.action == "message_hangup":
            target = b.add("ooh:message", "message", "Play message", (f"{ooh.prompt}",))
            b.edge(target, b.hangup())
        elif ooh.action == "forward":
            target = b.forward(ooh.target, FORWARD_TIMEOUT_S, b.voicemail("company"))
        else:
            target = b.destination(ooh.target)
        b.edge(sched, target, "out of hours")
    else:
        root_node = b.nodes[root]
        b.nodes[root] = FlowNode(id=root, kind="number", label=root_node.label, details=("24/7",))
    dest = config.destination
    if config.greeting and dest.kind in ("department", "employee", "ivr"):
        how = "instead of ring-back" if dest.kind != "ivr" else "before the menu"
        greet = b.add("greeting", "greeting", "Greeting", (f"{config.greeting} ({how})",))
        b.edge(entry, greet, in_label)
        entry, in_label = greet, ""
    b.edge(entry, b.destination(dest), in_label)
    return FlowGraph(root=root, nodes=tuple(b.nodes.values()), edges=tuple(b.edges))


# ---- SVG -----------------------------------------------------------------------------------------

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_COLORS = {
    "number": "#dbeafe",
    "schedule": "#fef3c7",
    "greeting": "#e0e7ff",
    "department": "#dcfce7",
    "employee": "#dcfce7",
    "ivr": "#fae8ff",
    "offer": "#ffedd5",
    "callback": "#ffedd5",
    "voicemail": "#f3f4f6",
    "forward": "#e0f2fe",
    "dial_extension": "#fae8ff",
    "message": "#f3f4f6",
    "hangup": "#fee2e2",
    "missing": "#fecaca",
}
_CHAR_W = 7.2
_BOLD_W = 8.0
_LINE_H = 16
_PAD = 10
_H_GAP = 36
_V_GAP = 64
_MARGIN = 20


def _esc(text: str) -> str:
    text = _INVALID_XML.sub("", str(text))
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _layers(graph: FlowGraph) -> list[list[str]]:
    adj: dict = {}
    for e in graph.edges:
        adj.setdefault(e.source, []).append(e.target)
    depth = {graph.root: 0}
    q = deque([graph.root])
    while q:
        n = q.popleft()
        for m in adj.get(n, ()):
            if m not in depth:
                depth[m] = depth[n] + 1
                q.append(m)
    last = max(depth.values(), default=0)
    layers: list[list[str]] = [[] for _ in range(last + 1)]
    stray = []
    for node in graph.nodes:
        if node.id in depth:
            layers[depth[node.id]].append(node.id)
        else:
            stray.append(node.id)
    if stray:
        layers.append(stray)
    # One downward barycentre pass: order each layer by the mean position of its parents above,
    # which removes most crossings in these tree-like graphs.
    parents: dict = {}
    for e in graph.edges:
        parents.setdefault(e.target, []).append(e.source)
    for li in range(1, len(layers)):
        above = {nid: i for i, nid in enumerate(layers[li - 1])}

        def bary(nid, _above=above):
            ps = [_above[p] for p in parents.get(nid, ()) if p in _above]
            return sum(ps) / len(ps) if ps else float(len(_above))

        layers[li] = sorted(layers[li], key=bary)
    return layers


def render_svg(graph: FlowGraph) -> str:
    """A standalone, well-formed SVG drawing of ``graph``: boxes in top-to-bottom layers (breadth-
    first distance from the root, ordered to limit crossings), straight arrows downwards, arcs
    below the row for edges within a row, and edges that go back up (loops) routed through the
    gaps between rows and a lane on the right. All text is XML-escaped; characters XML cannot
    carry are dropped."""
    nodes = {n.id: n for n in graph.nodes}
    layers = _layers(graph)
    size = {}
    for n in graph.nodes:
        lines = [n.label, *n.details]
        w = max([len(n.label) * _BOLD_W, *(len(line) * _CHAR_W for line in n.details)]) + 2 * _PAD
        h = len(lines) * _LINE_H + 2 * _PAD
        size[n.id] = (max(w, 90.0), float(h))
    row_w = [sum(size[i][0] for i in row) + _H_GAP * max(0, len(row) - 1) for row in layers]
    pos = {}
    layer_of = {}
    y = float(_MARGIN)
    for li, row in enumerate(layers):
        x = _MARGIN + (max(row_w, default=0) - row_w[li]) / 2
        row_h = max((size[i][1] for i in row), default=0)
        for nid in row:
            w, h = size[nid]
            pos[nid] = (x, y)
            layer_of[nid] = li
            x += w + _H_GAP
        y += row_h + _V_GAP
    height = y + _MARGIN  # one gap below the last row for same-row arcs
    n_back = sum(1 for e in graph.edges if layer_of.get(e.target, 0) < layer_of.get(e.source, 0))
    width = max(row_w, default=100) + 2 * _MARGIN + 30 + 14 * n_back  # room for loop lanes

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
        "</marker></defs>",
    ]
    right = max((pos[i][0] + size[i][0] for i in pos), default=0.0)
    back = 0
    for e in graph.edges:
        if e.source not in pos or e.target not in pos:
            continue
        sx, sy = pos[e.source]
        sw, sh = size[e.source]
        tx, ty = pos[e.target]
        tw, th = size[e.target]
        ls, lt = layer_of[e.source], layer_of[e.target]
        if lt > ls:  # downwards: straight arrow, label near the middle
            x1, y1 = sx + sw / 2, sy + sh
            x2, y2 = tx + tw / 2, ty
            d = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
            lx, ly = x1 + (x2 - x1) * 0.55 + 4, y1 + (y2 - y1) * 0.55
        elif lt == ls:  # same layer: an arc below the row, label at its lowest point
            x1, y1, x2, y2 = sx + sw * 0.35, sy + sh, tx + tw * 0.35, ty + th
            dip = max(y1, y2) + _V_GAP * 0.55
            d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{dip:.1f} {x2:.1f},{dip:.1f} {x2:.1f},{y2:.1f}"
            lx, ly = (x1 + x2) / 2 - 20, dip - 8
        elif ls - lt == 1:  # one row up: a short direct arrow, bottom-right of the target
            x1, y1 = sx + sw * 0.8, sy
            x2, y2 = tx + tw * 0.8, ty + th
            d = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
            lx, ly = x1 + (x2 - x1) * 0.5 + 4, y1 + (y2 - y1) * 0.5
        else:  # further up (a loop): orthogonal route through the gaps between rows and a right lane
            back += 1
            off = 5 * (back % 5)
            x1, y1 = sx + sw * 0.8, sy
            x2, y2 = tx + tw * 0.8, ty + th
            gap_src = y1 - _V_GAP * 0.3 - off
            gap_dst = y2 + _V_GAP * 0.3 + off
            lane = right + 16 + 14 * back
            d = (
                f"M{x1:.1f},{y1:.1f} L{x1:.1f},{gap_src:.1f} L{lane:.1f},{gap_src:.1f} "
                f"L{lane:.1f},{gap_dst:.1f} L{x2:.1f},{gap_dst:.1f} L{x2:.1f},{y2:.1f}"
            )
            lx, ly = x1 + 6, gap_src - 3
        out.append(f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.3" marker-end="url(#arrow)"/>')
        if e.label:
            out.append(
                f'<text x="{lx:.1f}" y="{ly:.1f}" fill="#333" font-size="11" stroke="#fff" '
                f'stroke-width="3" paint-order="stroke">{_esc(e.label)}</text>'
            )
    for layer in layers:
        for nid in layer:
            n = nodes[nid]
            x, y0 = pos[nid]
            w, h = size[nid]
            fill = _COLORS.get(n.kind, "#ffffff")
            out.append(f'<g class="node {_esc(n.kind)}" data-id="{_esc(n.id)}">')
            out.append(f"<title>{_esc(n.label)}</title>")
            out.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" fill="{fill}" stroke="#444"/>'
            )
            for i, line in enumerate([n.label, *n.details]):
                weight = ' font-weight="bold"' if i == 0 else ""
                ty = y0 + _PAD + (i + 1) * _LINE_H - 4
                out.append(f'<text x="{x + _PAD:.1f}" y="{ty:.1f}"{weight}>{_esc(line)}</text>')
            out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
