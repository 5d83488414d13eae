"""Frame types, close codes and other wire constants."""

from __future__ import annotations

import enum

#: Version carried in the ``hello`` request; bump on incompatible wire changes.
PROTOCOL_VERSION = 1

#: ErrorBody code used when the peer opens more channels than ``Limits.max_channels``.
TOO_MANY_CHANNELS = "too_many_channels"


class FrameType(enum.IntEnum):
    """Type byte of a frame header."""

    OPEN = 1
    DATA = 2
    WINDOW = 3
    EOF = 4
    CLOSE = 5
    CANCEL = 6
    REQUEST = 7
    RESPONSE = 8
    EVENT = 9


class CloseCode(enum.IntEnum):
    """WebSocket close codes used on the agent link."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL = 1011
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    HEARTBEAT_TIMEOUT = 4408
    REPLACED = 4409
    UPGRADE_REQUIRED = 4426


#: Close codes after which the agent must exit and not reconnect.
FATAL_CODES: frozenset[CloseCode] = frozenset({CloseCode.UNAUTHORIZED})
