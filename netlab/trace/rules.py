"""Reading a kernel rule's save text: what it matches, what it does, which object it serves.

The trace names rules by the text the kernel gives back (``-A DOCKER-INGRESS
-p tcp -m tcp --dport 5000 … -j DNAT --to-destination 172.18.0.2:5000``).
These helpers pull out the few things the trace needs: whether a rule can
match a given packet (addresses, protocol, ports), its target's argument, the
scenario object in its ``netlab:`` comment, and the built-in chain that
jumped to it.
"""

from __future__ import annotations

import ipaddress
import shlex

from netlab.kernel.iptables import RuleCounter
from netlab.trace.evidence import Flow


def words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def option(text: str, flag: str) -> str | None:
    """The value after ``flag`` in the rule text, or None; ``!VALUE`` when the rule
    negates it (iptables-save prints ``! -d 127.0.0.0/8``)."""
    w = words(text)
    for i, word in enumerate(w[:-1]):
        if word == flag:
            return ("!" if i and w[i - 1] == "!" else "") + w[i + 1]
    return None


def obj(text: str) -> str | None:
    """The scenario object named by the rule's ``netlab:<lab>:<object>`` comment."""
    comment = option(text, "--comment")
    if not comment or not comment.startswith("netlab:"):
        return None
    return comment.split(":", 2)[2] if comment.count(":") >= 2 else None


def _addr_fits(cidr: str | None, ip: str) -> bool:
    if cidr is None:
        return True
    neg = cidr.startswith("!")
    try:
        inside = ipaddress.ip_address(ip) in ipaddress.ip_network(cidr.lstrip("!"), strict=False)
    except ValueError:
        return True
    return inside != neg


def fits(text: str, flow: Flow) -> bool:
    """True when the rule's address, protocol and port matches allow ``flow``.

    Matches this does not model (conntrack state, addrtype, marks) are taken
    as matching: the counter delta is the evidence that they did.
    """
    if not _addr_fits(option(text, "-s"), flow.src) or not _addr_fits(option(text, "-d"), flow.dst):
        return False
    proto = option(text, "-p")
    if proto and (proto[1:] == flow.proto if proto.startswith("!") else proto != flow.proto):
        return False
    for flag, port in (("--dport", flow.dport), ("--sport", flow.sport)):
        want = option(text, flag)
        if want is not None and want.isdigit() and int(want) != port:
            return False
    return True


def jump_path(counter: RuleCounter, deltas: list[tuple[RuleCounter, int]]) -> str:
    """``PREROUTING DOCKER-INGRESS``: the built-in chain that jumped to this rule's chain."""
    chain = counter.chain
    for c, _n in deltas:
        if c.table == counter.table and c.target == chain and c.chain != chain:
            return f"{c.chain} {chain}"
    return chain


def is_terminal_drop(counter: RuleCounter) -> bool:
    return counter.target in ("DROP", "REJECT")
