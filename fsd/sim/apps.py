"""Dialplan applications of the emulator (mod_dptools subset). Each takes (channel, arg) and returns
the Application-Response to report, or None to keep the channel's previous (sticky) response."""

from __future__ import annotations

import logging
import re
import shlex

from fsd.sim.channel import FILE_PLAYED, PLAYBACK_ERROR, Hangup, _Tracked, media_duration, write_wav

log = logging.getLogger(__name__)

APPS = {}


def app(name):
    def deco(fn):
        APPS[name] = fn
        return fn

    return deco


@app("answer")
def _answer(ch, arg):
    ch.answer()
    if ch.get_var("sofia_profile_name") == "internal":
        ch.ack_received()  # phones on the LAN ACK at once (seen in the captures)


@app("pre_answer")
def _pre_answer(ch, arg):
    ch.pre_answer()


@app("ring_ready")
def _ring_ready(ch, arg):
    ch.ring_ready()


@app("log")
def _log(ch, arg):
    log.debug("sim_dialplan_log uuid=%s text=%s", ch.uuid, arg)


@app("info")
def _info(ch, arg):
    return None


@app("set")
def _set(ch, arg):
    k, sep, v = arg.partition("=")
    if not sep:
        return None
    ch.set_var(k.strip(), v if v != "_undef_" else None)


@app("export")
def _export(ch, arg):
    k, sep, v = arg.partition("=")
    if k.startswith("nolocal:"):
        k = k[len("nolocal:") :]
    else:
        ch.set_var(k.strip(), v)
    exported = ch.get_var("export_vars")
    ch.set_var("export_vars", f"{exported},{k.strip()}" if exported else k.strip())
    ch.exported = getattr(ch, "exported", {})
    ch.exported[k.strip()] = v


@app("unset")
def _unset(ch, arg):
    ch.set_var(arg.strip(), None)


@app("multiset")
def _multiset(ch, arg):
    for item in arg.split():
        _set(ch, item)


@app("hangup")
def _hangup(ch, arg):
    ch.hangup(arg.strip() or "NORMAL_CLEARING")


RESPOND_CAUSES = {
    "486": "USER_BUSY",
    "480": "NO_USER_RESPONSE",
    "404": "UNALLOCATED_NUMBER",
    "503": "NORMAL_TEMPORARY_FAILURE",
    "603": "CALL_REJECTED",
    "487": "ORIGINATOR_CANCEL",
    "408": "RECOVERY_ON_TIMER_EXPIRE",
}


@app("respond")
def _respond(ch, arg):
    code = arg.strip().split(" ")[0]
    if code in ("180",):
        ch.ring_ready()
    elif code in ("183",):
        ch.pre_answer()
    elif code.startswith("2"):
        ch.answer()
    else:
        cause = RESPOND_CAUSES.get(code, "CALL_REJECTED")
        ch.hangup(cause)


@app("break")
def _break(ch, arg):
    ch.break_media()


@app("sleep")
def _sleep(ch, arg):
    try:
        ms = int(arg.strip() or 0)
    except ValueError:
        ms = 0
    ch.media_wait(ms / 1000.0)


@app("park")
def _park(ch, arg):
    ch._controlled = True  # switch_ivr_park sets CF_CONTROLLED and CF_PARK
    ch.fire("CHANNEL_PARK")
    ch.park_loop()
    ch.fire("CHANNEL_UNPARK")


@app("socket")
def _socket(ch, arg):
    parts = arg.split()
    target = parts[0] if parts else ""
    host, _, port = target.rpartition(":")
    mode = "async" if "async" in parts[1:] else "static"
    full = "full" in parts[1:]
    host = host or "127.0.0.1"
    ch.set_var("socket_host", host)
    ch._controlled = True  # CF_CONTROLLED until the listener ends (mod_event_socket clears it then)
    session = ch.switch._outbound_connect(ch, host, int(port or 8084), async_mode=mode == "async", full=full)
    if session is None:
        ch._controlled = False
        return None
    ch.fire("CHANNEL_PARK")
    ch.park_loop()
    ch.fire("CHANNEL_UNPARK")
    # socket_function: after the park, a channel the dying listener set to CS_RESET (socket_resume) goes
    # back to CS_EXECUTE, so the dialplan continues after `socket` (no CHANNEL_STATE: it never ran CS_RESET)
    ch.end_reset()


