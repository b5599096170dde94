"""The SMTP outbox worker: sends pending email_outbox rows, marks them sent or failed, retries with backoff.

Letters are queued in the same transaction as the change that causes them (employee created,
password reset, voicemail recorded), so none is lost when SMTP is down: the worker retries each one
`smtp.max_attempts` times with exponential backoff (retry_interval_s, doubling, at most one hour),
then marks it failed; the cabinet shows the status and an admin can retry it. Several fsd processes
may run the worker: rows are claimed with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import gevent
import gevent.event

from fsd.config import SmtpConfig
from fsd.errors import StoreError
from fsd.store import web_repo

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600


def backoff_s(attempts: int, base: float) -> float:
    """Delay before the next try after `attempts` failed ones (1 → base, 2 → 2·base, ...)."""
    return float(min(MAX_BACKOFF_S, base * (2 ** max(0, attempts - 1))))


class Mailer:
    def __init__(self, *, pool, smtp: SmtpConfig, metrics=None, poll_interval_s: float = 5.0, batch: int = 20):
        self.pool = pool
        self.smtp = smtp
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self._wake = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False

    # -- one message -----------------------------------------------------------------------------
    def build(self, row: dict) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = row["recipient"]
        msg["Subject"] = row["subject"]
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.smtp.sender.rpartition("@")[2] or "fsd")
        msg.set_content(row["body"])
        if row.get("attachment") is not None:
            name = row.get("attachment_name") or "attachment.bin"
            maintype, subtype = ("audio", "wav") if name.endswith(".wav") else ("application", "octet-stream")
            msg.add_attachment(bytes(row["attachment"]), maintype=maintype, subtype=subtype, filename=name)
        return msg

    def deliver(self, msg: EmailMessage) -> None:
        s = self.smtp
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as conn:
            if s.starttls:
                conn.starttls(context=ssl.create_default_context())
            if s.user:
                conn.login(s.user, s.password)
            conn.send_message(msg)

    # -- the outbox ------------------------------------------------------------------------------
    def send_due(self) -> int:
        """Send every due letter once; returns how many were sent."""
        sent = 0
        with self.pool.transaction() as cur:
            rows = web_repo.email_claim_due(cur, self.batch)
            for row in rows:
                kind = row["kind"]
                try:
                    self.deliver(self.build(row))
                except (OSError, smtplib.SMTPException, ValueError) as e:
                    attempts = row["attempts"] + 1
                    give_up = attempts >= self.smtp.max_attempts
                    err = f"{type(e).__name__}: {e}"[:500]
                    web_repo.email_mark_retry(cur, row["id"], error=err,
                                              delay_s=backoff_s(attempts, self.smtp.retry_interval_s),
                                              give_up=give_up)
                    self._count(kind, "failed" if give_up else "retry")
                    log.warning("email_failed id=%s kind=%s attempt=%s give_up=%s error=%s", row["id"], kind,
                                attempts, give_up, type(e).__name__)
                else:
                    web_repo.email_mark_sent(cur, row["id"])
                    self._count(kind, "sent")
                    sent += 1
                    log.info("email_sent id=%s kind=%s", row["id"], kind)
        return sent

    def _count(self, kind: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.emails.labels(kind, result).inc()

    # -- the loop --------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the outbox now (called after queuing a letter in this process)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                while self.send_due() and not self._stopping:
                    pass
            except StoreError as e:
                log.warning("email_outbox_unavailable error=%s", e)
            except Exception:
                log.exception("email_worker_error")
            self._wake.wait(self.poll_interval_s)

    def start(self) -> None:
        if self._greenlet is None:
            self._stopping = False
            self._greenlet = gevent.spawn(self._run)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout)
            self._greenlet.kill(block=False)
            self._greenlet = None
