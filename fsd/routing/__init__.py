"""Pure call-routing logic (no I/O, no clock reads, no gevent).

- :mod:`fsd.routing.schedule` — company schedule: ``is_open``, ``next_change``, ``next_open``.
- :mod:`fsd.routing.flow` — ``route_call`` (plan for a call to a DID), ``describe_flow`` (graph of a
  number's whole flow) and ``render_svg`` (the cabinet's scheme).
- :mod:`fsd.routing.ivr` — IVR menu state machine (``IvrState.start``, ``on_digits``, ``on_timeout``).
- :mod:`fsd.routing.steps` — the plan steps the call driver executes.
"""
