"""Simulated FreeSWITCH channels: state machine, channel events, dialplan applications.

Every channel runs one greenlet (its "session thread"). Work from outside (sendmsg, uuid_broadcast,
uuid_bridge, hangup from an endpoint) reaches it through `Channel._private`, like FreeSWITCH's private
event queue, or through `hangup()`, which fires CHANNEL_HANGUP at once in the caller's context (as
switch_channel_perform_hangup does) and lets the session thread unwind.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import os
import re
import struct
import time
import wave

import gevent
import gevent.event
import gevent.queue

from fsd.sim import clock as clock_mod
from fsd.sim import ids
from fsd.sim import variables as varsets
from fsd.sim.wire import _plain_line, plain_line, url_encode, var_line

log = logging.getLogger(__name__)

STATE_NUMBERS = {
    "CS_NEW": 0,
    "CS_INIT": 1,
    "CS_ROUTING": 2,
    "CS_SOFT_EXECUTE": 3,
    "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5,
    "CS_PARK": 6,
    "CS_CONSUME_MEDIA": 7,
    "CS_HIBERNATE": 8,
    "CS_RESET": 9,
    "CS_HANGUP": 10,
    "CS_REPORTING": 11,
    "CS_DESTROY": 12,
    "CS_NONE": 13,
}
CALLSTATE_NUMBERS = {
    "DOWN": 0,
    "DIALING": 1,
    "RINGING": 2,
    "EARLY": 3,
    "ACTIVE": 4,
    "HELD": 5,
    "RING_WAIT": 6,
    "HANGUP": 7,
    "UNHELD": 8,
}

# Events that carry variable_* headers (see the captures' README).
VAR_EVENTS = {
    "CHANNEL_CREATE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY",
    "CHANNEL_ORIGINATE",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "CALL_UPDATE",
    "RECORD_START",
    "RECORD_STOP",
    "CHANNEL_DATA",
}

# Caller-profile fields in FreeSWITCH's order; empty values are left out, as FreeSWITCH does.
PROFILE_FIELDS = [
    "Direction",
    "Logical-Direction",
    "Username",
    "Dialplan",
    "Caller-ID-Name",
    "Caller-ID-Number",
    "Orig-Caller-ID-Name",
    "Orig-Caller-ID-Number",
    "Callee-ID-Name",
    "Callee-ID-Number",
    "Network-Addr",
    "ANI",
    "Destination-Number",
    "Unique-ID",
    "Source",
    "Transfer-Source",
    "Context",
    "RDNIS",
    "Channel-Name",
    "Profile-Index",
]
TIME_FIELDS = [
    "Profile-Created-Time",
    "Channel-Created-Time",
    "Channel-Answered-Time",
    "Channel-Progress-Time",
    "Channel-Progress-Media-Time",
    "Channel-Hangup-Time",
    "Channel-Transfer-Time",
    "Channel-Resurrect-Time",
    "Channel-Bridged-Time",
    "Channel-Last-Hold",
    "Channel-Hold-Accum",
]
OTHER_LEG_SKIP = {"Profile-Index", "Transfer-Source"}

CALLING = {
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", "2408"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "301"),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", "632"),
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", "768"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3846"),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "3505"),
    "CHANNEL_PROGRESS_MEDIA": ("switch_channel.c", "switch_channel_perform_mark_pre_answered", "3560"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2944"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2967"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "1002"),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", "1213"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3445"),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", "943"),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1584"),
    "CODEC": ("switch_core_codec.c", "switch_core_session_set_real_read_codec", "168"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "677"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1646"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2020"),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", "1249"),
    "RECORD_STOP": ("switch_ivr_async.c", "record_callback", "1402"),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", "804"),
    "CALL_UPDATE": ("switch_channel.c", "switch_channel_flip_cid", "3277"),
    "PRESENCE_IN": ("switch_channel.c", "switch_channel_perform_presence", "805"),
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", "2021"),
}

HANGUP_CAUSES = {
    "NONE": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "ORIGINATOR_CANCEL": 487,
    "LOSE_RACE": 502,
    "USER_NOT_REGISTERED": 606,
    "ALLOTTED_TIMEOUT": 602,
    "MANAGER_REQUEST": 503,
    "INVALID_GATEWAY": 608,
}

# Applications that run without media (SAF_SUPPORT_NOMEDIA); all others pre-answer the channel first.
NOMEDIA_APPS = {
    "answer",
    "pre_answer",
    "ring_ready",
    "hangup",
    "set",
    "export",
    "unset",
    "multiset",
    "log",
    "info",
    "park",
    "bridge",
    "transfer",
    "socket",
    "respond",
    "sleep",
    "break",
}

_TONE_RE = re.compile(r"%\(([\d.]+),([\d.]+)")
FILE_PLAYED = "FILE PLAYED"
PLAYBACK_ERROR = "PLAYBACK ERROR"
_TRUE_WORDS = {"yes", "on", "true", "t", "enabled", "enable", "allow", "active"}


def switch_true(value) -> bool:
    """FreeSWITCH's switch_true(): yes/on/true/t/enabled/enable/allow/active, or a non-zero number."""
    if value is None:
        return False
    v = str(value).strip().lower()
    if v in _TRUE_WORDS:
        return True
    try:
        return int(v) != 0
    except ValueError:
        return False


_TIMES = operator.itemgetter(*TIME_FIELDS)
_APPS = None  # fsd.sim.apps.APPS, once imported


class _Tracked(dict):
    """A caller profile or its times: a dict that memoises what events show of it (`frozen`, see _frozen)
    until it changes."""

    __slots__ = ("frozen",)

    def __init__(self, *args, **kwargs):
        dict.__init__(self, *args, **kwargs)
        self.frozen = None

    def __setitem__(self, key, value):
        self.frozen = None
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        self.frozen = None
        dict.__delitem__(self, key)

    def update(self, *args, **kwargs):
        self.frozen = None
        dict.update(self, *args, **kwargs)

    def pop(self, *args):
        self.frozen = None
        return dict.pop(self, *args)

    def popitem(self):
        self.frozen = None
        return dict.popitem(self)

    def setdefault(self, key, default=None):
        self.frozen = None
        return dict.setdefault(self, key, default)

    def clear(self):
        self.frozen = None
        dict.clear(self)

    def __ior__(self, other):
        self.frozen = None
        return dict.__ior__(self, other)


def _frozen_profile(p: dict) -> tuple:
    """tuple(p.items()), memoised while a _Tracked profile does not change."""
    if type(p) is _Tracked:
        f = p.frozen
        if f is None:
            f = p.frozen = tuple(p.items())
        return f
    return tuple(p.items())


def _frozen_times(t: dict) -> tuple:
    """The TIME_FIELDS values of `t`, memoised while a _Tracked times dict does not change."""
    if type(t) is _Tracked:
        f = t.frozen
        if f is None:
            f = t.frozen = _TIMES(t)
        return f
    return _TIMES(t)


