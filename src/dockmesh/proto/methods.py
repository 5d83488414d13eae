"""Link method and stream names, defined once for both ends (house.md item 3)."""

from __future__ import annotations

from typing import Final


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