def _play(ch, path: str, *, dtmf_breaks: bool = False, prompt: bool = False) -> tuple[str, float]:
    """Play one file. Returns (status, seconds played): status done|break|hangup|reset|dtmf|notfound|unpark."""
    ch.check()
    if ch.answer_state == "ringing":
        ch.pre_answer()
    dur = media_duration(path, ch.switch.missing_file_duration)
    if dur is None:
        ch.set_var("current_application_response", "FILE NOT FOUND")
        return "notfound", 0.0
    ftype = [("Playback-File-Type", path.split("://", 1)[0])] if "://" in path else []
    ch.fire("PLAYBACK_START", after=ftype + [("Playback-File-Path", path)])
    if prompt and ch.script is not None:
        ch.script._on_prompt(ch)
    t0 = ch.clock.now()
    status = ch.media_wait(dur, dtmf=dtmf_breaks)
    played = max(0.0, ch.clock.now() - t0) if status != "done" else (dur if dur >= 0 else 0.0)
    samples = int(played * 8000)
    ch.set_var("playback_last_offset_pos", samples)
    ch.set_var("playback_seconds", int(played))
    ch.set_var("playback_ms", int(played * 1000))
    ch.set_var("playback_samples", samples)
    # switch_ivr_play_file reports "break" for a break (SWITCH_STATUS_BREAK); a channel that is no longer
    # ready (CS_RESET) ends the file with SWITCH_STATUS_FALSE, reported as "done"
    ended = "done" if status in ("done", "reset") else "break"
    ch.fire("PLAYBACK_STOP", after=ftype + [("Playback-File-Path", path), ("Playback-Status", ended)])
    return status, played


@app("playback")
def _playback(ch, arg):
    status, _ = _play(ch, arg.strip())
    if status == "notfound":
        return "FILE NOT FOUND"
    if status == "reset":
        return PLAYBACK_ERROR
    return FILE_PLAYED


@app("endless_playback")
def _endless(ch, arg):
    while True:
        status, played = _play(ch, arg.strip())
        if status != "done" or played <= 0:
            break
    if status == "reset":
        return PLAYBACK_ERROR
    return FILE_PLAYED


def _collect(ch, *, max_digits, first_timeout, digit_timeout, terminators, already=""):
    """Collect digits typed by the far end. Returns (digits, terminator)."""
    digits = already
    while len(digits) < max_digits:
        if ch._dtmf_buffer:
            d = ch._dtmf_buffer[0]
            ch._dtmf_buffer = ch._dtmf_buffer[1:]
            if d in terminators:
                return digits, d
            digits += d
            continue
        status = ch.media_wait(first_timeout if not digits else digit_timeout, dtmf=True, watch_private=True)
        if status in ("hangup",):
            raise Hangup()
        if status in ("done", "break", "unpark", "reset"):
            break
    return digits, ""


