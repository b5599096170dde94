"""ESL ingest throughput: ~10 KB text/event-plain CHANNEL_* events, fsd.esl vs greenswitch 0.0.19.

A separate process (multiprocessing, spawn) plays mod_event_socket: auth, subscription reply, then a blast
of N events built from a real CHANNEL_EXECUTE_COMPLETE capture padded with ``variable_*`` headers to about
10 KB (unique Unique-ID and Event-Sequence per event). In the same run, each client connects in turn and
the time from the subscription reply until its handler has received all N events gives events/s:

* greenswitch 0.0.19 ``InboundESL`` with a ``*`` handler reading Event-Name and Unique-ID (greenswitch
  parses and URL-decodes every header up front anyway);
* fsd ``InboundClient`` with the same handler (``ev.name``, ``ev.uuid``: lazy parsing decodes only those);
* fsd again with a handler that reads every header (``ev.headers.items()``: full per-value decoding),
  the like-for-like comparison of parsing work.

Run: ``.venv/bin/python -m fsd.bench.esl_ingest [N]``.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
from urllib.parse import quote

EVENTS = 20000
BENCH_PASSWORD = "bench"  # noqa: S105 - the fake server accepts any password
TARGET_BYTES = 10 * 1024
TRACE = os.path.join(
    os.environ.get("FSD_TRACES", "/work/shared/freeswitch-traces"), "esl", "call-outbound.inbound.server.raw"
)


def _template() -> tuple[bytes, bytes, bytes]:
    """Body split into (head, tail) around a 36-byte Unique-ID + 10-digit sequence slot."""
    from fsd.esl.frames import Event, FrameParser

    with open(TRACE, "rb") as f:
        data = f.read()
    for fr in FrameParser().feed(data):
        if fr.is_event and Event.from_frame(fr).name == "CHANNEL_EXECUTE_COMPLETE":
            body = fr.body
            break
    else:  # pragma: no cover - the capture always has one
        raise RuntimeError("no CHANNEL_EXECUTE_COMPLETE in capture")
    lines = [ln for ln in body.rstrip(b"\n").split(b"\n") if not ln.startswith((b"Unique-ID:", b"Event-Sequence:"))]
    pad = []
    i = 0
    size = sum(len(ln) + 1 for ln in lines) + 80
    while size < TARGET_BYTES:
        value = quote(f"bench value {i}: sip:+7916{i:07d}@127.0.0.1;transport=udp <x>", safe=",.-_/~()*")
        ln = f"variable_bench_pad_{i}: {value}".encode()
        pad.append(ln)
        size += len(ln) + 1
        i += 1
    # Event-Name first, then our slots, then the rest of the real headers and the padding
    head = lines[0] + b"\nUnique-ID: "
    tail = b"\n" + b"\n".join(lines[1:] + pad) + b"\n\n"
    return head, b"\nEvent-Sequence: ", tail


def _events(head: bytes, mid: bytes, tail: bytes, start: int, count: int) -> bytes:
    out = []
    for n in range(start, start + count):
        uid = f"00000000-0000-4000-8000-{n:012d}".encode()
        body = head + uid + mid + b"%010d" % n + tail
        out.append(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body)
    return b"".join(out)


def _read_command(conn: socket.socket, buf: bytearray) -> bytes | None:
    while b"\n\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    i = buf.index(b"\n\n")
    cmd = bytes(buf[:i])
    del buf[: i + 2]
    return cmd


def _server(port_pipe, count: int) -> None:
    """Blocking fake mod_event_socket (own process, no gevent)."""
    head, mid, tail = _template()
    batch = 64
    blob = [_events(head, mid, tail, s, min(batch, count - s)) for s in range(0, count, batch)]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port_pipe.send((lsock.getsockname()[1], len(blob[0]) // min(batch, count)))
    port_pipe.close()
    while True:
        conn, _ = lsock.accept()
        buf = bytearray()
        conn.sendall(b"Content-Type: auth/request\n\n")
        try:
            while True:
                cmd = _read_command(conn, buf)
                if cmd is None:
                    break
                word = cmd.split(b" ", 1)[0].split(b"\n", 1)[0]
                if word == b"auth":
                    conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
                elif word == b"event":
                    conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
                    for chunk in blob:
                        conn.sendall(chunk)
                elif word == b"exit":
                    conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
                    break
                elif word == b"quit-server":
                    conn.close()
                    lsock.close()
                    return
                else:
                    conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
        except OSError:
            pass
        finally:
            conn.close()


def _bench_greenswitch(port: int, count: int) -> float:
    import gevent
    import gevent.event
    from greenswitch import esl as gs

    done = gevent.event.Event()
    state = {"n": 0}

    def handler(ev):
        h = ev.headers
        _ = (h.get("Event-Name"), h.get("Unique-ID"))
        state["n"] += 1
        if state["n"] >= count:
            done.set()

    client = gs.InboundESL(host="127.0.0.1", port=port, password=BENCH_PASSWORD)
    client.connect()
    client.register_handle("*", handler)
    t0 = time.perf_counter()
    client.send("event plain ALL")
    done.wait(600)
    elapsed = time.perf_counter() - t0
    client._run = False
    for g in (client._receive_events_greenlet, client._process_events_greenlet):
        g.kill(block=True, timeout=5)
    try:
        client.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    client.sock.close()
    client.sock_file.close()
    return state["n"] / elapsed


def _bench_fsd(port: int, count: int, *, full: bool) -> float:
    import gevent.event

    from fsd.esl import InboundClient

    done = gevent.event.Event()
    state = {"n": 0, "t0": 0.0}

    if full:
        def handler(ev):
            _ = ev.headers.items()
            state["n"] += 1
            if state["n"] >= count:
                done.set()
    else:
        def handler(ev):
            _ = (ev.name, ev.uuid)
            state["n"] += 1
            if state["n"] >= count:
                done.set()

    client = InboundClient(host="127.0.0.1", port=port, password=BENCH_PASSWORD, reconnect=False)
    client.subscribe("*", handler)
    # the client subscribes right after auth (BACKGROUND_JOB here) and the server answers with the blast;
    # connect + auth is included in the time (a millisecond or so)
    t0 = time.perf_counter()
    client.connect(timeout=30)
    done.wait(600)
    elapsed = time.perf_counter() - t0
    client.stop()
    return state["n"] / elapsed


def _profile(port: int, count: int) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    _bench_fsd(port, count, full=False)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def run(count: int = EVENTS, profile: bool = False) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_server, args=(child, count), daemon=True)
    proc.start()
    child.close()
    port, event_size = parent.recv()
    try:
        if profile:
            _profile(port, count)
            return []
        gs_rate = _bench_greenswitch(port, count)
        fsd_rate = _bench_fsd(port, count, full=False)
        fsd_full = _bench_fsd(port, count, full=True)
    finally:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.recv(100)
                s.sendall(b"quit-server\n\n")
        except OSError:
            pass
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
    anchor = "greenswitch 0.0.19 InboundESL, same run"
    common = {"unit": "events/s"}
    return [
        {"figure": f"greenswitch 0.0.19 ingest ({count} x {event_size} B plain events)", "value": gs_rate,
         "anchor": None, "ratio": None, **common},
        {"figure": "fsd InboundClient ingest, handler reads name + Unique-ID", "value": fsd_rate,
         "anchor": anchor, "ratio": fsd_rate / gs_rate, "goal": ">= 10x", **common},
        {"figure": "fsd InboundClient ingest, handler reads every header", "value": fsd_full,
         "anchor": anchor, "ratio": fsd_full / gs_rate, **common},
    ]


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv and argv[0].isdigit() else EVENTS
    if "--profile" in argv:
        run(count, profile=True)
        return 0
    for row in run(count):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
