"""Where the project's non-Python parts live (templates/, prompts/, freeswitch-conf/)."""

import os

ROOT = os.environ.get("FSD_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "templates")
PROMPTS = os.path.join(ROOT, "prompts")
FREESWITCH_CONF = os.path.join(ROOT, "freeswitch-conf")
