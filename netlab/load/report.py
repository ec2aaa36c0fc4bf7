"""What a load run says: counts, rate, latency percentiles, errors by kind, replies per
task (and per version, when the tasks answered from more than one image tag), and the
failures attributed to the lab's changes (pure; unit-tested).

A failed request is *during* a change when it was in flight while the change
converged (it started before the change converged and ended after it
started); it is *after* a change when it started once the change had
converged and ended before the next change started (one still in flight
then is during the next change). On a mesh that loses nothing,
every change has zero failures after it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from netlab.changelog import Change
from netlab.load.engine import Outcome
from netlab.workload.http import version_label

#: Why a request in flight during a change fails, by kind (printed with the attribution).
WHY = {
    "timeout": "its connection went to a task that vanished mid-way (namespace removed, or "
               "its node cut off the LAN): nothing answers or resets, the client waits out "
               "its timeout",
    "reset": "its task's app stopped serving it, or its namespace was removed, while the "
             "connection was open: the kernel answers with a reset",
    "refused": "it reached a task port nobody listens on (an app not yet or no longer serving)",
    "unreachable": "a route or neighbour on its path was gone while the nodes converged",
    "short reply": "its connection closed before the whole answer came",
}


@dataclass(frozen=True)
class Summary:
    """The numbers of one run."""

    requests: int
    ok: int
    failed: int
    seconds: float
    rate: float                          # requests per second
    latency_ms: dict[str, float]         # p50, p90, p99, max of the ok requests
    errors: dict[str, int]               # kind -> count
    replies: dict[str, int]              # "task@node" -> count
    versions: dict[str, int] = field(default_factory=dict)   # version -> count (when said)
    # "task@node" -> {version: count}: a slot's task replaced by an update answers from both
    replies_by_version: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def mixed_versions(self) -> bool:
        """True when the replies came from more than one version (an update under way)."""
        return len(self.versions) > 1

    def version_counts(self) -> list[str]:
        """The replies per version as a report lists them: ``v1 40``, ``v2 60``."""
        return [f"{version_label(k)} {v}" for k, v in self.versions.items()]

    def backends(self) -> list[str]:
        """The per-backend counts as a report lists them: ``web.1@node1 50``, with the
        version when there was more than one (``web.1@node1 v2 50``)."""
        if not self.mixed_versions:
            return [f"{k} {v}" for k, v in self.replies.items()]
        out = []
        for k, v in self.replies.items():
            said = self.replies_by_version.get(k, {})
            out += [f"{k} {version_label(ver)} {n}" for ver, n in said.items()]
            if v > sum(said.values()):
                out.append(f"{k} {v - sum(said.values())}")
        return out


@dataclass(frozen=True)
class Attribution:
    """The failures of a run against one change that overlapped it."""

    change: Change
    failed_during: int
    failed_after: int
    kinds_during: dict[str, int]
    requests_during: int      # every request in flight while it converged, ok or not
    requests_after: int       # every request started after it converged (and ended before the next)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of sorted ``values`` (0 when empty)."""
    if not values:
        return 0.0
    return values[max(1, math.ceil(q / 100 * len(values))) - 1]


def summarize(outcomes: list[Outcome], started: float, ended: float) -> Summary:
    """The numbers of a run of ``outcomes`` between ``started`` and ``ended`` (epoch s)."""
    seconds = max(ended - started, 1e-9)
    latencies = sorted(o.elapsed_ms for o in outcomes if o.ok)
    ok = len(latencies)
    return Summary(
        requests=len(outcomes), ok=ok, failed=len(outcomes) - ok, seconds=round(seconds, 3),
        rate=round(len(outcomes) / seconds, 1),
        latency_ms={f"p{q}": percentile(latencies, q) for q in (50, 90, 99)}
        | {"max": latencies[-1] if latencies else 0.0},
        errors=dict(sorted(Counter(o.kind for o in outcomes if not o.ok and o.kind).items())),
        replies=dict(sorted(Counter(f"{o.task}@{o.node}" for o in outcomes if o.ok).items())),
        versions=dict(sorted(Counter(o.version for o in outcomes if o.ok and o.version).items())),
        replies_by_version=_by_version(outcomes))


