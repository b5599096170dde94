"""`fsd sim --scenario FILE`: run an emulated FreeSWITCH from a scenario file (see fsd.sim.scenario)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import gevent
import gevent.event

from fsd.errors import ConfigError
from fsd.sim.scenario import ScenarioRunner, build_switch, load_scenario

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsd sim", description="Run the FreeSWITCH emulator.")
    p.add_argument("--scenario", required=True, help="YAML or JSON scenario file")
    p.add_argument("--esl-port", type=int, default=None, help="override switch.esl_port")
    p.add_argument("--time-scale", type=float, default=None, help="override switch.time_scale (0.01 = 100x faster)")
    p.add_argument("--run-for", type=float, default=None, help="stop after this many simulated seconds")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        scenario = load_scenario(args.scenario)
        if args.run_for is not None:
            scenario["run_for"] = args.run_for
        switch = build_switch(scenario, esl_port=args.esl_port, time_scale=args.time_scale)
    except (ConfigError, ValueError, TypeError, KeyError) as e:
        sys.stderr.write(f"fsd sim: invalid scenario: {e}\n")
        return 2
    runner = ScenarioRunner(scenario=scenario, switch=switch)
    runner.start()
    sys.stdout.write(f"fsd-sim ready esl={switch.esl_host}:{switch.esl_port} hostname={switch.hostname}\n")
    sys.stdout.flush()
    done = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            gevent.signal_handler(sig, done.set)
        except (ValueError, AttributeError):
            pass
    worker = gevent.spawn(runner.run)
    worker.link(lambda _g: done.set())
    done.wait()
    worker.kill(block=False)
    runner.stop()
    log.info("sim_stopped calls=%s", len(runner.calls))
    return 0
