"""Each node's NetworkDB and which peers it holds failed, as memberlist's failure
detector decides it (pure: messages and times in, messages and view changes out).

A real Swarm node does not wait for the manager to hide a dead peer's tasks:
libnetwork's NetworkDB runs hashicorp/memberlist between the nodes (port
7946), and when memberlist declares a peer dead, NetworkDB hides the entries
that peer owns (moby ``daemon/libnetwork/networkdb/event_delegate.go``,
``NotifyLeave`` → ``changeNodeState(nodeFailedState)`` →
``suspendNodeTableEntries`` in ``nodemgmt.go``); the watchers are told the
entries are gone and libnetwork takes the peer's tasks out of this node's
load balancers (``rmServiceBinding``). When the peer is reachable again,
``reconnectNode`` (every ``retryInterval``, 1 s, ``networkdb/cluster.go``)
joins it, ``NotifyJoin`` puts it back (``restoreNodeTableEntries``).

memberlist (vendored in moby; ``DefaultLANConfig`` in ``config.go``,
``probeNode`` and ``suspectNode`` in ``state.go``, ``suspicion.go``):

* each node probes one peer every ``ProbeInterval`` (1 s), round robin over
  the peers it does not hold dead: a ``ping``, an ``ack`` expected within
  ``ProbeTimeout`` (0.5 s); without one, ``ping-req`` through up to
  ``IndirectChecks`` (3) other peers, who ping for it and relay the ack;
* no ack by the end of the interval: the peer is *suspect*, and the
  suspicion is gossiped; a suspect node that hears it refutes it (alive,
  its incarnation raised);
* a suspicion times out after ``SuspicionMult`` (4) × max(1, log10(n)) ×
  ProbeInterval when fewer than ``SuspicionMult - 2`` other nodes can
  confirm it (n - 2 < k), else it starts at ``SuspicionMaxTimeoutMult`` (6)
  times that and shrinks with each independent confirmation
  (``remainingSuspicionTime``); then the peer is *dead*, and that is gossiped.

Not modelled: Lifeguard's awareness (a node whose own probes fail slows its
probes down), push/pull state sync beyond the rejoin, and gossip fan-out (a
message is sent to every peer the sender does not hold dead, at once).

``send`` is the transport's: ``send(from_node, to_node, message)`` with a
message a tuple of strings; what it delivers comes back through
:meth:`NetworkDBs.received`. All times are one monotonic clock's seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

ALIVE, SUSPECT, DEAD = "alive", "suspect", "dead"

#: memberlist's DefaultLANConfig and libnetwork's retryInterval, in seconds.
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 0.5
INDIRECT_CHECKS = 3
SUSPICION_MULT = 4
SUSPICION_MAX_TIMEOUT_MULT = 6
RETRY_INTERVAL = 1.0

Message = tuple[str, ...]
Send = Callable[[str, str, Message], None]


@dataclass(frozen=True)
class GossipTimings:
    """memberlist's and NetworkDB's timings, already scaled by the lab's time scale."""

    probe_interval: float = PROBE_INTERVAL
    probe_timeout: float = PROBE_TIMEOUT
    indirect_checks: int = INDIRECT_CHECKS
    suspicion_mult: int = SUSPICION_MULT
    suspicion_max_mult: int = SUSPICION_MAX_TIMEOUT_MULT
    retry_interval: float = RETRY_INTERVAL

    @classmethod
    def scaled(cls, scale: float) -> GossipTimings:
        return cls(PROBE_INTERVAL * scale, PROBE_TIMEOUT * scale, INDIRECT_CHECKS,
                   SUSPICION_MULT, SUSPICION_MAX_TIMEOUT_MULT, RETRY_INTERVAL * scale)


@dataclass(frozen=True)
class ViewChange:
    """``viewer``'s NetworkDB now holds ``peer`` ``state`` (suspect, dead or alive), since
    ``at``, because of ``why``."""

    viewer: str
    peer: str
    state: str
    at: float
    why: str


