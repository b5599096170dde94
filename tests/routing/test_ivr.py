import pytest

from fsd.errors import ValidationError
from fsd.routing.ivr import (
    CollectExtension,
    DialExtension,
    Fallback,
    IvrAction,
    IvrItem,
    IvrMenu,
    IvrState,
    Replay,
    Route,
    on_digits,
    on_timeout,
)


def menu(**kw):
    items = (
        IvrItem(digit="1", action=IvrAction(kind="department", target=10)),
        IvrItem(digit="2", action=IvrAction(kind="employee", target=7)),
        IvrItem(digit="3", action=IvrAction(kind="dial_extension")),
        IvrItem(digit="4", action=IvrAction(kind="voicemail")),
        IvrItem(digit="5", action=IvrAction(kind="menu", target="sub")),
        IvrItem(digit="0", action=IvrAction(kind="hangup")),
    )
    base = dict(
        menu_id="main",
        prompt="main.wav",
        items=items,
        timeout_s=4,
        max_repeats=2,
        invalid_prompt="invalid.wav",
        fallback=IvrAction(kind="department", target=99),
        extension_prompt="ext.wav",
        extension_digits=3,
    )
    base.update(kw)
    return IvrMenu(**base)


def test_start_plays_prompt_and_collects_one_digit():
    step = IvrState.start(menu())
    assert step.action == Replay(prompt="main.wav", invalid_prompt=None, max_digits=1, timeout_s=4)


@pytest.mark.parametrize(
    "digit,expected",
    [
        ("1", IvrAction(kind="department", target=10)),
        ("2", IvrAction(kind="employee", target=7)),
        ("4", IvrAction(kind="voicemail")),
        ("5", IvrAction(kind="menu", target="sub")),
        ("0", IvrAction(kind="hangup")),
    ],
)
def test_each_digit_routes(digit, expected):
    step = on_digits(IvrState.start(menu()).state, digit)
    assert step.action == Route(action=expected)
    assert step.state.finished
    with pytest.raises(ValidationError):
        on_digits(step.state, "1")


def test_invalid_digit_replays_with_invalid_prompt_then_fallback():
    st = IvrState.start(menu()).state
    step = on_digits(st, "9")
    assert step.action == Replay(prompt="main.wav", invalid_prompt="invalid.wav", max_digits=1, timeout_s=4)
    step = on_digits(step.state, "#")
    assert isinstance(step.action, Replay)
    step = on_digits(step.state, "8")  # third play failed: 1 + max_repeats(2) plays used
    assert step.action == Fallback(action=IvrAction(kind="department", target=99))
    assert step.state.finished


def test_timeouts_replay_without_invalid_prompt_then_fallback():
    st = IvrState.start(menu(max_repeats=1)).state
    step = on_timeout(st)
    assert step.action == Replay(prompt="main.wav", invalid_prompt=None, max_digits=1, timeout_s=4)
    step = on_digits(step.state, "")  # empty input is a timeout
    assert step.action == Fallback(action=IvrAction(kind="department", target=99))


def test_mixed_timeout_and_invalid_share_budget_and_valid_after_retry_routes():
    st = IvrState.start(menu()).state
    step = on_timeout(st)
    step = on_digits(step.state, "7")
    step = on_digits(step.state, "1")
    assert step.action == Route(action=IvrAction(kind="department", target=10))


def test_zero_repeats_falls_back_at_first_failure_default_hangup():
    m = IvrMenu(menu_id=1, prompt="p.wav", max_repeats=0)
    step = on_timeout(IvrState.start(m).state)
    assert step.action == Fallback(action=IvrAction(kind="hangup"))


def test_only_first_digit_selects():
    step = on_digits(IvrState.start(menu()).state, "21")
    assert step.action == Route(action=IvrAction(kind="employee", target=7))


def test_dial_by_extension_with_set_and_predicate():
    step = on_digits(IvrState.start(menu()).state, "3")
    assert step.action == CollectExtension(prompt="ext.wav", invalid_prompt=None, digits=3, timeout_s=4)
    ok = on_digits(step.state, "105", known_extensions={"105", "200"})
    assert ok.action == DialExtension(extension="105") and ok.state.finished
    ok = on_digits(step.state, "200#", known_extensions=lambda e: e == "200")
    assert ok.action == DialExtension(extension="200")


def test_dial_by_extension_unknown_short_then_fallback():
    st = on_digits(IvrState.start(menu()).state, "3").state
    step = on_digits(st, "999", known_extensions={"105"})
    assert step.action == CollectExtension(prompt="ext.wav", invalid_prompt="invalid.wav", digits=3, timeout_s=4)
    step = on_digits(step.state, "10#", known_extensions={"105", "10"})  # too short
    assert isinstance(step.action, CollectExtension)
    step = on_timeout(step.state)
    assert step.action == Fallback(action=IvrAction(kind="department", target=99))


def test_extension_budget_is_fresh_after_menu_failures():
    st = IvrState.start(menu()).state
    st = on_timeout(st).state
    st = on_timeout(st).state  # third (last) play of the menu
    step = on_digits(st, "3")
    assert isinstance(step.action, CollectExtension)
    step = on_digits(step.state, "000", known_extensions=set())
    assert isinstance(step.action, CollectExtension)


def test_menu_validation():
    with pytest.raises(ValidationError):
        IvrItem(digit="12", action=IvrAction(kind="hangup"))
    with pytest.raises(ValidationError):
        IvrItem(digit="a", action=IvrAction(kind="hangup"))
    with pytest.raises(ValidationError):
        IvrAction(kind="department")
    with pytest.raises(ValidationError):
        IvrAction(kind="teleport", target=1)
    with pytest.raises(ValidationError):
        menu(items=(IvrItem(digit="1", action=IvrAction(kind="hangup")),) * 2)
    with pytest.raises(ValidationError):
        menu(timeout_s=0)
    with pytest.raises(ValidationError):
        menu(max_repeats=-1)
