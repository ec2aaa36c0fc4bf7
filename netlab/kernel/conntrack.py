"""The conntrack table of the calling thread's namespace, through pyroute2's netlink socket."""

from __future__ import annotations

from netlab.kernel.records import PROTOS, CtEntry, Flow


def _flow(t) -> Flow:
    return Flow(PROTOS.get(t.proto, str(t.proto)), t.saddr, t.sport or 0, t.daddr, t.dport or 0)


def read_conntrack() -> tuple[tuple[CtEntry, ...], tuple[str, ...]]:
    """Every conntrack entry of this thread's namespace, and notes: a table that cannot
    be read is said in a note ("conntrack unreadable: ..."), never raised, because it is
    evidence, not the thing asked for."""
    try:
        from pyroute2 import Conntrack
        ct = Conntrack()
        try:
            entries = tuple(CtEntry(_flow(e.tuple_orig), _flow(e.tuple_reply), e.mark or 0)
                            for e in ct.dump_entries())
        finally:
            ct.close()
        return entries, ()
    except Exception as exc:  # noqa: BLE001 - evidence that cannot be read is said, not fatal
        return (), (f"conntrack unreadable: {exc}",)
