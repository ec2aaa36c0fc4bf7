"""``netlab trace LAB NODE:PORT``: one request, every hop there and back, with evidence.

``netlab trace --docker [URL] NODE_ADDRESS:PORT`` does the same on a real Swarm
node (:mod:`netlab.docker.trace`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys

import click

from netlab.cli import common
from netlab.cli.params import Count, Duration
from netlab.docker.connect import docker_url
from netlab.docker.connect import manager_option as docker_manager_option
from netlab.errors import BadInput
from netlab.kernel.reader import LinuxReader
from netlab.trace import render
from netlab.trace.model import RepeatSummary
from netlab.state import check_lab
from netlab.trace.run import Tracer, parse, write_pcapng

ADDRESS_PORT = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+(/\w+)?")


def _docker_target(url: str, lab: str | None, target: str | None) -> tuple[str | None, str]:
    """(Engine URL or None for the default, NODE_ADDRESS:PORT) from ``--docker`` and the
    arguments: ``--docker 192.168.77.1:5000`` gives the target, not a URL."""
    given = [a for a in (lab, target) if a is not None]
    if url and "://" not in url and not url.startswith("/"):
        given.insert(0, url)
        url = ""
    if len(given) != 1:
        raise BadInput("NODE_ADDRESS:PORT: trace --docker takes one NODE_ADDRESS:PORT and no LAB "
                       "(hint: netlab trace --docker 192.168.77.1:5000)")
    # One parser of Docker URLs for every verb: --docker, else $DOCKER_HOST, checked here.
    return docker_url(url or None), given[0]


def _lab_target(lab: str | None, target: str | None) -> tuple[str, str]:
    """(LAB, NODE:PORT) of a lab's trace; an address alone asks for --docker."""
    if lab is None or target is None:
        if lab is not None and ADDRESS_PORT.fullmatch(lab):
            raise BadInput(f"NODE:PORT: {lab} is an address, not a lab's node: a real Swarm node "
                           f"is traced with --docker (hint: netlab trace --docker {lab})")
        raise BadInput("NODE:PORT: missing (hint: netlab trace LAB node1:5000, or "
                       "netlab trace --docker NODE_ADDRESS:PORT for a real Swarm node)")
    return check_lab(lab, "LAB"), target


@click.command()
@click.argument("lab", required=False)
@click.argument("target", required=False, metavar="NODE:PORT[/PROTO]|SERVICE:PORT|VIP:PORT")
@click.option("--docker", "docker_url", is_flag=False, flag_value="", default=None,
              metavar="[URL]",
              help="Trace a real Swarm node instead of a lab: NODE_ADDRESS:PORT on this machine, "
                   "from a client namespace netlab makes and removes; URL is its Engine "
                   "(default: $DOCKER_HOST, else the local socket).")
@click.option("--manager", metavar="URL", default=None, callback=docker_manager_option,
              help="With --docker on a Swarm worker: a manager's Engine (unix:///PATH or "
                   "tcp://HOST:PORT, never a default), where services and tasks are read.")
@click.option("--from", "sender", default="client", show_default=True,
              help="Who sends: client, a node (node1) or a task (hello-a.1); from a task, "
                   "SERVICE:PORT or VIP:PORT traces an east-west request.")
@common.json_option("One JSON document (the trace contract).")
@click.option("--pcap", type=click.Path(dir_okay=False, writable=True),
              help="Write every captured packet to this pcapng, one interface per capture point.")
@click.option("--format", "fmt", type=click.Choice(["table", "mermaid"]), default="table",
              show_default=True, help="mermaid: the path as a sequence diagram.")
@click.option("--repeat", "-n", default=1, show_default=True, type=Count(1, 100, "10"),
              help="Trace N requests and summarise which backends IPVS picked.")
@click.option("--timeout", default=2.0, show_default=True, type=Duration(0.2, 30, "2"),
              help="Seconds to wait for the answer before calling the request dropped.")
def trace(lab: str | None, target: str | None, docker_url: str | None, manager: str | None,
          sender: str,
          as_json: bool, pcap: str | None, fmt: str, repeat: int, timeout: float) -> None:
    """Send one real request to NODE's published PORT (or, --from a task, to a service by
    name or VIP, east-west) and show every hop, there and back.

    With --docker, trace a real Swarm node's published port instead: the
    request leaves a client namespace (nl-dtrace-PID, a veth to the root
    namespace with a free link-local /30) that is removed afterwards.

    Exit 0 when the request was delivered, 1 when it was dropped or refused
    (the last hop says where and why).
    """
    if as_json and fmt == "mermaid":
        raise BadInput("--format: mermaid and --json both print to stdout (hint: pick one)")
    if manager is not None and docker_url is None:
        raise BadInput("--manager: only with --docker, on a Swarm worker (hint: netlab trace "
                       "--docker NODE_ADDRESS:PORT --manager URL)")
    if docker_url is not None:
        url, target = _docker_target(docker_url, lab, target)
        if sender != "client":
            raise BadInput("--from: a real node is traced from netlab's client namespace only "
                           "(hint: leave out --from)")
        from netlab.docker.trace import trace_real
        traces, frames = trace_real(url, target, repeat, timeout, manager)
    else:
        lab, target = _lab_target(lab, target)
        state = common.lab_state(common.store(), lab)
        reader = LinuxReader()
        tracer = Tracer(state.model, state.allocations, common.plan_from_state(state),
                        parse(state, target, sender, reader), state.iptables,
                        state.desired_tasks, state.scenario, reader)
        traces, frames = [], []
        for _ in range(repeat):
            t, f = tracer.once(timeout)
            traces.append(t)
            frames += f
    if pcap:
        try:
            write_pcapng(pcap, frames)
        except OSError as exc:
            raise BadInput(f"--pcap: cannot write {pcap}: {exc.strerror} (hint: a writable path)") from exc
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