def _by_version(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """``task@node`` -> {version: ok replies}, of the replies that said their version."""
    out: dict[str, dict[str, int]] = {}
    for (backend, version), n in sorted(Counter(
            (f"{o.task}@{o.node}", o.version) for o in outcomes if o.ok and o.version).items()):
        out.setdefault(backend, {})[version] = n
    return out


def attribute(outcomes: list[Outcome], changes: tuple[Change, ...], started: float,
              ended: float) -> tuple[list[Attribution], int]:
    """Each change that was converging at some time of the run [started, ended], with
    its failures during and after it, and how many failures no change explains (they
    ran while no change was converging).

    A change never stamped converged (interrupted) counts every later failure as
    during it.
    """
    out: list[Attribution] = []
    explained: set[int] = set()
    for i, c in enumerate(changes):
        nxt = changes[i + 1].started if i + 1 < len(changes) else math.inf
        done = c.converged if c.converged is not None else math.inf
        if not (c.started <= ended and done >= started):
            continue
        during = [o for o in outcomes if o.started < done and o.ended >= c.started]
        after = [o for o in outcomes if done <= o.started and o.ended < nxt]
        lost = [o for o in during if not o.ok]
        explained.update(id(o) for o in lost)
        out.append(Attribution(c, len(lost), sum(1 for o in after if not o.ok),
                               dict(sorted(Counter(o.kind for o in lost if o.kind).items())),
                               len(during), len(after)))
    return out, sum(1 for o in outcomes if not o.ok and id(o) not in explained)


def episodes(events: list) -> tuple[Change, ...]:
    """The failure windows the lab's manager lived through, as changes: each from a
    node cut off the LAN (its ``cut`` event, or its first ``heartbeat-missed`` when
    something else cut it) until its tasks run again elsewhere (the first task
    ``running`` after the node's ``restarting-tasks``) or it is back (``uncut``,
    ``ready``, or a ``heartbeat-resumed`` of a node late but never down), whichever
    comes first; never converged while neither came. Their
    failures are the node's, noticed and repaired as Swarm does, not unexplained.
    ``events``: :class:`netlab.manager.events.Event`, in time order."""
    out: list[Change] = []
    open_: dict[str, tuple[float, str]] = {}     # node -> (start, how it began)
    restarting: dict[str, bool] = {}
    for e in events:
        if e.kind == "node" and e.action in ("cut", "heartbeat-missed") and e.subject not in open_:
            open_[e.subject] = (e.time, "cut off the LAN" if e.action == "cut"
                                else "stopped reporting")
            restarting[e.subject] = False
        elif e.kind == "node" and e.action == "restarting-tasks" and e.subject in open_:
            restarting[e.subject] = True
        elif e.kind == "node" and e.action in ("uncut", "ready", "heartbeat-resumed") \
                and e.subject in open_:
            start, how = open_.pop(e.subject)
            out.append(Change("node", f"{e.subject} {how}, until back", start, e.time))
        elif e.kind == "task" and e.action == "running":
            for node in [n for n, r in restarting.items() if r and n in open_]:
                start, how = open_.pop(node)
                out.append(Change("node", f"{node} {how}, until its tasks ran elsewhere",
                                  start, e.time))
    out += [Change("node", f"{node} {how}, not repaired yet", start, None)
            for node, (start, how) in open_.items()]
    return tuple(sorted(out, key=lambda c: c.started))


def with_episodes(changes: tuple[Change, ...], events: list) -> tuple[Change, ...]:
    """The lab's changes and the manager's failure windows (see :func:`episodes`), by start."""
    return tuple(sorted((*changes, *episodes(events)), key=lambda c: c.started))
