"""Channel-variable sets as FreeSWITCH 1.10 (mod_sofia, switch_core) adds them, in the captured order.

FreeSWITCH appends a variable when it is first set and moves it to the end when it is set again
(Channel.set_var does the same), so setting the groups below at the moments FreeSWITCH does gives the
captured variable_* lists. Values are synthetic but well-formed (no SIP or RTP is simulated)."""

from __future__ import annotations

import functools
import time

SDP_TEMPLATE = (
    "v=0\r\no={user} 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)
LOCAL_SDP_TEMPLATE = (
    "v=0\r\no=FreeSWITCH 1795836348 1795836349 IN IP4 127.0.0.1\r\ns=FreeSWITCH\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)
EP_CODECS = "CORE_PCM_MODULE.PCMU@8000h@20i@64000b,CORE_PCM_MODULE.PCMA@8000h@20i@64000b"


@functools.lru_cache(maxsize=256)
def remote_sdp(user: str, port: int) -> str:
    return SDP_TEMPLATE.format(user=user, port=port)


@functools.lru_cache(maxsize=16384)
def local_sdp(port: int) -> str:
    return LOCAL_SDP_TEMPLATE.format(port=port)


def media_negotiated(ch, *, with_remote_sdp: bool) -> None:
    """Variables mod_sofia sets when media is negotiated (pre-answer of an inbound leg, answer of an
    outbound leg)."""
    if with_remote_sdp:
        ch.set_var("switch_r_sdp", remote_sdp("agent", 6100))
        ch.set_var("ep_codec_string", "CORE_PCM_MODULE.PCMU@8000h@20i@64000b")
    ch.set_vars(
        (
            ("remote_video_media_flow", "inactive"),
            ("remote_text_media_flow", "inactive"),
            ("remote_audio_media_flow", "sendrecv"),
            ("audio_media_flow", "sendrecv"),
            ("rtp_audio_recv_pt", "0"),
            ("rtp_use_codec_name", "PCMU"),
            ("rtp_use_codec_rate", "8000"),
            ("rtp_use_codec_ptime", "20"),
            ("rtp_use_codec_channels", "1"),
            ("rtp_last_audio_codec_string", "PCMU@8000h@20i@1c"),
            ("read_codec", "PCMU"),
            ("original_read_codec", "PCMU"),
            ("read_rate", "8000"),
            ("original_read_rate", "8000"),
            ("write_codec", "PCMU"),
            ("write_rate", "8000"),
            ("dtmf_type", "rfc2833"),
        )
    )
    if ch.direction == "inbound":
        ch.set_var("local_media_ip", "127.0.0.1")
        ch.set_var("local_media_port", str(ch.media_port))
        ch.set_var("advertised_media_ip", "127.0.0.1")
    ch.set_vars(
        (
            ("rtp_use_timer_name", "soft"),
            ("rtp_use_pt", "0"),
            ("rtp_use_ssrc", str(1000000000 + ch.media_port)),
            ("rtp_2833_send_payload", "101"),
            ("rtp_2833_recv_payload", "101"),
            ("remote_media_ip", "127.0.0.1"),
            ("remote_media_port", "6300"),
        )
    )


def outbound_leg_media(ch) -> None:
    """Set on an outgoing sofia leg when the INVITE is sent (local offer)."""
    ch.set_var("rtp_use_codec_string", "PCMU,PCMA")
    ch.set_var("local_media_ip", "127.0.0.1")
    ch.set_var("local_media_port", str(ch.media_port))
    ch.set_var("advertised_media_ip", "127.0.0.1")
    ch.set_var("audio_media_flow", "sendrecv")
    ch.set_var("rtp_local_sdp_str", local_sdp(ch.media_port))


def sip_reply(ch, *, contact_user: str, port: int, to_tag: str) -> None:
    """Variables from the far end's first SIP reply on an outgoing leg (180/200)."""
    dest = ch.profile["Destination-Number"]
    ch.set_vars(
        (
            ("sip_reply_host", "127.0.0.1"),
            ("sip_reply_port", str(port)),
            ("sip_network_ip", "127.0.0.1"),
            ("sip_network_port", str(port)),
            ("sip_recover_contact", f"<sip:{contact_user}@127.0.0.1:{port}>"),
            ("sip_full_via", f"SIP/2.0/UDP 127.0.0.1:5060;rport={port};branch=z9hG4bK{ch.uuid[:8]}"),
            ("sip_recover_via", f"SIP/2.0/UDP 127.0.0.1:5060;rport={port};branch=z9hG4bK{ch.uuid[:8]}"),
            ("sip_from_display", ch.profile["Caller-ID-Name"] if ch.get_var("originator") else None),
            ("sip_full_from", f'"{ch.profile["Caller-ID-Name"]}" <sip:{ch.profile["Caller-ID-Number"]}@127.0.0.1>'),
            ("sip_full_to", f"<sip:{dest}@127.0.0.1:{port}>;tag={to_tag}"),
            ("sip_from_user", ch.profile["Caller-ID-Number"]),
            ("sip_from_uri", f"{ch.profile['Caller-ID-Number']}@127.0.0.1"),
            ("sip_to_user", dest),
            ("sip_to_port", str(port)),
            ("sip_to_uri", f"{dest}@127.0.0.1:{port}"),
            ("sip_contact_user", contact_user),
            ("sip_contact_port", str(port)),
            ("sip_contact_uri", f"{contact_user}@127.0.0.1:{port}"),
            ("sip_contact_host", "127.0.0.1"),
            ("sip_to_tag", to_tag),
            ("sip_from_tag", ch.uuid[:13].replace("-", "")),
            ("sip_cseq", "1"),
            ("sip_call_id", f"{ch.uuid}"),
        )
    )


def failed_invite(ch, cause: str, status: str, phrase: str, *, unreachable: bool = False) -> None:
    """Variables of an outgoing leg whose INVITE failed (a SIP error, or ICMP unreachable)."""
    port = ch.endpoint_port
    reply = [
        ("sip_call_id", ch.uuid),
        ("sip_reply_host", "127.0.0.1"),
        ("sip_reply_port", str(port)),
        ("sip_network_ip", "127.0.0.1"),
        ("sip_network_port", str(port)),
    ]
    if unreachable:
        reply = [kv for kv in reply if kv[0] not in ("sip_reply_host", "sip_network_ip")]
    for k, v in reply + [
        ("sip_hangup_disposition", "recv_refuse"),
        ("sip_invite_failure_status", status),
        ("sip_invite_failure_phrase", phrase),
        ("sip_term_status", status),
        ("proto_specific_hangup_cause", f"sip:{status}"),
        ("sip_term_cause", str(SIP_TERM_CAUSES.get(cause, 0))),
    ]:
        ch.set_var(k, v)


SIP_STATUS = {
    "USER_BUSY": ("486", "Busy Here"),
    "CALL_REJECTED": ("603", "Decline"),
    "NORMAL_TEMPORARY_FAILURE": ("503", "Service Unavailable"),
    "NO_ANSWER": ("480", "Temporarily Unavailable"),
    "UNALLOCATED_NUMBER": ("404", "Not Found"),
}
SIP_TERM_CAUSES = {"USER_BUSY": 17, "CALL_REJECTED": 21, "NORMAL_TEMPORARY_FAILURE": 41, "NO_ANSWER": 19}


_STAMPS: dict[int, str] = {}


def _stamp(us: int) -> str:
    """The local time of `us` (microseconds since the epoch) as FreeSWITCH's *_stamp variables show it,
    memoised by second (time.localtime of us / 1e6, which drops the fraction)."""
    t = us / 1e6
    sec = int(t)
    text = _STAMPS.get(sec)
    if text is None:
        if len(_STAMPS) > 4096:
            _STAMPS.clear()
        text = _STAMPS[sec] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return text


_HOLD_RESURRECT = (
    ("last_hold_epoch", "0"),
    ("last_hold_uepoch", "0"),
    ("hold_accum_seconds", "0"),
    ("hold_accum_usec", "0"),
    ("hold_accum_ms", "0"),
    ("resurrect_epoch", "0"),
    ("resurrect_uepoch", "0"),
)


def billing(ch, now_us: int, q850: int) -> None:
    """CDR variables set at CS_REPORTING (before CHANNEL_HANGUP_COMPLETE), in FreeSWITCH's order."""
    t = ch.times
    created = t["Channel-Created-Time"]
    profile = t["Profile-Created-Time"]
    answered = t["Channel-Answered-Time"]
    bridged = t["Channel-Bridged-Time"]
    progress = t["Channel-Progress-Time"]
    pmedia = t["Channel-Progress-Media-Time"]
    end = t["Channel-Hangup-Time"] or now_us
    out = [
        ("hangup_cause", ch.hangup_cause or "NORMAL_CLEARING"),
        ("hangup_cause_q850", str(q850)),
        ("digits_dialed", "none"),
        ("start_stamp", _stamp(created)),
        ("profile_start_stamp", _stamp(profile)),
    ]
    if answered:
        out.append(("answer_stamp", _stamp(answered)))
    if bridged:
        out.append(("bridge_stamp", _stamp(bridged)))
    if progress:
        out.append(("progress_stamp", _stamp(progress)))
    if pmedia:
        out.append(("progress_media_stamp", _stamp(pmedia)))
    out += (
        ("end_stamp", _stamp(end)),
        ("start_epoch", str(created // 1_000_000)),
        ("start_uepoch", str(created)),
        ("profile_start_epoch", str(profile // 1_000_000)),
        ("profile_start_uepoch", str(profile)),
        ("answer_epoch", str(answered // 1_000_000)),
        ("answer_uepoch", str(answered)),
        ("bridge_epoch", str(bridged // 1_000_000)),
        ("bridge_uepoch", str(bridged)),
    )
    out += _HOLD_RESURRECT
    out += (
        ("progress_epoch", str(progress // 1_000_000)),
        ("progress_uepoch", str(progress)),
        ("progress_media_epoch", str(pmedia // 1_000_000)),
        ("progress_media_uepoch", str(pmedia)),
        ("end_epoch", str(end // 1_000_000)),
        ("end_uepoch", str(end)),
    )
    if ch.last_app:
        out.append(("last_app", ch.last_app))
        if ch.last_arg:
            out.append(("last_arg", ch.last_arg))
    p = ch.profile
    out.append(("caller_id", f'"{p["Caller-ID-Name"]}" <{p["Caller-ID-Number"]}>'))
    dur = end - created
    bill = (end - answered) if answered else 0
    prog = (progress - created) if progress else 0
    wait = (answered - created) if answered else 0
    pm = (pmedia - created) if pmedia else 0
    flow = end - profile
    for prefix, unit, div in (("", "sec", 1_000_000), ("m", "msec", 1000), ("u", "usec", 1)):
        wait_text = str(wait // div)
        out += (
            (f"{prefix}duration", str(dur // div)),
            (f"bill{unit}", str(bill // div)),
            (f"progress{unit}", str(prog // div)),
            (f"answer{unit}", wait_text),
            (f"wait{unit}", wait_text),
            (f"progress_media{unit}", str(pm // div)),
            (f"flow_bill{unit}", str(flow // div)),
        )
    ch.set_vars(out)


RTP_STATS = [
    "rtp_audio_in_raw_bytes",
    "rtp_audio_in_media_bytes",
    "rtp_audio_in_packet_count",
    "rtp_audio_in_media_packet_count",
    "rtp_audio_in_skip_packet_count",
    "rtp_audio_in_jitter_packet_count",
    "rtp_audio_in_dtmf_packet_count",
    "rtp_audio_in_cng_packet_count",
    "rtp_audio_in_flush_packet_count",
    "rtp_audio_in_largest_jb_size",
    "rtp_audio_in_jitter_min_variance",
    "rtp_audio_in_jitter_max_variance",
    "rtp_audio_in_jitter_loss_rate",
    "rtp_audio_in_jitter_burst_rate",
    "rtp_audio_in_mean_interval",
    "rtp_audio_in_flaw_total",
    "rtp_audio_in_quality_percentage",
    "rtp_audio_in_mos",
    "rtp_audio_out_raw_bytes",
    "rtp_audio_out_media_bytes",
    "rtp_audio_out_packet_count",
    "rtp_audio_out_media_packet_count",
    "rtp_audio_out_skip_packet_count",
    "rtp_audio_out_dtmf_packet_count",
    "rtp_audio_out_cng_packet_count",
    "rtp_audio_rtcp_packet_count",
    "rtp_audio_rtcp_octet_count",
]
_RTP_FLOAT = {
    "rtp_audio_in_jitter_min_variance",
    "rtp_audio_in_jitter_max_variance",
    "rtp_audio_in_jitter_loss_rate",
    "rtp_audio_in_jitter_burst_rate",
    "rtp_audio_in_mean_interval",
}


_RTP_VALUES = tuple(
    (k, "100.00" if k == "rtp_audio_in_quality_percentage" else "4.50" if k == "rtp_audio_in_mos"
     else "0.00" if k in _RTP_FLOAT else "0")
    for k in RTP_STATS
)


def rtp_stats(ch) -> None:
    """The RTP statistics variables set at hangup (all zero: no RTP is simulated)."""
    ch.set_vars(_RTP_VALUES)
