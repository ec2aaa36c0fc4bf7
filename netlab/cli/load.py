"""``netlab load LAB TARGET``: a bounded HTTP load through the mesh, and what it lost."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import click

from netlab.cli import common
from netlab.cli.params import Count, Duration
from netlab.kernel.reader import LinuxReader
from netlab.load import engine, report, target

DEFAULT_REQUESTS = 1000


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("target_text", metavar="TARGET")
@click.option("--requests", "-n", "requests", type=Count(1, 10_000_000, "1000"),
              help=f"Stop after N requests (default {DEFAULT_REQUESTS} without --duration).")
@click.option("--concurrency", "-c", type=Count(1, 1000, "20"), default=10, show_default=True,
              help="Requests in flight at once.")
@click.option("--duration", "-d", type=Duration(0.1, 3600, "30"),
              help="Stop issuing requests after S seconds.")
@click.option("--timeout", type=Duration(0.1, 60, "3"), default=3.0, show_default=True,
              help="Per request, connect included.")
@click.option("--from", "sender", default="client", show_default=True, metavar="client|TASK",
              help="Send from the client namespace or from a task's.")
@click.option("--keepalive", is_flag=True,
              help="Reuse each worker's connection while the server keeps it open.")
@common.json_option("One JSON document, every failure with its start time and kind.")
def load(lab: str, target_text: str, requests: int | None, concurrency: int,
         duration: float | None, timeout: float, sender: str, keepalive: bool,
         as_json: bool) -> None:
    """Send HTTP GETs to TARGET (NODE:PORT, or SERVICE:PORT from a task) from the
    client or a task, C at a time, until N requests or S seconds; report rate, latency,
    errors, replies per task, and the failures during and after each change of the lab
    (scale, node) that overlapped.

    Exit 0 when every failure happened while a change converged, 1 otherwise.
    SIGINT or SIGTERM ends the run early, with its report."""
    n, c, d, t = requests, concurrency, duration, timeout
    state = common.lab_state(common.store(), lab)
    src = target.source(state, sender)
    reader = LinuxReader()
    dst = target.destination(state, target_text, src, reader)
    spec = engine.LoadSpec(dst.ip, dst.port, dst.target,
                           n if n is not None or d is not None else DEFAULT_REQUESTS,
                           c, d, t, keepalive)
    common.progress(f"sending to {dst.target} ({dst.ip}:{dst.port}) from {src.name}, "
                    f"concurrency {c}")
    stop = threading.Event()   # SIGINT/SIGTERM: no new request; report what was sent
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcomes, started, ended = reader.run_in(src.netns, lambda: engine.run(spec, stop))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    st = common.store()
    # As they are now, after the run: the lab's changes and the failure windows its
    # manager noticed and repaired (a node cut off, until its tasks ran elsewhere).
    from netlab.manager.events import parse_lines
    from netlab.manager.process import events_name
    changes = report.with_episodes(common.lab_state(st, lab).changes,
                                   parse_lines(st.read_file(lab, events_name(lab)) or b""))
    summary = report.summarize(outcomes, started, ended)
    attributions, unexplained = report.attribute(outcomes, changes, started, ended)
    if as_json:
        click.echo(json.dumps(document(lab, spec, src, summary, attributions, unexplained,
                                       outcomes, started, ended), indent=2))
    else:
        click.echo("\n".join(lines(lab, spec, src, summary, attributions, unexplained)))
    if unexplained or any(a.failed_after for a in attributions):
        sys.exit(1)


def document(lab: str, spec: engine.LoadSpec, src: target.Source, s: report.Summary,
             attributions: list[report.Attribution], unexplained: int,
             outcomes: list[engine.Outcome], started: float, ended: float) -> dict:
    """The ``--json`` document."""
    return {
        "lab": lab, "target": spec.host, "from": src.name, "concurrency": spec.concurrency,
        "keepalive": spec.keepalive, "timeout_s": spec.timeout,
        "started": started, "ended": ended, "seconds": s.seconds,
        "requests": s.requests, "ok": s.ok, "failed": s.failed, "requests_per_s": s.rate,
        "latency_ms": s.latency_ms, "errors": s.errors, "replies": s.replies,
        "versions": s.versions, "replies_by_version": s.replies_by_version,
        "changes": [{"kind": a.change.kind, "what": a.change.what,
                     "started": a.change.started, "converged": a.change.converged,
                     "requests_during": a.requests_during, "failed_during": a.failed_during,
                     "kinds_during": a.kinds_during, "requests_after": a.requests_after,
                     "failed_after": a.failed_after} for a in attributions],
        "unexplained_failures": unexplained,
        "failures": [{"started": o.started, "elapsed_ms": o.elapsed_ms, "kind": o.kind,
                      "detail": o.detail} for o in sorted(outcomes, key=lambda o: o.started)
                     if not o.ok],
    }


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}"


def lines(lab: str, spec: engine.LoadSpec, src: target.Source, s: report.Summary,
          attributions: list[report.Attribution], unexplained: int) -> list[str]:
    """The text report."""
    how = "keep-alive connections" if spec.keepalive else "a new connection each"
    lat = s.latency_ms
    out = [f"load {lab} {spec.host} from {src.name}: {s.requests} requests, {s.ok} ok, "
           f"{s.failed} failed in {s.seconds:.2f} s ({s.rate:.1f} requests/s), "
           f"concurrency {spec.concurrency}, {how}",
           f"latency (ok requests): p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f} ms  "
           f"p99 {lat['p99']:.1f} ms  max {lat['max']:.1f} ms",
           "errors: " + (", ".join(f"{k} {v}" for k, v in s.errors.items()) or "none"),
           "replies per task: " + (", ".join(s.backends()) or "none")]
    if s.mixed_versions:
        out.append("replies per version: " + ", ".join(s.version_counts()))
    if attributions:
        out.append("changes of the lab during the run (UTC):")
    kinds: set[str] = set()
    for a in attributions:
        c = a.change
        took = (f"converged after {c.converged - c.started:.2f} s" if c.converged is not None
                else "NOT converged (interrupted?)")
        detail = ", ".join(f"{k} {v}" for k, v in a.kinds_during.items())
        out.append(f"  {c.label:<24} started {_clock(c.started)}, {took}: "
                   f"{a.failed_during} of {a.requests_during} failed while converging"
                   + (f" ({detail})" if detail else "")
                   + f", {a.failed_after} of {a.requests_after} failed after it converged")
        kinds |= set(a.kinds_during)
    for kind in sorted(kinds):
        out.append(f"  why {kind}: {report.WHY.get(kind, 'see the failures in --json')}")
    if unexplained:
        out.append(f"failures while no change was converging: {unexplained}")
    return out
