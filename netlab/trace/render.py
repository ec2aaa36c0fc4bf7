"""Renderers for traces: a plain-text table (rich), a Mermaid sequence diagram, and
the ``--repeat`` summary as text or JSON.

Everything here is pure: a :class:`~netlab.trace.model.Trace` in, a string or a
dict out. The text output is plain (no colour, no terminal codes) so it is
deterministic and testable.
"""

from __future__ import annotations

import io
import re

from rich import box
from rich.console import Console
from rich.table import Table

from netlab.trace.model import Hop, RepeatSummary, Trace

DEFAULT_WIDTH = 160
REPLY_SEPARATOR = "── reply ──"

# Hops that change the packet inside one namespace: a note in the sequence diagram.
NOTE_EVENTS = frozenset({"resolve", "dnat", "mark", "ipvs", "snat", "redirect", "un-nat",
                         "deliver", "drop", "reject", "rst"})

_VNI = re.compile(r"VNI\s+(\d+)")


# --- text -------------------------------------------------------------------

def _port(addr: str) -> str:
    """The port of an ``ip:port`` string (the whole string when there is no colon)."""
    return addr.rpartition(":")[2]


def _header(trace: Trace) -> list[str]:
    """The two header lines: what was sent, and which service (if any) publishes it."""
    req = trace.request
    lines = [f"trace {req.target} from {req.from_} ({req.src} → {req.dst} {req.proto})"]
    if req.service is None:
        lines.append(f"nothing publishes {req.proto}/{_port(req.dst)} on {req.node}")
    else:
        lines.append(f"service {req.service}")
    return lines


def _iface_cell(hop: Hop) -> str:
    """``eth0 in`` / ``vxlan0 out`` / ``eth1``, or blank when the hop has no interface."""
    if not hop.iface:
        return ""
    return f"{hop.iface} {hop.dir}" if hop.dir else hop.iface


def _rule_refs(hops: tuple[Hop, ...]) -> dict[tuple[str, str], str]:
    """A short reference (``r1``, ``r2``…) per distinct (namespace, rule text), in hop order."""
    refs: dict[tuple[str, str], str] = {}
    for hop in hops:
        if hop.rule and (hop.netns, hop.rule) not in refs:
            refs[(hop.netns, hop.rule)] = f"r{len(refs) + 1}"
    return refs


def _what_cell(hop: Hop, refs: dict[tuple[str, str], str]) -> str:
    """The hop's story, with a reference to the kernel rule behind it (listed under the table)."""
    if not hop.rule:
        return hop.detail
    return f"{hop.detail} [{refs[(hop.netns, hop.rule)]}]"


def _rules_list(hops: tuple[Hop, ...]) -> list[str]:
    """The rules referenced in the table, as the kernel holds them, one per line."""
    refs = _rule_refs(hops)
    if not refs:
        return []
    return ["rules (kernel text; the comment names the scenario object):"] + [
        f"  [{ref}] {netns}: {rule}" for (netns, rule), ref in refs.items()]


def _hop_table(hops: tuple[Hop, ...]) -> Table:
    """One row per hop, with a ``── reply ──`` section where the reply leg starts."""
    table = Table(box=box.SQUARE)
    for name in ("#", "where", "iface", "src", "dst", "event"):
        table.add_column(name, no_wrap=True)
    table.add_column("what happened", overflow="fold")
    table.add_column("evidence", no_wrap=True)
    refs = _rule_refs(hops)
    for i, hop in enumerate(hops):
        if i and hop.leg == "reply" and hops[i - 1].leg != "reply":
            table.add_section()
            table.add_row("", "", "", "", "", "", REPLY_SEPARATOR, "", end_section=True)
        table.add_row(str(hop.seq), hop.netns, _iface_cell(hop), hop.src, hop.dst,
                      hop.event, _what_cell(hop, refs), ", ".join(hop.evidence))
    return table


def _footer(trace: Trace) -> list[str]:
    """Verdict, backend, what the task saw as the client, and the capture tally."""
    lines = [f"verdict: {trace.verdict}: {trace.reason}"]
    if trace.cause is not None:
        lines.append(f"cause: {trace.cause.kind} (evidence: {', '.join(trace.cause.evidence)})")
        lines.append(f"fix: {trace.cause.fix}")
    lines += [f"note: {note}" for note in trace.notes]
    if trace.backend is not None:
        b = trace.backend
        lines.append(f"backend: {b.task} on {b.node} ({b.ip})")
    lines.append(f"{trace.packets} packets captured at {len(trace.capture_points)} points "
                 f"in {trace.elapsed_ms:g} ms")
    return lines


def _plain_console(width: int | None) -> Console:
    """A console that writes plain, uncoloured text into a string buffer."""
    return Console(file=io.StringIO(), width=width or DEFAULT_WIDTH, force_terminal=False,
                   color_system=None, highlight=False, emoji=False, markup=False,
                   soft_wrap=False)