def suspicion_bounds(t: GossipTimings, n: int) -> tuple[int, float, float]:
    """(k, min, max) of a suspicion in a cluster of ``n`` nodes (memberlist's
    ``suspectNode``: k = SuspicionMult - 2, 0 when n - 2 < k; ``suspicionTimeout``)."""
    k = t.suspicion_mult - 2
    if n - 2 < k:
        k = 0
    low = t.suspicion_mult * max(1.0, math.log10(max(1.0, float(n)))) * t.probe_interval
    return k, low, t.suspicion_max_mult * low


def remaining(confirmations: int, k: int, low: float, high: float) -> float:
    """The suspicion's whole timeout after ``confirmations`` (``remainingSuspicionTime``
    before the time elapsed is taken off)."""
    if k < 1:
        return low
    frac = math.log(confirmations + 1.0) / math.log(k + 1.0)
    raw = math.floor(1000.0 * (high - frac * (high - low))) / 1000.0
    return max(raw, low)


@dataclass
class _Suspicion:
    start: float
    k: int
    low: float
    high: float
    confirmed: set[str]            # the nodes that suspected it (the first one included)

    @property
    def deadline(self) -> float:
        return self.start + remaining(len(self.confirmed) - 1, self.k, self.low, self.high)


@dataclass
class _Member:
    state: str = ALIVE
    incarnation: int = 0
    suspicion: _Suspicion | None = None


@dataclass
class _Probe:
    target: str
    seq: int
    sent: float
    acked: bool = False
    indirect: bool = False


@dataclass
class NetworkDB:
    """One node's memberlist: its peers' states, the probe under way, the relays it
    runs for others' indirect probes."""

    name: str
    peers: dict[str, _Member]
    incarnation: int = 0
    order: list[str] = field(default_factory=list)
    next_probe: float = 0.0
    next_retry: float = 0.0
    probe: _Probe | None = None
    relays: dict[int, tuple[str, int]] = field(default_factory=dict)   # seq -> (asker, its seq)

    def live(self) -> list[str]:
        return [p for p, m in self.peers.items() if m.state != DEAD]

    def dead(self) -> frozenset[str]:
        return frozenset(p for p, m in self.peers.items() if m.state == DEAD)


