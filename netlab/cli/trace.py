"""``netlab trace LAB NODE:PORT``: one request, every hop there and back, with evidence."""

from __future__ import annotations

import json
import shutil
import sys

import click

from netlab.cli import common
from netlab.errors import BadInput
from netlab.trace import render
from netlab.trace.model import RepeatSummary
from netlab.trace.run import Tracer, parse, write_pcapng


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("target", metavar="NODE:PORT[/PROTO]|SERVICE:PORT|VIP:PORT")
@click.option("--from", "sender", default="client", show_default=True,
              help="Who sends: client, a node (node1) or a task (hello-a.1); from a task, "
                   "SERVICE:PORT or VIP:PORT traces an east-west request.")
@common.json_option("One JSON document (the trace contract).")
@click.option("--pcap", type=click.Path(dir_okay=False, writable=True),
              help="Write every captured packet to this pcapng, one interface per capture point.")
@click.option("--format", "fmt", type=click.Choice(["table", "mermaid"]), default="table",
              show_default=True, help="mermaid: the path as a sequence diagram.")
@click.option("--repeat", "-n", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Trace N requests and summarise which backends IPVS picked.")
@click.option("--timeout", default=2.0, show_default=True, type=click.FloatRange(0.2, 30),
              help="Seconds to wait for the answer before calling the request dropped.")
def trace(lab: str, target: str, sender: str, as_json: bool, pcap: str | None, fmt: str,
          repeat: int, timeout: float) -> None:
    """Send one real request to NODE's published PORT (or, --from a task, to a service by
    name or VIP, east-west) and show every hop, there and back.

    Exit 0 when the request was delivered, 1 when it was dropped or refused
    (the last hop says where and why).
    """
    if as_json and fmt == "mermaid":
        raise BadInput("--format: mermaid and --json both print to stdout (hint: pick one)")
    state = common.lab_state(common.store(), lab)
    tracer = Tracer(state.model, state.allocations, common.plan_from_state(state),
                    parse(state, target, sender), state.iptables, state.desired_tasks,
                    state.scenario)
    traces, frames = [], []
    for _ in range(repeat):
        t, f = tracer.once(timeout)
        traces.append(t)
        frames += f
    if pcap:
        try:
            write_pcapng(pcap, frames)
        except OSError as exc:
            raise BadInput(f"--pcap: cannot write {pcap}: {exc.strerror} (hint: a writable path)")
    summary = RepeatSummary(target, tuple(t.backend.task if t.backend else None for t in traces),
                            tuple(t.verdict for t in traces),
                            tuple(t.cause.summary if t.cause else None for t in traces))
    if as_json:
        doc = traces[0].to_json() if repeat == 1 else render.repeat_json(summary, traces)
        click.echo(json.dumps(doc, indent=2))
    elif fmt == "mermaid":
        click.echo("\n".join(render.mermaid(t) for t in traces))
    else:
        width = shutil.get_terminal_size((render.DEFAULT_WIDTH, 24)).columns \
            if sys.stdout.isatty() else None
        for t in traces:
            click.echo(render.text(t, width=width))
        if repeat > 1:
            click.echo(render.repeat_text(summary))
    if pcap:
        click.echo(f"wrote {len(frames)} packets to {pcap}", err=True)
    if any(t.verdict != "delivered" for t in traces):
        sys.exit(1)
