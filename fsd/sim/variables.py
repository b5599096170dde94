"""Channel-variable sets as FreeSWITCH 1.10 (mod_sofia, switch_core) adds them, in the captured order.

FreeSWITCH appends a variable when it is first set and moves it to the end when it is set again
(Channel.set_var does the same), so setting the groups below at the moments FreeSWITCH does gives the
captured variable_* lists. Values are synthetic but well-formed (no SIP or RTP is simulated)."""

from __future__ import annotations

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


def remote_sdp(user: str, port: int) -> str:
    return SDP_TEMPLATE.format(user=user, port=port)


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


def _stamp(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us / 1e6))


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
    out: list[tuple[str, str]] = []

    def put(name, value):
        out.append((name, value))

    put("hangup_cause", ch.hangup_cause or "NORMAL_CLEARING")
    put("hangup_cause_q850", str(q850))
    put("digits_dialed", "none")
    put("start_stamp", _stamp(created))
    put("profile_start_stamp", _stamp(profile))
    if answered:
        put("answer_stamp", _stamp(answered))
    if bridged:
        put("bridge_stamp", _stamp(bridged))
    if progress:
        put("progress_stamp", _stamp(progress))
    if pmedia:
        put("progress_media_stamp", _stamp(pmedia))
    put("end_stamp", _stamp(end))
    for name, us in (
        ("start", created),
        ("profile_start", profile),
        ("answer", answered),
        ("bridge", bridged),
        ("last_hold", 0),
    ):
        put(f"{name}_epoch", str(us // 1_000_000))
        put(f"{name}_uepoch", str(us))
    put("hold_accum_seconds", "0")
    put("hold_accum_usec", "0")
    put("hold_accum_ms", "0")
    put("resurrect_epoch", "0")
    put("resurrect_uepoch", "0")
    for name, us in (("progress", progress), ("progress_media", pmedia), ("end", end)):
        put(f"{name}_epoch", str(us // 1_000_000))
        put(f"{name}_uepoch", str(us))
    if ch.last_app:
        put("last_app", ch.last_app)
        if ch.last_arg:
            put("last_arg", ch.last_arg)
    put("caller_id", f'"{ch.profile["Caller-ID-Name"]}" <{ch.profile["Caller-ID-Number"]}>')
    dur = end - created
    bill = (end - answered) if answered else 0
    prog = (progress - created) if progress else 0
    wait = (answered - created) if answered else 0
    pm = (pmedia - created) if pmedia else 0
    flow = end - profile
    for unit, div in (("sec", 1_000_000), ("msec", 1000), ("usec", 1)):
        prefix = {"sec": "", "msec": "m", "usec": "u"}[unit]
        put(f"{prefix}duration", str(dur // div))
        put(f"bill{unit}", str(bill // div))
        put(f"progress{unit}", str(prog // div))
        put(f"answer{unit}", str(wait // div))
        put(f"wait{unit}", str(wait // div))
        put(f"progress_media{unit}", str(pm // div))
        put(f"flow_bill{unit}", str(flow // div))
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


def rtp_stats(ch) -> None:
    out = []
    for k in RTP_STATS:
        if k == "rtp_audio_in_quality_percentage":
            v = "100.00"
        elif k == "rtp_audio_in_mos":
            v = "4.50"
        elif k in _RTP_FLOAT:
            v = "0.00"
        else:
            v = "0"
        out.append((k, v))
    ch.set_vars(out)
