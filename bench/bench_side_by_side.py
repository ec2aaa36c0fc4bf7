"""Benchmark: netlab's manager against a real two-node Swarm, the same two cases side by side.

Issue 14: "netlab's windows are the real Swarm's within 20% at the default time
scale". One run inside `netlab vm`, both at time scale 1 (Swarm's own timings):

1. **node cut**: the seed (hello-a, 2 replicas, -p 5000:3000, one task on each
   node) under a bounded load from a client to node1:5000 (4 at a time, 1 s
   timeout, a new connection each request, ``netlab load``'s engine); node2 is
   cut off the LAN 8 s in. Timed: from the cut until the last failure of the
   run of failures it started (failures more than 3 s apart end the run; later
   ones are counted as stray), i.e. until every request through node1 succeeds
   again; and the failed requests. The load goes on until the manager has the
   node's task running elsewhere, plus 15 s.

   - netlab: ``netlab up scenarios/hello-a.yaml --name sbs --time-scale 1``,
     both nodes ready in its events log, ``netlab load sbs node1:5000 … --json``
     (a subprocess, stopped with SIGTERM), ``netlab node sbs node2 down``; the
     cut's time is the ``cut`` event's.
   - Swarm: tests.harness.dockerd's two-node Swarm (Debian's Docker 20.10,
     node2 in a namespace of its own), the seed service; the load comes from a
     client namespace joined to the root one (netlab.kernel.clientns, as
     ``netlab trace --docker``) to 192.168.77.1:5000; node2 is cut by setting
     its link (rs-node2) down, as bench_real_swarm.py does.

2. **rolling update** of two tasks with a health check and ``start-first``
   (issue 14's case; ``ORDER``), under the same load
   (to node1:8080, stopped 10 s after the command returned): from the update
   command until it returns (each waits for the update to settle), and the
   failed requests. Also printed: the update status's start → completion.

   - netlab: ``scenarios/rolling.yaml`` (web:1, 2 replicas, health check every
     2 s, update parallelism 1, delay 2 s, monitor 4 s) as ``sbs2``,
     ``netlab update sbs2 web --image web:2 --update-order start-first``.
   - Swarm: the same service by ``docker service create`` with the offline
     task image (scripts/task-image.sh) tagged netlab/task:1 and netlab/task:2
     on both nodes, listening on 80 (PORT=80). The image has no curl and answers
     every path, /health included: the health command is busybox's wget of
     http://127.0.0.1:80/health, with a 10 s timeout instead of the scenario's 1 s
     (interval 2 s and retries 2 as the scenario): in the emulated VM, under the
     load, the image's server (busybox nc forking a shell and awk for each
     connection) answered probes late, and with 1 s the tasks went unhealthy and
     were restarted over and over before the update began (the probes'
     durations are printed). It runs with ``--stop-signal SIGKILL``: the
     image's PID 1 is a shell, which ignores SIGTERM, so every stop would wait
     Docker's 10 s grace period for a SIGKILL, where netlab's app exits at once
     on SIGTERM (``--init`` would be the other way, but Debian's docker-init is
     a link to tini-static, which scripts/docker-root.sh does not unpack).
     ``docker service update --image netlab/task:2``.

Both sides' node1 ingress_sbox IPVS table is read every 0.5 s meanwhile, to
show when each destination left or joined. One run, one table (netlab,
Swarm, the ratio netlab / Swarm, the failed requests of each); no time is
asserted. dockerd rewrites the root network namespace of the machine it runs
on, so this refuses to run outside `netlab vm` (NETLAB_IN_VM=1):

    flock /tmp/netlab-vm.lock .venv/bin/netlab vm --timeout 2400 -- \\
        .venv/bin/python bench/bench_side_by_side.py
"""

from __future__ import annotations

import calendar
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness

from bench_real_swarm import SBOX, sh  # noqa: E402
from bench_up_down import REPO  # noqa: E402

from netlab.docker.trace import client_namespace  # noqa: E402
from netlab.errors import NetlabError  # noqa: E402
from netlab.kernel import netns  # noqa: E402
from netlab.kernel.procfs import read_ip_vs  # noqa: E402
from netlab.load import engine  # noqa: E402
from netlab.manager.events import Event, parse_lines  # noqa: E402
from netlab.manager.process import events_name  # noqa: E402
from netlab.plan import names  # noqa: E402
from netlab.state import StateStore  # noqa: E402
from tests.harness.dockerd import DOCKER_ROOT, IMAGE, DockerdError, RealSwarm  # noqa: E402

