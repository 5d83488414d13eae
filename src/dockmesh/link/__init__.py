"""The asyncio driver of the link protocol, shared by the server and the agent."""

from dockmesh.link.driver import Link, RequestHandler, StreamHandler
from dockmesh.link.errors import LinkClosed, LinkError, RemoteError, RequestTimeout
from dockmesh.link.socket import AiohttpSocket, MessageSocket
from dockmesh.link.stream import Stream

__all__ = [
    "AiohttpSocket",
    "Link",
    "LinkClosed",
    "LinkError",
    "MessageSocket",
    "RemoteError",
    "RequestHandler",
    "RequestTimeout",
    "Stream",
    "StreamHandler",
]
