"""Which state of its nf_tables rules a network namespace is in, asked cheaply.

nf_tables counts the transactions committed in each namespace: its
generation (``NFT_MSG_GETGEN``; iptables-nft checks it to know its own cache
is still right). With the namespace's cookie (``SO_NETNS_COOKIE``, never
given to another namespace while the machine runs, unlike an inode number),
(cookie, generation) names one state of one namespace's rules: while it
stays the same, ``iptables-nft-save`` there prints the same text, so a
reader may keep the text it read and skip the tool (one exec per namespace,
the dearest part of ``status``). It says nothing of the legacy backend,
whose tables have no generation.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Protocol

from netlab.kernel import netns, rtnl

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16
NFTA_GEN_ID = 1
SO_NETNS_COOKIE = 71
_NFGENMSG = struct.Struct("=BBH")     # family, version, resource id (big-endian, 0 here)

Key = tuple[int, int]                 # (netns cookie, nf_tables generation)


def generation() -> Key:
    """(cookie, generation) of the calling thread's namespace.

    Raises OSError when the kernel cannot say (no nf_tables, a kernel older
    than 5.14 without netns cookies) or answers something else.
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         NETLINK_NETFILTER)
    try:
        sock.bind((0, 0))
        cookie = struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
        sock.send(struct.pack("=IHHII", 16 + _NFGENMSG.size, (NFNL_SUBSYS_NFTABLES << 8)
                              | NFT_MSG_GETGEN, rtnl.NLM_F_REQUEST, 1, 0)
                  + _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0))
        buf = sock.recv(8192)
    finally:
        sock.close()
    size, mtype = struct.unpack_from("=IH", buf)
    if mtype != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN:
        raise OSError(f"nf_tables answered message type {mtype}, not its generation")
    gen = rtnl.parse_attrs(buf, 16 + _NFGENMSG.size, size).get(NFTA_GEN_ID)
    if gen is None or len(gen) < 4:
        raise OSError("nf_tables gave no generation")
    return cookie, struct.unpack(">I", gen[:4])[0]


def _or_none(_name: str) -> Key | None:
    try:
        return generation()
    except OSError:
        return None


def generations(names: list[str]) -> dict[str, Key | None]:
    """(cookie, generation) of each namespace of ``names``, by one thread that enters
    them in turn (a fraction of a millisecond each); None where the kernel cannot
    say or the namespace is gone."""
    got = netns.in_threads_lenient(names, _or_none, 1)
    return {name: (None if isinstance(v, netns.NetnsError) else v) for name, v in got.items()}


@dataclass(frozen=True)
class SavedRules:
    """``iptables-nft-save`` text of one namespace, as read when its rules were at ``key``."""

    key: Key
    text: str


class SaveMemory(Protocol):
    """Where a reader keeps the save texts it read, for the next read (a file of
    the lab's, see :mod:`netlab.savecache`; a dict in tests)."""

    def recall(self) -> dict[str, SavedRules]:
        """What was kept, by namespace; empty when nothing (or nothing usable) was."""
        ...

    def keep(self, saved: dict[str, SavedRules]) -> None:
        """Keep ``saved`` (every namespace read), instead of what was kept before."""
        ...


def still_valid(recalled: dict[str, SavedRules], keys: dict[str, Key | None]) -> dict[str, str]:
    """The recalled texts whose namespace is still at the same key (same namespace,
    no transaction since): the others, and those without a key, must be read."""
    return {name: saved.text for name, saved in recalled.items()
            if keys.get(name) is not None and keys[name] == saved.key}
