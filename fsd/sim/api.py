"""The `api`/`bgapi` command set of the emulator (mod_commands / mod_sofia subset).

Response bodies are byte-for-byte what FreeSWITCH 1.10.12 prints (see replies-index.tsv)."""

from __future__ import annotations

import json
import logging

from fsd.sim import clock as clock_mod
from fsd.sim.apps import parse_app_target
from fsd.sim.originate import OriginateError, originate

log = logging.getLogger(__name__)

VERSION = "1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit"
ORIGINATE_USAGE = (
    "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
    "[<cid_num>] [<timeout_sec>]\n"
)
SHOW_USAGE = "-USAGE: channels|calls|registrations [as json|xml]\n"
MODULES = {
    "mod_sofia",
    "mod_event_socket",
    "mod_commands",
    "mod_dptools",
    "mod_xml_curl",
    "mod_sndfile",
    "mod_tone_stream",
    "mod_loopback",
}
VERSION_LINE = f"FreeSWITCH Version {VERSION} (git a88d069 2024-08-02 21:02:27Z 64bit)\n"

SHOW_CHANNEL_COLUMNS = (
    "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,application,"
    "application_data,dialplan,context,read_codec,read_rate,read_bit_rate,write_codec,write_rate,"
    "write_bit_rate,secure,hostname,presence_id,presence_data,accountcode,callstate,callee_name,callee_num,"
    "callee_direction,call_uuid,sent_callee_name,sent_callee_num,initial_cid_name,initial_cid_num,"
    "initial_ip_addr,initial_dest,initial_dialplan,initial_context"
).split(",")


