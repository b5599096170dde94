"""The one error hierarchy of fsd. Every error fsd raises on purpose derives from FsdError."""


class FsdError(Exception):
    """Base of every fsd error."""


class ConfigError(FsdError):
    """The configuration is invalid."""


class ValidationError(FsdError):
    """Input broke a domain rule. `field` names the input, the message names the rule."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field
        self.message = message


class NotFound(FsdError):
    """The requested object does not exist (or is not visible to the caller)."""


class Conflict(FsdError):
    """The change conflicts with existing data (duplicate, in use)."""


class PermissionDenied(FsdError):
    """The actor's rights do not allow this."""


class StoreError(FsdError):
    """The database failed or is unreachable."""


class ProtocolError(FsdError):
    """A peer broke the wire protocol (ESL frame, xml_curl request)."""


class ESLError(FsdError):
    """An Event Socket command failed or the connection is gone."""


class ESLTimeout(ESLError):
    """An Event Socket command got no reply in time."""


class ESLDisconnected(ESLError):
    """The Event Socket connection is closed."""
