"""Configuration: defaults < file (INI) < FSD_* environment < command-line flags.

Settings are declared once, as frozen dataclasses; every value is validated at start and a bad
value stops fsd with a ConfigError naming the setting. Environment variables are named
FSD_<SECTION>_<KEY> (e.g. FSD_HTTP_PORT), plus the short FSD_DATABASE_URL for the DSN.
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from fsd.errors import ConfigError

SECRET_KEYS = {"password", "secret_key", "operator_token", "dsn", "credentials"}


@dataclass(frozen=True)
class SwitchConfig:
    """One FreeSWITCH node reached over the inbound Event Socket."""

    name: str
    host: str
    port: int
    password: str


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: str = "host=/var/run/postgresql dbname=fsd"
    pool_min: int = 1
    pool_max: int = 20
    statement_timeout_ms: int = 5000
    # the hot statements of a call as server-side prepared statements (fsd.store.prepared); false behind a
    # pooler that moves sessions between server connections (PgBouncer in transaction or statement mode)
    prepare_statements: bool = True


@dataclass(frozen=True)
class EslConfig:
    # comma-separated NAME=HOST:PORT entries; password shared unless given per switch as NAME=HOST:PORT:PASSWORD
    switches: str = "fs1=127.0.0.1:8021"
    password: str = "ClueCon"  # noqa: S105 - FreeSWITCH's vanilla default; set your own
    command_timeout_s: float = 5.0
    connect_timeout_s: float = 3.0
    reconnect_max_s: float = 2.0
    # liveness: a switch that keeps its socket open but stops answering is declared down (and reconnected)
    # when nothing at all was received for liveness_timeout_s while a command awaits its reply; a link
    # quiet for probe_interval_s gets an `api status` probe that must be answered within command_timeout_s
    liveness_timeout_s: float = 10.0
    probe_interval_s: float = 5.0


@dataclass(frozen=True)
class OutboundConfig:
    host: str = "127.0.0.1"
    port: int = 8084
    drain_timeout_s: float = 30.0


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    secret_key: str = ""
    operator_token: str = ""
    max_body_bytes: int = 10 * 1024 * 1024
    login_attempts_per_minute: int = 5


@dataclass(frozen=True)
class XmlCurlConfig:
    user: str = "freeswitch"
    password: str = ""
    deadline_ms: int = 1500
    max_body_bytes: int = 65536
    allow_from: str = "127.0.0.1/32,::1/128"


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    user: str = ""
    password: str = ""
    starttls: bool = False
    sender: str = "fsd@localhost"
    timeout_s: float = 10.0
    retry_interval_s: int = 60
    max_attempts: int = 10


@dataclass(frozen=True)
class CallsConfig:
    impatient_threshold_s: float = 20.0
    forward_external_timeout_s: int = 30
    # a call to one employee (DID, IVR or extension) rings this long (plus a delayed forward's delay)
    # before the employee's voicemail
    employee_ring_timeout_s: float = 30.0
    callback_attempts: int = 3
    callback_interval_s: int = 300
    storage_dir: str = "/var/lib/fsd"
    prompts_dir: str = ""
    language: str = "ru"
    softphone_url: str = "https://www.microsip.org/downloads"
    sip_server: str = ""
    # demos and tests only: run call timers on simulated time (0.1 = ten times faster), matching an
    # emulated switch started with the same time scale
    time_scale: float = 1.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "kv"
    trace_esl: bool = False


@dataclass(frozen=True)
class NodeConfig:
    name: str = field(default_factory=lambda: os.uname().nodename)


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    esl: EslConfig = field(default_factory=EslConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    xmlcurl: XmlCurlConfig = field(default_factory=XmlCurlConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    node: NodeConfig = field(default_factory=NodeConfig)

    # -- derived ------------------------------------------------------------------------------
    def switch_list(self) -> list[SwitchConfig]:
        return parse_switches(self.esl.switches, self.esl.password)

    def masked(self) -> dict[str, dict[str, Any]]:
        """The effective configuration with secrets masked (for `fsd config check`)."""
        out: dict[str, dict[str, Any]] = {}
        for f in fields(self):
            section = getattr(self, f.name)
            values = {}
            for sf in fields(section):
                v = getattr(section, sf.name)
                if sf.name in SECRET_KEYS and v:
                    v = mask_dsn(v) if sf.name == "dsn" else "********"
                values[sf.name] = v
            out[f.name] = values
        return out


def mask_dsn(dsn: str) -> str:
    parts = []
    for token in dsn.split():
        k, _, v = token.partition("=")
        parts.append(f"{k}=********" if k == "password" else token)
    masked = " ".join(parts)
    if "://" in masked and "@" in masked:  # URL form: postgresql://user:pass@host/db
        scheme, rest = masked.split("://", 1)
        cred, _, host = rest.rpartition("@")
        if ":" in cred:
            cred = cred.split(":", 1)[0] + ":********"
        masked = f"{scheme}://{cred}@{host}"
    return masked


def parse_switches(spec: str, default_password: str) -> list[SwitchConfig]:
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        name, sep, rest = item.partition("=")
        if not sep:
            raise ConfigError(f"esl.switches: entry {item!r} must be NAME=HOST:PORT[:PASSWORD]")
        bits = rest.split(":")
        if len(bits) not in (2, 3):
            raise ConfigError(f"esl.switches: entry {item!r} must be NAME=HOST:PORT[:PASSWORD]")
        try:
            port = int(bits[1])
        except ValueError:
            raise ConfigError(f"esl.switches: bad port in {item!r}") from None
        if not 0 < port < 65536:
            raise ConfigError(f"esl.switches: bad port in {item!r}")
        out.append(SwitchConfig(name=name.strip(), host=bits[0], port=port,
                                password=bits[2] if len(bits) == 3 else default_password))
    names = [s.name for s in out]
    if len(names) != len(set(names)):
        raise ConfigError("esl.switches: switch names must be unique")
    return out


# -- loading ----------------------------------------------------------------------------------
def _coerce(section: str, key: str, typ: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    name = f"{section}.{key}"
    t = typ if isinstance(typ, type) else {"int": int, "float": float, "bool": bool, "str": str}.get(str(typ), str)
    try:
        if t is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if t is int:
            return int(raw.strip())
        if t is float:
            value = float(raw.strip())
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a valid {t.__name__}") from None
    return raw


def _section_types() -> dict[str, type]:
    return {f.name: f.default_factory().__class__ for f in fields(Config)}  # type: ignore[misc]


def load(
    *,
    path: str | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, str] | None = None,
) -> Config:
    """Build the effective Config. `overrides` maps "section.key" → value (from flags)."""
    env = dict(os.environ if env is None else env)
    layers: dict[str, dict[str, Any]] = {}

    if path is None:
        path = env.get("FSD_CONFIG") or None
    if path:
        if not os.path.exists(path):
            raise ConfigError(f"config file {path} does not exist")
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read(path, encoding="utf-8")
        except configparser.Error as e:
            raise ConfigError(f"config file {path}: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        except OSError as e:
            raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
        for sec in cp.sections():
            layers.setdefault(sec, {}).update(dict(cp.items(sec)))

    types = _section_types()
    for sec, cls in types.items():
        for f in fields(cls):
            var = f"FSD_{sec.upper()}_{f.name.upper()}"
            if var in env:
                layers.setdefault(sec, {})[f.name] = env[var]
    if "FSD_DATABASE_URL" in env:
        layers.setdefault("database", {})["dsn"] = env["FSD_DATABASE_URL"]

    for dotted, value in (overrides or {}).items():
        sec, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override {dotted!r} must be section.key")
        layers.setdefault(sec, {})[key] = value

    sections: dict[str, Any] = {}
    for sec, values in layers.items():
        if sec not in types:
            raise ConfigError(f"unknown config section [{sec}]")
        cls = types[sec]
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, raw in values.items():
            if key not in known:
                raise ConfigError(f"unknown setting {sec}.{key}")
            kwargs[key] = _coerce(sec, key, known[key].type, raw)
        sections[sec] = cls(**kwargs)
    cfg = Config(**sections)
    validate(cfg)
    return cfg


def replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy of cfg with some settings changed: replace(cfg, http={"port": 0})."""
    new = {name: dataclasses.replace(getattr(cfg, name), **vals) for name, vals in sections.items()}
    out = dataclasses.replace(cfg, **new)
    validate(out)
    return out


