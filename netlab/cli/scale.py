"""``netlab scale LAB SERVICE=N [SERVICE=N ...]``: ``docker service scale`` on a lab that is up."""

from __future__ import annotations

import click

from netlab import converge
from netlab.cli import common
from netlab.cli.params import count_text
from netlab.errors import BadInput
from netlab.scenario.services import REPLICAS_MAX


def parse_counts(args: tuple[str, ...]) -> dict[str, int]:
    """``("web=3", "api=0")`` as ``{"web": 3, "api": 0}``; raises BadInput (exit 2)
    naming the argument when one is not ``SERVICE=N`` with N a whole number from 0 to
    REPLICAS_MAX (ASCII digits, as a scenario's replicas)."""
    if not args:
        raise BadInput("SERVICE=N: name at least one service and its replicas "
                       "(hint: netlab scale LAB web=3)")
    counts: dict[str, int] = {}
    for arg in args:
        service, sep, n = arg.partition("=")
        if not sep or not service:
            raise BadInput(f"SERVICE=N: {arg!r} is not SERVICE=N (hint: netlab scale LAB web=3)")
        count_text(n, "SERVICE=N", 0, REPLICAS_MAX, f"replicas as in a scenario, such as {service}=3")
        if service in counts:
            raise BadInput(f"SERVICE=N: {service} is named twice (hint: once per service)")
        counts[service] = int(n)
    return counts


def change_lines(result: converge.ScaleResult, what: str = "scaled") -> list[str]:
    """What ``scale`` and ``node`` print: the tasks started and shut down, and each
    touched service's tasks."""
    lab = result.lab
    if not result.added and not result.removed:
        return [f"lab {lab.name}: no task moved"]
    lines = [f"lab {lab.name} {what}: {len(result.added)} task(s) started, "
             f"{len(result.removed)} shut down"
             + (f" ({result.stats.seconds:.2f} s to converge)" if result.stats else "")]
    for c in result.removed:
        lines.append(f"  - {c.task:<14} on {c.node:<10} {c.address}  shutdown")
    for c in result.added:
        lines.append(f"  + {c.task:<14} on {c.node:<10} {c.address}  running")
    touched = {c.service for c in result.added + result.removed}
    for svc in lab.services:
        if svc.name in touched:
            tasks = ", ".join(f"{t.name}@{t.node}" for t in lab.tasks_of(svc.name))
            lines.append(f"  service {svc.name} x{svc.replicas}: {tasks or 'no tasks'}")
    return lines


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("counts", nargs=-1, metavar="SERVICE=N...")
@click.option("--detach", "-d", is_flag=True,
              help="Return once asked: the change converges in the background (its output in "
                   "the lab's log), one change at a time as always.")
def scale(lab: str, counts: tuple[str, ...], detach: bool) -> None:
    """Scale services of LAB to N replicas each and converge every node (from its state)."""
    wanted = parse_counts(counts)
    if detach:
        st = common.store()
        state = common.lab_state(st, lab)
        names = {s.name for s in state.model.services}
        for service in wanted:
            if service not in names:
                raise BadInput(f"SERVICE: lab {lab} has no service {service!r} "
                               f"(hint: one of {', '.join(sorted(names))})")
        from netlab.cli.detach import run_detached
        pid = run_detached(st, lab, ["scale", lab, *counts])
        click.echo(f"lab {lab}: scaling in the background (pid {pid}; its output goes to "
                   f"{st.log_path(lab)}); netlab status {lab} shows the tasks")
        return
    result = converge.scale(lab, wanted, common.store(), common.progress, common.host())
    click.echo("\n".join(change_lines(result)))
