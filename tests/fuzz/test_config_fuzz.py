"""Fuzz the configuration loader (fsd/config.py load(path=..., env=..., overrides=...)).

Whatever the INI file holds (any text, any bytes), whatever the FSD_* environment and the command-line
overrides say, load() returns a Config or raises ConfigError naming the problem - nothing else escapes,
and it never hangs. A Config it returns has passed validate() and has the declared types.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fsd import config as cfgmod
from fsd.config import Config, ConfigError, load
from tests.fuzz import fuzz_settings

_SECTIONS = {f.name: f.default_factory().__class__ for f in dataclasses.fields(Config)}
_KEYS = {sec: [f.name for f in dataclasses.fields(cls)] for sec, cls in _SECTIONS.items()}
_ENV_VARS = [f"FSD_{sec.upper()}_{key.upper()}" for sec, keys in _KEYS.items() for key in keys] + [
    "FSD_DATABASE_URL", "FSD_CONFIG", "FSD_HTTP", "FSD_", "PATH"]

# values that reach every branch of coercion and validation
_interesting = st.sampled_from([
    "", " ", "0", "1", "-1", "65535", "65536", "99999999999999999999", "1.5", "nan", "NaN", "inf", "-inf", "1e309",
    "true", "FALSE", "yes", "off", "maybe", "٣", "²", "1_000", " 7 ", "0x10", "ru", "en", "de", "DEBUG", "kv", "json",
    "fs1=127.0.0.1:8021", "a=h:1,a=h:2", "a=h:0", "a=h:x", "=h:1", "a=h:1:pw", "a=h:1:p:q", ",,", "a",
    "10.0.0.0/8", "::1/128", "999.1.1.1", "127.0.0.1/33", "%(x)s", "$HOME", "a\nb", "[x]", "\x00",
])
_value = st.one_of(_interesting, st.text(max_size=20))
_key = st.one_of(st.sampled_from(sorted({k for ks in _KEYS.values() for k in ks})), st.text(max_size=8))
_section = st.one_of(st.sampled_from([*_SECTIONS, "DEFAULT", "default", "Http", "x"]), st.text(max_size=8))


@st.composite
def ini_text(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        lines.append(f"[{draw(_section)}]")
        for _ in range(draw(st.integers(0, 5))):
            sep = draw(st.sampled_from(["=", ":", " = ", " : ", ""]))
            lines.append(f"{draw(_key)}{sep}{draw(_value)}")
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["  continued", "# comment", "; c", "", "[", "]", "key", "= v"])))
    text = "\n".join(lines).encode("utf-8", "surrogatepass")
    return draw(st.sampled_from([text, text.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + text]))


# any bytes: a file that is not UTF-8 (cp1251, surrogates) must be a ConfigError too
_file = st.one_of(st.none(), ini_text(), st.binary(max_size=200),
                  st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
# environment values and command-line flags come from execve(): they never hold a NUL byte
_env_value = _value.filter(lambda v: "\x00" not in v)
_env = st.dictionaries(st.sampled_from(_ENV_VARS), _env_value, max_size=6)
_overrides = st.dictionaries(
    st.one_of(st.builds(lambda s, k: f"{s}.{k}", st.sampled_from(list(_SECTIONS)), _key), st.text(max_size=10)),
    _env_value, max_size=4)


def _check_config(cfg: Config) -> None:
    cfgmod.validate(cfg)
    for sec in dataclasses.fields(cfg):
        section = getattr(cfg, sec.name)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[str(f.type)]
            assert isinstance(value, want), (sec.name, f.name, value)
    cfg.switch_list()
    cfg.masked()


def _load(data: bytes | None, env: dict, overrides: dict) -> Config | None:
    path = None
    with tempfile.TemporaryDirectory(prefix="fsd-fuzz-config-") as tmp:
        if data is not None:
            path = os.path.join(tmp, "fsd.ini")
            with open(path, "wb") as f:
                f.write(data)
        env = {k: (path or os.path.join(tmp, "missing.ini")) if k == "FSD_CONFIG" else v for k, v in env.items()}
        try:
            return load(path=path, env=env, overrides=overrides)
        except ConfigError as e:
            assert str(e)
            return None


@fuzz_settings(600)
@given(data=_file, env=_env, overrides=_overrides)
@example(data=b"[http]\nport = 99999\n", env={}, overrides={})
@example(data=b"[calls]\ntime_scale = nan\n", env={}, overrides={})
@example(data=b"[esl]\nswitches = a=h:1,a=h:2\n", env={}, overrides={})
@example(data=b"[http]\nport = 8080\n[http]\nport = 1\n", env={}, overrides={})
@example(data=b"[DEFAULT]\nx = 1\n", env={}, overrides={})
@example(data=None, env={"FSD_HTTP_PORT": "²"}, overrides={})
@example(data="[node]\nname = Узел\n".encode(), env={"FSD_CALLS_LANGUAGE": "en"}, overrides={"log.level": "debug"})
@example(data=b"\xef\xbb\xbf[http]\nport = 1\n", env={}, overrides={})
@example(data=None, env={}, overrides={"http": "1"})
def test_fuzz_config_load_raises_only_config_error(data, env, overrides):
    cfg = _load(data, env, overrides)
    if cfg is not None:
        _check_config(cfg)


def test_config_file_not_utf8_is_a_config_error():
    path = os.path.join(tempfile.mkdtemp(prefix="fsd-cp1251-"), "fsd.ini")
    with open(path, "wb") as f:
        f.write("[node]\nname = Узел\n".encode("cp1251"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(path=path, env={}, overrides={})


@pytest.mark.parametrize("var", ["FSD_ESL_COMMAND_TIMEOUT_S", "FSD_ESL_CONNECT_TIMEOUT_S", "FSD_SMTP_TIMEOUT_S",
                                 "FSD_OUTBOUND_DRAIN_TIMEOUT_S"])
def test_non_finite_timeouts_are_refused(var):
    for value in ("nan", "inf", "-inf", "1e309"):
        with pytest.raises(ConfigError, match="not a valid float"):
            load(path=None, env={var: value}, overrides={})