def _port(name: str, v: int, *, allow_zero: bool = True) -> None:
    if not ((allow_zero and v == 0) or 0 < v < 65536):
        raise ConfigError(f"{name}: port {v} out of range")


def validate(cfg: Config) -> None:
    _port("http.port", cfg.http.port)
    _port("outbound.port", cfg.outbound.port)
    _port("smtp.port", cfg.smtp.port, allow_zero=False)
    if cfg.database.pool_min < 0 or cfg.database.pool_max < 1 or cfg.database.pool_min > cfg.database.pool_max:
        raise ConfigError("database.pool_min/pool_max: need 0 <= pool_min <= pool_max, pool_max >= 1")
    if cfg.database.statement_timeout_ms < 1:
        raise ConfigError("database.statement_timeout_ms must be positive")
    if cfg.esl.command_timeout_s <= 0 or cfg.esl.connect_timeout_s <= 0:
        raise ConfigError("esl timeouts must be positive")
    for key in ("liveness_timeout_s", "probe_interval_s"):
        v = getattr(cfg.esl, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ConfigError(f"esl.{key} must be a positive number of seconds, not {v!r}")
    if cfg.esl.liveness_timeout_s < cfg.esl.command_timeout_s:
        raise ConfigError("esl.liveness_timeout_s must not be below esl.command_timeout_s (a slow but answered "
                          "command would drop the connection before its own timeout)")
    cfg.switch_list()
    if cfg.xmlcurl.deadline_ms < 10:
        raise ConfigError("xmlcurl.deadline_ms must be at least 10")
    for net in [n.strip() for n in cfg.xmlcurl.allow_from.split(",") if n.strip()]:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"xmlcurl.allow_from: {net!r} is not a network") from None
    if not 1 <= cfg.calls.impatient_threshold_s <= 600:
        raise ConfigError("calls.impatient_threshold_s must be between 1 and 600")
    v = cfg.calls.employee_ring_timeout_s
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"calls.employee_ring_timeout_s must be a positive number of seconds, not {v!r}")
    if not 1 <= cfg.calls.callback_attempts <= 20:
        raise ConfigError("calls.callback_attempts must be between 1 and 20")
    if not 10 <= cfg.calls.callback_interval_s <= 86400:
        raise ConfigError("calls.callback_interval_s must be between 10 and 86400")
    if not 0.001 <= cfg.calls.time_scale <= 1.0:
        raise ConfigError("calls.time_scale must be between 0.001 and 1")
    if cfg.calls.language not in ("ru", "en"):
        raise ConfigError("calls.language must be ru or en")
    if cfg.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log.level must be DEBUG, INFO, WARNING or ERROR")
    if cfg.log.format not in ("kv", "json"):
        raise ConfigError("log.format must be kv or json")
