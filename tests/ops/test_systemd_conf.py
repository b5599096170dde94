"""The systemd unit and the example configuration that ship in ops/ stay valid and cannot drift from the code."""

import dataclasses
import os
import re
import shlex
import shutil
import subprocess

import pytest

from fsd import config
from fsd.cli import build_parser
from tests.ops.common import OPS

UNIT = os.path.join(OPS, "systemd", "fsd.service")
EXAMPLE = os.path.join(OPS, "fsd.conf.example")
SETTING = re.compile(r"^#\s?([a-z_]+) = ?(.*)$")


def unit() -> dict[str, list[tuple[str, str]]]:
    """systemd's INI dialect: repeated keys allowed, `#`/`;` comments, no interpolation."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = None
    with open(UNIT, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                out.setdefault(section, [])
                continue
            key, sep, value = line.partition("=")
            assert sep and section, f"bad unit line {line!r}"
            out[section].append((key.strip(), value.strip()))
    return out


def one(section, key):
    values = [v for k, v in unit()[section] if k == key]
    assert len(values) == 1, f"{section}.{key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    total = 0.0
    for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|min|h)?", value):
        total += float(n) * {"ms": 0.001, "s": 1, "": 1, "min": 60, "h": 3600}[u]
    return total


def test_unit_runs_fsd_serve_with_the_config_and_handles_signals():
    assert one("Service", "Type") == "simple"
    argv = shlex.split(one("Service", "ExecStart"))
    assert argv[0] == "/usr/bin/fsd"
    args = build_parser().parse_args(argv[1:])  # the CLI really accepts this command line
    assert args.command == "serve" and args.config == "/etc/fsd/fsd.conf"
    assert one("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("Service", "KillSignal") == "SIGTERM"
    assert one("Service", "Restart") == "on-failure"
    assert one("Service", "User") == "fsd"
    # systemd must wait longer than fsd's own drain deadline before it sends SIGKILL
    assert seconds(one("Service", "TimeoutStopSec")) > config.OutboundConfig().drain_timeout_s
    assert one("Install", "WantedBy") == "multi-user.target"


def test_unit_hardening():
    assert one("Service", "NoNewPrivileges") == "yes"
    assert one("Service", "ProtectSystem") == "strict"
    assert one("Service", "PrivateTmp") == "yes"
    assert config.CallsConfig().storage_dir in one("Service", "ReadWritePaths").split()
    assert one("Service", "CapabilityBoundingSet") == ""  # no capabilities: fsd binds unprivileged ports


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_and_security(tmp_path):
    # verify insists that ExecStart exists: point it at a stand-in executable, nothing else changes
    fake = tmp_path / "fsd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    with open(UNIT, encoding="utf-8") as f:
        text = f.read().replace("/usr/bin/fsd", str(fake))
    (tmp_path / "fsd.service").write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "./fsd.service"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    # exposure score under 3.0 of 10 ("OK"); --offline exists since systemd 250
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30", "./fsd.service"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    if "--offline" in r.stderr and "unrecognized" in r.stderr:
        pytest.skip("systemd-analyze security --offline not supported")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


# -- the example configuration ---------------------------------------------------------------------
def example_settings() -> dict[str, dict[str, str]]:
    """[section] → {key: value} of every `# key = value` line (the commented-out settings)."""
    out: dict[str, dict[str, str]] = {}
    section = None
    with open(EXAMPLE, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("["):
                section = line.strip("[]")
                out.setdefault(section, {})
                continue
            m = SETTING.match(line)
            if m and section:
                assert m.group(1) not in out[section], f"{section}.{m.group(1)} shown twice"
                out[section][m.group(1)] = m.group(2)
    return out


def test_example_loads_as_is_and_changes_nothing():
    assert config.load(path=EXAMPLE, env={}) == config.load(path=None, env={})


def test_example_shows_every_setting_of_every_section():
    shown = example_settings()
    for f in dataclasses.fields(config.Config):
        section_cls = type(getattr(config.Config(), f.name))
        expected = [sf.name for sf in dataclasses.fields(section_cls)]
        assert f.name in shown, f"[{f.name}] missing from the example"
        assert list(shown[f.name]) == expected, f"[{f.name}] settings differ from fsd/config.py (same order)"
    assert set(shown) == {f.name for f in dataclasses.fields(config.Config)}


def test_example_values_uncommented_load_and_are_the_defaults(tmp_path):
    shown = example_settings()
    text = "".join(f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) for sec, kv in shown.items())
    path = tmp_path / "fsd.conf"
    path.write_text(text)
    cfg = config.load(path=str(path), env={})
    defaults = config.Config()
    for sec in shown:
        for key in shown[sec]:
            if (sec, key) == ("node", "name"):  # the default is the host name; the example shows a sample
                continue
            assert getattr(getattr(cfg, sec), key) == getattr(getattr(defaults, sec), key), f"{sec}.{key}"


def test_example_documents_every_setting():
    """Each setting line follows at least one prose comment line in its section."""
    with open(EXAMPLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if SETTING.match(line):
            j = i - 1
            while j >= 0 and SETTING.match(lines[j]):
                j -= 1
            assert lines[j].startswith("# ") and not lines[j].startswith("["), f"undocumented: {line}"


def test_ops_readme_metric_table_matches_the_code():
    from fsd.metrics.catalogue import full_registry, markdown

    with open(os.path.join(OPS, "README.md"), encoding="utf-8") as f:
        text = f.read()
    begin, end = "<!-- metrics-table:begin -->\n", "<!-- metrics-table:end -->"
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == markdown(full_registry()), "regenerate with: python -m fsd.metrics.catalogue"


def test_ops_readme_lists_every_alert():
    import yaml

    from tests.ops.common import ALERTS

    with open(os.path.join(OPS, "README.md"), encoding="utf-8") as f:
        text = f.read()
    with open(ALERTS, encoding="utf-8") as f:
        names = [r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    assert [n for n in names if f"| {n} |" not in text] == []
