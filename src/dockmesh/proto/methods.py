"""Names of the link's requests and streams, written once for both ends (the server calls, the host serves).

Stacks and the volumes/networks/images lifecycle live here; the older methods still use bare strings on
both ends.
"""

from __future__ import annotations

from typing import Final

__all__ = ["Objects", "Stacks", "Volumes"]


class Stacks:
    DEPLOY: Final = "stacks.deploy"  # stream: progress packets, then one result packet
    DEPLOY_STATUS: Final = "stacks.deploy_status"
    CANCEL: Final = "stacks.cancel"
    DOWN: Final = "stacks.down"
    STOP: Final = "stacks.stop"
    START: Final = "stacks.start"
    SERVICES: Final = "stacks.services"


class Objects:
    """Volumes, networks and images on one host (issue 10, item 5): requests unless marked stream."""

    VOLUMES_CREATE: Final = "volumes.create"
    VOLUMES_REMOVE: Final = "volumes.remove"
    VOLUMES_PRUNE: Final = "volumes.prune"
    NETWORKS_CREATE: Final = "networks.create"
    NETWORKS_REMOVE: Final = "networks.remove"
    IMAGES_PULL: Final = "images.pull"  # stream of JSON packets
    IMAGES_REMOVE: Final = "images.remove"
    IMAGES_PRUNE: Final = "images.prune"


class Volumes:
    """Stack migration (issue 13, docs/migration.md): what the server asks of the source and destination."""

    SIZE: Final = "volumes.size"
    PORTS: Final = "ports.published"
    IMAGES: Final = "images.available"
    DISCARD: Final = "volumes.discard"  # remove what one migration created on this host
    EXPORT: Final = "volumes.export"  # stream: tar packets, then the end packet with the SHA-256
    IMPORT: Final = "volumes.import"  # stream: takes what export sends, answers the verified result
