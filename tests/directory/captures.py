"""The real mod_xml_curl requests and answers of FreeSWITCH 1.10.12 (shared/freeswitch-traces/xmlcurl/)."""

from __future__ import annotations

import glob
import os

TRACES = os.environ.get("FSD_TRACES") or "/work/shared/freeswitch-traces"
XMLCURL = os.path.join(TRACES, "xmlcurl")


def _split(raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0].encode(), headers, body


def requests() -> list[tuple[str, dict[str, str], bytes]]:
    """(name, headers, body) of every captured request, in capture order."""
    out = []
    for path in sorted(glob.glob(os.path.join(XMLCURL, "*.request.http"))):
        with open(path, "rb") as f:
            _, headers, body = _split(f.read())
        out.append((os.path.basename(path).removesuffix(".request.http"), headers, body))
    return out


def request_body(name: str) -> bytes:
    with open(os.path.join(XMLCURL, name + ".request.http"), "rb") as f:
        return _split(f.read())[2]


def response_body(name: str) -> bytes:
    with open(os.path.join(XMLCURL, name + ".response.http"), "rb") as f:
        return _split(f.read())[2]


def xml(doc: bytes):
    """Parse one of fsd's own documents (fails on anything not well-formed)."""
    import xml.etree.ElementTree as ET

    return ET.fromstring(doc)  # noqa: S314 - the document is fsd's own output under test
