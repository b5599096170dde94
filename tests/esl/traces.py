"""Access to the real FreeSWITCH 1.10.12 captures (read-only, shared with the whole project)."""

from __future__ import annotations

import codecs
import collections
import csv
import glob
import json
import os

TRACES = os.environ.get("FSD_TRACES", "/work/shared/freeswitch-traces")
ESL = os.path.join(TRACES, "esl")


def server_raw_files() -> list[str]:
    return sorted(glob.glob(os.path.join(ESL, "*.server.raw")))


def capture_name(path: str) -> str:
    return os.path.basename(path)[: -len(".server.raw")]


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def jsonl_chunks(name: str, direction: str = "fs->app") -> list[bytes]:
    """The proxy's recv() chunks, in order, for one direction (the real TCP segmentation)."""
    out = []
    with open(os.path.join(ESL, name + ".jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("dir") == direction:
                out.append(codecs.escape_decode(rec["data"])[0])
    return out


def expected_event_counts() -> dict[str, collections.Counter]:
    """capture -> Counter(event full name) from event-counts.tsv (all formats summed)."""
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with open(os.path.join(TRACES, "event-counts.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out[row["capture"]][row["event"]] += int(row["count"])
    return out


def expected_replies() -> dict[str, list[dict]]:
    """file basename -> rows of replies-index.tsv (non-event frames) in offset order."""
    out: dict[str, list[dict]] = collections.defaultdict(list)
    with open(os.path.join(TRACES, "replies-index.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out[os.path.basename(row["file"])].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: int(r["byte_offset"]))
    return out


def unescape_tsv(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")
