from tests.web.conftest import smtp  # noqa: F401  (the SMTP server fixture)
