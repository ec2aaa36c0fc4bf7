"""kube-proxy's memory of one set's or map's elements, for partial syncs.

``nftElementStorage`` of ``pkg/proxy/nftables/proxier.go`` (v1.32): kube-proxy remembers
what it put in each of its six shared sets and maps (``cluster-ips``, ``service-ips``,
``firewall-ips``, ``no-endpoint-services``, ``no-endpoint-nodeports``,
``service-nodeports``), so that a sync only adds the elements that are new or changed
and deletes the ones no longer wanted. :class:`ElementStorage` is that memory between
syncs; :class:`StorageSync` is one sync's use of it (``reset``, ``ensureElem``,
``cleanupLeftoverKeys``), queueing the operations into the sync's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from netlab.kube.nftobjects import Element, Map, Operation, Set

ContainerType = Literal["set", "map"]


def _join(parts: tuple[str, ...]) -> str:
    """``joinNFTSlice``: key or value parts joined as nft writes them."""
    return " . ".join(parts)


@dataclass(frozen=True)
class ElementStorage:
    """What kube-proxy believes one set or map holds: joined key -> joined value."""

    container_type: ContainerType
    container_name: str
    elements: Mapping[str, str] = field(default_factory=dict)


class StorageSync:
    """One sync's work on an :class:`ElementStorage` (mutable for the sync's duration).

    ``leftover`` holds the keys not (yet) ensured in this sync: they are deleted by
    :meth:`cleanup`, as ``leftoverKeys`` are.
    """

    def __init__(self, storage: ElementStorage, ops: list[Operation]) -> None:
        self.container_type = storage.container_type
        self.container_name = storage.container_name
        self.elements = dict(storage.elements)
        self.leftover = set(self.elements)
        self.ops = ops

    def reset(self) -> None:
        """``reset``: forget everything and flush the set or map."""
        self.elements.clear()
        if self.container_type == "set":
            self.ops.append(Operation("flush", Set(self.container_name)))
        else:
            self.ops.append(Operation("flush", Map(self.container_name)))
        self.leftover = set(self.elements)

    def ensure(self, element: Element) -> None:
        """``ensureElem``: add ``element`` unless it is there already with the same value
        (a changed value is deleted and re-added)."""
        key, value = _join(element.key), _join(element.value)
        if key in self.elements:
            if self.elements[key] != value:
                self.ops.append(Operation("delete", element))
                self.ops.append(Operation("add", element))
                self.elements[key] = value
            self.leftover.discard(key)
        else:
            self.ops.append(Operation("add", element))
            self.elements[key] = value

    def cleanup(self) -> None:
        """``cleanupLeftoverKeys``: delete the elements this sync did not ensure."""
        for key in sorted(self.leftover):  # kube-proxy walks a set (random order)
            parts = tuple(key.split(" . "))
            if self.container_type == "set":
                self.ops.append(Operation("delete", Element(parts, set=self.container_name)))
            else:
                self.ops.append(Operation("delete", Element(parts, map=self.container_name)))
            del self.elements[key]
        self.leftover = set(self.elements)

    def freeze(self) -> ElementStorage:
        """The memory to keep for the next sync."""
        return ElementStorage(self.container_type, self.container_name, dict(self.elements))