def _uptime_text(seconds: float) -> str:
    us_total = int(seconds * 1_000_000)
    us = us_total % 1000
    ms = (us_total // 1000) % 1000
    s = int(seconds)
    years, rem = divmod(s, 365 * 86400)
    days, rem = divmod(rem, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return (
        f"{years} years, {days} days, {hours} hours, {minutes} minutes, {secs} seconds, "
        f"{ms} milliseconds, {us} microseconds"
    )


class Api:
    """Executes api commands against one Switch. `execute(cmd, arg, conn)` returns the body text."""

    def __init__(self, *, switch):
        self.switch = switch
        self.commands = {
            "status": self.status,
            "version": self.version,
            "hostname": self.hostname,
            "originate": self.originate,
            "uuid_bridge": self.uuid_bridge,
            "uuid_kill": self.uuid_kill,
            "uuid_transfer": self.uuid_transfer,
            "uuid_broadcast": self.uuid_broadcast,
            "uuid_break": self.uuid_break,
            "uuid_setvar": self.uuid_setvar,
            "uuid_setvar_multi": self.uuid_setvar_multi,
            "uuid_getvar": self.uuid_getvar,
            "uuid_exists": self.uuid_exists,
            "uuid_answer": self.uuid_answer,
            "uuid_park": self.uuid_park,
            "uuid_record": self.uuid_record,
            "uuid_send_dtmf": self.uuid_send_dtmf,
            "hupall": self.hupall,
            "show": self.show,
            "sofia": self.sofia,
            "sofia_contact": self.sofia_contact,
            "xml_flush_cache": self.xml_flush_cache,
            "reloadxml": self.reloadxml,
            "global_getvar": self.global_getvar,
            "user_exists": self.user_exists,
            "module_exists": self.module_exists,
            "eval": self.eval,
            "reloadacl": lambda arg: "+OK acl reloaded\n",
            "user_data": self.user_data,
            "vm_boxcount": lambda arg: "0",
            "echo": self.echo,
        }

    def execute(self, cmd: str, arg: str, *, conn=None) -> str:
        fn = self.commands.get(cmd)
        self.switch._log("api", conn.id if conn else 0, f"{cmd} {arg}".strip())
        if fn is None:
            body = f"-ERR {cmd} Command not found!\n"
        else:
            try:
                body = fn(arg.strip())
            except Exception:
                log.exception("sim_api_failed cmd=%s", cmd)
                body = "-ERR internal error\n"
        self.switch.fire_api_event(cmd, arg)
        return body

    # ------------------------------------------------------------------ simple
    def status(self, arg):
        sw = self.switch
        up = sw.clock.now() - sw.started_at
        n = sw.sessions_since_start
        return (
            f"UP {_uptime_text(up)}\n"
            "FreeSWITCH (Version 1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit) is ready\n"
            f"{n} session(s) since startup\n"
            f"{len(sw.channels_by_uuid)} session(s) - peak {sw.session_peak}, last 5min {sw.session_peak} \n"
            "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
            "1000 session(s) max\n"
            "min idle cpu 0.00/99.70\n"
            "Current Stack Size/Max 240K/8192K\n"
        )

    def version(self, arg):
        return VERSION_LINE

    def hostname(self, arg):
        return self.switch.hostname

    def eval(self, arg):
        return arg.replace("${hostname}", self.switch.hostname)

    def echo(self, arg):
        return arg

    def global_getvar(self, arg):
        gv = self.switch.global_vars
        if not arg:
            return "".join(f"{k}={v}\n" for k, v in gv.items())
        if arg in gv:
            return gv[arg]
        return "-ERR no reply\n"

    def module_exists(self, arg):
        return "true" if arg in MODULES else "false"

    def reloadxml(self, arg):
        return "+OK [Success]\n"

    def xml_flush_cache(self, arg):
        n = self.switch.flush_directory_cache(arg)
        return f"+OK cleared {n} entr{'y' if n == 1 else 'ies'}\n"

    def user_exists(self, arg):
        parts = arg.split()
        if len(parts) < 3:
            return "false"
        return "true" if self.switch.lookup_user(parts[1], parts[2], action=None) is not None else "false"

    def user_data(self, arg):
        """user_data USER@DOMAIN var|param|attr NAME."""
        parts = arg.split()
        if len(parts) < 3:
            return ""
        user, _, domain = parts[0].partition("@")
        phone = self.switch.lookup_user(user, domain or self.switch.domain, action=None)
        if phone is None:
            return ""
        if parts[1] == "var":
            return str(phone.variables.get(parts[2], ""))
        if parts[1] == "attr" and parts[2] == "number-alias":
            return phone.number_alias or ""
        if parts[1] == "param" and parts[2] == "password":
            return phone.password
        return ""

    def sofia_contact(self, arg):
        target = arg.split("/")[-1]
        user, _, domain = target.partition("@")
        phone = self.switch.lookup_user(user, domain or self.switch.domain, query=False)
        if phone is None or not phone.registered:
            return "error/user_not_registered"
        return f"sofia/internal/sip:{user}@127.0.0.1:{phone.port or 5060}"

    # ------------------------------------------------------------------ channels
    def _chan(self, uuid):
        return self.switch.channels_by_uuid.get(uuid)

    def originate(self, arg):
        from fsd.sim.apps import shell_split

        parts = shell_split(arg)
        if len(parts) < 2:
            return ORIGINATE_USAGE
        dialstring, target = parts[0], parts[1]
        dialplan = parts[2] if len(parts) > 2 else "XML"
        context = parts[3] if len(parts) > 3 else "default"
        extra = []
        if len(parts) > 4 and parts[4] != "undef":
            extra.append(("origination_caller_id_name", parts[4]))
        if len(parts) > 5 and parts[5] != "undef":
            extra.append(("origination_caller_id_number", parts[5]))
        timeout = float(parts[6]) if len(parts) > 6 else None
        try:
            leg = originate(self.switch, dialstring, extra_vars=extra, timeout=timeout)
        except OriginateError as e:
            return f"-ERR {e.cause}\n"
        apps = parse_app_target(target)
        if not apps:
            leg.profile["Destination-Number"] = target
            leg.profile["Context"] = context
            leg.profile["Dialplan"] = dialplan
            leg.hit_dialplan = True

            def _route(leg=leg, target=target, context=context):
                leg.set_state("CS_ROUTING")
                leg._apps = self.switch.lookup_dialplan(leg, target, context)

            leg.start([(_route, ()), (lambda leg=leg: leg.set_state("CS_EXECUTE"), ())])
        else:
            leg.start([(lambda leg=leg: leg.set_state("CS_EXECUTE"), ())] + apps)
        return f"+OK {leg.uuid}\n"

    def uuid_bridge(self, arg):
        parts = arg.split()
        if len(parts) < 2:
            return "-USAGE: <uuid> <other_uuid>\n"
        a, b = self._chan(parts[0]), self._chan(parts[1])
        if a is None or b is None or a.hungup.is_set() or b.hungup.is_set():
            return "-ERR Invalid uuid\n"
        b.other, b.other_type = a, "originator"
        a.other, a.other_type = b, "originatee"
        a.other_profile, b.other_profile = b.snapshot_profile(), a.snapshot_profile()
        a.profile["Callee-ID-Name"] = b.profile["Callee-ID-Name"]
        a.profile["Callee-ID-Number"] = b.profile["Orig-Caller-ID-Number"]
        b.profile["Caller-ID-Name"] = a.profile["Caller-ID-Name"]
        b.profile["Caller-ID-Number"] = a.profile["Caller-ID-Number"]
        b.profile["Callee-ID-Name"] = ""
        b.profile["Callee-ID-Number"] = b.profile["Orig-Caller-ID-Number"]
        a.new_profile("uuid_br", b.uuid)
        b.new_profile("uuid_br", a.uuid)
        a.set_var("uuid_bridge", b.uuid)
        for me, peer in ((a, b), (b, a)):
            if me is a:
                me.set_var("current_loop", None)
                me.set_var("total_loops", None)
            me.set_var("bridge_channel", peer.name)
            me.set_var("bridge_uuid", peer.uuid)
            me.set_var("signal_bond", peer.uuid)
            me.set_var("original_destination_number", me.profile["Destination-Number"])
            me.set_var("original_caller_id_name", me.profile["Caller-ID-Name"])
            me.set_var("original_caller_id_number", me.profile["Caller-ID-Number"])
            me.set_var("transfer_history", me.profile["Transfer-Source"])
            me.set_var("transfer_source", me.profile["Transfer-Source"])
        from fsd.sim.channel import BridgeSteps

        steps = BridgeSteps()
        b._private.put(("bridge_to", a, False, steps))
        a._private.put(("bridge_to", b, True, steps))
        a._media_ev.set()
        b._media_ev.set()
        return f"+OK {b.uuid}\n"

    def uuid_kill(self, arg):
        parts = arg.split()
        if not parts:
            return "-USAGE: <uuid> [cause]\n"
        ch = self._chan(parts[0])
        if ch is None or ch.hungup.is_set():
            return "-ERR No such channel!\n"
        ch.hangup(parts[1] if len(parts) > 1 else "NORMAL_CLEARING")
        return "+OK\n"

    def uuid_transfer(self, arg):
        parts = arg.split()
        if len(parts) < 2:
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        ch = self._chan(parts[0])
        if ch is None or ch.hungup.is_set():
            return "-ERR No such channel!\n"
        rest = parts[1:]
        if rest[0] in ("-bleg", "-both"):
            rest = rest[1:]
            if ch.bridged_to is not None:
                ch = ch.bridged_to
        dest = rest[0]
        dialplan = rest[1] if len(rest) > 1 else "XML"
        context = rest[2] if len(rest) > 2 else ch.profile["Context"]
        partner = ch.bridged_to
        ch.transfer_profile(dest, dialplan, context)
        ch._private.put(("transfer", dest, dialplan, context))
        ch._media_ev.set()
        if partner is not None:
            partner._private.put(("unbridge", ch))
            ch._private.queue.appendleft(("unbridge", partner))
        return "+OK\n"

    def uuid_broadcast(self, arg):
        parts = arg.split()
        if len(parts) < 2:
            return "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
        ch = self._chan(parts[0])
        if ch is None or ch.hungup.is_set():
            return "-ERR invalid uuid\n"
        path = parts[1]
        if "::" in path:
            app_name, _, app_arg = path.partition("::")
        else:
            app_name, app_arg = "playback", path
        cmd = self.switch.new_event("COMMAND", calling=("switch_ivr_async.c", "switch_ivr_broadcast", "5731"))
        cmd_headers = cmd.headers + [
            ("call-command", "execute"),
            ("execute-app-name", app_name),
            ("execute-app-arg", app_arg),
            ("event-lock", "true"),
            ("lead-frames", "5"),
        ]
        ch._private.put(("execute", app_name, app_arg, None, ("broadcast", cmd_headers)))
        return "+OK Message sent\n"

    def uuid_break(self, arg):
        parts = arg.split()
        if not parts:
            return "-USAGE: <uuid> [all]\n"
        ch = self._chan(parts[0])
        if ch is None or ch.hungup.is_set():
            return "-ERR No such channel!\n"
        if len(parts) > 1 and parts[1] == "all":
            # drop queued playbacks too
            ch._private.queue = type(ch._private.queue)(
                i for i in ch._private.queue if not (i[0] == "execute" and i[1] == "playback")
            )
        ch.break_media()
        return "+OK\n"

    def uuid_setvar(self, arg):
        parts = arg.split(" ", 2)
        if len(parts) < 2:
            return "-USAGE: <uuid> <var> [value]\n"
        ch = self._chan(parts[0])
        if ch is None:
            return "-ERR No such channel!\n"
        if not parts[1]:
            return "-ERR No variable specified\n"
        value = parts[2] if len(parts) > 2 else None
        ch.set_var(parts[1], None if value in (None, "undef") else value)
        return "+OK\n"

    def uuid_setvar_multi(self, arg):
        uuid, _, rest = arg.partition(" ")
        ch = self._chan(uuid)
        if ch is None:
            return "-ERR No such channel!\n"
        for item in rest.split(";"):
            k, _, v = item.partition("=")
            if k:
                ch.set_var(k.strip(), v)
        return "+OK\n"

    def uuid_getvar(self, arg):
        parts = arg.split()
        if not parts:
            return "-USAGE: <uuid> <var>\n"
        ch = self._chan(parts[0])
        if ch is None:
            return "-ERR No such channel!\n"
        if len(parts) < 2:
            return "-ERR No variable name specified!\n"
        v = ch.get_var(parts[1])
        return v if v is not None else "_undef_"

    def uuid_exists(self, arg):
        ch = self._chan(arg.split()[0]) if arg.split() else None
        return "true" if ch is not None else "false"

    def uuid_answer(self, arg):
        ch = self._chan(arg.split()[0]) if arg.split() else None
        if ch is None:
            return "-ERROR\n"
        ch.answer()
        return "+OK\n"

    def uuid_park(self, arg):
        ch = self._chan(arg.split()[0]) if arg.split() else None
        if ch is None:
            return "-ERR No such channel!\n"
        ch._private.put(("execute", "park", "", None, None))
        return "+OK\n"

    def uuid_record(self, arg):
        parts = arg.split()
        ch = self._chan(parts[0]) if parts else None
        if ch is None:
            return "-ERR Cannot locate session!\n"
        if len(parts) >= 3 and parts[1] == "start":
            ch._private.put(("execute", "record", " ".join(parts[2:]), None, None))
        elif len(parts) >= 2 and parts[1] == "stop":
            ch.break_media()
        return "+OK Success\n"

    def uuid_send_dtmf(self, arg):
        parts = arg.split()
        ch = self._chan(parts[0]) if parts else None
        if ch is None or len(parts) < 2:
            return "-ERR No such channel!\n"
        target = ch.bridged_to or ch
        clock_mod.spawn(target.send_dtmf, parts[1].split("@")[0])
        return "+OK Success\n"

    def hupall(self, arg):
        parts = arg.split()
        cause = parts[0] if parts else "MANAGER_REQUEST"
        for ch in list(self.switch.channels_by_uuid.values()):
            if len(parts) >= 3 and ch.get_var(parts[1]) != parts[2]:
                continue
            ch.hangup(cause)
        if len(parts) >= 3:
            return f"+OK hangup all channels matching [{parts[1]}]=[{parts[2]}] with cause: {cause}\n"
        return f"+OK hangup all channels with cause {cause}\n"

    # ------------------------------------------------------------------ show / sofia
    def _channel_rows(self):
        rows = []
        for ch in self.switch.channels_by_uuid.values():
            if ch.state in ("CS_DESTROY",):
                continue
            created = ch.times["Channel-Created-Time"]
            rows.append(
                {
                    "uuid": ch.uuid,
                    "direction": ch.direction,
                    "created": self.switch.format_local(created / 1e6),
                    "created_epoch": str(created // 1_000_000),
                    "name": ch.name,
                    "state": ch.state,
                    "cid_name": ch.profile["Caller-ID-Name"],
                    "cid_num": ch.profile["Caller-ID-Number"],
                    "ip_addr": ch.profile["Network-Addr"],
                    "dest": ch.profile["Destination-Number"],
                    "application": ch.get_var("current_application") or "",
                    "application_data": ch.get_var("current_application_data") or "",
                    "dialplan": ch.profile["Dialplan"],
                    "context": ch.profile["Context"],
                    "read_codec": "PCMU" if ch.has_media else "",
                    "read_rate": "8000" if ch.has_media else "",
                    "read_bit_rate": "64000" if ch.has_media else "",
                    "write_codec": "PCMU" if ch.has_media else "",
                    "write_rate": "8000" if ch.has_media else "",
                    "write_bit_rate": "64000" if ch.has_media else "",
                    "secure": "",
                    "hostname": self.switch.hostname,
                    "presence_id": ch.presence_id,
                    "presence_data": "",
                    "accountcode": ch.get_var("accountcode") or "",
                    "callstate": ch.call_state,
                    "callee_name": ch.profile["Callee-ID-Name"],
                    "callee_num": ch.profile["Callee-ID-Number"],
                    "callee_direction": "",
                    "call_uuid": ch.uuid,
                    "sent_callee_name": "",
                    "sent_callee_num": "",
                    "initial_cid_name": ch.profile["Orig-Caller-ID-Name"],
                    "initial_cid_num": ch.profile["Orig-Caller-ID-Number"],
                    "initial_ip_addr": ch.profile["Network-Addr"],
                    "initial_dest": ch.profile["Destination-Number"],
                    "initial_dialplan": ch.profile["Dialplan"],
                    "initial_context": ch.profile["Context"],
                }
            )
        return rows

    def show(self, arg):
        parts = arg.split()
        if not parts:
            return SHOW_USAGE
        what = parts[0]
        fmt = parts[2] if len(parts) >= 3 and parts[1] == "as" else "text"
        if what == "channels":
            rows = self._channel_rows()
            cols = SHOW_CHANNEL_COLUMNS
        elif what in ("calls", "registrations", "detailed_calls", "bridged_calls"):
            rows, cols = ([], [])
            if what == "registrations":
                # mod_commands: `as csv`/`as delim` print the comma-separated table like the default form;
                # any other format is refused
                if fmt in ("csv", "delim"):
                    fmt = "text"
                elif fmt not in ("text", "json", "xml"):
                    return f"-ERR Cannot find format {fmt}\n"
                rows = [
                    {
                        "reg_user": p.user,
                        "realm": p.domain,
                        "token": p.call_id or "",
                        "url": f"sofia/internal/sip:{p.user}@127.0.0.1:{p.port or 5060}",
                        "expires": str(int(p.registered_at + 3600)),
                        "network_ip": "127.0.0.1",
                        "network_port": str(p.port or 5060),
                        "network_proto": "udp",
                        "hostname": self.switch.hostname,
                        "metadata": "",
                    }
                    for p in self.switch.phones.values()
                    if p.registered
                ]
                cols = list(rows[0].keys()) if rows else []
        else:
            return f"-ERR Cannot find format {fmt}\n" if fmt not in ("text", "json", "xml") else "\n0 total.\n"
        if fmt == "json":
            if not rows:
                return '{"row_count": 0}\n'
            return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"), ensure_ascii=False)
        if fmt == "xml":
            if not rows:
                return '<result row_count="0"/>\n'
            out = [f'<result row_count="{len(rows)}">\n']
            for i, r in enumerate(rows, 1):
                out.append(f'  <row row_id="{i}">\n')
                out += [f"    <{k}>{v}</{k}>\n" for k, v in r.items()]
                out.append("  </row>\n")
            out.append("</result>\n")
            return "".join(out)
        if not rows:
            return "\n0 total.\n"
        lines = [",".join(cols)] + [",".join(r[c] for c in cols) for r in rows]
        return "\n".join(lines) + f"\n\n{len(rows)} total.\n"

    def sofia(self, arg):
        parts = arg.split()
        if parts[:1] == ["status"] and len(parts) == 1:
            ip = self.switch.esl_host
            lines = [
                "                     Name\t   Type\t                                      Data\tState",
                "=" * 97,
                f"{ip:>25}\t  alias\t{'internal':>42}\tALIASED",
                f"{'external':>25}\tprofile\t{'sip:mod_sofia@' + ip + ':5080':>42}\tRUNNING (0)",
            ]
            for name in sorted(self.switch.gateways):
                gw = self.switch.gateways[name]
                lines.append(f"{'external::' + name:>25}\tgateway\t{'sip:' + gw.username + '@' + gw.proxy:>42}\tNOREG")
            lines.append(f"{'internal':>25}\tprofile\t{'sip:mod_sofia@' + ip + ':5060':>42}\tRUNNING (0)")
            lines.append("=" * 97)
            lines.append("2 profiles 1 alias")
            return "\n".join(lines) + "\n"
        if len(parts) >= 4 and parts[0] == "status" and parts[1] == "profile" and parts[3] == "reg":
            regs = [p for p in self.switch.phones.values() if p.registered]
            out = ["", "Registrations:", "=" * 97]
            now = self.switch.clock.now()
            for p in regs:
                expires = p.registered_at + 3600
                out += [
                    f"Call-ID:    \t{p.call_id}",
                    f"User:       \t{p.user}@{p.domain}",
                    f'Contact:    \t"" <sip:{p.user}@127.0.0.1:{p.port or 5060}>',
                    f"Agent:      \t{p.user_agent}",
                    f"Status:     \tRegistered(UDP)(unknown) EXP({self.switch.format_local(expires)}) "
                    f"EXPSECS({int(expires - now)})",
                    "Ping-Status:\tReachable",
                    "Ping-Time:\t0.00",
                    f"Host:       \t{self.switch.hostname}",
                    "IP:         \t127.0.0.1",
                    f"Port:       \t{p.port or 5060}",
                    f"Auth-User:  \t{p.user}",
                    f"Auth-Realm: \t{p.domain}",
                    f"MWI-Account:\t{p.user}@{p.domain}",
                    "",
                ]
            out.append(f"Total items returned: {len(regs)}")
            out.append("=" * 97)
            return "\n".join(out) + "\n"
        if len(parts) >= 3 and parts[0] == "profile" and parts[2] in ("rescan", "restart", "start"):
            return "Reload XML [Success]\n+OK scan complete\n" if parts[2] == "rescan" else "+OK\n"
        return "-ERR Usage: sofia status\n"
