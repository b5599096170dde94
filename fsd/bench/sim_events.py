"""Micro-benchmark: the FreeSWITCH emulator's own CPU per call (no fsd, no PostgreSQL).

The emulator runs in its own process (procs.SimProcess, delivery as shipped); this process plays a
minimal fsd with raw sockets, doing on the wire what fsd's call driver does for a routed DID call:

* the outbound socket: ``connect``, ``myevents``, ``linger``, ``sendmsg`` execute ``answer``,
  ``set hangup_after_bridge=true``, ``endless_playback`` (ring-back); every caller event is delivered;
* the inbound connection (subscribed to CHANNEL_ANSWER CHANNEL_HANGUP BACKGROUND_JOB and the sofia
  registration events, as fsd's SwitchLink): ``bgapi originate {...}user/EXT@DOMAIN &park()`` of a member
  leg whose phone never answers;
* the caller hangs up 0.3 s after arrival; on its CHANNEL_HANGUP the leg gets ``api uuid_kill``; after the
  linger notice the outbound socket is closed.

Figure: the emulator process's CPU seconds (user+sys, /proc) from the first call placed to the last call
destroyed, divided by the calls. Run: ``.venv/bin/python -m fsd.bench.sim_events [CALLS] [RATE]``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid as uuidlib

import gevent
import gevent.event
import gevent.server
from gevent import socket as gsocket

from fsd.bench.procs import SimProcess, _sim_child, cpu_s, patch_gevent

CALLS = 2000
RATE = 200
MEMBERS = 50
DOMAIN = "bench.example"
DID = "74950000001"
RINGBACK = "tone_stream://%(1000,4000,425);loops=-1"


def _sampled_child(out: str, *args) -> None:
    """procs._sim_child under a statistical profiler (SIGPROF every 1 ms of CPU): self and inclusive
    sample counts per function, and the CPU time of the garbage collector per generation, written to `out`
    (json) when the emulator stops. Far less distortion than cProfile for an emulator made of many small
    calls (C time is counted in the Python function that called it; the collector's in the allocating one)."""
    import collections
    import gc
    import json
    import signal
    import time as _time

    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()

    def key(code):
        return f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}"

    def on_sample(_sig, frame):
        if frame is None:
            return
        own[key(frame.f_code)] += 1
        seen = set()
        while frame is not None:
            k = key(frame.f_code)
            if k not in seen:
                seen.add(k)
                incl[k] += 1
            frame = frame.f_back

    gc_time = {"s": 0.0, "n": 0, "t0": 0.0}

    def on_gc(phase, info):
        if phase == "start":
            gc_time["t0"] = _time.process_time()
        else:
            dt = _time.process_time() - gc_time["t0"]
            gc_time["s"] += dt
            gc_time["n"] += 1
            g = info["generation"]
            gc_time[f"s{g}"] = gc_time.get(f"s{g}", 0.0) + dt
            gc_time[f"n{g}"] = gc_time.get(f"n{g}", 0) + 1

    gc.callbacks.append(on_gc)
    signal.signal(signal.SIGPROF, on_sample)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    try:
        _sim_child(*args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        with open(out, "w") as f:
            json.dump({"self": own.most_common(), "incl": incl.most_common(), "gc": gc_time}, f)


class _SampledSim(SimProcess):
    """SimProcess with _sampled_child as the child."""

    def __init__(self, *, out: str, outbound_port: int, time_scale: float = 1.0):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sampled_child, args=(out, child, outbound_port, time_scale, None),
                                daemon=True)
        self.proc.start()
        _, self.esl_port = self.ask(None, timeout=60)