@app("play_and_get_digits")
def _pagd(ch, arg):
    parts = arg.split(" ")
    parts = [p for p in parts if p != ""]
    try:
        min_d, max_d, tries, timeout = int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])
        terminators, prompt, invalid, var = parts[4], parts[5], parts[6], parts[7]
    except (IndexError, ValueError):
        log.warning("sim_pagd_bad_args uuid=%s arg=%s", ch.uuid, arg)
        return None
    regex = parts[8] if len(parts) > 8 else r"\d+"
    digit_timeout = int(parts[9]) if len(parts) > 9 else timeout
    if terminators == "none":
        terminators = ""
    ch._dtmf_buffer = ""
    result = "failure"
    for _ in range(max(1, tries)):
        if not ch.ready():  # switch_play_and_get_digits: while (switch_channel_ready(channel) && max_tries)
            break
        status, _ = _play(ch, prompt, dtmf_breaks=True, prompt=True)
        if status == "hangup":
            raise Hangup()
        digits, _term = _collect(
            ch,
            max_digits=max_d,
            first_timeout=timeout / 1000.0,
            digit_timeout=digit_timeout / 1000.0,
            terminators=terminators,
        )
        if len(digits) >= min_d and re.fullmatch(regex, digits or ""):
            ch.set_var("read_result", "success")
            ch.set_var(var, digits)
            result = "success"
            break
        result = "timeout" if not digits else "failure"
        ch.set_var("read_result", result)
        if not ch.ready():
            break
        if invalid and invalid != "silence_stream://0":
            _play(ch, invalid)
    if result != "success":
        ch.set_var(var, None)
    return None


@app("read")
def _read(ch, arg):
    parts = arg.split(" ")
    try:
        min_d, max_d, prompt, var, timeout = int(parts[0]), int(parts[1]), parts[2], parts[3], int(parts[4])
    except (IndexError, ValueError):
        return None
    terminators = parts[5] if len(parts) > 5 else "#"
    ch._dtmf_buffer = ""
    _play(ch, prompt, dtmf_breaks=True, prompt=True)
    digits, _ = _collect(
        ch, max_digits=max_d, first_timeout=timeout / 1000.0, digit_timeout=timeout / 1000.0, terminators=terminators
    )
    ok = len(digits) >= min_d
    ch.set_var("read_result", "success" if ok else "timeout")
    ch.set_var(var, digits if ok else None)


@app("record")
def _record(ch, arg):
    parts = arg.split()
    if not parts:
        return None
    path = parts[0]
    limit = float(parts[1]) if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) > 0 else -1
    ch.check()
    if ch.answer_state == "ringing":
        ch.pre_answer()
    speak = ch.script.record_seconds if ch.script is not None else None
    if speak is None:
        dur = limit
    else:
        dur = speak if limit < 0 else min(speak, limit)
    ch.fire("RECORD_START", after=[("Record-File-Path", path)])
    t0 = ch.clock.now()
    status = ch.media_wait(dur, dtmf=True)
    seconds = dur if status == "done" and dur >= 0 else max(0.0, ch.clock.now() - t0)
    try:
        write_wav(path, seconds)
        ch.recordings.append(path)
    except OSError as e:
        log.warning("sim_record_failed path=%s error=%s", path, e)
    ch.set_var("record_seconds", int(seconds))
    ch.set_var("record_ms", int(seconds * 1000))
    ch.set_var("record_samples", int(seconds * 8000))
    ch.set_var("record_completion_cause", "success-maxtime" if status == "done" else "success-silence")
    ch.fire(
        "RECORD_STOP",
        after=[("Record-File-Path", path), ("Record-Completion-Cause", ch.get_var("record_completion_cause"))],
    )
    return None


@app("transfer")
def _transfer(ch, arg):
    parts = arg.split()
    if not parts:
        return None
    dest = parts[0]
    dialplan = parts[1] if len(parts) > 1 else "XML"
    context = parts[2] if len(parts) > 2 else ch.profile["Context"]
    ch._private.put(("transfer", dest, dialplan, context))


