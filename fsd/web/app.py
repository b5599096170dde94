"""The cabinet and /api/v1 as one Flask app (mounted as the default app of fsd's gevent pywsgi server).

Flask because it is small, synchronous (so it runs on gevent greenlets unchanged), renders jinja2
templates, and brings Flask-WTF for CSRF and form handling; the web layer only calls services.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFProtect

from fsd.paths import TEMPLATES
from fsd.services.auth import AuthService
from fsd.services.history import HistoryService
from fsd.services.media import PromptService
from fsd.services.scheme import SchemeService
from fsd.services.tokens import TokenService
from fsd.web import i18n

log = logging.getLogger(__name__)


class _Json(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return float(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            if hasattr(o, "public"):
                return o.public()
            return dataclasses.asdict(o)
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        return DefaultJSONProvider.default(o)


class WebContext:
    """Everything the views need: the configuration services plus the cabinet's own ones."""

    def __init__(self, *, services, config, metrics=None, mailer=None):
        self.services = services
        self.config = config
        self.metrics = metrics
        self.mailer = mailer
        pool = services.pool
        self.auth = AuthService(pool=pool, attempts_per_minute=config.http.login_attempts_per_minute)
        self.tokens = TokenService(pool=pool)
        self.history = HistoryService(pool=pool)
        self.prompts = PromptService(pool=pool)
        from fsd.queue.callback import CallbackPolicy

        self.scheme = SchemeService(pool=pool, callback=CallbackPolicy(
            max_attempts=config.calls.callback_attempts, retry_interval_s=float(config.calls.callback_interval_s)))

    def letter_queued(self) -> None:
        if self.mailer is not None:
            self.mailer.wake()


def create_app(*, services, config, metrics=None, mailer=None) -> Flask:
    """The Flask app of the cabinet and the API. `mailer` (fsd.mailer.Mailer) is woken after a letter
    is queued so it goes out at once instead of at the next poll."""
    import os

    app = Flask("fsd.web", template_folder=os.path.join(TEMPLATES, "web"), static_folder=None)
    app.json = _Json(app)
    key = config.http.secret_key
    if not key:
        key = secrets.token_hex(32)
        log.warning("http_secret_key_missing sessions=per-process (set http.secret_key)")
    app.config.update(
        SECRET_KEY=key,
        MAX_CONTENT_LENGTH=config.http.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.http.public_url.startswith("https://"),
        SESSION_COOKIE_NAME="fsd_session",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_SSL_STRICT=False,
        TEMPLATES_AUTO_RELOAD=False,
        JSON_SORT_KEYS=False,
    )
    app.extensions["fsd"] = WebContext(services=services, config=config, metrics=metrics, mailer=mailer)
    csrf = CSRFProtect(app)
    app.extensions["fsd_csrf"] = csrf

    from fsd.web import api, cabinet

    api.register(app, csrf)
    cabinet.register(app)

    @app.before_request
    def _lang():
        lang = request.args.get("lang") or request.cookies.get("fsd_lang") or "ru"
        g.lang = lang if lang in i18n.LANGS else "ru"

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if resp.mimetype == "text/html":
            resp.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                    "script-src 'self' 'unsafe-inline'; media-src 'self'; frame-ancestors 'none'")
            resp.headers.setdefault("Cache-Control", "no-store")
        if request.args.get("lang") in i18n.LANGS:
            resp.set_cookie("fsd_lang", request.args["lang"], max_age=365 * 86400, samesite="Lax", httponly=True)
        return resp

    @app.template_filter("dt")
    def _dt(value, fmt: str = "%Y-%m-%d %H:%M:%S"):
        if value is None or value == "":
            return ""
        if isinstance(value, datetime):
            tz = getattr(g, "tz", None)
            if tz and value.tzinfo is not None:
                try:
                    value = value.astimezone(ZoneInfo(tz))
                except (KeyError, ValueError):
                    pass
            return value.strftime(fmt)
        return str(value)

    @app.template_filter("secs")
    def _secs(value):
        try:
            v = float(value or 0)
        except (TypeError, ValueError):
            return ""
        m, s = divmod(int(round(v)), 60)
        return f"{m}:{s:02d}"

    @app.context_processor
    def _ctx():
        lang = getattr(g, "lang", "ru")
        return {"_": lambda text: i18n.gettext(text, lang), "lang": lang, "me": getattr(g, "session", None),
                "tr_msg": lambda m: i18n.translate_message(str(m), lang)}

    return app
