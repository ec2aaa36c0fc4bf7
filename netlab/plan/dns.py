"""The embedded DNS in a task's plan: Docker's NAT rules, its port, /etc files and records.

dockerd's resolver listens at ``127.0.0.11`` on random UDP and TCP ports in
each container and ``resolver_unix.go setupIptablesNAT`` sends port 53
there. netlab's app does the same on a deterministic port (so the plan can
name it): one number from the task's name in 32768-60999, the same for UDP
and TCP, never one of the task's own target ports. Nothing here touches
the kernel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from netlab.model import Lab, Task
from netlab.plan.types import EtcFile, Match, Rule, Target

RESOLVER_IP = "127.0.0.11"     # sandbox_dns_unix.go resolverIPSandbox
DNS_PORT = "53"
OUTPUT_CHAIN = "DOCKER_OUTPUT"
POSTROUTING_CHAIN = "DOCKER_POSTROUTING"
PORT_RANGE = (32768, 60999)    # Linux's default ip_local_port_range, where Docker's land
# What Docker writes for a swarm task (ndots:0 so a dotted name is tried as is first).
RESOLV_CONF = f"nameserver {RESOLVER_IP}\noptions ndots:0\n"


def dns_port(task: str, taken: Iterable[int] = ()) -> int:
    """The port of ``task``'s DNS server: from a hash of its name, skipping ``taken`` ones."""
    low, high = PORT_RANGE
    span = high - low + 1
    start = int.from_bytes(hashlib.sha256(task.encode()).digest()[:4], "big") % span
    used = set(taken)
    for i in range(span):
        port = low + (start + i) % span
        if port not in used:
            return port
    raise ValueError(f"no free DNS port for {task}")


def task_dns_port(lab: Lab, task: Task) -> int:
    """:func:`dns_port` of a task of ``lab``, avoiding its service's target ports."""
    return dns_port(task.name, (p.target for p in lab.service(task.service).ports))


def hosts_file(ip: str, hostname: str) -> str:
    """``/etc/hosts`` as Docker writes a container's: localhost, IPv6 names, then itself."""
    return ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
            f"ff02::2\tip6-allrouters\n{ip}\t{hostname}\n")


def etc_files(netns: str, ip: str, hostname: str) -> tuple[EtcFile, ...]:
    """The task's ``resolv.conf`` and ``hosts``, for ``ip netns exec`` to bind-mount."""
    return (EtcFile(netns, "resolv.conf", RESOLV_CONF), EtcFile(netns, "hosts", hosts_file(ip, hostname)))


def nat_rules(netns: str, port: int, comment: str) -> tuple[tuple[str, ...], tuple[Rule, ...]]:
    """(user chains, rules) of ``setupIptablesNAT`` for a resolver on ``port``.

    Docker runs, in this order: ``-N DOCKER_OUTPUT``, ``-I OUTPUT -d
    127.0.0.11 -j DOCKER_OUTPUT``, the same for ``DOCKER_POSTROUTING``, then
    ``-I`` the udp DNAT, the udp SNAT, the tcp DNAT, the tcp SNAT. Each ``-I``
    lands on top, so the kernel holds tcp before udp; that is the order here.
    """
    dst, src = f"{RESOLVER_IP}/32", f"{RESOLVER_IP}/32"
    rules = [
        Rule(netns, "nat", "OUTPUT", Target(OUTPUT_CHAIN), comment, dst=dst),
        Rule(netns, "nat", "POSTROUTING", Target(POSTROUTING_CHAIN), comment, dst=dst),
    ]
    for proto in ("tcp", "udp"):
        rules.append(Rule(netns, "nat", OUTPUT_CHAIN,
                          Target("DNAT", (("to-destination", f"{RESOLVER_IP}:{port}"),)),
                          comment, dst=dst, proto=proto,
                          matches=(Match(proto, (("dport", DNS_PORT),)),)))
    for proto in ("tcp", "udp"):
        rules.append(Rule(netns, "nat", POSTROUTING_CHAIN,
                          Target("SNAT", (("to-source", f":{DNS_PORT}"),)),
                          comment, src=src, proto=proto,
                          matches=(Match(proto, (("sport", str(port)),)),)))
    return (OUTPUT_CHAIN, POSTROUTING_CHAIN), tuple(rules)
