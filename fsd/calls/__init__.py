"""The call driver: every call end to end (DID routing, departments, impatient offer, voicemail,
callbacks, internal and outbound calls, history). See :class:`fsd.calls.driver.CallDriver`."""

from fsd.calls.driver import CallDriver

__all__ = ["CallDriver"]
