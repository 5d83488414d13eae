"""The names and sizes a compose request is checked against before anything is parsed."""

from __future__ import annotations

import re

#: A stack name is a compose project name (docs/stacks.md "Names").
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: The server refuses larger bodies; the agent refuses them too rather than trusting the server.
MAX_TEXT = 1 << 20