@app("bridge")
def _bridge(ch, arg):
    from fsd.sim.originate import OriginateError, originate

    ch.check()
    exported = list(getattr(ch, "exported", {}).items())
    try:
        leg = originate(ch.switch, arg, originator=ch, cancel=ch._unready, extra_vars=exported)
    except OriginateError as e:
        ch.set_var("originate_disposition", e.cause)
        ch.set_var("bridge_hangup_cause", e.cause)
        ch.set_var("last_bridge_hangup_cause", e.cause)
        if ch.get_var("continue_on_fail") in (None, "false") and ch.get_var("hangup_after_bridge") == "true":
            pass
        return None
    if ch.answer_state != "answered":
        ch.answer()
    ch.other = leg
    ch.other_type = "originatee"
    ch.other_profile = (leg.originatee_profile, _Tracked(leg.times))
    ch.profile["Callee-ID-Name"] = "Outbound Call"
    ch.profile["Callee-ID-Number"] = leg.profile["Destination-Number"]
    legs = getattr(leg, "all_legs", [leg])
    ch.set_var(
        "originated_legs",
        "ARRAY::" + "|:".join(f"{b.uuid};Outbound Call;{b.profile['Destination-Number']}" for b in legs),
    )
    if leg.get_var("dialed_user"):
        ch.set_var("dialed_user", leg.get_var("dialed_user"))
        ch.set_var("dialed_domain", leg.get_var("dialed_domain"))
    lost = [(b, c) for b, c in getattr(leg, "lost_legs", []) if c not in ("LOSE_RACE", None)]
    if lost:
        b, c = lost[-1]
        ch.set_var("sip_hangup_phrase", "OK")
        ch.set_var("last_bridge_hangup_cause", c)
        ch.set_var("last_bridge_proto_specific_hangup_cause", b.get_var("proto_specific_hangup_cause") or "sip:200")
    ch.set_var("switch_m_sdp", leg.get_var("switch_r_sdp") or "")
    ch.set_var("originate_disposition", "SUCCESS")
    ch.set_var("DIALSTATUS", "SUCCESS")
    ch.set_var(
        "originate_causes",
        "ARRAY::" + "|:".join(f"{b.uuid};{'SUCCESS' if b is leg else (b.hangup_cause or 'NONE')}" for b in legs),
    )
    ch.set_var("signal_bond", leg.uuid)
    ch.mark_bridged(leg, True)

    def _b_leg():
        leg.mark_bridged(ch, False)
        leg.set_var("endpoint_disposition", "ANSWER")
        leg._call_update_send(ch)
        ch._call_update_send(leg)
        leg.bridge_wait(ch, False, marked=True)

    leg.start([(_b_leg, ())])
    ch.bridge_wait(leg, True, in_app=True, marked=True)
    ch.set_var("last_bridge_hangup_cause", leg.hangup_cause or "NORMAL_CLEARING")
    if not ch.hungup.is_set() and ch.ready():  # a bridge ended by CS_RESET is a clean exit: no after-bridge
        if ch.get_var("park_after_bridge") == "true":
            ch._controlled = True
            ch.fire("CHANNEL_PARK")
            ch.park_loop()
            ch.fire("CHANNEL_UNPARK")
        elif ch.get_var("hangup_after_bridge") == "true":
            ch.hangup("NORMAL_CLEARING")
    return None


def split_app_spec(spec) -> tuple[str, str]:
    """ "playback:/x.wav" or "playback /x.wav" or ("playback", "/x.wav") -> (app, arg)."""
    if isinstance(spec, (list, tuple)):
        return spec[0], spec[1] if len(spec) > 1 else ""
    spec = str(spec)
    m = re.match(r"^([A-Za-z_][\w]*)[: ](.*)$", spec, re.S)
    if m:
        return m.group(1), m.group(2)
    return spec, ""


def parse_app_target(target: str) -> list[tuple[str, str]]:
    """ "&park()" / "&bridge(user/1001)" -> [(app, arg)]."""
    t = target.strip()
    if t.startswith("'") and t.endswith("'"):
        t = t[1:-1]
    if t.startswith("&"):
        m = re.match(r"^&([\w]+)(?:\((.*)\))?$", t, re.S)
        if m:
            return [(m.group(1), m.group(2) or "")]
        name, _, rest = t[1:].partition(" ")
        return [(name, rest)]
    return []


# quotes, backslash, and the whitespace str.split() knows but shlex does not
_SHLEX_SPECIAL = re.compile("[\"'\\\\\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def shell_split(text: str) -> list[str]:
    if _SHLEX_SPECIAL.search(text) is None:
        return text.split()  # what shlex.split gives when there is nothing to unquote
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()
