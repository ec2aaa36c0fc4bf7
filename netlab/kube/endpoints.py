"""Which endpoints a service port's traffic may go to: ``proxy.CategorizeEndpoints``.

Mirrors ``pkg/proxy/topology.go``: Cluster endpoints are the ready ones (falling back
to serving-and-terminating ones when none is ready), Local endpoints the local ready
ones (falling back to local serving-and-terminating ones), and the endpoints that get
a ``KUBE-SEP-`` chain are the union of the lists in use. Topology hints are not
modelled, so topology-aware routing never applies (as in kube-proxy for endpoints
without hints).
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.kube.serviceinfo import EndpointInfo, PortInfo


@dataclass(frozen=True)
class Categorized:
    """The result of ``CategorizeEndpoints`` for one service port."""

    cluster: tuple[EndpointInfo, ...]
    local: tuple[EndpointInfo, ...]
    reachable: tuple[EndpointInfo, ...]
    has_any: bool


def categorize(info: PortInfo) -> Categorized:
    """Split ``info``'s endpoints into Cluster, Local and all reachable ones.

    ``has_any`` is whether any usable endpoint exists anywhere in the cluster. Where
    kube-proxy merges two lists through a map (random order), the union is ordered by
    ``ip:port``; that order only decides which ``KUBE-SEP-`` chain is written first.
    Raises nothing.
    """
    eps = info.endpoints
    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    has_any = False
    if info.uses_cluster_endpoints():
        cluster = tuple(ep for ep in eps if ep.ready)
        if not cluster:
            cluster = tuple(ep for ep in eps if ep.serving and ep.terminating)
        has_any = bool(cluster)
    if not info.uses_local_endpoints():
        return Categorized(cluster, local, cluster, has_any)

    has_local_ready = has_local_terminating = False
    for ep in eps:
        if ep.ready:
            has_any = True
            has_local_ready = has_local_ready or ep.local
        elif ep.serving and ep.terminating:
            has_any = True
            has_local_terminating = has_local_terminating or ep.local
    serving_terminating = False
    if has_local_ready:
        local = tuple(ep for ep in eps if ep.local and ep.ready)
    elif has_local_terminating:
        serving_terminating = True
        local = tuple(ep for ep in eps if ep.local and ep.serving and ep.terminating)

    if not info.uses_cluster_endpoints():
        return Categorized(cluster, local, local, has_any)
    if not serving_terminating:
        # local holds only ready endpoints, all of them in cluster already
        return Categorized(cluster, local, cluster, has_any)
    merged = {ep.string: ep for ep in (*cluster, *local)}
    return Categorized(cluster, local, tuple(merged[k] for k in sorted(merged)), has_any)