class NetworkDBs:
    """Every node's NetworkDB in the lab, run side by side (each node's agent runs
    its own). ``send`` carries a message between two nodes' sockets;
    ``rng`` shuffles the probe order (seed it for a repeatable run)."""

    def __init__(self, timings: GossipTimings, nodes: list[str], now: float, send: Send,
                 rng: random.Random | None = None) -> None:
        self.timings, self._send = timings, send
        self._rng = rng or random.Random()
        self._seq = 0
        self.dbs = {n: NetworkDB(n, {p: _Member() for p in nodes if p != n},
                                 next_probe=now + self._rng.uniform(0, timings.probe_interval),
                                 next_retry=now + timings.retry_interval)
                    for n in nodes}

    # -- what the lab reads
    def failed(self) -> dict[str, tuple[str, ...]]:
        """Each node that holds peers dead -> those peers (sorted); nodes holding none
        are left out."""
        return {n: tuple(sorted(db.dead())) for n, db in sorted(self.dbs.items()) if db.dead()}

    def state(self, viewer: str, peer: str) -> str:
        return self.dbs[viewer].peers[peer].state

    def shift(self, seconds: float) -> None:
        """Move every timer on by ``seconds`` (the loop that runs the nodes was held up)."""
        for db in self.dbs.values():
            db.next_probe += seconds
            db.next_retry += seconds
            if db.probe is not None:
                db.probe.sent += seconds
            for m in db.peers.values():
                if m.suspicion is not None:
                    m.suspicion.start += seconds

    # -- one tick
    def step(self, now: float) -> list[ViewChange]:
        """Probe, time out probes and suspicions, rejoin the dead: the view changes."""
        out: list[ViewChange] = []
        t = self.timings
        for db in self.dbs.values():
            p = db.probe
            if p is not None and p.acked:
                db.probe = p = None
            if p is not None and not p.indirect and now >= p.sent + t.probe_timeout:
                p.indirect = True
                helpers = [h for h in db.live() if h != p.target
                           and db.peers[h].state == ALIVE]
                self._rng.shuffle(helpers)
                for h in helpers[:t.indirect_checks]:
                    self._send(db.name, h, ("ping-req", str(p.seq), p.target))
            if p is not None and now >= p.sent + t.probe_interval:
                db.probe = None
                out += self._suspect(db, p.target, db.name, now,
                                     f"no ack to {db.name}'s probe in "
                                     f"{t.probe_interval:g} s, direct or indirect")
            if db.probe is None and now >= db.next_probe:
                target = self._next_target(db)
                db.next_probe = now + t.probe_interval
                if target is not None:
                    db.probe = _Probe(target, self._next_seq(), now)
                    self._send(db.name, target, ("ping", str(db.probe.seq)))
            for peer, m in db.peers.items():
                s = m.suspicion
                if m.state == SUSPECT and s is not None and now >= s.deadline:
                    out += self._dead(db, peer, m.incarnation, db.name, s.deadline,
                                      f"after {s.deadline - s.start:.2f} s suspect"
                                      + (f" ({len(s.confirmed) - 1} of {s.k} confirmations)"
                                         if s.k else ""))
            if now >= db.next_retry:
                db.next_retry = now + t.retry_interval
                dead = sorted(db.dead())
                if dead:
                    self._send(db.name, self._rng.choice(dead), ("join", str(db.incarnation)))
        return out

    def received(self, to: str, sender: str, msg: Message, now: float) -> list[ViewChange]:
        """``msg`` from ``sender`` arrived at ``to``'s socket."""
        db = self.dbs.get(to)
        if db is None or sender not in db.peers or not msg:
            return []
        kind, args = msg[0], msg[1:]
        try:
            if kind == "ping":
                self._send(to, sender, ("ack", args[0]))
            elif kind == "ack":
                seq = int(args[0])
                if db.probe is not None and db.probe.seq == seq:
                    db.probe.acked = True
                elif seq in db.relays:
                    asker, theirs = db.relays.pop(seq)
                    self._send(to, asker, ("ack", str(theirs)))
            elif kind == "ping-req":
                target = args[1]
                if target in db.peers:
                    seq = self._next_seq()
                    db.relays[seq] = (sender, int(args[0]))
                    if len(db.relays) > 64:          # unanswered relays age out
                        db.relays.pop(next(iter(db.relays)))
                    self._send(to, target, ("ping", str(seq)))
            elif kind == "suspect":
                return self._heard_suspect(db, args[0], int(args[1]), args[2], now)
            elif kind == "dead":
                return self._heard_dead(db, args[0], int(args[1]), args[2], now)
            elif kind == "alive":
                return self._heard_alive(db, args[0], int(args[1]), now, f"{sender} says so")
            elif kind == "join":
                # A peer rejoins us (libnetwork's reconnectNode): both ends see the other alive.
                db.incarnation += 1
                self._send(to, sender, ("join-ack", str(db.incarnation)))
                out = self._heard_alive(db, sender, int(args[0]), now,
                                        f"{sender} joined again (reconnect)", force=True)
                return out
            elif kind == "join-ack":
                out = self._heard_alive(db, sender, int(args[0]), now,
                                        f"{to} joined {sender} again (reconnect)", force=True)
                self._broadcast(db, ("alive", sender, args[0]))
                return out
        except (IndexError, ValueError):
            return []
        return []

    # -- memberlist's state changes
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_target(self, db: NetworkDB) -> str | None:
        live = db.live()
        if not live:
            return None
        if not db.order or not set(db.order) & set(live):
            db.order = list(live)
            self._rng.shuffle(db.order)
        while db.order:
            target = db.order.pop(0)
            if target in live:
                return target
        return None

    def _broadcast(self, db: NetworkDB, msg: Message) -> None:
        for peer in db.live():
            self._send(db.name, peer, msg)

    def _cluster_size(self, db: NetworkDB) -> int:
        return 1 + len(db.peers)          # memberlist's estNumNodes: every node it knows

    def _suspect(self, db: NetworkDB, peer: str, by: str, now: float,
                 why: str) -> list[ViewChange]:
        m = db.peers[peer]
        if m.state != ALIVE:
            s = m.suspicion
            if m.state == SUSPECT and s is not None and by not in s.confirmed:
                # A confirmation of our own: told to the others, whose timers it shortens.
                s.confirmed.add(by)
                self._broadcast(db, ("suspect", peer, str(m.incarnation), by))
            return []
        k, low, high = suspicion_bounds(self.timings, self._cluster_size(db))
        m.state, m.suspicion = SUSPECT, _Suspicion(now, k, low, high, {by})
        self._broadcast(db, ("suspect", peer, str(m.incarnation), by))
        return [ViewChange(db.name, peer, SUSPECT, now, why)]

    def _dead(self, db: NetworkDB, peer: str, incarnation: int, by: str, now: float,
              why: str) -> list[ViewChange]:
        m = db.peers[peer]
        if m.state == DEAD:
            return []
        m.state, m.suspicion, m.incarnation = DEAD, None, max(m.incarnation, incarnation)
        self._broadcast(db, ("dead", peer, str(m.incarnation), by))
        return [ViewChange(db.name, peer, DEAD, now, why)]

    def _refute(self, db: NetworkDB, incarnation: int) -> None:
        db.incarnation = max(db.incarnation, incarnation) + 1
        self._broadcast(db, ("alive", db.name, str(db.incarnation)))

    def _news_of(self, db: NetworkDB, peer: str, inc: int) -> _Member | None:
        """The member a suspect or dead message about ``peer`` (at incarnation ``inc``)
        changes; None when it changes none: it is about ``db`` itself (refuted at
        once), a stranger, a peer already dead, or an older incarnation."""
        if peer == db.name:
            self._refute(db, inc)
            return None
        m = db.peers.get(peer)
        if m is None or m.state == DEAD or inc < m.incarnation:
            return None
        return m

    def _heard_suspect(self, db: NetworkDB, peer: str, inc: int, by: str,
                       now: float) -> list[ViewChange]:
        m = self._news_of(db, peer, inc)
        if m is None:
            return []
        if m.state == SUSPECT and m.suspicion is not None:
            m.suspicion.confirmed.add(by)
            return []
        k, low, high = suspicion_bounds(self.timings, self._cluster_size(db))
        m.state, m.incarnation = SUSPECT, inc
        m.suspicion = _Suspicion(now, k, low, high, {by})
        return [ViewChange(db.name, peer, SUSPECT, now, f"{by} suspects it")]

    def _heard_dead(self, db: NetworkDB, peer: str, inc: int, by: str,
                    now: float) -> list[ViewChange]:
        m = self._news_of(db, peer, inc)
        if m is None:
            return []
        m.state, m.suspicion, m.incarnation = DEAD, None, inc
        return [ViewChange(db.name, peer, DEAD, now, f"{by} declared it dead")]

    def _heard_alive(self, db: NetworkDB, peer: str, inc: int, now: float, why: str,
                     force: bool = False) -> list[ViewChange]:
        m = db.peers.get(peer)
        if m is None or peer == db.name:
            return []
        if not force and inc <= m.incarnation:      # memberlist's aliveNode: old news
            return []
        was = m.state
        m.state, m.suspicion, m.incarnation = ALIVE, None, max(inc, m.incarnation)
        if was == ALIVE:
            return []
        return [ViewChange(db.name, peer, ALIVE, now, why)]
