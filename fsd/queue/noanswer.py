"""What happens when nobody in a department answers within its ring timeout (spec §3).

- ``voicemail`` -> record into the department's box with the standard greeting, or the uploaded
  one (``greeting``).
- ``forward_external`` -> bridge to an external number; if it does not answer within 30 s, the
  caller goes to the department's voicemail.
- ``transfer_employee`` -> ring that employee (the employee's own forwarding/voicemail applies).
- ``transfer_department`` -> distribute the call in that department. Loop guard: a transfer to a
  department the call already went through (A -> B -> A), or deeper than ``max_depth`` (default 5)
  transfers, goes to voicemail of the current department instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from fsd.errors import ValidationError
from fsd.routing.steps import FORWARD_TIMEOUT_S, Forward, RingDepartment, RingEmployee, Voicemail

NO_ANSWER_KINDS = ("voicemail", "forward_external", "transfer_employee", "transfer_department")
MAX_TRANSFER_DEPTH = 5


@dataclass(frozen=True, kw_only=True)
class NoAnswerAction:
    kind: str = "voicemail"
    target: Hashable | None = None  # number, employee id or department id
    greeting: str | None = None  # voicemail greeting; None = the standard one
    forward_timeout_s: float = FORWARD_TIMEOUT_S

    def __post_init__(self):
        if self.kind not in NO_ANSWER_KINDS:
            raise ValidationError(f"no-answer action must be one of {NO_ANSWER_KINDS}", field="kind")
        if self.kind != "voicemail" and not self.target:
            raise ValidationError(f"no-answer action {self.kind} needs a target", field="target")
        if self.forward_timeout_s <= 0:
            raise ValidationError("forward timeout must be > 0", field="forward_timeout_s")


@dataclass(frozen=True, kw_only=True)
class NoAnswerPlan:
    steps: tuple
    loop_guarded: bool = False


def resolve_no_answer(
    action: NoAnswerAction,
    *,
    department_id: Hashable,
    chain: tuple = (),
    max_depth: int = MAX_TRANSFER_DEPTH,
) -> NoAnswerPlan:
    """The steps to run when ``department_id`` did not answer.

    ``chain`` is :attr:`RingDepartment.chain` of the current ring step: the departments the call
    was transferred through before reaching ``department_id``. The returned RingDepartment step
    carries the extended chain, so the guard holds across any number of hops.
    """
    box = Voicemail(box_kind="department", box_id=department_id, greeting=action.greeting)
    if action.kind == "voicemail":
        return NoAnswerPlan(steps=(box,))
    if action.kind == "forward_external":
        return NoAnswerPlan(
            steps=(Forward(number=str(action.target), timeout_s=action.forward_timeout_s, on_no_answer=(box,)),)
        )
    if action.kind == "transfer_employee":
        return NoAnswerPlan(steps=(RingEmployee(employee_id=action.target),))
    seen = (*chain, department_id)
    if action.target in seen or len(seen) > max_depth:
        return NoAnswerPlan(steps=(box,), loop_guarded=True)
    return NoAnswerPlan(steps=(RingDepartment(department_id=action.target, chain=seen),))
