"""Logging: one line per event, `key=value` (default) or JSON; secrets never reach the output."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_SECRET = re.compile(r"(?i)\b(password|passwd|secret|token|a1-hash|a1_hash|auth)(\s*[=:]\s*)(\"[^\"]*\"|\S+)")


def redact(text: str) -> str:
    """Mask the values of password=, secret=, token=... and `auth <password>` ESL commands."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}********", text)


class KvFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = redact(record.getMessage())
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} {msg}"
        if record.exc_info:
            line += " exc=" + json.dumps(redact(self.formatException(record.exc_info)))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        msg = redact(record.getMessage())
        event, _, rest = msg.partition(" ")
        d["event"] = event
        for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', rest):
            v = m.group(2)
            d[m.group(1)] = json.loads(v) if v.startswith('"') else v
        d["msg"] = msg
        if record.exc_info:
            d["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(d, ensure_ascii=False)


def setup(*, level: str = "INFO", fmt: str = "kv", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KvFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
