"""Letters fsd sends, rendered with jinja2 from templates/mail/ (subject on the first line)."""

from __future__ import annotations

import functools
import os

import jinja2

from fsd.paths import TEMPLATES


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(TEMPLATES, "mail")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain-text letters  # noqa: S701
        keep_trailing_newline=True,
    )


def render(template: str, lang: str = "ru", **context) -> tuple[str, str]:
    """Render templates/mail/<name>.<lang>.txt.j2 → (subject, body)."""
    try:
        tpl = _env().get_template(f"{template}.{lang}.txt.j2")
    except jinja2.TemplateNotFound:
        tpl = _env().get_template(f"{template}.ru.txt.j2")
    text = tpl.render(**context)
    subject, _, body = text.partition("\n")
    return subject.removeprefix("Subject:").strip(), body.lstrip("\n")
