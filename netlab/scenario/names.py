"""Rules for lab, node and service names: RFC 1123 labels that fit the kernel.

Names end up in namespace names (``nl-<lab>.<node>.ingress_sbox``), interface
names (``veth-<node>``, at most 15 characters in Linux) and iptables comments,
so they are DNS labels with length limits, and a few node names are taken by
the lab's own namespaces. Being labels, they hold no dot: the dots in a
namespace name separate the lab from the object, which keeps every name
unambiguous (see netlab/plan/names.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")  # use fullmatch: "$" takes "a\n"

LAB_MAX = 20
NODE_MAX = 10
SERVICE_MAX = 20


@dataclass(frozen=True)
class NameRule:
    """What a kind of name must satisfy and why.

    ``reserved`` pairs a name with the reason it is taken.
    """

    kind: str
    max_len: int
    why_max: str
    reserved: tuple[tuple[str, str], ...] = ()


LAB = NameRule(
    "lab", LAB_MAX,
    "it prefixes every namespace name (nl-<lab>.<node>.ingress_sbox) and rule comment",
)
NODE = NameRule(
    "node", NODE_MAX,
    "interface names such as veth-<node> must fit Linux's 15-character limit",
    reserved=(
        ("lan", "nl-<lab>.lan is the lab's LAN namespace"),
        ("client", "nl-<lab>.client is the lab's outside client"),
    ),
)
SERVICE = NameRule(
    "service", SERVICE_MAX,
    "task names <service>.<slot> name namespaces and rule comments",
)


def suggest(name: str, max_len: int) -> str | None:
    """A valid label close to ``name`` (lowercased, ``_``/``.`` -> ``-``), or None."""
    text = re.sub(r"[^a-z0-9-]", "-", name.lower())
    text = re.sub(r"-{2,}", "-", text)[:max_len].strip("-")
    return text if text and _LABEL.fullmatch(text) and text != name else None


def name_problem(name: str, rule: NameRule) -> tuple[str, str] | None:
    """The first thing wrong with ``name`` under ``rule`` as (message, hint), or None."""
    kind = rule.kind
    if not _LABEL.fullmatch(name):
        fixed = suggest(name, rule.max_len)
        hint = ("use lowercase letters, digits and '-', starting and ending with a letter "
                "or digit (an RFC 1123 label)")
        if fixed:
            hint += f", e.g. {fixed!r}"
        return f"{kind} name {name!r} is not a valid DNS label", hint
    if len(name) > rule.max_len:
        fixed = suggest(name, rule.max_len)
        hint = f"{rule.why_max}" + (f"; e.g. {fixed!r}" if fixed else "")
        return (f"{kind} name {name!r} is {len(name)} characters long; "
                f"the limit is {rule.max_len}", hint)
    for reserved, why in rule.reserved:
        if name == reserved:
            return f"{kind} name {name!r} is reserved", f"{why}; pick another name"
    return None

NETWORK = NameRule(
    "network", SERVICE_MAX,
    "it names the namespaces <node>.ov-<network> and <node>.lb-<network> and rule comments",
    reserved=(("ingress", "ingress is the routing mesh's network; configure it under ingress:"),),
)
