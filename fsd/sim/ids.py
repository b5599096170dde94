"""Random identifiers for the emulator: str(uuid.uuid4()) and hex tags, from os.urandom read in blocks (one
system call per 256 identifiers instead of one each, and no UUID object)."""

from __future__ import annotations

import os

_BLOCK = 4096
_buf = b""
_pos = _BLOCK


def _reset() -> None:
    global _buf, _pos
    _buf, _pos = b"", _BLOCK


os.register_at_fork(after_in_child=_reset)  # a forked process must not repeat its parent's identifiers


def _take(n: int) -> bytes:
    global _buf, _pos
    pos = _pos
    if pos + n > len(_buf):
        _buf = os.urandom(_BLOCK)
        pos = 0
    _pos = pos + n
    return _buf[pos : pos + n]


def uuid4() -> str:
    """A random (version 4, RFC 4122 variant) UUID in str(uuid.UUID) form."""
    h = _take(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def hex_tag(n: int) -> str:
    """`n` random lowercase hex digits (what uuid.uuid4().hex[:n] gives for n <= 12)."""
    return _take((n + 1) // 2).hex()[:n]