class _VarNames(dict):
    """variable name -> its event header name (variable_NAME), memoised."""

    def __missing__(self, name: str) -> str:
        if len(self) > 20000:
            self.clear()
        header = self[name] = "variable_" + name
        return header


_VAR_NAMES = _VarNames()
_CODEC_HEADERS = (
    ("Channel-Read-Codec-Name", "PCMU"),
    ("Channel-Read-Codec-Rate", "8000"),
    ("Channel-Read-Codec-Bit-Rate", "64000"),
    ("Channel-Write-Codec-Name", "PCMU"),
    ("Channel-Write-Codec-Rate", "8000"),
    ("Channel-Write-Codec-Bit-Rate", "64000"),
)

_CODEC_PLAIN = "".join(itertools.starmap(_plain_line, _CODEC_HEADERS))


@functools.lru_cache(maxsize=8192)
def _profile_fields(prefix: str, profile: tuple, other: bool) -> tuple[tuple[str, str], ...]:
    """The Caller-* / Other-Leg-* headers of the profile items (memoised: a profile changes far less often
    than events are rendered)."""
    out = []
    for k, v in profile:
        if other and k in OTHER_LEG_SKIP:
            continue
        if other and k == "Logical-Direction":
            v = "inbound"
        if v:
            out.append((f"{prefix}-{k}", v))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _profile_names(prefix: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The header names of the TIME_FIELDS, and the three fixed headers after them."""
    tail = ((f"{prefix}-Screen-Bit", "true"), (f"{prefix}-Privacy-Hide-Name", "false"),
            (f"{prefix}-Privacy-Hide-Number", "false"))
    return tuple(f"{prefix}-{k}" for k in TIME_FIELDS), tail


def _profile_block(prefix: str, profile: tuple, times: tuple, other: bool = False) -> tuple[tuple[str, str], ...]:
    """Caller-* / Other-Leg-* headers from profile items and the TIME_FIELDS values."""
    names, tail = _profile_names(prefix)
    return (*_profile_fields(prefix, profile, other), *zip(names, map(str, times), strict=True), *tail)


@functools.lru_cache(maxsize=8192)
def _profile_fields_plain(prefix: str, profile: tuple, other: bool) -> str:
    return "".join(itertools.starmap(_plain_line, _profile_fields(prefix, profile, other)))


@functools.lru_cache(maxsize=64)
def _profile_tail_plain(prefix: str) -> str:
    return "".join(itertools.starmap(_plain_line, _profile_names(prefix)[1]))


def _profile_plain(prefix: str, profile: tuple, times: tuple, other: bool = False) -> str:
    """_profile_block as event-plain lines (the profile part and the times memoised apart: they change
    at different moments)."""
    return _profile_fields_plain(prefix, profile, other) + _times_plain(prefix, times) + _profile_tail_plain(prefix)


@functools.lru_cache(maxsize=8192)
def _times_plain(prefix: str, times: tuple) -> str:
    names = _profile_names(prefix)[0]
    # an int's text has no character to escape
    return "".join([f"{n}: {t}\n" if type(t) is int else f"{n}: {_number_text(t)}\n"
                    for n, t in zip(names, times, strict=True)])


def _number_text(t) -> str:
    """url_encode(str(t)) (digits are left as they are: no memo entry for them)."""
    text = str(t)
    return text if text.isdigit() and text.isascii() else url_encode(text)


@functools.lru_cache(maxsize=16384)
def _state_block(state, call_state, state_number, name, uuid, direction, hit_dialplan, presence_id, answer_state,
                 hangup_cause, has_media) -> tuple[tuple[str, str], ...]:
    """Channel-State ... Channel-*-Codec-*: the first part of the channel headers (memoised: a channel goes
    through few distinct states)."""
    h = [
        ("Channel-State", state),
        ("Channel-Call-State", call_state),
        ("Channel-State-Number", str(state_number)),
        ("Channel-Name", name),
        ("Unique-ID", uuid),
        ("Call-Direction", direction),
        ("Presence-Call-Direction", direction),
        ("Channel-HIT-Dialplan", "true" if hit_dialplan else "false"),
    ]
    if presence_id:
        h.append(("Channel-Presence-ID", presence_id))
    h.append(("Channel-Call-UUID", uuid))
    h.append(("Answer-State", answer_state))
    if hangup_cause:
        h.append(("Hangup-Cause", hangup_cause))
    if has_media:
        h += _CODEC_HEADERS
    return tuple(h)


@functools.lru_cache(maxsize=16384)
def _state_plain(state, call_state, state_number, name, uuid, direction, hit_dialplan, presence_id, answer_state,
                 hangup_cause, has_media) -> str:
    """_state_block as event-plain lines, from smaller memoised parts (a channel's own lines are made once, not
    once per state it goes through)."""
    own, call_uuid = _state_own_plain(name, uuid, direction)
    text = _state_head_plain(state, call_state, state_number) + own
    text += "Channel-HIT-Dialplan: true\n" if hit_dialplan else "Channel-HIT-Dialplan: false\n"
    if presence_id:
        text += plain_line("Channel-Presence-ID", presence_id)
    return text + call_uuid + _state_tail_plain(answer_state, hangup_cause, has_media)


@functools.lru_cache(maxsize=1024)
def _state_head_plain(state, call_state, state_number) -> str:
    return (_plain_line("Channel-State", state) + _plain_line("Channel-Call-State", call_state)
            + _plain_line("Channel-State-Number", str(state_number)))


@functools.lru_cache(maxsize=4096)
def _state_own_plain(name, uuid, direction) -> tuple[str, str]:
    """The lines of Channel-Name ... Presence-Call-Direction, and the Channel-Call-UUID line."""
    return (plain_line("Channel-Name", name) + plain_line("Unique-ID", uuid) + _plain_line("Call-Direction", direction)
            + _plain_line("Presence-Call-Direction", direction)), plain_line("Channel-Call-UUID", uuid)


@functools.lru_cache(maxsize=1024)
def _state_tail_plain(answer_state, hangup_cause, has_media) -> str:
    text = _plain_line("Answer-State", answer_state)
    if hangup_cause:
        text += _plain_line("Hangup-Cause", hangup_cause)
    if has_media:
        text += _CODEC_PLAIN
    return text


def render_headers(snap: tuple) -> list[tuple[str, str]]:
    """The channel part of an event (switch_channel_event_set_data) from Channel.header_snapshot()."""
    return channel_part(snap[:14], snap[14])


def channel_part(snap: tuple, variables: dict | None) -> list[tuple[str, str]]:
    """render_headers from the parts Channel._snapshot() returns."""
    h = list(_state_block(*snap[:11]))
    profile, times, other = snap[11:]
    if profile is not None:
        h += _profile_block("Caller", profile, times)
        if other is not None:
            h.append(("Other-Type", other[0]))
            h += _profile_block("Other-Leg", other[1], other[2], True)
    if variables is not None:
        h += zip(map(_VAR_NAMES.__getitem__, variables), variables.values(), strict=True)
    return h


def render_plain(snap: tuple, variables: dict | None, owner: Channel | None = None) -> str:
    """channel_part(snap, variables) as event-plain lines (wire.serialize_plain's), from memoised blocks:
    the state part, the caller profile and the variables (the lines of the variables that changed, when
    `variables` is the copy `owner`, the channel, still shares)."""
    parts: list[str] = []
    render_plain_into(parts, snap, variables, owner)
    return "".join(parts)


def render_plain_into(parts: list[str], snap: tuple, variables: dict | None, owner: Channel | None = None) -> None:
    """render_plain's lines appended to `parts` (joined once with the rest of the frame)."""
    parts.append(_state_plain(*snap[:11]))
    profile, times, other = snap[11:]
    if profile is not None:
        if owner is None:
            parts.append(_profile_plain("Caller", profile, times))
            if other is not None:
                parts.append(_plain_line("Other-Type", other[0]))
                parts.append(_profile_plain("Other-Leg", other[1], other[2], True))
        else:
            # the owner keeps the last rendering of its profile and of the other leg's, for the same (memoised,
            # so identical while unchanged) profile and times tuples
            memo = owner._caller_plain
            if memo is None or memo[0] is not profile or memo[1] is not times:
                memo = owner._caller_plain = (profile, times, _profile_plain("Caller", profile, times))
            parts.append(memo[2])
            if other is not None:
                memo = owner._other_plain
                if memo is None or memo[0] != other[0] or memo[1] is not other[1] or memo[2] is not other[2]:
                    text = _plain_line("Other-Type", other[0]) + _profile_plain("Other-Leg", other[1], other[2], True)
                    memo = owner._other_plain = (other[0], other[1], other[2], text)
                parts.append(memo[3])
    if variables is not None:
        if owner is not None and owner._vars_frozen is variables:  # still the channel's variables
            parts.append(owner._var_plain())
        else:
            parts += itertools.starmap(var_line, variables.items())


class BridgeSteps:
    """Lock-step coordination of the two legs of a uuid_bridge."""

    def __init__(self):
        self._events: dict[str, gevent.event.Event] = {}

    def _ev(self, name):
        return self._events.setdefault(name, gevent.event.Event())

    def set(self, name):
        self._ev(name).set()

    def wait(self, name, me, other, timeout=5.0):
        ev = self._ev(name)
        deadline = time.monotonic() + timeout
        while not ev.is_set() and time.monotonic() < deadline:
            if other.hungup.is_set() or me.hungup.is_set():
                return
            ev.wait(0.05)


class Hangup(Exception):
    """Raised inside the session greenlet when the channel is hung up."""


def media_duration(path: str, missing_file_duration: float | None) -> float | None:
    """Simulated seconds a playback of `path` lasts; -1 = endless; None = file not found."""
    if path.startswith("silence_stream://"):
        spec = path[len("silence_stream://") :].split(",")[0]
        try:
            ms = int(spec)
        except ValueError:
            return -1
        return -1 if ms <= 0 else ms / 1000.0
    if path.startswith("tone_stream://"):
        loops = 1
        m = re.search(r"loops=(-?\d+)", path)
        if m:
            loops = int(m.group(1))
        if loops < 0:
            return -1
        total = 0.0
        for on, off in _TONE_RE.findall(path):
            total += (float(on) + float(off)) / 1000.0
        return (total or 1.0) * loops
    if path.startswith(("local_stream://", "moh")):
        return -1
    if os.path.isfile(path):
        try:
            with wave.open(path, "rb") as w:
                return w.getnframes() / float(w.getframerate())
        except (wave.Error, EOFError, OSError):
            return 1.0
    return missing_file_duration


def write_wav(path: str, seconds: float, rate: int = 8000) -> None:
    """A small real 8 kHz mono 16-bit WAV file of silence."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    frames = max(0, int(seconds * rate))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<h", 0) * frames)


class Channel:
    """One call leg."""

    # the last event-plain rendering of the caller profile ((profile, times, text)) and of the other leg's
    # ((type, profile, times, text)), see render_plain_into
    _caller_plain: tuple | None = None
    _other_plain: tuple | None = None

    # Initial values that are not mutable (a channel sets its own when they change: fewer stores per channel)
    state = "CS_NEW"
    call_state = "DOWN"
    answer_state = "ringing"
    hangup_cause: str | None = None
    has_media = False
    presence_id = ""
    other: Channel | None = None
    other_profile = None  # snapshot shown as Other-Leg-* (None: the other leg's live profile)
    originated = False  # created by the api originate (answer flips its caller id)
    originatee_profile = None
    other_type = ""
    bridged_to: Channel | None = None
    endpoint_port = 5060
    last_arg = ""
    _bridge_master = False
    last_app_response = "_none_"
    last_app = ""
    _break = False
    _in_media = 0
    _dtmf_buffer = ""
    _dtmf_count = 0
    _greenlet: gevent.Greenlet | None = None
    _in_park = False
    # mod_event_socket's socket-loss path: CF_CONTROLLED (an outbound socket controls the channel, its park
    # lasts as long as the listener), and CS_RESET set by the dying listener (socket_resume), during which
    # switch_channel_ready() is false: the running app, park or bridge stops.
    _controlled = False
    _resetting = False
    _desired_state: str | None = None  # channel->state when it differs from the running state
    _sendmsg_count = 0
    _vars_frozen: dict[str, str] | None = None  # the copy of the variables events share until the next change
    _vars_plain: str | None = None  # their event-plain lines
    # event-plain line of each variable once rendered (None: to be made), and (from then on) the variables
    # whose line is to be made: set since the last rendering
    _var_lines: dict[str, str | None] | None = None
    _var_dirty: list[str] | None = None

    def __init__(
        self,
        *,
        switch,
        direction: str,
        name: str,
        caller_id_name: str = "",
        caller_id_number: str = "",
        destination_number: str = "",
        context: str = "default",
        uuid: str | None = None,
        variables: list[tuple[str, str]] | None = None,
        username: str = "",
        dialplan: str = "XML",
        source: str = "mod_sofia",
        network_addr: str = "",
        endpoint=None,
        script=None,
    ):
        self.switch = switch
        self.clock = switch.clock
        self.uuid = uuid = uuid or ids.uuid4()
        self.direction = direction
        self.name = name
        self.hit_dialplan = direction == "inbound"
        # read by every event (instance attributes: faster to read than the class defaults)
        self.state = "CS_NEW"
        self.call_state = "DOWN"
        self.answer_state = "ringing"
        self.hangup_cause = None
        self.has_media = False
        self.presence_id = ""
        self.other = None
        self._desired_state = None
        self._vars_frozen = None
        self.endpoint = endpoint
        self.script = script
        self.created_us = created = self.clock.now_us()
        self.times = _Tracked(zip(TIME_FIELDS, (created, created, 0, 0, 0, 0, 0, 0, 0, 0, 0), strict=True))
        self.profile = _Tracked(
            (
                ("Direction", direction),
                ("Logical-Direction", direction),
                ("Username", username),
                ("Dialplan", dialplan),
                ("Caller-ID-Name", caller_id_name),
                ("Caller-ID-Number", caller_id_number),
                ("Orig-Caller-ID-Name", caller_id_name),
                ("Orig-Caller-ID-Number", caller_id_number),
                ("Callee-ID-Name", ""),
                ("Callee-ID-Number", ""),
                ("Network-Addr", network_addr),
                ("ANI", caller_id_number),
                ("Destination-Number", destination_number),
                ("Unique-ID", uuid),
                ("Source", source),
                ("Transfer-Source", ""),
                ("Context", context),
                ("RDNIS", ""),
                ("Channel-Name", name),
                ("Profile-Index", "1"),
            )
        )
        # insertion order = the order events show (change: set_var/set_vars only)
        session_id = str(switch._next_session_id())
        if direction == "outbound":
            self.variables = {"direction": direction, "is_outbound": "true", "uuid": uuid, "call_uuid": uuid,
                              "session_id": session_id}
        else:
            self.variables = {"direction": direction, "uuid": uuid, "call_uuid": uuid, "session_id": session_id}
        if variables:
            self.set_vars(variables)
        if "channel_name" not in self.variables:
            self.set_var("channel_name", name)
        self.media_port = 16384 + 2 * (int(self.variables["session_id"]) % 8000)
        self._private: gevent.queue.Queue = gevent.queue.Queue()
        self._media_ev = gevent.event.Event()
        self.hungup = gevent.event.Event()
        self.destroyed = gevent.event.Event()
        self.answered = gevent.event.Event()
        self.bridged = gevent.event.Event()  # set once the channel is bridged (test scripts wait on it)
        self.ringing = gevent.event.Event()
        self._holds: set = set()
        self._hold_released = gevent.event.Event()
        self._hold_released.set()
        self._apps: list[tuple[str, str]] = []
        self._unready = gevent.event.Event()  # set while switch_channel_ready() is false (hangup, CS_RESET)
        self.recordings: list[str] = []
        self.state_history: list[str] = []

    # ------------------------------------------------------------------ variables / views
    def set_var(self, name: str, value) -> None:
        """Set (or with None: unset) a channel variable. Like FreeSWITCH, setting an existing variable
        moves it to the end of the list that events show. Variables change only here: events fired in
        between share one copy of them (header_snapshot)."""
        self._vars_frozen = self._vars_plain = None
        variables = self.variables
        variables.pop(name, None)
        lines = self._var_lines
        if lines is None:
            if value is not None:
                variables[name] = str(value)
            return
        lines.pop(name, None)
        if value is not None:
            variables[name] = str(value)
            lines[name] = None  # its line is made when the variables are rendered next
            self._var_dirty.append(name)

    def set_vars(self, items) -> None:
        """set_var for each (name, value) in turn."""
        self._vars_frozen = self._vars_plain = None
        variables = self.variables
        pop = variables.pop
        lines = self._var_lines
        if lines is None:
            for name, value in items:
                pop(name, None)
                if value is not None:
                    variables[name] = str(value)
            return
        pop_line = lines.pop
        dirty = self._var_dirty
        for name, value in items:
            pop(name, None)
            pop_line(name, None)
            if value is not None:
                variables[name] = str(value)
                lines[name] = None
                dirty.append(name)

    def _var_plain(self) -> str:
        """The variables as event-plain lines (memoised until the next set_var). From the first call on,
        the channel keeps each variable's line (in the variables' order; set_var leaves a place holder that
        is filled here), so a channel whose events are delivered renders only the variables that changed,
        and one whose events are no longer delivered renders none."""
        text = self._vars_plain
        if text is None:
            lines = self._var_lines
            if lines is None:
                lines = self._var_lines = {k: var_line(k, v) for k, v in self.variables.items()}
                self._var_dirty = []
            else:
                dirty = self._var_dirty
                if dirty:
                    variables = self.variables
                    for k in dirty:
                        if lines.get(k, "") is None:  # set since the last rendering, and still set
                            lines[k] = var_line(k, variables[k])
                    dirty.clear()
            text = self._vars_plain = "".join(lines.values())
        return text

    def get_var(self, name: str) -> str | None:
        return self.variables.get(name)

    def view(self) -> dict:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "direction": self.direction,
            "state": self.state,
            "call_state": self.call_state,
            "answer_state": self.answer_state,
            "caller_id_number": self.profile["Caller-ID-Number"],
            "caller_id_name": self.profile["Caller-ID-Name"],
            "destination_number": self.profile["Destination-Number"],
            "hangup_cause": self.hangup_cause,
            "bridged_to": self.bridged_to.uuid if self.bridged_to else None,
            "variables": dict(self.variables),
        }

    # ------------------------------------------------------------------ events
    def snapshot_profile(self) -> tuple[dict, dict]:
        return _Tracked(self.profile), _Tracked(self.times)

    def _profile_headers(self, prefix: str, other: bool = False, snapshot=None) -> list[tuple[str, str]]:
        profile, times = snapshot if snapshot is not None else (self.profile, self.times)
        return list(_profile_block(prefix, _frozen_profile(profile), _frozen_times(times), other))

    def ack_received(self) -> None:
        """The caller's ACK to our 200 OK (sets the To tag and CSeq variables once)."""
        if getattr(self, "_ack_pending", False):
            self._ack_pending = False
            self.set_var("sip_to_tag", self.uuid.replace("-", "")[:13])
            self.set_var("sip_cseq", "1")

    def presence(self, status: str, info_state: str, where=("switch_core_state_machine.c", "check_presence", "521")):
        if not self.presence_id:
            return
        self.fire(
            "PRESENCE_IN",
            after=(
                ("proto", "any"),
                ("login", "src/switch_channel.c"),
                ("from", self.presence_id),
                ("rpid", "unknown"),
                ("status", status),
                ("event_type", "presence"),
                ("alt_event_type", "dialog"),
                ("presence-call-info-state", info_state),
                ("presence-call-direction", self.direction),
                ("event_count", "0"),
                ("Presence-Calling-File", "src/" + where[0]),
                ("Presence-Calling-Function", where[1]),
                ("Presence-Calling-Line", where[2]),
            ),
        )

    def flip_cid(self) -> None:
        """An answered outgoing leg shows the callee as its caller id (switch_channel_flip_cid)."""
        p = self.profile
        self.set_var("endpoint_disposition", "ANSWER")
        for k, v in (getattr(self.endpoint, "variables", None) or {}).items():
            self.set_var(k, v)
        self.set_var("pre_transfer_caller_id_number", p["Caller-ID-Number"])
        self.set_var("channel_cid_flipped", "yes")
        p["Caller-ID-Name"], p["Callee-ID-Name"] = p["Callee-ID-Name"], p["Caller-ID-Name"]
        p["Caller-ID-Number"], p["Callee-ID-Number"] = p["Callee-ID-Number"], p["Caller-ID-Number"]
        self.fire("CALL_UPDATE", before=[("Direction", "RECV")])

    def new_profile(self, source_tag: str, other_uuid: str) -> None:
        """A transfer-like caller-profile change (uuid_bridge gives both legs a new profile)."""
        now = self.clock.now_us()
        self.profile["Transfer-Source"] = f"{now // 1_000_000}:{ids.uuid4()}:{source_tag}:{other_uuid}"
        self.profile["Profile-Index"] = str(int(self.profile["Profile-Index"]) + 1)
        self.times["Profile-Created-Time"] = now

    def header_snapshot(self, event_name: str, *, with_profile: bool = True, share: bool = True) -> tuple:
        """What channel_headers shows, captured now (cheap copies; rendered later by render_headers):
        _snapshot's two parts in one tuple."""
        snap, variables = self._snapshot(event_name, with_profile, share)
        return (*snap, variables)

    def _snapshot(self, event_name: str, with_profile: bool = True, share: bool = True) -> tuple:
        """(the channel's state and profile, its variables or None): what channel_headers shows, captured now.
        The variables are copied once per change: events fired while no variable changed share the copy
        (share=False: always a fresh copy, for tests). The first part holds only strings, numbers and
        tuples of them (which the garbage collector stops tracking)."""
        profile = times = other = None
        if with_profile:
            profile = _frozen_profile(self.profile)
            times = _frozen_times(self.times)
            if self.other is not None:
                op, ot = self.other_profile or (self.other.profile, self.other.times)
                other = (self.other_type, _frozen_profile(op), _frozen_times(ot))
        variables = None
        if event_name in VAR_EVENTS:
            variables = self._vars_frozen if share else None
            if variables is None:
                variables = self.variables.copy()
                if share:
                    self._vars_frozen = variables
        return (
            (
                self.state,
                self.call_state,
                STATE_NUMBERS.get(self._desired_state or self.state, 0),
                self.name,
                self.uuid,
                self.direction,
                self.hit_dialplan,
                self.presence_id,
                self.answer_state,
                self.hangup_cause,
                self.has_media,
                profile,
                times,
                other,
            ),
            variables,
        )

    def channel_headers(self, event_name: str, *, with_profile: bool = True) -> list[tuple[str, str]]:
        return render_headers(self.header_snapshot(event_name, with_profile=with_profile))

    def fire(self, name: str, *, before=(), after=(), body: str | None = None, calling=None):
        # _snapshot(name, with_profile), written out: this runs for every event of the call
        state = self.state
        if name == "CHANNEL_STATE" and state == "CS_NEW":
            profile = times = other = None
        else:
            p = self.profile
            profile = p.frozen if type(p) is _Tracked else None
            if profile is None:
                profile = _frozen_profile(p)
            t = self.times
            times = t.frozen if type(t) is _Tracked else None
            if times is None:
                times = _frozen_times(t)
            other = None
            if self.other is not None:
                op, ot = self.other_profile or (self.other.profile, self.other.times)
                other = (self.other_type, _frozen_profile(op), _frozen_times(ot))
        variables = None
        if name in VAR_EVENTS:
            variables = self._vars_frozen
            if variables is None:
                variables = self._vars_frozen = self.variables.copy()
        snap = (state, self.call_state, STATE_NUMBERS.get(self._desired_state or state, 0), self.name, self.uuid,
                self.direction, self.hit_dialplan, self.presence_id, self.answer_state, self.hangup_cause,
                self.has_media, profile, times, other)
        switch = self.switch
        ev = switch.new_channel_event(name, self, before if type(before) is tuple else tuple(before), snap,
                                      after if type(after) is tuple else tuple(after),
                                      calling or CALLING.get(name), body, variables)
        switch.fire(ev)
        return ev

    def set_state(self, state: str) -> None:
        self.state = state
        self.state_history.append(state)
        self.fire("CHANNEL_STATE")
        self.switch._state_changed(self)

    def set_callstate(self, call_state: str) -> None:
        old = self.call_state
        self.call_state = call_state
        self.fire(
            "CHANNEL_CALLSTATE",
            before=[
                ("Original-Channel-Call-State", old),
                ("Channel-Call-State-Number", str(CALLSTATE_NUMBERS[call_state])),
            ],
        )
        self.switch._state_changed(self)

    # ------------------------------------------------------------------ media / answer
    def _media_up(self) -> None:
        if self.has_media:
            return
        self.has_media = True
        varsets.media_negotiated(self, with_remote_sdp=self.direction == "outbound")
        self.fire(
            "CODEC",
            after=[
                ("channel-read-codec-name", "PCMU"),
                ("channel-read-codec-rate", "8000"),
                ("channel-read-codec-bit-rate", "64000"),
            ],
        )
        self.fire(
            "CODEC",
            after=[
                ("Channel-Write-Codec-Name", "PCMU"),
                ("Channel-Write-Codec-Rate", "8000"),
                ("Channel-Write-codec-bit-rate", "64000"),
            ],
            calling=("switch_core_codec.c", "switch_core_session_set_write_codec", "450"),
        )

    def ring_ready(self) -> None:
        if self.times["Channel-Progress-Time"] or self.answer_state != "ringing":
            return
        self.times["Channel-Progress-Time"] = self.clock.now_us()
        self.fire("CHANNEL_PROGRESS")
        orig = self.other if self.other_type == "originator" else None
        if orig is not None and not orig.times["Channel-Progress-Time"]:
            orig.times["Channel-Progress-Time"] = self.times["Channel-Progress-Time"]  # ringback to the a-leg
        if self.call_state == "DOWN":
            self.set_callstate("RINGING")
        self.ringing.set()

    def pre_answer(self, *, send_sdp: bool = True) -> None:
        """183 Session Progress with media (send_sdp=False: the silent pre-answer inside answer())."""
        if self.answer_state in ("early", "answered", "hangup"):
            return
        self._media_up()
        self.times["Channel-Progress-Media-Time"] = self.clock.now_us()
        self.answer_state = "early"
        self.set_var("endpoint_disposition", "EARLY MEDIA")
        self.fire("CHANNEL_PROGRESS_MEDIA")
        self.set_callstate("EARLY")
        if send_sdp and self.direction == "inbound":
            self.set_var("rtp_local_sdp_str", varsets.local_sdp(self.media_port))

    def answer(self) -> None:
        if self.answer_state in ("answered", "hangup"):
            return
        if self.direction == "inbound" and self.answer_state != "early":
            self.pre_answer(send_sdp=False)
        else:
            self._media_up()
        self.times["Channel-Answered-Time"] = self.clock.now_us()
        self.answer_state = "answered"
        if self.direction == "inbound":
            self.set_var("rtp_local_sdp_str", varsets.local_sdp(self.media_port))
            self.set_var("endpoint_disposition", "ANSWER")
        self.fire("CHANNEL_ANSWER")
        self.presence("Answered", "confirmed", ("switch_channel.c", "switch_channel_perform_mark_answered", "3848"))
        self.set_callstate("ACTIVE")
        self._ack_pending = self.direction == "inbound"
        self.answered.set()
        if self.originated:
            self.fire("CHANNEL_OUTGOING")
            self.flip_cid()
        if self.script is not None:
            self.script._on_answer(self)
        if self.endpoint is not None and self.direction == "outbound":
            self.endpoint._on_answer(self)

    # ------------------------------------------------------------------ hangup
    def hangup(self, cause: str = "NORMAL_CLEARING", *, remote: bool = False) -> bool:
        """Fire CHANNEL_HANGUP now and make the session greenlet unwind. False if already hung up."""
        if self.hungup.is_set():
            return False
        self.hangup_cause = cause or "NORMAL_CLEARING"
        was = self.answer_state
        self.answer_state = "hangup"
        self.times["Channel-Hangup-Time"] = self.clock.now_us()
        if remote and was != "ringing":
            self.set_var("sip_term_status", "200")
            self.set_var("proto_specific_hangup_cause", "sip:200")
            self.set_var("sip_term_cause", str(HANGUP_CAUSES.get(self.hangup_cause, 16)))
        if self.bridged_to is not None and not self._bridge_master:
            self.set_var("last_bridge_role", "originatee")
        self.hungup.set()
        self._unready.set()
        self.fire("CHANNEL_HANGUP")
        self.switch._state_changed(self)
        self._private.put(("wake",))
        self._media_ev.set()
        partner = self.bridged_to
        if partner is not None:
            partner._private.put(("unbridge", self))
            partner._media_ev.set()
        return True

    # ------------------------------------------------------------------ outbound socket loss
    def ready(self) -> bool:
        """switch_channel_ready(): false once hung up and while in CS_RESET."""
        return not self._unready.is_set()

    def outbound_socket_ended(self, *, resume: bool = False) -> None:
        """The listener of the outbound socket controlling this channel ended (the application closed the
        socket, sent `exit`, or the connection broke): the end of mod_event_socket's listener_run.

        If the channel is not in CS_HIBERNATE (nor in a transfer/redirect/reset) and the listener got
        `resume` or the channel variable socket_resume is true, the channel is set to CS_RESET: it is not
        ready, so what runs on the session (park, an app started with sendmsg, a bridge app or a uuid_bridge)
        stops; the socket app (socket_function) or the uuid_bridge then set CS_EXECUTE again and the dialplan
        goes on after `socket`. In every case CF_CONTROLLED is cleared, which ends the socket app's park at
        its next turn; an app running inside that park keeps running until it ends by itself."""
        if self.hungup.is_set():
            return
        if (
            self.state not in ("CS_HIBERNATE", "CS_RESET")
            and not self._redirect_pending()
            and (resume or switch_true(self.get_var("socket_resume")))
        ):
            self._resetting = True
            self._desired_state = "CS_RESET"  # switch_channel_set_state: no CHANNEL_STATE until it runs
            self._unready.set()
            log.debug("sim_socket_reset uuid=%s", self.uuid)
        self._controlled = False
        self._private.put(("wake",))
        self._media_ev.set()

    def _redirect_pending(self) -> bool:
        """A uuid_transfer/uuid_bridge is on its way (CF_TRANSFER/CF_REDIRECT in FreeSWITCH)."""
        return any(item[0] in ("transfer", "bridge_to") for item in list(self._private.queue))

    def end_reset(self) -> None:
        """CS_RESET is replaced by CS_EXECUTE (socket_function, uuid_bridge_on_soft_execute)."""
        if not self._resetting:
            return
        self._resetting = False
        self._desired_state = None
        if not self.hungup.is_set():
            self._unready.clear()

    def hold(self, token) -> None:
        """Keep the session from being destroyed (an outbound socket lingering on it)."""
        self._holds.add(token)
        self._hold_released.clear()

    def release(self, token) -> None:
        self._holds.discard(token)
        if not self._holds:
            self._hold_released.set()

    def _finish(self) -> None:
        self._finish_report()
        self._finish_destroy()

    def _finish_report(self) -> None:
        if not self.hungup.is_set():
            self.hangup("NORMAL_CLEARING")
        now = self.clock.now_us()
        if self.direction == "outbound" and getattr(self, "_by_originate", False) and not self.answered.is_set():
            self.set_var("sip_hangup_disposition", "send_cancel")
            self.set_var("sip_invite_failure_status", "487")
            self.set_var("sip_invite_failure_phrase", "CANCEL")
        self.set_state("CS_HANGUP")
        self.set_callstate("HANGUP")
        self.presence("CS_HANGUP", "terminated")
        self.set_state("CS_REPORTING")
        if self.direction == "outbound" and self.answered.is_set():
            self.set_var("sip_hangup_disposition", "recv_bye" if self.get_var("sip_term_status") else "send_bye")
        varsets.billing(self, now, HANGUP_CAUSES.get(self.hangup_cause or "NORMAL_CLEARING", 0))
        if self.direction == "inbound":
            self.set_var("sip_hangup_disposition", "send_bye" if self.answered.is_set() else "send_refuse")
        if self.has_media:
            varsets.rtp_stats(self)
        self.fire("CHANNEL_HANGUP_COMPLETE", before=[("Hangup-Cause", self.hangup_cause or "NORMAL_CLEARING")])
        self.switch._after_hangup_complete(self)

    def _finish_destroy(self) -> None:
        self._hold_released.wait()
        self.fire("CHANNEL_DESTROY")
        self.set_state("CS_DESTROY")
        # its last event is fired: the renderings kept for the next ones go (an event rendered later renders
        # from its snapshot, the same bytes)
        self._var_lines = self._var_dirty = self._vars_plain = self._caller_plain = self._other_plain = None
        self.destroyed.set()
        self.switch._destroyed(self)

    # ------------------------------------------------------------------ DTMF
    def send_dtmf(self, digits: str, duration: int = 1280, *, via: str = "rfc2833") -> None:
        """The far end pressed `digits` (fires DTMF events, feeds the digit collectors).
        via="info": each digit arrives as SIP INFO application/dtmf-relay (RECV_INFO first)."""
        for d in digits:
            if self.hungup.is_set():
                return
            if via == "info":
                sip = [
                    ("SIP-Content-Type", "application/dtmf-relay"),
                    ("SIP-From-User", self.profile["Caller-ID-Number"]),
                    ("SIP-From-Host", "127.0.0.1"),
                    ("SIP-To-User", self.profile["Destination-Number"]),
                    ("SIP-To-Host", "127.0.0.1"),
                    ("SIP-Contact-User", self.profile["Caller-ID-Number"]),
                    ("SIP-Contact-Host", "127.0.0.1"),
                ]
                self.fire(
                    "RECV_INFO",
                    before=sip,
                    body=f"Signal={d}\r\nDuration={duration // 8}\r\n",
                    calling=("sofia.c", "create_info_event", "9721"),
                )
            self.fire(
                "DTMF",
                after=[("DTMF-Digit", d), ("DTMF-Duration", str(duration)), ("DTMF-Source", "ENDPOINT")],
            )
            self._dtmf_buffer += d
            self._dtmf_count += 1
            self._media_ev.set()

    # ------------------------------------------------------------------ session greenlet
    def start(self, apps: list[tuple[str, str]]) -> None:
        """Run the session greenlet over `apps` ((app, arg) pairs, or (callable, args) steps)."""
        self._apps = list(apps)
        self._greenlet = clock_mod.spawn(self._run)

    def _run(self) -> None:
        try:
            while not self.hungup.is_set():
                self._drain_private()
                if self.hungup.is_set() or not self._apps:
                    break
                app, arg = self._apps.pop(0)
                if callable(app):
                    app(*arg)
                else:
                    self.execute(app, arg)
            if not self.hungup.is_set():
                self.hangup("NORMAL_CLEARING")
        except Hangup:
            pass
        except Exception:
            log.exception("sim_channel_crashed uuid=%s", self.uuid)
            self.hangup("NORMAL_TEMPORARY_FAILURE")
        finally:
            self._finish()

    def _drain_private(self) -> None:
        while not self.hungup.is_set():
            try:
                item = self._private.get_nowait()
            except gevent.queue.Empty:
                return
            self._handle_private(item, parked=False)

    def _handle_private(self, item, *, parked: bool) -> str | None:
        """Handle one private-queue item. Returns "unpark" when a parked app must end."""
        kind = item[0]
        if kind == "execute":
            _, app, arg, event_uuid, headers, *done = item
            if headers is not None:  # sendmsg/broadcast execute (switch_ivr_parse_event sets loop counters)
                loops = "1"
                if isinstance(headers, list):
                    loops = next((v for k, v in headers if k.lower() == "loops"), "1")
                self.set_var("current_loop", "1")
                self.set_var("total_loops", loops)
            try:
                self.execute(app, arg, event_uuid=event_uuid, private=headers)
            finally:
                if done and done[0] is not None:
                    done[0].set()
        elif kind == "hangup":
            self.hangup(item[1])
        elif kind == "unpark":
            return "unpark"
        elif kind == "transfer":
            if parked:
                self._private.queue.appendleft(item)
                return "unpark"
            self._do_transfer(*item[1:])
        elif kind == "bridge_to":
            if parked:
                self._private.queue.appendleft(item)
                return "unpark"
            self._uuid_bridge_session(*item[1:])
        return None

    def park_loop(self) -> None:
        """The body of `park` (and of the socket app): run queued commands until unparked, or until the
        channel is no longer ready (CS_RESET) or controlled (its outbound socket's listener ended)."""
        while not self.hungup.is_set():
            if self._resetting or not self._controlled:
                return
            item = self._private.get()
            if self._handle_private(item, parked=True) == "unpark":
                return

    def transfer_profile(self, dest: str, dialplan: str = "XML", context: str = "default") -> None:
        """The caller-profile change of a transfer (done at once, before the session unwinds)."""
        now = self.clock.now_us()
        self.times["Channel-Transfer-Time"] = now
        self.times["Profile-Created-Time"] = now
        self.profile["RDNIS"] = self.profile["Destination-Number"]
        self.profile["Destination-Number"] = dest
        self.profile["Context"] = context
        self.profile["Profile-Index"] = str(int(self.profile["Profile-Index"]) + 1)
        self.profile["Transfer-Source"] = f"{now // 1_000_000}:{ids.uuid4()}:bl_xfer:{dest}/{context}/{dialplan}"
        self.set_var("current_loop", None)
        self.set_var("total_loops", None)
        history = self.get_var("transfer_history")
        source = self.profile["Transfer-Source"]
        self.set_var("transfer_history", f"ARRAY::{history}|:{source}" if history else source)
        self.set_var("transfer_source", source)

    def _do_transfer(self, dest: str, dialplan: str = "XML", context: str = "default") -> None:
        if self.profile["Destination-Number"] != dest or not self.profile["Transfer-Source"]:
            self.transfer_profile(dest, dialplan, context)
        self.hit_dialplan = True
        self.state = "CS_ROUTING"
        self.set_callstate("RINGING")
        self.fire("CHANNEL_STATE")
        self.presence("CS_ROUTING", "progressing")
        self._apps = self.switch.lookup_dialplan(self, dest, context)
        self.state = "CS_EXECUTE"
        if self.answer_state == "answered":
            self.set_callstate("ACTIVE")
        self.fire("CHANNEL_STATE")

    def _uuid_bridge_session(self, other: Channel, master: bool, steps=None) -> None:
        """Both legs of uuid_bridge step through HIBERNATE/RESET/SOFT_EXECUTE in lock-step, like the
        capture: B resets, A resets, A soft-executes, B soft-executes, A runs uuid_bridge, B too, A
        fires CHANNEL_BRIDGE, B goes to EXCHANGE_MEDIA, then CALL_UPDATE on A and on B."""
        if other.hungup.is_set():
            return
        steps = steps if steps is not None else BridgeSteps()
        me, peer = ("a", "b") if master else ("b", "a")

        def step(name):
            steps.set(f"{me}_{name}")

        def after(name):
            steps.wait(f"{peer}_{name}", self, other)

        self.set_state("CS_HIBERNATE")
        self.set_state("CS_RESET")
        step("reset")
        if master:
            after("reset")
        else:
            after("soft")
        self.set_state("CS_SOFT_EXECUTE")
        self.set_var("uuid_bridge", None)
        step("soft")
        if master:
            after("soft")
        else:
            after("exec")
        self.fire(
            "CHANNEL_EXECUTE",
            after=[("Application", "uuid_bridge"), ("Application-Data", other.uuid)],
            calling=("switch_ivr_bridge.c", "uuid_bridge_on_soft_execute", "1236"),
        )
        step("exec")
        if master:
            after("exec")
        else:
            after("bridge")
        self.mark_bridged(other, master)
        step("bridge")
        after("bridge")
        if master:
            self._call_update_send(other)
            step("update")
        else:
            after("update")
            self._call_update_send(other)
        self.bridge_wait(other, master, marked=True)

    def _call_update_send(self, other: Channel) -> None:
        self.set_var("bridge_to", other.uuid)
        self.set_var("last_bridge_to", other.uuid)
        if self.get_var("bridge_uuid") != other.uuid:
            self.set_var("bridge_channel", other.name)
            self.set_var("bridge_uuid", other.uuid)
        self.set_var("last_sent_callee_id_name", other.profile["Caller-ID-Name"])
        self.set_var("last_sent_callee_id_number", other.profile["Caller-ID-Number"])
        self.fire(
            "CALL_UPDATE",
            before=[
                ("Direction", "SEND"),
                ("Sent-Callee-ID-Name", other.profile["Caller-ID-Name"] or other.profile["Caller-ID-Number"]),
                ("Sent-Callee-ID-Number", other.profile["Caller-ID-Number"]),
                ("Bridged-To", other.uuid),
            ],
            calling=("mod_sofia.c", "sofia_receive_message", "2100"),
        )

    def mark_bridged(self, other: Channel, master: bool) -> None:
        self.bridged_to = other
        self.other = other
        self.other_type = "originatee" if master else "originator"
        self.times["Channel-Bridged-Time"] = self.clock.now_us()
        self.bridged.set()
        self._bridge_master = master
        if master:
            other.hold(("bridged", self.uuid))  # the bridge thread keeps the b-leg until it unbridged
            self.fire("CHANNEL_BRIDGE", before=[("Bridge-A-Unique-ID", self.uuid), ("Bridge-B-Unique-ID", other.uuid)])
        else:
            self.set_state("CS_EXCHANGE_MEDIA")
        self.switch._state_changed(self)

    def bridge_wait(self, other: Channel, master: bool, *, in_app: bool = False, marked: bool = False) -> None:
        """Stay bridged to `other` until either side hangs up."""
        if not marked:
            self.mark_bridged(other, master)
        reset = False
        while not self.hungup.is_set():
            if other.hungup.is_set():
                break
            if self._resetting:  # CS_RESET: the bridge loop ends (a clean exit, no after-bridge actions)
                reset = True
                other._private.put(("unbridge", self))
                other._media_ev.set()
                break
            item = self._private.get()
            if item[0] == "unbridge":
                break
            if item[0] == "execute":
                self._handle_private(item, parked=False)
            elif item[0] == "hangup":
                self.hangup(item[1])
            elif item[0] in ("transfer", "bridge_to"):
                self._private.queue.appendleft(item)
                break
        self.bridged_to = None
        if not master:
            self.set_var("bridge_to", None)
        if master:
            cause = other.hangup_cause or "NORMAL_CLEARING"
            self.set_var("sip_hangup_phrase", "OK")
            self.set_var("last_bridge_hangup_cause", cause)
            proto = other.get_var("proto_specific_hangup_cause") or "sip:200"
            self.set_var("last_bridge_proto_specific_hangup_cause", proto)
            self.set_var("bridge_hangup_cause", cause)
            self.set_var("bridge_to", None)
            self.fire(
                "CHANNEL_UNBRIDGE", before=[("Bridge-A-Unique-ID", self.uuid), ("Bridge-B-Unique-ID", other.uuid)]
            )
            other.release(("bridged", self.uuid))
        self.switch._state_changed(self)
        if in_app:
            return
        if reset and not self.hungup.is_set():
            # uuid_bridge_on_soft_execute: the bridge returned in CS_RESET, CS_EXECUTE goes on with the dialplan
            self.end_reset()
            self.set_state("CS_EXECUTE")
            return
        if not self.hungup.is_set():
            if self.get_var("park_after_bridge") == "true":
                self.set_state("CS_EXECUTE")
                self._apps.insert(0, ("park", ""))
            elif self.get_var("hangup_after_bridge") == "true" or not self._apps:
                self.hangup("NORMAL_CLEARING")
            else:
                self.set_state("CS_EXECUTE")

    def execute(self, app: str, arg: str = "", *, event_uuid: str | None = None, private=None) -> None:
        """Run one dialplan application with CHANNEL_EXECUTE / _COMPLETE around it."""
        global _APPS
        if _APPS is None:
            from fsd.sim.apps import APPS as _APPS  # noqa: N811 - apps imports this module
        fn = _APPS.get(app)
        app_uuid = event_uuid or ids.uuid4()
        if fn is None:
            log.warning("sim_unknown_app app=%s uuid=%s", app, self.uuid)
            return
        if self.hungup.is_set() and app not in ("hangup",):
            return
        if app not in NOMEDIA_APPS and self.answer_state == "ringing":
            self.pre_answer()  # media applications pre-answer before they start
        self.set_var("current_application", app)
        self.set_var("current_application_data", arg if arg else None)
        extra = [("Application", app)]
        if arg:
            extra.append(("Application-Data", arg))
        extra.append(("Application-UUID", app_uuid))
        self.last_app = app
        self.last_arg = arg
        self.ack_received()
        self.set_var("current_application_response", None)
        self.fire("CHANNEL_EXECUTE", after=extra)
        try:
            response = fn(self, arg)
            if response is not None:
                self.set_var("current_application_response", response)
        finally:
            done = [("Application", app)]
            if arg:
                done.append(("Application-Data", arg))
            resp = self.get_var("current_application_response") or "_none_"
            done += [("Application-Response", resp), ("Application-UUID", app_uuid)]
            self.fire("CHANNEL_EXECUTE_COMPLETE", after=done)
            if private is not None:
                self._private_command_event(private)

    def _private_command_event(self, private) -> None:
        """PRIVATE_COMMAND after a queued command ran (sendmsg form, or uuid_broadcast's COMMAND form)."""
        if isinstance(private, tuple) and private and private[0] == "broadcast":
            pre = tuple(private[1])
        else:
            self._sendmsg_count += 1
            if self._sendmsg_count == 1:
                return  # the first sendmsg of a call produced no PRIVATE_COMMAND in the captures
            text = "sendmsg\n" + "".join(f"{k}: {v}\n" for k, v in private) + "\n"
            pre = (("Command", text), *private)
        snap, variables = self._snapshot("PRIVATE_COMMAND")
        ev = self.switch.new_channel_event(
            "PRIVATE_COMMAND", self, (), snap, (), CALLING["PRIVATE_COMMAND"], None, variables
        )
        ev._pre = pre  # these headers come before the common ones
        self.switch.fire(ev)

    # ------------------------------------------------------------------ waiting helpers
    def check(self) -> None:
        if self.hungup.is_set():
            raise Hangup()

    def media_wait(self, seconds: float, *, dtmf: bool = False, watch_private: bool = True) -> str:
        """Wait `seconds` (simulated; <0 = forever). Returns done|break|hangup|reset|dtmf|unpark."""
        deadline = None if seconds < 0 else time.monotonic() + self.clock.real(seconds)
        start_dtmf = self._dtmf_count
        self._in_media += 1
        try:
            return self._media_wait(deadline, start_dtmf, dtmf, watch_private)
        finally:
            self._in_media -= 1

    def _media_wait(self, deadline, start_dtmf, dtmf, watch_private) -> str:
        while True:
            if self.hungup.is_set():
                return "hangup"
            if self._resetting:
                return "reset"
            if self._break:
                self._break = False
                return "break"
            if dtmf and self._dtmf_count != start_dtmf:
                return "dtmf"
            if watch_private and self._pending_unpark():
                return "unpark"
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return "done"
            self._media_ev.clear()
            self._media_ev.wait(timeout)

    def _pending_unpark(self) -> bool:
        return any(item[0] in ("unpark", "transfer", "bridge_to", "unbridge") for item in list(self._private.queue))

    def break_media(self) -> None:
        if self._in_media:
            self._break = True
            self._media_ev.set()
