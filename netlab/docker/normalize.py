"""What legitimately differs between a real node and netlab's plan, taken out before comparing.

Each step is pure and says what it set aside as a :class:`Known` entry (a
short reason, never silently), so a reader sees what was not compared:

- veth names: Docker names the outer end of a veth ``vethXXXXXXX`` at
  random, netlab ``veth`` + the hex of the inner end's address
  (:func:`netlab.plan.names.veth_for`). :func:`rename_veths` pairs the ends
  of each real veth across the namespaces read (each end's ``IFLA_LINK`` is
  the other's index) and renames the outer end by the address of the inner
  one, so ``vethbc2a1f3`` on ``docker_gwbridge`` whose peer is
  ``172.18.0.3`` compares as ``vethac120003``;
- netlab's ``-m comment --comment "netlab:…"`` (:func:`strip_comments`);
- the default bridge: ``docker0`` and its rules (netlab has none; see the
  README's "left out"): :func:`drop_default_bridge`;
- the embedded DNS's port: Docker's resolver listens on a random port that
  the task's ``DOCKER_OUTPUT``/``DOCKER_POSTROUTING`` rules name, netlab's
  on its own (:func:`mask_dns_port`; the rules are compared otherwise);
- counters (already gone: ``normalize_save``);
- the embedded DNS's rules in a load balancer sandbox (the ingress_sbox,
  ``lb-<net>``): Docker installs them in every sandbox it makes, netlab only
  where a process resolves names, the tasks (:func:`drop_sandbox_dns`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from netlab.diff.drift import LinkSeen, NetnsSeen
from netlab.plan.names import veth_for

_COMMENT = re.compile(r' -m comment --comment "?netlab:[^" ]*"?')
DEFAULT_BRIDGE = "docker0"


@dataclass(frozen=True)
class Known:
    """A difference set aside: where (target, namespace file), what, and why."""

    target: str
    path: str
    object: str
    why: str


def strip_comments(text: str) -> str:
    """Save text without netlab's rule comments (the real rules have none)."""
    return _COMMENT.sub("", text)


def mask_dns_port(text: str) -> str:
    """Save text with the embedded DNS's port (``127.0.0.11:N``, ``--sport N`` of
    the rules from 127.0.0.11) written as ``PORT``."""
    text = re.sub(r"127\.0\.0\.11:\d+", "127.0.0.11:PORT", text)
    return re.sub(r"(-s 127\.0\.0\.11/32 .*--sport )\d+", r"\1PORT", text)


def comment_of(line: str) -> str | None:
    """The scenario object a planned rule's ``netlab:<lab>:`` comment names, or None."""
    m = re.search(r'--comment "?netlab:[^:"]*:([^" ]*)"?', line)
    return m.group(1) if m else None


def rename_veths(seen: dict[str, NetnsSeen]) -> dict[str, NetnsSeen]:
    """``seen`` with the outer end of every real veth renamed as netlab names it.

    An outer end is a veth enslaved to a bridge; its peer is the veth in
    another namespace whose index is its ``peer_index`` and whose
    ``peer_index`` is its index. A peer with no IPv4 address, or more than one
    candidate peer, leaves the name as it is (it then shows as a difference).
    """
    ends = [(key, link) for key, s in seen.items() for link in s.links
            if link.kind == "veth" and link.peer_index is not None]
    first_addr: dict[tuple[str, str], str] = {}
    for key, s in seen.items():      # an interface's own address, not a VIP (/32) on it
        for a in sorted(s.addresses, key=lambda a: a.cidr.endswith("/32")):
            first_addr.setdefault((key, a.ifname), a.cidr.split("/")[0])
    renamed: dict[str, dict[str, str]] = {}
    for key, link in ends:
        if link.master is None:
            continue
        peers = [(k, p) for k, p in ends if k != key and p.index == link.peer_index
                 and p.peer_index == link.index]
        if len(peers) != 1:
            continue
        addr = first_addr.get((peers[0][0], peers[0][1].name))
        if addr is not None:
            renamed.setdefault(key, {})[link.name] = veth_for(addr)
    out = dict(seen)
    for key, names in renamed.items():
        s = seen[key]
        links = tuple(replace(link, name=names.get(link.name, link.name)) for link in s.links)
        out[key] = replace(s, links=links)
    return out


def drop_default_bridge(tables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Tables without the rules of Docker's default bridge (``docker0``, and the
    MASQUERADE of its subnet); the second value lists what was dropped."""
    out, dropped = {}, []
    subnets = set()
    for text in tables.values():
        for line in text.splitlines():
            m = re.match(r"-A POSTROUTING -s (\S+) ! -o docker0 -j MASQUERADE$", line)
            if m:
                subnets.add(m.group(1))
    for table, text in tables.items():
        keep = []
        for line in text.splitlines():
            if line.startswith("-A ") and (f" {DEFAULT_BRIDGE} " in line + " "
                                           or any(f"-s {s} " in line for s in subnets)):
                dropped.append(f"{table} {line}")
                continue
            keep.append(line)
        out[table] = "\n".join(keep)
    return out, dropped


DNS_CHAINS = ("DOCKER_OUTPUT", "DOCKER_POSTROUTING")


def drop_sandbox_dns(tables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Tables without the embedded DNS's chains and the jumps to them; the second
    value lists the rules dropped (chain declarations go silently with them)."""
    out, dropped = {}, []
    for table, text in tables.items():
        keep = []
        for line in text.splitlines():
            words = line.split()
            if line.startswith(":") and words[0][1:] in DNS_CHAINS:
                continue
            if line.startswith("-A ") and (words[1] in DNS_CHAINS or words[-1] in DNS_CHAINS):
                dropped.append(f"{table} {line}")
                continue
            keep.append(line)
        out[table] = "\n".join(keep)
    return out, dropped


def only_links(seen: NetnsSeen, names: set[str]) -> NetnsSeen:
    """``seen`` keeping the addresses of the interfaces ``names`` only (a host's other
    interfaces are the machine's, not the Swarm's)."""
    return replace(seen, addresses=tuple(a for a in seen.addresses if a.ifname in names))


def without_link(links: tuple[LinkSeen, ...], name: str) -> tuple[LinkSeen, ...]:
    return tuple(link for link in links if link.name != name)
