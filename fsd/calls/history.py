"""Call history writer: exactly one ``calls`` row per call, never lost.

Rows go straight to PostgreSQL (``ON CONFLICT (call_uuid) DO NOTHING``). When the database is
unreachable they are appended to a local spool file (one JSON object per line, fsync'd) under the
storage directory and written later by :meth:`HistoryWriter.flush`, which the writer's greenlet
calls periodically; replays are idempotent thanks to the unique call_uuid.

A row PostgreSQL refuses for its content (a constraint; never expected) is kept in
``spool/history.rejected.jsonl`` for the operator and logged as an error: it neither marks the database
down nor holds back the spool's other rows.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime

import gevent
import gevent.lock

from fsd.errors import FsdError, StoreError
from fsd.store import calls_repo

log = logging.getLogger(__name__)


def _enc(v):
    if isinstance(v, datetime):
        return v.isoformat()
    return v


class HistoryWriter:
    def __init__(self, *, pool, storage_dir: str, metrics=None, flush_interval_s: float = 2.0, gate=None):
        from fsd.calls.dbgate import DbGate

        self.pool = pool
        self.gate = gate or DbGate()
        self.metrics = metrics
        self.flush_interval_s = flush_interval_s
        self.spool_dir = os.path.join(storage_dir, "spool")
        self.spool_path = os.path.join(self.spool_dir, "history.jsonl")
        self.rejected_path = os.path.join(self.spool_dir, "history.rejected.jsonl")
        self._lock = gevent.lock.Semaphore()
        self._greenlet: gevent.Greenlet | None = None
        self.written = 0
        self.spooled = 0
        self.rejected = 0

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        try:
            self.flush()
        except Exception:
            log.exception("calls_history_final_flush_failed")

    def write(self, row: dict) -> None:
        if not self.gate.ok():
            self._spool(row, "database marked down")
            return
        try:
            with self.pool.autocommit() as cur:  # one INSERT: no BEGIN/COMMIT round trips
                calls_repo.history_insert(cur, row)
            self.written += 1
        except calls_repo.HistoryRowRejected as e:
            self._reject(json.dumps({k: _enc(v) for k, v in row.items()}, ensure_ascii=False) + "\n", e)
        except StoreError as e:
            self.gate.failed(e)
            self._spool(row, str(e))

    def _append(self, path: str, line: str) -> None:
        os.makedirs(self.spool_dir, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _reject(self, line: str, error: BaseException) -> None:
        """Keep a refused row for the operator."""
        self._append(self.rejected_path, line)
        self.rejected += 1
        log.error("calls_history_rejected error=%s kept=%s", error, self.rejected_path)

    def _spool(self, row: dict, reason: str) -> None:
        line = json.dumps({k: _enc(v) for k, v in row.items()}, ensure_ascii=False) + "\n"
        with self._lock:
            self._append(self.spool_path, line)
        self.spooled += 1
        if self.metrics is not None:
            self.metrics.history_spooled.inc()
        log.warning("calls_history_spooled call=%s reason=%s", row.get("call_uuid"), reason)

    def pending(self) -> int:
        try:
            with open(self.spool_path, encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    def flush(self) -> int:
        """Write spooled rows to the database; returns how many were written. Rows stay spooled
        until the database has them."""
        with self._lock:
            if not os.path.exists(self.spool_path):
                return 0
            with open(self.spool_path, encoding="utf-8") as f:
                lines = [line for line in f if line.strip()]
            if not lines:
                os.unlink(self.spool_path)
                return 0
            done = 0
            refused: list[tuple[str, BaseException]] = []  # kept once the others are committed
            try:
                with self.pool.transaction() as cur:
                    for line in lines:
                        try:
                            row = json.loads(line)
                        except ValueError:
                            log.error("calls_history_spool_bad_line line=%r", line[:200])
                            continue
                        try:
                            calls_repo.history_insert(cur, row)
                        except calls_repo.HistoryRowRejected as e:
                            refused.append((line if line.endswith("\n") else line + "\n", e))
                            continue
                        done += 1
            except (StoreError, FsdError) as e:
                if isinstance(e, StoreError):
                    self.gate.failed(e)
                log.info("calls_history_flush_deferred pending=%d error=%s", len(lines), e)
                return 0
            self.gate.succeeded()
            for line, e in refused:
                self._reject(line, e)
            os.unlink(self.spool_path)
            self.written += done
            log.info("calls_history_flushed rows=%d", done)
            return done

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.flush_interval_s)
            try:
                if os.path.exists(self.spool_path):
                    self.flush()
            except Exception:
                log.exception("calls_history_flush_crashed")
