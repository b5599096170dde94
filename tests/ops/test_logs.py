"""Logs: one line per event, key=value or JSON, call context, and no secret ever in the output."""

import io
import json
import logging

import gevent
import pytest

from fsd import logs
from fsd.logs import JsonFormatter, KvFormatter, kv, log_context, redact

SECRETS = [
    # (input, the secret that must vanish, text that must survive)
    ("auth ClueCon\n\n", "ClueCon", "auth "),
    ('esl_send conn=fs1 cmd="auth ClueCon"', "ClueCon", "conn=fs1"),
    ("userauth 100@acme.example:Pa55word\n\n", "Pa55word", "userauth 100@acme.example:"),
    ("login_failed user=ivan password=Sup3rS3cret ip=10.0.0.1", "Sup3rS3cret", "ip=10.0.0.1"),
    ('config password="two words" next=1', "two words", "next=1"),
    ("vm-password=4321 mailbox=100", "4321", "mailbox=100"),
    ("secret_key='flask-key' operator_token=op-tok-1", "flask-key", "secret_key="),
    ("secret_key='flask-key' operator_token=op-tok-1", "op-tok-1", "operator_token="),
    ("directory_user a1-hash=5f4dcc3b5aa765d61d8327deb882cf99 user=100", "5f4dcc3b5aa765d61d8327deb882cf99",
     "user=100"),
    ('<param name="a1-hash" value="5f4dcc3b5aa765d61d8327deb882cf99"/>', "5f4dcc3b5aa765d61d8327deb882cf99",
     'name="a1-hash"'),
    ('<param name="password" value="1234"/><param name="dial-string" value="x"/>', '"1234"', 'value="x"'),
    ("Authorization: Basic ZnJlZXN3aXRjaDpzM2NyZXQ=", "ZnJlZXN3aXRjaDpzM2NyZXQ=", "Authorization: Basic"),
    ('headers="Authorization: Bearer eyJhbGciOi.abc" path=/api', "eyJhbGciOi.abc", "path=/api"),
    ('Proxy-Authorization: Digest username="100", realm="acme", nonce="n", response="6629fae49393a05397450978507c4ef1"',
     "6629fae49393a05397450978507c4ef1", "Proxy-Authorization: Digest"),
    ("db_connect dsn=\"host=db port=5432 user=fsd password=pg-s3cret dbname=fsd\"", "pg-s3cret", "dbname=fsd"),
    ("db_connect url=postgresql://fsd:pg-s3cret@db.internal:5432/fsd", "pg-s3cret", "@db.internal:5432/fsd"),
    ("smtp_login url=smtp://mailer:m%40il-pw@smtp.example:587", "m%40il-pw", "smtp.example"),
    ("variable_sip_auth_password: 1234\nvariable_user_name: 100\n", "1234", "variable_user_name: 100"),
    ('{"password": "x", "login": "ivan"}', '"x"', '"login": "ivan"'),
    ("Cookie: fsd_session=abcdef0123; theme=dark", "abcdef0123", "Cookie:"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SECRETS)
def test_redact_masks_secret_and_keeps_the_rest(text, secret, kept):
    out = redact(text)
    assert secret not in out
    assert kept in out
    assert logs.MASK in out


@pytest.mark.parametrize("text", [
    "esl_auth_failed switch=fs1 reason=\"-ERR invalid\"",
    "http_request method=GET path=/api/v1/employees status=200 ms=3",
    "call_answered uuid=8c6b9d3e-1f0a-4a4e-9d43-0f2f0b4c7d11 tenant=acme.example department=sales",
    "password_changed employee=12 tenant=acme.example",
])
def test_redact_leaves_ordinary_lines_alone(text):
    assert redact(text) == text


@pytest.fixture
def root_logging():
    """logs.setup() replaces the root handlers: put pytest's own back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.wire_log.setLevel(logging.NOTSET)


def _record(msg, *args, exc=None, name="fsd.test", level=logging.INFO):
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc)


def test_kv_line_is_one_line_with_fields_and_no_secret():
    line = KvFormatter().format(_record("esl_auth switch=%s cmd=%s\nnext", "fs1", "auth ClueCon"))
    assert "\n" not in line
    assert line.startswith("ts=") and " level=info logger=fsd.test esl_auth switch=fs1 " in line
    assert "ClueCon" not in line


def test_exception_stays_on_the_line_and_is_redacted():
    try:
        raise RuntimeError("connect failed password=hunter2")
    except RuntimeError:
        import sys

        rec = _record("db_error op=%s", "write", exc=sys.exc_info(), level=logging.ERROR)
    line = KvFormatter().format(rec)
    assert "\n" not in line and "hunter2" not in line and "RuntimeError" in line
    d = json.loads(JsonFormatter().format(rec))
    assert "hunter2" not in json.dumps(d) and "RuntimeError" in d["exc"]


def test_json_formatter_parses_and_carries_fields():
    rec = _record("call_offered uuid=%s tenant=%s name=%s password=%s level=%s", "8c6b9d3e-1f0a-4a4e-9d43-0f2f0b4c7d11",
                  "acme.example", '"Отдел продаж"', "p4ss", "x")
    d = json.loads(JsonFormatter().format(rec))
    assert d["event"] == "call_offered"
    assert d["uuid"] == "8c6b9d3e-1f0a-4a4e-9d43-0f2f0b4c7d11"
    assert d["tenant"] == "acme.example"
    assert d["name"] == "Отдел продаж"
    assert d["password"] == logs.MASK
    assert d["level"] == "info" and d["level_"] == "x"  # a message key never overwrites the record's own
    assert d["logger"] == "fsd.test" and d["ts"].endswith("Z")
    assert "p4ss" not in d["msg"]


def test_kv_helper_quotes_only_when_needed():
    assert kv(uuid="abc-1", n=3, name="A B", q='say "hi"', empty="", none=None) == \
        'uuid=abc-1 n=3 name="A B" q="say \\"hi\\"" empty="" none=-'
    d = json.loads(JsonFormatter().format(_record("x " + kv(name="A B", q='say "hi"'))))
    assert (d["name"], d["q"]) == ("A B", 'say "hi"')
    # a value ending in a newline (a caller's name, say) is quoted, never a raw line break in the log
    assert kv(name="Eve\n") == 'name="Eve\\n"'


def test_log_context_adds_call_uuid_per_greenlet(root_logging):
    stream = io.StringIO()
    logs.setup(level="INFO", fmt="kv", stream=stream)
    log = logging.getLogger("fsd.calls.test")

    def call(uuid):
        with log_context(uuid=uuid, tenant="acme.example"):
            gevent.sleep(0)
            log.info("call_step step=ivr")
            log.info("call_step step=queue uuid=%s", uuid)  # already in the message: not repeated
        log.info("call_done")

    gevent.joinall([gevent.spawn(call, "u-1"), gevent.spawn(call, "u-2")], raise_error=True)
    lines = stream.getvalue().splitlines()
    assert sum("step=ivr uuid=u-1 tenant=acme.example" in ln for ln in lines) == 1
    assert sum("step=ivr uuid=u-2 tenant=acme.example" in ln for ln in lines) == 1
    assert all(ln.count("uuid=") == 1 for ln in lines if "step=queue" in ln)
    assert all("uuid=" not in ln for ln in lines if "call_done" in ln)


def test_setup_json_and_trace_esl(root_logging):
    stream = io.StringIO()
    logs.setup(level="INFO", fmt="json", stream=stream, trace_esl=False)
    logs.esl_wire_logger("out", b"auth ClueCon\n\n", conn="fs1")
    assert stream.getvalue() == ""  # tracing off: nothing, not even at INFO

    logs.setup(level="INFO", fmt="json", stream=stream, trace_esl=True)
    tracer = logs.make_esl_tracer("fs1")
    tracer("out", b"auth ClueCon\n\n")
    tracer("in", "Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
    tracer("in", b"x" * (logs.TRACE_MAX_BYTES + 10))
    logging.getLogger("fsd.other").debug("hidden at INFO")
    lines = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    assert [d["dir"] for d in lines] == ["out", "in", "in"]
    assert all(d["event"] == "esl_wire" and d["conn"] == "fs1" and d["logger"] == "fsd.esl.wire" for d in lines)
    assert "ClueCon" not in stream.getvalue()
    assert lines[0]["frame"] == "auth ********\n\n"
    assert lines[1]["frame"].startswith("Content-Type: command/reply")
    assert lines[2]["truncated"] == "10" and lines[2]["bytes"] == str(logs.TRACE_MAX_BYTES + 10)


def test_setup_rejects_unknown_format(root_logging):
    with pytest.raises(ValueError):
        logs.setup(fmt="xml")


@pytest.mark.timeout(20)
def test_redact_has_no_catastrophic_backtracking_on_long_lines():
    # long runs that used to make a pattern quadratic; the timeout guards against a regression to minutes
    for text in ["x" * 16384, "a-" * 8192, "a:" * 8192, "ab://" * 3000, "ab://c:" * 2000, "password=" * 1500,
                 'a="' * 5000, "auth " * 3000, "Authorization: Digest " + 'a="b", ' * 2000]:
        out = redact(text)
        assert len(out) <= len(text) + len(logs.MASK) * len(text)
    assert redact("x" * 100 + " password=abc") == "x" * 100 + " password=" + logs.MASK
