"""Entering a network namespace with ``setns(2)``: the one primitive, stdlib only.

Python 3.11 has no ``os.setns``, so libc's is called through ctypes. It is
kept free of heavy imports because the task apps' supervisor uses it and
starts cold (slowly, under emulation in ``netlab vm``).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def libc_setns() -> Callable[[int, int], int]:
    """libc's setns, resolved in the caller: never resolve it in a forked
    child, where dlopen can deadlock on a loader lock held at fork time."""
    return ctypes.CDLL(None, use_errno=True).setns


def enter(fd: int, setns: Callable[[int, int], int], what: str = "netns") -> None:
    """Move the calling thread into the network namespace open at ``fd``; raises OSError."""
    if setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


def in_thread(netns_fd: int, fn: Callable[[], T], what: str = "netns") -> T:
    """Run ``fn`` in a short-lived thread that joined the namespace at ``netns_fd``.

    ``setns`` moves only the calling thread, so the caller's namespace never
    changes; what ``fn`` creates (sockets) stays in the joined namespace.
    Raises OSError when setns fails, and whatever ``fn`` raises.
    """
    setns = libc_setns()
    result: dict[str, Any] = {}

    def helper() -> None:
        try:
            enter(netns_fd, setns, what)
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=helper, name=f"netlab-setns-{what}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