def text(trace: Trace, width: int | None = None) -> str:
    """The human-readable trace: header, hop table, footer (plain text)."""
    console = _plain_console(width)
    for line in _header(trace):
        console.print(line)
    if trace.hops:
        console.print(_hop_table(trace.hops))
        for line in _rules_list(trace.hops):
            console.print(line, overflow="fold")
    else:
        console.print("(no hops observed)")
    for line in _footer(trace):
        console.print(line)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


# --- mermaid ----------------------------------------------------------------

def _esc(label: str) -> str:
    """Make a label safe for Mermaid: no ``;``, no ``#``, no newlines."""
    return (label.replace(";", ",").replace("#", "no.")
            .replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def _participants(trace: Trace) -> dict[str, str]:
    """netns -> alias (``P1``, ``P2``, ...) in first-appearance order."""
    aliases: dict[str, str] = {}
    for hop in trace.hops:
        aliases.setdefault(hop.netns, f"P{len(aliases) + 1}")
    if not aliases:
        aliases[trace.request.from_] = "P1"
    return aliases


def _arrow_label(hop: Hop) -> str:
    """The packet as seen at the arriving hop; VXLAN hops also name their VNI."""
    label = f"{hop.src} → {hop.dst}"
    if hop.event in ("encap", "decap"):
        m = _VNI.search(hop.detail)
        label += f" VXLAN VNI {m.group(1)}" if m else " VXLAN"
    return _esc(label)


def mermaid(trace: Trace) -> str:
    """A Mermaid ``sequenceDiagram`` of the traced path, there and back."""
    aliases = _participants(trace)
    lines = ["sequenceDiagram"]
    lines += [f"    participant {alias} as {_esc(netns)}" for netns, alias in aliases.items()]
    prev: Hop | None = None
    for hop in trace.hops:
        here = aliases[hop.netns]
        if prev is not None and prev.netns != hop.netns:
            arrow = "-->>" if hop.leg == "reply" else "->>"
            lines.append(f"    {aliases[prev.netns]}{arrow}{here}: {_arrow_label(hop)}")
        if hop.event in NOTE_EVENTS:
            lines.append(f"    Note over {here}: {_esc(f'{hop.event}: {hop.detail}')}")
        prev = hop
    if trace.verdict != "delivered":
        last = aliases[prev.netns] if prev is not None else "P1"
        lines.append(f"    Note over {last}: "
                     f"{_esc(f'verdict: {trace.verdict}: {trace.reason}')}")
    return "\n".join(lines) + "\n"


# --- repeat -----------------------------------------------------------------

def is_round_robin(picks) -> bool:
    """True iff the picks cycle strictly through the same distinct tasks.

    With ``k`` distinct picks (no ``None``), the first ``k`` picks are all
    different and every later pick repeats that cycle: ``picks[i] == picks[i % k]``.
    """
    picks = list(picks)
    if not picks or any(p is None for p in picks):
        return False
    k = len(set(picks))
    if len(set(picks[:k])) != k:
        return False
    return all(p == picks[i % k] for i, p in enumerate(picks))


def _pick_name(pick: str | None) -> str:
    """A pick as shown to the user (``(none)`` when no backend was reached)."""
    return pick if pick is not None else "(none)"


def repeat_text(summary: RepeatSummary) -> str:
    """The ``--repeat`` summary: counts, the order of picks, round robin or not."""
    n = len(summary.picks)
    counts = ", ".join(f"{task} ×{count}" for task, count in summary.counts().items())
    noun = "request" if n == 1 else "requests"
    lines = [f"{n} {noun} to {summary.target}: {counts}" if counts
             else f"{n} {noun} to {summary.target}",
             "picks: " + ", ".join(_pick_name(p) for p in summary.picks)]
    if is_round_robin(summary.picks):
        cycle = [_pick_name(p) for p in dict.fromkeys(summary.picks)]
        lines.append(f"round robin: yes (cycle {' → '.join(cycle)})")
    else:
        lines.append("round robin: no")
    causes = summary.causes or (None,) * len(summary.verdicts)
    lines += [f"request {i}: {verdict}" + (f": {cause}" if cause else "")
              for i, (verdict, cause) in enumerate(zip(summary.verdicts, causes, strict=True), 1)
              if verdict != "delivered"]
    return "\n".join(lines) + "\n"


def repeat_json(summary: RepeatSummary, traces: list[Trace]) -> dict:
    """The ``--repeat --json`` document: the summary plus every trace's JSON."""
    return {
        "target": summary.target,
        "repeat": len(summary.picks),
        "picks": list(summary.picks),
        "counts": summary.counts(),
        "round_robin": is_round_robin(summary.picks),
        "verdicts": list(summary.verdicts),
        "causes": [t.cause.kind if t.cause else None for t in traces],
        "traces": [t.to_json() for t in traces],
    }
