"""`make bench`: run every benchmark, print one table, save it under bench-results/.

Each benchmark module has `run() -> list[dict]` with rows {figure, value, unit, anchor, ratio, goal?}.
Benchmarks are not tests: nothing here asserts; the table is for people.
"""

from gevent import monkey

monkey.patch_all()

import psycogreen.gevent  # noqa: E402

psycogreen.gevent.patch_psycopg()

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

MODULES = ["esl_ingest", "directory", "calls", "sim_events", "member_pick", "impatient", "memory"]


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return "" if v is None else str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fsd.bench")
    ap.add_argument("only", nargs="*", help="benchmark modules to run (default: all)")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--quick", action="store_true",
                    help="smaller loads (FSD_BENCH_QUICK=1): a smoke run in a few minutes, figures less exact")
    args = ap.parse_args(argv)
    if args.quick:
        os.environ["FSD_BENCH_QUICK"] = "1"
    rows: list[dict] = []
    for name in args.only or MODULES:
        try:
            mod = importlib.import_module(f"fsd.bench.{name}")
        except ImportError as e:
            rows.append({"bench": name, "figure": "(not available)", "value": str(e)})
            continue
        t0 = time.monotonic()
        try:
            for r in mod.run():
                rows.append({"bench": name, **r})
        except Exception as e:  # noqa: BLE001 - a broken benchmark is reported, the others still run
            traceback.print_exc()
            rows.append({"bench": name, "figure": "(failed)", "value": repr(e)})
        print(f"# {name}: {time.monotonic() - t0:.1f}s", file=sys.stderr)  # noqa: T201
    cols = ["bench", "figure", "value", "unit", "anchor", "ratio", "goal"]
    table = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in table]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    meta = {"when": stamp, "python": sys.version.split()[0], "machine": platform.machine(),
            "cpus": os.cpu_count(), "quick": bool(args.quick), "load_average": os.getloadavg()}
    with open(os.path.join(args.out, f"bench-{stamp}.txt"), "w") as f:
        f.write(text + "\n")
    print(f"# saved {os.path.join(args.out, f'bench-{stamp}.txt')} and .json", file=sys.stderr)  # noqa: T201
    with open(os.path.join(args.out, f"bench-{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
