"""Names of the link's requests and streams, written once for both ends (the server calls, the host serves).

Only the stacks names live here so far; the older methods still use bare strings on both ends.
"""

from __future__ import annotations

__all__ = ["Stacks"]


class Stacks:
    DEPLOY = "stacks.deploy"  # stream: progress packets, then one result packet
    DEPLOY_STATUS = "stacks.deploy_status"
    CANCEL = "stacks.cancel"
    DOWN = "stacks.down"
    STOP = "stacks.stop"
    START = "stacks.start"
    SERVICES = "stacks.services"