NETLAB = str(Path(sys.executable).parent / "netlab")
CONCURRENCY = 4
TIMEOUT = 1.0      # per request, connect included
LEAD = 8.0         # the load runs this long before the cut or the update
TAIL = 15.0        # and this long after the replacement task runs
UPDATE_TAIL = 10.0  # and this long after the update command returned
ORDER = "start-first"  # the rolling case: the new task starts beside the old (issue 14)
LOAD_MAX = 180.0   # the longest a load runs
GAP = 3.0          # failures further apart than this end the window
WAIT = 240.0       # the longest a setup step waits
IPVS_POLL = 0.5
TARGET = 0.2       # issue 14: within 20 %
SWARM_ADDR = "192.168.77.1"
V1, V2 = "netlab/task:1", "netlab/task:2"
HEALTH_CMD = "/bin/busybox wget -q -O /dev/null http://127.0.0.1:80/health || exit 1"
SWARM_HEALTH_TIMEOUT = "10s"   # the scenario's 1s: see the docstring
DOWN = "  node2 marked down (heartbeat failure), from the cut"
ELSEWHERE = "  node2's task running on node1, from the cut"
CLI = "  update status started, from the command"
STATUS = "  update status started -> completed"


@dataclass
class Measure:
    """One case on one side: the window (s), the failed and sent requests, what else was seen."""

    seconds: float = float("nan")
    failed: int = 0
    requests: int = 0
    notes: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)   # secondary timings (s), by label

    @property
    def failed_text(self) -> str:
        return f"{self.failed}/{self.requests}" if self.requests else "-"


@dataclass(frozen=True)
class Window:
    """The failures a change caused: when the last one of its run started, how many."""

    end: float | None     # epoch s of the last failure's start (None: none failed)
    failed: int           # in the run of failures from the change
    stray: int            # after it, more than GAP from the previous one
    before: int           # before the change (minus one timeout)

    def seconds(self, change: float) -> float:
        return max(0.0, self.end - change) if self.end is not None else 0.0


def window(starts: list[float], change: float) -> Window:
    """The run of failures from ``change``: a request that started up to one timeout
    before it can fail by it; the run ends at the first gap over GAP."""
    after = sorted(s for s in starts if s >= change - TIMEOUT)
    end, prev, n = None, change, 0
    for s in after:
        if s - prev > GAP:
            break
        end, prev, n = s, s, n + 1
    return Window(end, n, len(after) - n, len(starts) - len(after))


# -- IPVS of node1's ingress_sbox, watched -----------------------------------------------


class IpvsWatch:
    """Reads an ingress_sbox's IPVS destinations every IPVS_POLL s in a thread; keeps
    each change (epoch s, {address: weight})."""

    def __init__(self, ns_file: str) -> None:
        self.ns_file = ns_file
        self.changes: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict[str, int]:
        table = netns.in_thread_path(self.ns_file, read_ip_vs)
        return {f"{d.addr}:{d.port}": d.weight for d in table.destinations}

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                now = self._read()
            except (OSError, netns.NetnsError):
                now = {}
            if not self.changes or self.changes[-1][1] != now:
                self.changes.append((time.time(), now))
            self.stop.wait(IPVS_POLL)

    def __enter__(self) -> IpvsWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def lines(self, since: float, label: str) -> list[str]:
        out = []
        for t, dests in self.changes:
            what = ", ".join(f"{a} w{w}" for a, w in sorted(dests.items())) or "none"
            out.append(f"      {t - since:+7.2f} s  {what}")
        return [f"    node1's ingress_sbox IPVS destinations (s from {label}):", *out]


# -- netlab --------------------------------------------------------------------------------


def netlab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return sh(NETLAB, *args, check=False, timeout=timeout)


def events(lab: str) -> list[Event]:
    return parse_lines(StateStore().read_file(lab, events_name(lab)) or b"")


def wait_for(what: str, ok: Callable[[], bool], wait: float = WAIT, poll: float = 0.5) -> float:
    """Poll ``ok`` until it holds; returns the seconds waited; raises RuntimeError."""
    t0 = time.monotonic()
    while not ok():
        if time.monotonic() - t0 > wait:
            raise RuntimeError(f"{what}: not after {wait:.0f} s")
        time.sleep(poll)
    return time.monotonic() - t0