class _Frames:
    """Splits an ESL byte stream into (headers text, body bytes) frames."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def next(self) -> tuple[str, bytes] | None:
        while True:
            i = self.buf.find(b"\n\n")
            if i >= 0:
                head = self.buf[:i].decode()
                n = 0
                p = head.find("Content-Length: ")
                if p >= 0:
                    n = int(head[p + 16 :].split("\n", 1)[0])
                if len(self.buf) >= i + 2 + n:
                    body = self.buf[i + 2 : i + 2 + n]
                    self.buf = self.buf[i + 2 + n :]
                    return head, body
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data


def _sendmsg(app: str, arg: str) -> bytes:
    return (
        f"sendmsg\ncall-command: execute\nexecute-app-name: {app}\nexecute-app-arg: {arg}\n"
        f"event-uuid: {uuidlib.uuid4()}\n\n"
    ).encode()


class _Driver:
    def __init__(self, esl_port: int, members: int):
        self.members = members
        self.done = 0
        self.failed = 0
        self.all_done = gevent.event.Event()
        self.want = 0
        self.n = 0
        self.inbound = gsocket.create_connection(("127.0.0.1", esl_port))
        self.in_frames = _Frames(self.inbound)
        self.in_frames.next()  # auth/request
        self.inbound.sendall(b"auth ClueCon\n\n")
        self.in_frames.next()
        self.inbound.sendall(b"event plain CHANNEL_ANSWER CHANNEL_HANGUP BACKGROUND_JOB CUSTOM sofia::register "
                             b"sofia::unregister sofia::expire\n\n")
        self.in_frames.next()
        gevent.spawn(self._drain_inbound)

    def _drain_inbound(self) -> None:
        while self.in_frames.next() is not None:
            pass

    def handle(self, sock, _addr) -> None:
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        fr = _Frames(sock)
        try:
            sock.sendall(b"connect\n\n")
            head, _ = fr.next()
            uuid = head.split("\nUnique-ID: ", 1)[1].split("\n", 1)[0]
            number = head.split("\nCaller-Caller-ID-Number: ", 1)[1].split("\n", 1)[0]
            sock.sendall(b"myevents\n\n")
            fr.next()
            sock.sendall(b"linger\n\n")
            fr.next()
            sock.sendall(_sendmsg("answer", "") + _sendmsg("set", "hangup_after_bridge=true")
                         + _sendmsg("endless_playback", RINGBACK))
            self.n += 1
            leg = str(uuidlib.uuid4())
            ext = 1000 + self.n % self.members
            self.inbound.sendall(
                f"bgapi originate {{origination_uuid={leg},originate_timeout=120,fsd_queue_call={uuid},"
                f"hangup_after_bridge=true,ignore_early_media=true,origination_caller_id_number={number}}}"
                f"user/{ext}@{DOMAIN} &park()\n\n".encode()
            )
            killed = False
            while True:
                f = fr.next()
                if f is None:
                    break
                head, body = f
                if not killed and b"Event-Name: CHANNEL_HANGUP\n" in body:
                    killed = True
                    self.inbound.sendall(f"api uuid_kill {leg} ORIGINATOR_CANCEL\n\n".encode())
                if "Content-Disposition: linger" in head:
                    break
        except (OSError, TypeError, IndexError):  # the call ended before the handshake did
            self.failed += 1
        finally:
            sock.close()
            self.done += 1
            if self.done >= self.want:
                self.all_done.set()


def _user_sys(pid: int) -> tuple[float, float, int]:
    """User and system CPU seconds and minor page faults of a process (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck, int(fields[7])


def _bench(calls: int, rate: int, members: int = MEMBERS, time_scale: float = 1.0) -> dict:
    driver = None
    server = gevent.server.StreamServer(("127.0.0.1", 0), lambda s, a: driver.handle(s, a), backlog=2048)
    server.start()
    sample = os.environ.get("FSD_BENCH_SAMPLE_SIM")  # a file: sampling profile of the emulator (json)
    if sample:
        sim = _SampledSim(out=sample, outbound_port=server.server_port, time_scale=time_scale)
    else:
        sim = SimProcess(outbound_port=server.server_port, time_scale=time_scale)
    try:
        driver = _Driver(sim.esl_port, members)
        sim.ask(("phones", [(str(1000 + i), DOMAIN) for i in range(members)]))
        # warm-up
        driver.want, driver.done = 50, 0
        driver.all_done.clear()
        sim.place(did=DID, n=50, rate=200, hangup_after=0.3)
        sim.ask(None, timeout=60)
        driver.all_done.wait(60)
        gevent.sleep(0.5)
        driver.want, driver.done, driver.failed = calls, 0, 0
        driver.all_done.clear()
        c0, own0, t0 = cpu_s(sim.proc.pid), cpu_s(os.getpid()), time.monotonic()
        us0 = _user_sys(sim.proc.pid)
        sim.place(did=DID, n=calls, rate=rate, hangup_after=0.3, prefix="7910")
        placed = sim.ask(None, timeout=600)[1]
        ok = driver.all_done.wait(120)
        while sim.live():  # the last legs' destroy
            gevent.sleep(0.05)
        gevent.sleep(0.3)
        cpu = cpu_s(sim.proc.pid) - c0
        us1 = _user_sys(sim.proc.pid)
        own = cpu_s(os.getpid()) - own0
        wall = time.monotonic() - t0
    finally:
        sim.stop()
        server.stop(timeout=1)
    return {"cpu_ms": cpu / calls * 1000, "user_ms": (us1[0] - us0[0]) / calls * 1000,
            "sys_ms": (us1[1] - us0[1]) / calls * 1000, "faults": (us1[2] - us0[2]) / calls,
            "client_ms": own / calls * 1000, "wall": wall, "placed": placed,
            "complete": bool(ok), "done": driver.done, "failed": driver.failed}


def run() -> list[dict]:
    quick = os.environ.get("FSD_BENCH_QUICK")
    calls = 500 if quick else CALLS
    r = _bench(calls, RATE)
    load = os.getloadavg()[0]
    return [{
        "figure": (f"emulator CPU per call ({calls} DID calls at {RATE}/s: outbound socket with myevents, answer, "
                   f"ring-back, bgapi originate of a member leg, caller hangup at 0.3 s, uuid_kill; "
                   f"load average {load:.1f} on {os.cpu_count()} CPUs)"),
        "value": round(r["cpu_ms"], 3), "unit": "ms", "anchor": 2.0, "ratio": round(r["cpu_ms"] / 2.0, 3),
        "goal": "<= 2 ms (the emulator must not be the limit at 500 calls/s)",
    }]


if __name__ == "__main__":
    patch_gevent()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else CALLS
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else RATE
    print("load", os.getloadavg())
    r = _bench(n, rate)
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
    print("load", os.getloadavg())
