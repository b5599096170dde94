"""Dial-string parsing and the originate engine (switch_ivr_originate, simulated)."""

from __future__ import annotations

import logging

import gevent
import gevent.event

from fsd.sim import clock as clock_mod
from fsd.sim import ids
from fsd.sim import variables as varsets
from fsd.sim.channel import Channel, _Tracked

log = logging.getLogger(__name__)


class OriginateError(Exception):
    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _split_top(s: str, sep: str) -> list[str]:
    """Split at `sep` outside {} [] <> and parentheses."""
    if "{" not in s and "[" not in s and "<" not in s and "(" not in s:
        return s.split(sep)  # nothing opens a group: the depth stays 0 (closers alone do not count)
    return _split_top_scan(s, sep)


def _split_top_scan(s: str, sep: str) -> list[str]:
    """_split_top by a character scan (any string; _split_top's shortcut must agree with it)."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch in "{[<(":
            depth += 1
        elif ch in "}]>)":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _parse_vars(text: str) -> list[tuple[str, str]]:
    out = []
    for item in _split_top(text, ","):
        item = item.strip()
        if not item or "=" not in item:
            continue
        k, _, v = item.partition("=")
        k = k.strip()
        if k.startswith("^^"):
            continue
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        out.append((k, v))
    return out


def _take_prefix(s: str, open_ch: str, close_ch: str, *, shortcut: bool = True) -> tuple[list[tuple[str, str]], str]:
    """The leading ``{...}`` / ``[...]`` variable groups of ``s`` and the rest. ``shortcut=False`` runs
    the character scan only (the test compares the two)."""
    s = s.strip()
    vars_: list[tuple[str, str]] = []
    while s.startswith(open_ch):
        end = s.find(close_ch) if shortcut else -1
        if end > 0 and s.find(open_ch, 1, end) < 0:  # no nested group: the first closer ends it
            vars_ += _parse_vars(s[1:end])
            s = s[end + 1 :].strip()
            continue
        depth = 0
        for i, ch in enumerate(s):
            if ch == open_ch:
                depth += 1
            elif ch == close_ch:
                depth -= 1
                if depth == 0:
                    vars_ += _parse_vars(s[1:i])
                    s = s[i + 1 :].strip()
                    break
        else:
            break
    return vars_, s


def parse_dialstring(dialstring: str):
    """-> (global_vars, [[(leg_vars, endpoint), ...] per sequential group])."""
    global_vars, rest = _take_prefix(dialstring, "{", "}")
    groups = []
    for group in _split_top(rest, "|"):
        legs = []
        for leg in _split_top(group, ","):
            leg = leg.strip()
            if not leg:
                continue
            leg_vars, ep = _take_prefix(leg, "[", "]")
            more, ep = _take_prefix(ep, "{", "}")
            legs.append((leg_vars + more, ep.strip()))
        if legs:
            groups.append(legs)
    return global_vars, groups


def _float(v, default):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def originate(
    switch,
    dialstring: str,
    *,
    originator: Channel | None = None,
    cancel: gevent.event.Event | None = None,
    extra_vars: list[tuple[str, str]] | None = None,
    timeout: float | None = None,
) -> Channel:
    """Ring the dial string. Returns the answered leg (still without a session greenlet) or raises
    OriginateError(cause). Failed legs are finished (HANGUP_COMPLETE fired, DESTROY scheduled)."""
    global_vars, groups = parse_dialstring(dialstring)
    gvars = list(extra_vars or []) + global_vars
    gdict = dict(gvars)
    overall = _float(gdict.get("originate_timeout"), timeout if timeout is not None else 60.0)
    clock = switch.clock
    t0 = clock.now()
    last_cause = "NO_ANSWER" if groups else "DESTINATION_OUT_OF_ORDER"
    first = True
    for group in groups:
        if cancel is not None and cancel.is_set():
            raise OriginateError("ORIGINATOR_CANCEL")
        remaining = overall - (clock.now() - t0)
        if remaining <= 0:
            break
        try:
            return _ring_group(switch, group, gvars, originator, cancel, remaining, first_group=first)
        except OriginateError as e:
            last_cause = e.cause
            first = False
    raise OriginateError(last_cause)


def _ring_group(switch, group, gvars, originator, cancel, remaining, *, first_group):
    clock = switch.clock
    changed = gevent.event.Event()
    legs: list[tuple[Channel, float]] = []  # (leg, deadline in simulated time)
    failures: list[str] = []
    pending = {"n": len(group)}
    t0 = clock.now()
    deadline_all = t0 + remaining

    def _create(leg_vars, ep_str):
        vars_all = list(gvars) + list(leg_vars)
        vd = dict(vars_all)
        delay = _float(vd.get("leg_delay_start"), 0.0)
        try:
            if delay > 0:
                stop = cancel.wait(clock.real(delay)) if cancel is not None else gevent.sleep(clock.real(delay))
                if stop:
                    raise OriginateError("ORIGINATOR_CANCEL")
            leg = create_leg(switch, ep_str, vars_all, originator)
        except OriginateError as e:
            failures.append(e.cause)
        else:
            leg_timeout = _float(vd.get("leg_timeout"), _float(vd.get("call_timeout"), None))
            dl = clock.now() + leg_timeout if leg_timeout else deadline_all
            legs.append((leg, min(dl, deadline_all)))
            leg.answered.rawlink(lambda _e: changed.set())
            leg.hungup.rawlink(lambda _e: changed.set())
        finally:
            pending["n"] -= 1
            changed.set()

    if cancel is not None:
        cancel.rawlink(lambda _e: changed.set())
    creators = []
    for leg_vars, ep in group:
        vd = dict(list(gvars) + list(leg_vars))
        if _float(vd.get("leg_delay_start"), 0.0) > 0:
            creators.append(clock_mod.Greenlet.spawn(_create, leg_vars, ep))  # killed below (blocking)
        else:
            _create(leg_vars, ep)
    winner = None
    cause = None
    while True:
        changed.clear()
        for leg, _dl in legs:
            if leg.answered.is_set() and not leg.hungup.is_set():
                winner = leg
                break
        if winner is not None:
            break
        if cancel is not None and cancel.is_set():
            cause = "ORIGINATOR_CANCEL"
            break
        now = clock.now()
        for leg, dl in legs:
            if not leg.hungup.is_set() and now >= dl:
                leg._by_originate = True
                leg.hangup("NO_ANSWER")
        alive = [leg for leg, _ in legs if not leg.hungup.is_set()]
        if not alive and pending["n"] == 0:
            break
        if now >= deadline_all and not alive:
            break
        next_dl = min([dl for leg, dl in legs if not leg.hungup.is_set()] or [deadline_all])
        changed.wait(max(0.0, clock.real(next_dl - now)) + 0.0005)
    for c in creators:
        c.kill()
    for leg, _ in legs:
        if leg is winner:
            continue
        if not leg.hungup.is_set():
            leg._by_originate = True
            leg.hangup(cause or ("LOSE_RACE" if winner is not None else "NO_ANSWER"))
        if getattr(leg, "_by_originate", False):
            clock_mod.spawn(leg._finish)  # the leg's own thread unwinds after originate returned
        else:
            leg._finish_report()  # the far end failed it: its thread had finished meanwhile
            clock_mod.spawn(leg._finish_destroy)
    if winner is not None:
        winner.lost_legs = [(leg, leg.hangup_cause) for leg, _ in legs if leg is not winner]
        winner.all_legs = [leg for leg, _ in legs]
        return winner
    if cause is None:
        causes = [leg.hangup_cause for leg, _ in legs if leg.hangup_cause] + failures
        cause = causes[-1] if causes else "NO_ANSWER"
        if len(legs) + len(failures) > 1 and "NO_ANSWER" in causes:
            cause = "NO_ANSWER"
    raise OriginateError(cause)


def create_leg(switch, ep_str: str, vars_all: list[tuple[str, str]], originator: Channel | None) -> Channel:
    """Resolve one endpoint string and create its outgoing channel (or raise OriginateError)."""
    vd = dict(vars_all)
    endpoint = None
    chan_vars: list[tuple[str, str]] = []
    presence = ""
    if ep_str.startswith("user/"):
        target = ep_str[len("user/") :]
        user, _, domain = target.partition("@")
        domain = domain or switch.domain
        phone = switch.lookup_user(user, domain)
        if phone is None:
            raise OriginateError("SUBSCRIBER_ABSENT")
        switch.fire_api_event("sofia_contact", f"*/{user}@{domain}")
        if not phone.registered:
            raise OriginateError("USER_NOT_REGISTERED")
        endpoint = phone
        phone_vars = dict(phone.variables)
        port = phone.port or 5060
        name = f"sofia/internal/{user}@{domain}:{port}"
        dest = user
        presence = f"{user}@{domain}"
        chan_vars = [
            ("sip_local_network_addr", switch.esl_host),
            ("sip_profile_name", "internal"),
            ("video_media_flow", "disabled"),
            ("text_media_flow", "disabled"),
        ]
        profile_ctx = "default"
        trailing = [
            ("dialed_user", user),
            ("dialed_domain", domain),
            ("sip_invite_domain", domain),
            ("presence_id", presence),
            ("originate_early_media", "false"),
            ("originate_endpoint", "user"),
        ]
        contact = f"{user}@127.0.0.1:{port}"
    elif ep_str.startswith("sofia/gateway/"):
        rest = ep_str[len("sofia/gateway/") :]
        gw_name, _, number = rest.partition("/")
        gw = switch.gateways.get(gw_name)
        if gw is None:
            raise OriginateError("INVALID_GATEWAY")
        endpoint = gw.endpoint_for(number)
        name = f"sofia/external/{number}"
        dest = number
        profile_ctx = "default"
        chan_vars = [
            ("sip_gateway_name", gw_name),
            ("sip_invite_domain", gw.proxy.split(":")[0]),
            ("sip_local_network_addr", switch.esl_host),
            ("sip_profile_name", "external"),
            ("video_media_flow", "disabled"),
            ("text_media_flow", "disabled"),
        ]
        trailing = [("originate_early_media", "false"), ("originate_endpoint", "sofia")]
        port = 5090
        contact = f"{number}@{gw.proxy}"
        if not gw.reachable:
            endpoint = None
            chan_vars.append(("__fail", "NORMAL_TEMPORARY_FAILURE"))
    elif ep_str.startswith("error/"):
        raise OriginateError(ep_str[len("error/") :] or "NORMAL_CLEARING")
    else:
        raise OriginateError("CHAN_NOT_IMPLEMENTED")

    leg_uuid = vd.get("origination_uuid") or ids.uuid4()
    if leg_uuid in switch.channels_by_uuid:
        raise OriginateError("NORMAL_TEMPORARY_FAILURE")
    if originator is not None:
        cid_name = vd.get("origination_caller_id_name", originator.profile["Caller-ID-Name"])
        cid_num = vd.get("origination_caller_id_number", originator.profile["Caller-ID-Number"])
    else:
        cid_name = vd.get("origination_caller_id_name", "")
        cid_num = vd.get("origination_caller_id_number", "0000000000")
    fail = None
    variables = [(k, v) for k, v in chan_vars if k != "__fail"]
    fail = dict(chan_vars).get("__fail")
    if originator is not None and ep_str.startswith("user/"):
        # a b-leg of the bridge application: mod_dptools' user/ endpoint and the originator add theirs
        variables = [(k, v) for k, v in variables if k != "video_media_flow"]
        variables += [
            ("channel_name", name),
            ("sip_destination_url", f"sip:{contact}"),
            ("switch_m_sdp", originator.get_var("switch_r_sdp") or ""),
        ]
        variables += [
            kv for kv in trailing if kv[0] in ("dialed_user", "dialed_domain", "sip_invite_domain", "presence_id")
        ]
        variables += [(k, str(v)) for k, v in phone_vars.items()]
        variables += [
            ("max_forwards", "69"),
            ("originator_codec", "PCMU@8000h@20i@64000b"),
            ("originator", originator.uuid),
            ("signal_bond", originator.uuid),
            ("call_uuid", originator.uuid),
        ]
        variables += list(vars_all)
        variables += [
            ("originate_early_media", "false"),
            ("originating_leg_uuid", originator.uuid),
            ("originate_endpoint", "user"),
        ]
    else:
        variables += [("channel_name", name), ("sip_destination_url", f"sip:{contact}")]
        variables += list(vars_all)
        variables += trailing
    leg = Channel(
        switch=switch,
        direction="outbound",
        name=name,
        caller_id_name=cid_name,
        caller_id_number=cid_num,
        destination_number=dest,
        context=profile_ctx,
        uuid=leg_uuid,
        variables=variables,
        dialplan="",
        source="src/switch_ivr_originate.c",
        endpoint=endpoint,
    )
    leg.endpoint_port = port
    varsets.outbound_leg_media(leg)
    if originator is not None and ep_str.startswith("user/"):
        leg.set_var("video_media_flow", "disabled")
        leg.set_var("rtp_local_sdp_str", leg.get_var("rtp_local_sdp_str"))  # moves it to the end
    profile_name = "internal" if ep_str.startswith("user/") else "external"
    sip_port = 5060 if profile_name == "internal" else 5080
    for k, v in (
        ("sip_outgoing_contact_uri", f"<sip:mod_sofia@{switch.esl_host}:{sip_port}>"),
        ("sip_req_uri", contact),
        ("sip_to_host", contact.split("@", 1)[1]),
        ("sip_from_host", switch.esl_host),
        ("sofia_profile_name", profile_name),
        ("recovery_profile_name", profile_name),
        ("sofia_profile_url", f"sip:mod_sofia@{switch.esl_host}:{sip_port}"),
    ):
        leg.set_var(k, v)
    leg.profile["Callee-ID-Name"] = "Outbound Call"
    leg.profile["Callee-ID-Number"] = dest
    leg.profile["ANI"] = cid_num
    if originator is not None:
        leg.other = originator
        leg.other_type = "originator"
        leg.other_profile = originator.snapshot_profile()
        # the originator shows this leg as an "originatee" clone of its own profile
        clone = _Tracked(originator.profile)
        clone.update(
            {
                "Direction": "outbound",
                "Callee-ID-Name": "Outbound Call",
                "Callee-ID-Number": dest,
                "Destination-Number": dest,
                "Unique-ID": leg.uuid,
                "Channel-Name": name,
                "Network-Addr": "127.0.0.1",
            }
        )
        leg.originatee_profile = clone
        own = _Tracked(clone)
        own["Logical-Direction"] = "outbound"
        leg.profile = own  # a b-leg of an originator starts from a copy of the originator's profile
    else:
        leg.originated = True
    leg.state = "CS_NONE"
    switch._register_channel(leg)
    if originator is not None and originator.answer_state == "answered":
        originator.set_callstate("RING_WAIT")
    leg.fire("CHANNEL_OUTGOING")
    if originator is not None:
        # the originator's CALLSTATE flips while each b-leg is set up, showing it as the other leg
        originator.other = leg
        originator.other_type = "originatee"
        originator.other_profile = (leg.originatee_profile, _Tracked(leg.times))
        if originator.answer_state == "answered":
            originator.set_callstate("ACTIVE")
        leg.presence_id = presence
        leg.fire("CHANNEL_OUTGOING")
    leg.presence_id = presence
    leg.set_state("CS_INIT")
    leg.fire("CHANNEL_CREATE")
    leg.fire("CHANNEL_ORIGINATE")
    leg.set_state("CS_ROUTING")
    leg.presence("CS_ROUTING", "progressing")
    leg.set_state("CS_CONSUME_MEDIA")
    if fail:
        varsets.failed_invite(leg, fail, "503", "Service Unavailable", unreachable=True)
        leg.hangup(fail)
    elif endpoint is not None:
        endpoint._ring(leg, switch.clock)
    return leg
