"""The names a task resolves, as plain data: what Docker's embedded DNS answers.

As libnetwork's ``service_common.go`` ``addEndpointNameResolution`` fills
each network's service records: for every service on a user network the
task shares, ``<svc>`` is the service's VIP on that network (``vip`` mode)
or every task address there (``dnsrr``), and ``tasks.<svc>`` is every task
address there. Names are lower case (Docker's resolver matches names
case-insensitively). Nothing comes from ingress: service discovery is off
for the ingress network (moby#31714), and a task on ingress only resolves
nothing through it. The embedded DNS server that serves these records is
another module's job; this one only says what they are.
"""

from __future__ import annotations

from netlab.ipam import Allocations
from netlab.model import Lab


def records_for_task(lab: Lab, allocations: Allocations, task_name: str) -> dict[str, tuple[str, ...]]:
    """Every name ``task_name`` resolves → its IPv4 addresses, in the order a query
    gets them (tasks by slot; a name on several shared networks lists the task's
    first network's addresses first, as ``ByNetworkType`` orders the lookup).

    Raises KeyError when the lab has no task called ``task_name``.
    """
    task = next((t for t in lab.tasks if t.name == task_name), None)
    if task is None:
        raise KeyError(task_name)
    records: dict[str, list[str]] = {}

    def put(name: str, ips: list[str]) -> None:
        have = records.setdefault(name.lower(), [])
        have.extend(ip for ip in ips if ip not in have)

    for network in lab.service(task.service).networks:
        na = allocations.networks[network]
        for service in lab.services_on(network):
            ips = [str(na.tasks[t.name]) for t in sorted(lab.tasks_of(service.name),
                                                          key=lambda t: t.slot)]
            if not ips:     # records come with the tasks' endpoints: none without a task
                continue
            vip = na.vips.get(service.name)
            put(service.name, [str(vip.vip)] if service.endpoint_mode == "vip" and vip else ips)
            put(f"tasks.{service.name}", ips)
    return {name: tuple(ips) for name, ips in records.items()}
