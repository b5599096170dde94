"""IVR (voice self-service menu) decisions as a pure state machine.

The call driver plays prompts and collects DTMF; this module only decides what comes next::

    step = IvrState.start(menu)                 # step.action is Replay(prompt=menu.prompt, ...)
    step = on_digits(step.state, "2")           # -> Route / CollectExtension / Replay / Fallback
    step = on_timeout(step.state)               # no input within menu.timeout_s

Rules:

- A menu item maps one digit (``0-9``, ``*``, ``#``) to an action: ``department``, ``employee``,
  ``dial_extension``, ``voicemail``, ``menu`` (another menu, by id) or ``hangup``.
- Only the first collected digit selects an item (the driver collects 1 digit per play).
- Invalid digit -> the invalid prompt (if any) then the menu prompt again; no input -> the menu
  prompt again. Both count as a failed attempt. The menu is played at most ``1 + max_repeats``
  times: ``max_repeats`` is the number of *re*-plays. After the last failed attempt the menu's
  ``fallback`` action is returned as :class:`Fallback` (default: hang up).
- ``dial_extension`` switches to collecting ``extension_digits`` digits (``#`` ends early and is
  dropped). The number is checked against the known extensions (a set or a predicate passed by the
  caller); a wrong or short number replays the extension prompt, with the same repeat budget.
- ``menu`` is returned as ``Route(action)``; the driver loads that menu and calls ``start`` again.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable
from dataclasses import dataclass, replace

from fsd.errors import ValidationError

IVR_ACTIONS = ("department", "employee", "dial_extension", "voicemail", "menu", "hangup")
DIGITS = frozenset("0123456789*#")


@dataclass(frozen=True, kw_only=True)
class IvrAction:
    """What a menu choice does. ``target`` is the department/employee/menu id or voicemail box
    (None = the company's default box); unused for ``dial_extension`` and ``hangup``."""

    kind: str
    target: Hashable | None = None

    def __post_init__(self):
        if self.kind not in IVR_ACTIONS:
            raise ValidationError(f"IVR action must be one of {IVR_ACTIONS}", field="kind")
        if self.kind in ("department", "employee", "menu") and self.target is None:
            raise ValidationError(f"IVR action {self.kind} needs a target", field="target")


@dataclass(frozen=True, kw_only=True)
class IvrItem:
    digit: str
    action: IvrAction

    def __post_init__(self):
        if len(self.digit) != 1 or self.digit not in DIGITS:
            raise ValidationError("IVR digit must be one of 0-9, * or #", field="digit")


@dataclass(frozen=True, kw_only=True)
class IvrMenu:
    menu_id: Hashable
    prompt: str
    items: tuple[IvrItem, ...] = ()
    timeout_s: float = 5.0
    max_repeats: int = 2
    invalid_prompt: str | None = None
    fallback: IvrAction = IvrAction(kind="hangup")
    extension_prompt: str | None = None
    extension_digits: int = 3
    name: str = ""

    def __post_init__(self):
        seen = set()
        for item in self.items:
            if item.digit in seen:
                raise ValidationError(f"IVR digit {item.digit} is used twice", field="items")
            seen.add(item.digit)
        if self.timeout_s <= 0:
            raise ValidationError("IVR timeout must be > 0", field="timeout_s")
        if self.max_repeats < 0:
            raise ValidationError("IVR max_repeats must be >= 0", field="max_repeats")
        if not (1 <= self.extension_digits <= 10):
            raise ValidationError("extension_digits must be 1..10", field="extension_digits")

    def action_for(self, digit: str) -> IvrAction | None:
        for item in self.items:
            if item.digit == digit:
                return item.action
        return None


# ---- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Replay:
    """Play ``invalid_prompt`` (if set) then ``prompt``, then collect up to ``max_digits`` digits
    waiting ``timeout_s`` for input."""

    prompt: str
    invalid_prompt: str | None
    max_digits: int
    timeout_s: float


@dataclass(frozen=True, kw_only=True)
class CollectExtension:
    """Play ``prompt`` (may be None: just listen) and collect ``digits`` digits (``#`` ends early)."""

    prompt: str | None
    invalid_prompt: str | None
    digits: int
    timeout_s: float


@dataclass(frozen=True, kw_only=True)
class Route:
    """The caller chose ``action``: leave the menu and carry it out."""

    action: IvrAction


@dataclass(frozen=True, kw_only=True)
class DialExtension:
    """Dial-by-extension succeeded: connect the caller to ``extension``."""

    extension: str


@dataclass(frozen=True, kw_only=True)
class Fallback:
    """Attempts exhausted: carry out the menu's fallback ``action``."""

    action: IvrAction


@dataclass(frozen=True, kw_only=True)
class IvrState:
    menu: IvrMenu
    attempts: int = 1  # plays of the current prompt so far
    collecting_extension: bool = False
    finished: bool = False

    @classmethod
    def start(cls, menu: IvrMenu) -> IvrStep:
        """Enter ``menu``: the first action is always a :class:`Replay` of its prompt."""
        st = cls(menu=menu)
        return IvrStep(state=st, action=_replay(st, invalid=False))


@dataclass(frozen=True, kw_only=True)
class IvrStep:
    state: IvrState
    action: Replay | CollectExtension | Route | DialExtension | Fallback


def _replay(st: IvrState, *, invalid: bool):
    m = st.menu
    if st.collecting_extension:
        return CollectExtension(
            prompt=m.extension_prompt,
            invalid_prompt=m.invalid_prompt if invalid else None,
            digits=m.extension_digits,
            timeout_s=m.timeout_s,
        )
    return Replay(
        prompt=m.prompt,
        invalid_prompt=m.invalid_prompt if invalid else None,
        max_digits=1,
        timeout_s=m.timeout_s,
    )


def _failed(st: IvrState, *, invalid: bool) -> IvrStep:
    if st.attempts >= 1 + st.menu.max_repeats:
        done = replace(st, finished=True)
        return IvrStep(state=done, action=Fallback(action=st.menu.fallback))
    nxt = replace(st, attempts=st.attempts + 1)
    return IvrStep(state=nxt, action=_replay(nxt, invalid=invalid))


def _is_known(known: Container[str] | Callable[[str], bool], ext: str) -> bool:
    if callable(known):
        return bool(known(ext))
    return ext in known


def on_digits(
    state: IvrState,
    digits: str,
    *,
    known_extensions: Container[str] | Callable[[str], bool] = frozenset(),
) -> IvrStep:
    """Decide on the digits the driver collected after the last prompt.

    Empty ``digits`` is the same as :func:`on_timeout`. In the menu, the first digit selects an
    item. While collecting an extension, ``digits`` is the whole number entered (a trailing ``#``
    is dropped) and must have exactly ``menu.extension_digits`` digits and be known.
    """
    if state.finished:
        raise ValidationError("IVR already finished")
    digits = digits or ""
    if not digits:
        return on_timeout(state)
    if state.collecting_extension:
        ext = digits[:-1] if digits.endswith("#") else digits
        if ext.isdigit() and len(ext) == state.menu.extension_digits and _is_known(known_extensions, ext):
            return IvrStep(state=replace(state, finished=True), action=DialExtension(extension=ext))
        return _failed(state, invalid=True)
    action = state.menu.action_for(digits[0])
    if action is None:
        return _failed(state, invalid=True)
    if action.kind == "dial_extension":
        # A fresh repeat budget for the extension prompt.
        nxt = replace(state, collecting_extension=True, attempts=1)
        return IvrStep(state=nxt, action=_replay(nxt, invalid=False))
    return IvrStep(state=replace(state, finished=True), action=Route(action=action))


def on_timeout(state: IvrState) -> IvrStep:
    """No input within ``menu.timeout_s`` after the prompt: replay, or fall back when exhausted."""
    if state.finished:
        raise ValidationError("IVR already finished")
    return _failed(state, invalid=False)
