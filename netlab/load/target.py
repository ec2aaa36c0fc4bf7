"""Where a load comes from and goes to, resolved from the lab's state.

The destination is resolved by a chain of resolvers, each recognising one
form of TARGET (today ``NODE:PORT``, as ``netlab curl``); a resolver for
``SERVICE:PORT`` seen from a task plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netlab.client import parse_east_west, parse_target
from netlab.errors import BadInput
from netlab.kernel.reader import KernelReader
from netlab.state import LabState


@dataclass(frozen=True)
class Source:
    """Who sends: ``client`` or a task, and the namespace its sockets live in."""

    name: str
    netns: str


@dataclass(frozen=True)
class Destination:
    """Where requests go: the target as written, and its address."""

    target: str
    ip: str
    port: int


#: (state, TARGET, the sender, the kernel its DNS is asked through) -> the destination or None.
Resolver = Callable[[LabState, str, Source, KernelReader], "Destination | None"]


def node_port(state: LabState, target: str, _source: Source,
              _reader: KernelReader) -> Destination | None:
    """``node1:5000``: a node's LAN address and a published port (None for other forms)."""
    node, sep, _ = target.rpartition(":")
    if not sep or node not in state.lan:
        return None
    _, ip, port = parse_target(state, target)
    return Destination(target, ip, port)


def service_port(state: LabState, target: str, src: Source,
                 reader: KernelReader) -> Destination | None:
    """``api:80`` or ``VIP:80`` from a task: the name as the task's embedded DNS
    answers it (the VIP; a dnsrr name's first task address), as
    ``netlab curl --from TASK`` resolves it (None from the client)."""
    if src.name == "client":
        return None
    ips, port = parse_east_west(state, src.name, target, reader)
    return Destination(target, ips[0], port)


RESOLVERS: tuple[Resolver, ...] = (node_port, service_port)


def source(state: LabState, sender: str) -> Source:
    """The client (``client``) or a running task (``hello-a.1``); raises BadInput."""
    tasks = [t.name for t in state.model.tasks]
    if sender != "client" and sender not in tasks:
        raise BadInput(f"--from: {sender!r} is neither the client nor a task of lab {state.lab} "
                       f"(hint: one of client, {', '.join(tasks)})")
    if sender not in state.targets:
        raise BadInput(f"--from: {sender!r} has no namespace in lab {state.lab}'s state "
                       "(hint: netlab up again)")
    return Source(sender, state.targets[sender])


def destination(state: LabState, target: str, src: Source, reader: KernelReader,
                resolvers: tuple[Resolver, ...] = RESOLVERS) -> Destination:
    """The first resolver's answer for ``target``; raises BadInput naming TARGET."""
    try:
        for resolve in resolvers:
            found = resolve(state, target, src, reader)
            if found is not None:
                return found
        parse_target(state, target)   # says what is wrong with a NODE:PORT
    except BadInput as err:
        message = str(err)
        for form in ("NODE:PORT: ", "SERVICE:PORT: "):
            if message.startswith(form):
                message = "TARGET: " + message[len(form):]
        raise BadInput(message) from None
    raise BadInput(f"TARGET: {target!r} cannot be resolved (hint: NODE:PORT such as node1:5000, "
                   "or SERVICE:PORT with --from TASK)")
