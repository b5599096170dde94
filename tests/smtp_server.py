"""A real SMTP server for tests: aiosmtpd in a subprocess (the test process is gevent-patched, so
asyncio cannot run in a thread of it), writing each received message as a file into a directory."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import time

from tests.helpers import free_port, wait_for

_SERVER = r'''
import asyncio, os, sys, uuid
from aiosmtpd.controller import Controller

class Handler:
    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(os.path.join(OUT, "REJECT")):
            return "451 4.3.0 try again later"
        name = uuid.uuid4().hex
        tmp = os.path.join(OUT, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.content)
        os.rename(tmp, os.path.join(OUT, name + ".eml"))
        return "250 OK"

OUT, PORT = sys.argv[1], int(sys.argv[2])
c = Controller(Handler(), hostname="127.0.0.1", port=PORT)
c.start()
open(os.path.join(OUT, "READY"), "w").close()
try:
    sys.stdin.read()
finally:
    c.stop()
'''


class SmtpSink:
    def __init__(self, directory: str):
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, self.dir, str(self.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(os.path.join(self.dir, "READY")) or self.proc.poll() is not None,
                 timeout=15, message="SMTP server start")
        if self.proc.poll() is not None:
            raise RuntimeError("SMTP server failed: " + self.proc.stderr.read().decode(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None

    def reject(self, on: bool) -> None:
        path = os.path.join(self.dir, "REJECT")
        if on:
            open(path, "w").close()
        elif os.path.exists(path):
            os.remove(path)

    def messages(self) -> list[email.message.EmailMessage]:
        out = []
        for name in sorted(os.listdir(self.dir), key=lambda n: os.path.getmtime(os.path.join(self.dir, n))):
            if name.endswith(".eml"):
                with open(os.path.join(self.dir, name), "rb") as f:
                    out.append(email.message_from_binary_file(f, policy=email.policy.default))
        return out

    def wait_messages(self, n: int, timeout: float = 15.0) -> list:
        return wait_for(lambda: (m := self.messages()) and len(m) >= n and m, timeout=timeout,
                        message=f"{n} e-mail(s) at the SMTP server")


def _unused() -> float:
    return time.monotonic()