def weight_one(ns_file: str) -> int:
    try:
        table = netns.in_thread_path(ns_file, read_ip_vs)
    except (OSError, netns.NetnsError):
        return 0
    return sum(1 for d in table.destinations if d.weight == 1)


def netlab_up(scenario: str, lab: str, tasks: int) -> str:
    """``netlab up`` at time scale 1; waits for both nodes ready in the manager's events
    and ``tasks`` destinations of weight 1 in node1's ingress_sbox. Returns its path."""
    up = netlab("up", str(REPO / "scenarios" / scenario), "--name", lab, "--time-scale", "1")
    if up.returncode != 0:
        raise RuntimeError(f"netlab up {scenario} exited {up.returncode}: "
                           f"{(up.stderr or up.stdout).strip()[-600:]}")
    wait_for(f"{lab}: both nodes ready", lambda: {
        e.subject for e in events(lab) if e.kind == "node" and e.action == "ready"}
        >= {"node1", "node2"})
    sbox = f"/var/run/netns/{names.sandbox_ns(lab, 'node1')}"
    wait_for(f"{lab}: {tasks} destinations of weight 1", lambda: weight_one(sbox) == tasks)
    return sbox


def start_load(lab: str, target: str) -> subprocess.Popen:
    return subprocess.Popen(
        [NETLAB, "load", lab, target, "--concurrency", str(CONCURRENCY), "--duration",
         f"{LOAD_MAX:g}", "--timeout", f"{TIMEOUT:g}", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def end_load(load: subprocess.Popen) -> dict:
    """SIGTERM (no new request, the report of what was sent) and its JSON document."""
    if load.poll() is None:
        load.send_signal(signal.SIGTERM)
    out, err = load.communicate(timeout=180)
    try:
        return json.loads(out)
    except ValueError:
        raise RuntimeError(f"netlab load exited {load.returncode} without its JSON: "
                           f"{(err or out).strip()[-600:]}") from None


def load_notes(doc: dict) -> list[str]:
    notes = [f"    netlab load: {doc['requests']} requests, {doc['failed']} failed in "
             f"{doc['seconds']:.1f} s ({doc['requests_per_s']:.1f}/s), errors {doc['errors']}, "
             f"replies {doc['replies']}"]
    if doc.get("replies_by_version"):
        notes.append(f"      by version {doc['replies_by_version']}")
    for c in doc["changes"]:
        conv = (f"converged after {c['converged'] - c['started']:.2f} s"
                if c["converged"] is not None else "not converged")
        notes.append(f"      its change {c['kind']} {c['what']}: {conv}; {c['failed_during']} of "
                     f"{c['requests_during']} failed during it, {c['failed_after']} of "
                     f"{c['requests_after']} after")
    notes.append(f"      failures it did not attribute to a change: {doc['unexplained_failures']}")
    return notes


def window_note(w: Window, starts: list[float], change: float) -> str:
    """The window's counts, and every run of failures (GAP apart) from the change."""
    groups: list[list[float]] = []
    for t in sorted(starts):
        if groups and t - groups[-1][-1] <= GAP:
            groups[-1].append(t)
        else:
            groups.append([t])
    spans = ", ".join(f"{g[0] - change:+.2f}..{g[-1] - change:+.2f} s ({len(g)})" for g in groups)
    return (f"    failures: {w.failed} in the window, {w.stray} stray after it, "
            f"{w.before} before the change; their runs (started, s from the change): "
            f"{spans or 'none'}")


def netlab_cut() -> Measure:
    m, lab = Measure(), "sbs"
    try:
        sbox = netlab_up("hello-a.yaml", lab, 2)
        with IpvsWatch(sbox) as watch:
            load = start_load(lab, "node1:5000")
            try:
                time.sleep(LEAD)
                cut = netlab("node", lab, "node2", "down")
                if cut.returncode != 0:
                    raise RuntimeError(f"netlab node {lab} node2 down exited {cut.returncode}: "
                                       f"{(cut.stderr or cut.stdout).strip()[-600:]}")
                at = max(e.time for e in events(lab)
                         if e.kind == "node" and e.subject == "node2" and e.action == "cut")

                def replaced() -> Event | None:
                    return next((e for e in events(lab) if e.time > at and e.kind == "task"
                                 and e.action == "running"), None)
                try:
                    wait_for("the replacement of node2's task running", lambda: replaced()
                             is not None, LOAD_MAX - LEAD - TAIL, 0.3)
                    time.sleep(TAIL)
                except RuntimeError as err:
                    m.notes.append(f"    {err}")
            finally:
                doc = end_load(load)
        starts = [f["started"] for f in doc["failures"]]
        w = window(starts, at)
        m.seconds, m.failed, m.requests = w.seconds(at), doc["failed"], doc["requests"]
        m.notes.append(window_note(w, starts, at))
        for e in events(lab):
            if e.time >= at and e.kind == "node" and e.subject == "node2" and e.action == "down":
                m.marks.setdefault(DOWN, e.time - at)
            if e.time >= at and e.kind == "task" and e.action == "running":
                m.marks.setdefault(ELSEWHERE, e.time - at)
            if e.time >= at and (e.kind == "node" or e.action in ("shutdown", "running")):
                m.notes.append(f"    {e.time - at:+7.2f} s  {e.kind} {e.subject} {e.action}: "
                               f"{e.message[:90]}")
        m.notes += load_notes(doc) + watch.lines(at, "the cut")
    except (RuntimeError, OSError, subprocess.SubprocessError, NetlabError, KeyError,
            ValueError) as err:
        m.notes.append(f"    FAILED: {type(err).__name__}: {str(err)[:1500]}")
    finally:
        down = netlab("down", lab)
        if down.returncode != 0:
            m.notes.append(f"    netlab down {lab} exited {down.returncode}: {down.stderr.strip()}")
    return m


def netlab_rolling() -> Measure:
    m, lab = Measure(), "sbs2"
    try:
        sbox = netlab_up("rolling.yaml", lab, 2)
        t0 = time.monotonic()
        netlab("--help")
        m.notes.append(f"    netlab --help (the CLI's start-up here): {time.monotonic() - t0:.2f} s")
        with IpvsWatch(sbox) as watch:
            load = start_load(lab, "node1:8080")
            try:
                time.sleep(LEAD)
                at, t0 = time.time(), time.monotonic()
                upd = netlab("update", lab, "web", "--image", "web:2", "--update-order", ORDER)
                m.seconds = time.monotonic() - t0
                time.sleep(UPDATE_TAIL)
            finally:
                doc = end_load(load)
        m.notes.append(f"    netlab update exited {upd.returncode}; it printed:")
        m.notes += [f"      {line[:150]}" for line in
                    (upd.stderr.strip().splitlines() + upd.stdout.strip().splitlines())[-25:]]
        u = StateStore().require(lab).updates.get("web")
        if u is not None:
            m.marks[CLI] = u.started - at
            if u.completed:
                m.marks[STATUS] = u.completed - u.started
            m.notes.append(f"    update status {u.state}: started {u.started - at:+.2f} s, "
                           f"completed {m.marks.get(STATUS, math.nan):.2f} s later ({u.message})")
        starts = [f["started"] for f in doc["failures"]]
        m.failed, m.requests = doc["failed"], doc["requests"]
        m.notes.append(window_note(window(starts, at), starts, at))
        for e in events(lab):
            if e.time >= at and e.kind in ("task", "service"):
                m.notes.append(f"    {e.time - at:+7.2f} s  {e.kind} {e.subject} {e.action}: "
                               f"{e.message[:90]}")
        m.notes += load_notes(doc) + watch.lines(at, "the update command")
    except (RuntimeError, OSError, subprocess.SubprocessError, NetlabError, KeyError,
            ValueError) as err:
        m.notes.append(f"    FAILED: {type(err).__name__}: {str(err)[:1500]}")
    finally:
        down = netlab("down", lab)
        if down.returncode != 0:
            m.notes.append(f"    netlab down {lab} exited {down.returncode}: {down.stderr.strip()}")
    return m


# -- the real Swarm --------------------------------------------------------------------------


def placed(swarm: RealSwarm, service: str) -> dict[str, int]:
    """node -> how many of ``service``'s tasks Docker says run there."""
    out = swarm.manager.docker("service", "ps", "--filter", "desired-state=running", "--format",
                               "{{.Node}} {{.CurrentState}}", service, check=False).stdout
    nodes: dict[str, int] = {}
    for line in out.splitlines():
        node, _, state = line.partition(" ")
        if state.startswith("Running"):
            nodes[node] = nodes.get(node, 0) + 1
    return nodes


def rfc3339(text: str) -> float:
    """Epoch seconds of Docker's RFC 3339 time (nanoseconds, Z or an offset)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    t = calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S")) + float(f"0.{m[2] or 0}")
    if m[3] != "Z":
        sign = 1 if m[3][0] == "+" else -1
        t -= sign * (int(m[3][1:3]) * 3600 + int(m[3][4:6]) * 60)
    return t


class SwarmLoad:
    """``netlab load``'s engine from a client namespace to node1's published port, in a thread."""

    def __init__(self, client_ns: str, port: int) -> None:
        self.spec = engine.LoadSpec(SWARM_ADDR, port, f"{SWARM_ADDR}:{port}", None, CONCURRENCY,
                                    LOAD_MAX, TIMEOUT, False)
        self.client_ns = client_ns
        self.stop = threading.Event()
        self.result: tuple[list[engine.Outcome], float, float] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.result = netns.in_thread(self.client_ns, lambda: engine.run(self.spec, self.stop))

    def __enter__(self) -> SwarmLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(LOAD_MAX + 30)

    def outcomes(self) -> list[engine.Outcome]:
        if self.result is None:
            raise RuntimeError("the load's thread ended without a result")
        return self.result[0]


def swarm_load_notes(outcomes: list[engine.Outcome]) -> list[str]:
    errors: dict[str, int] = {}
    tasks: dict[str, int] = {}
    for o in outcomes:
        if o.ok:
            tasks[f"{o.task}@{o.node}"] = tasks.get(f"{o.task}@{o.node}", 0) + 1
        else:
            errors[str(o.kind)] = errors.get(str(o.kind), 0) + 1
    return [f"    load: {len(outcomes)} requests, {sum(not o.ok for o in outcomes)} failed, "
            f"errors {errors}, replies {tasks}"]


def probe(p: dict) -> str:
    try:
        took = f"{rfc3339(p['End']) - rfc3339(p['Start']):.2f} s"
    except (KeyError, TypeError, ValueError):
        took = "?"
    return f"{took} exit {p.get('ExitCode')}"


def health_log(swarm: RealSwarm) -> list[str]:
    """Each web container's last health probes (Docker keeps 5): start, duration, exit."""
    out = []
    for node in swarm.nodes:
        ids = node.docker("ps", "-aq", "--filter", "label=com.docker.swarm.service.name=web",
                          check=False).stdout.split()
        for cid in ids:
            raw = node.docker("inspect", "--format",
                              "{{.Name}} {{.State.Status}} {{json .State.Health}}", cid,
                              check=False).stdout.strip()
            name, status, health = (raw.split(" ", 2) + ["", "", ""])[:3]
            try:
                doc = json.loads(health) or {}
            except ValueError:
                doc = {}
            probes = ", ".join(probe(p) for p in doc.get("Log") or [])
            out.append(f"      {node.name} {name.lstrip('/')[:40]} {status} "
                       f"{doc.get('Status', '-')}, failing streak {doc.get('FailingStreak', '-')}: "
                       f"{probes or 'no probe'}")
    return ["    the web containers' last health probes (duration, exit code):", *out]


def swarm_rolling(swarm: RealSwarm, client_ns: str) -> Measure:
    m, d = Measure(), swarm.manager
    try:
        for node in swarm.nodes:
            for tag in (V1, V2):
                node.docker("tag", IMAGE, tag)
        d.docker("service", "create", "--detach", "--no-resolve-image", "--name", "web",
                 "--replicas", "2", "-p", "8080:80", "--stop-signal", "SIGKILL",
                 "--hostname", "{{.Task.Name}}",
                 "--env", "NODE={{.Node.Hostname}}", "--env", "SERVICE=web", "--env", "PORT=80",
                 "--health-cmd", HEALTH_CMD, "--health-interval", "2s",
                 "--health-timeout", SWARM_HEALTH_TIMEOUT,
                 "--health-retries", "2", "--health-start-period", "0s",
                 "--restart-condition", "any", "--restart-delay", "5s",
                 "--update-parallelism", "1", "--update-delay", "2s",
                 "--update-order", ORDER, "--update-failure-action", "rollback",
                 "--update-monitor", "4s", V1)
        swarm.wait_running("web", 2, WAIT)
        wait_for("web: 2 destinations of weight 1", lambda: weight_one(str(SBOX)) == 2)
        m.notes.append(f"    web placed {placed(swarm, 'web')}")
        with IpvsWatch(str(SBOX)) as watch, SwarmLoad(client_ns, 8080) as load:
            time.sleep(LEAD)
            at, t0 = time.time(), time.monotonic()
            upd = d.docker("service", "update", "--image", V2, "--no-resolve-image", "web",
                           check=False, timeout=900)
            m.seconds = time.monotonic() - t0
            time.sleep(UPDATE_TAIL)
        outcomes = load.outcomes()
        m.notes.append(f"    docker service update exited {upd.returncode}; its last line: "
                       f"{(upd.stdout.strip().splitlines() or [''])[-1][:120]}"
                       + (f"; stderr {upd.stderr.strip()[-300:]}" if upd.returncode else ""))
        raw = d.docker("service", "inspect", "--format", "{{json .UpdateStatus}}", "web").stdout
        u = json.loads(raw)
        if u and u.get("StartedAt") and u.get("CompletedAt"):
            started, completed = rfc3339(u["StartedAt"]), rfc3339(u["CompletedAt"])
            m.marks[CLI], m.marks[STATUS] = started - at, completed - started
            m.notes.append(f"    update status {u.get('State')}: started {started - at:+.2f} s, "
                           f"completed {completed - started:.2f} s later ({u.get('Message')})")
        else:
            m.notes.append(f"    update status: {raw.strip()}")
        fails = [o.started for o in outcomes if not o.ok]
        m.failed, m.requests = len(fails), len(outcomes)
        m.notes.append(window_note(window(fails, at), fails, at))
        ps = d.docker("service", "ps", "--no-trunc", "--format",
                      "{{.Name}} {{.Image}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
                      "web", check=False).stdout
        m.notes += [f"    {line}" for line in ps.splitlines()] + health_log(swarm)
        m.notes += swarm_load_notes(outcomes) + watch.lines(at, "the update command")
    except (RuntimeError, OSError, subprocess.SubprocessError, DockerdError, NetlabError,
            KeyError, ValueError) as err:
        m.notes.append(f"    FAILED: {type(err).__name__}: {str(err)[:1500]}")
    finally:
        d.docker("service", "rm", "web", check=False, timeout=120)
        try:
            wait_for("web's destinations gone", lambda: weight_one(str(SBOX)) == 0, 120)
        except RuntimeError as err:
            m.notes.append(f"    {err}")
    return m


def swarm_cut(swarm: RealSwarm, client_ns: str) -> Measure:
    m, d = Measure(), swarm.manager
    try:
        swarm.seed(wait=WAIT)
        wait_for("hello-a: 2 destinations of weight 1", lambda: weight_one(str(SBOX)) == 2)
        where = placed(swarm, "hello-a")
        m.notes.append(f"    hello-a placed {where}")
        if where != {"node1": 1, "node2": 1}:
            raise RuntimeError(f"hello-a is not one task on each node: {where}")
        running_at = None
        with IpvsWatch(str(SBOX)) as watch, SwarmLoad(client_ns, 5000) as load:
            time.sleep(LEAD)
            sh("ip", "link", "set", "rs-node2", "down")
            at = time.time()
            try:
                wait_for("both hello-a tasks running on node1",
                         lambda: placed(swarm, "hello-a").get("node1", 0) >= 2,
                         LOAD_MAX - LEAD - TAIL, 1.0)
                running_at = time.time()
                time.sleep(TAIL)
            except RuntimeError as err:
                m.notes.append(f"    {err}")
        outcomes = load.outcomes()
        fails = [o.started for o in outcomes if not o.ok]
        w = window(fails, at)
        m.seconds, m.failed, m.requests = w.seconds(at), len(fails), len(outcomes)
        m.notes.append(window_note(w, fails, at))
        evs = d.docker("events", "--since", f"{int(at) - 2}", "--until", f"{int(time.time())}",
                       "--filter", "type=node", "--format", "{{json .}}", check=False).stdout
        for line in evs.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            attrs = e.get("Actor", {}).get("Attributes", {})
            if attrs.get("name") == "node2" and attrs.get("state.new") == "down":
                m.marks.setdefault(DOWN, e.get("timeNano", 0) / 1e9 - at)
            m.notes.append(f"    {e.get('timeNano', 0) / 1e9 - at:+7.2f} s  node "
                           f"{attrs.get('name')} {attrs.get('state.old')} → "
                           f"{attrs.get('state.new')} (docker events)")
        if running_at is not None:
            m.marks[ELSEWHERE] = running_at - at
            m.notes.append(f"    {running_at - at:+7.2f} s  both tasks running on node1 "
                           "(docker service ps, polled every 1 s)")
        m.notes += swarm_load_notes(outcomes) + watch.lines(at, "the cut")
    except (RuntimeError, OSError, subprocess.SubprocessError, DockerdError, NetlabError,
            KeyError, ValueError) as err:
        m.notes.append(f"    FAILED: {type(err).__name__}: {str(err)[:1500]}")
    return m


def real_swarm() -> tuple[str, Measure, Measure]:
    swarm = RealSwarm(nodes=2)
    try:
        swarm.start()
        version = swarm.manager.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        with client_namespace() as client:
            rolling = swarm_rolling(swarm, client.name)
            cut = swarm_cut(swarm, client.name)
        return version, cut, rolling
    except (DockerdError, NetlabError) as err:
        failed = Measure(notes=[f"    FAILED: {type(err).__name__}: {str(err)[:1500]}"])
        return "?", failed, failed
    finally:
        swarm.stop()


# -- the table -------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}" if b and not (math.isnan(a) or math.isnan(b)) else "    -"


def verdict(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "not measured"
    return "within 20 %" if abs(a / b - 1) <= TARGET else "NOT within 20 %"


def secs(x: float) -> str:
    return "     -" if math.isnan(x) else f"{x:6.2f}"


def git_head() -> str:
    head = sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    if not head:
        return f"{REPO} (not a git checkout)"
    dirty = sh("git", "-C", str(REPO), "status", "--porcelain", "--", "netlab", check=False).stdout
    return head + (f", netlab/ with uncommitted changes ({len(dirty.splitlines())} files)"
                   if dirty.strip() else ", netlab/ clean")


def main() -> None:
    if os.environ.get("NETLAB_IN_VM") != "1":
        sys.exit("bench_side_by_side: run it inside netlab vm (dockerd rewrites the root "
                 "network namespace of the machine it runs on)")
    if not (DOCKER_ROOT / "usr/sbin/dockerd").exists():
        sys.exit(f"bench_side_by_side: no dockerd under {DOCKER_ROOT}; run "
                 "sudo bash scripts/docker-root.sh on the host first")
    print(f"netlab bench side by side, netlab's manager vs a real Swarm: kernel "
          f"{platform.release()}, in netlab vm (emulated, no KVM), {os.cpu_count()} CPUs, "
          f"time scale 1, netlab at {git_head()}")
    print(f"  load: {CONCURRENCY} at a time, {TIMEOUT:g} s timeout, a new connection each "
          f"request, started {LEAD:g} s before the change")
    print(f"  guest load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          flush=True)
    n_cut = netlab_cut()
    print("  netlab, node cut:", *n_cut.notes, sep="\n", flush=True)
    n_roll = netlab_rolling()
    print("  netlab, rolling update:", *n_roll.notes, sep="\n", flush=True)
    version, s_cut, s_roll = real_swarm()
    print(f"  real Swarm (Docker {version}), rolling update:", *s_roll.notes, sep="\n")
    print(f"  real Swarm (Docker {version}), node cut:", *s_cut.notes, sep="\n")
    print(f"  guest load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"  {'case':<58} {'netlab':>8} {'Swarm':>8} {'ratio':>6}   failed netlab / Swarm")
    rows = (("node2 cut: until every request via node1 succeeds again", n_cut, s_cut),
            (f"rolling update, 2 tasks, health check, {ORDER}: command returns", n_roll,
             s_roll))
    for label, n, s in rows:
        print(f"  {label:<58} {secs(n.seconds)} s {secs(s.seconds)} s {ratio(n.seconds, s.seconds)}"
              f"   {n.failed_text} / {s.failed_text}   ({verdict(n.seconds, s.seconds)})")
        for mark in dict.fromkeys([*n.marks, *s.marks]):
            a, b = n.marks.get(mark, math.nan), s.marks.get(mark, math.nan)
            print(f"  {mark:<58} {secs(a)} s {secs(b)} s {ratio(a, b)}")


if __name__ == "__main__":
    main()
