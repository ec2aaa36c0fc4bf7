"""``netlab update LAB SERVICE …`` and ``netlab rollback LAB SERVICE``: a rolling update
of a service, as ``docker service update`` and ``docker service rollback`` do.

The command records the new spec; the lab's manager replaces the tasks (see
:mod:`netlab.manager.updater`). Without ``--detach`` it follows the update's
events until it settles: exit 0 when it completed, 1 when it paused or was
rolled back (as ``docker service update`` fails then).
"""

from __future__ import annotations

import time

import click

from netlab import tasks
from netlab.cli import common
from netlab.cli.params import GoDuration, Ratio
from netlab.errors import BadInput, NetlabError
from netlab.model import normalized_image
from netlab.updates import SETTLED, UpdateStatus


class Parallelism(click.ParamType):
    """How many tasks at once: 0 (all) or more, in ASCII digits."""

    name = "count"

    def convert(self, value, param, ctx) -> int:
        text = str(value)
        if not (text.isascii() and text.isdigit()) or int(text) > 100_000:
            raise BadInput(f"--update-parallelism: {value!r} is not a number of tasks (hint: "
                           "--update-parallelism 1; 0 updates every task at once)")
        return int(text)

    def get_metavar(self, param, ctx=None) -> str:
        return "N"


def _env(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, eq, val = item.partition("=")
        if not eq or not key or not (key[0].isalpha() or key[0] == "_") or \
                not all(c.isalnum() or c == "_" for c in key) or not key.isascii():
            raise BadInput(f"--env: {item!r} is not NAME=VALUE (hint: --env COLOR=blue)")
        out[key] = val
    return out


def _image(value: str | None) -> str | None:
    if value is None:
        return None
    image, why = normalized_image(value)
    if image is None:
        raise BadInput(f"--image: {why} (hint: --image web:2)")
    return image


def _follow(lab: str, service: str, started: UpdateStatus, detach: bool) -> None:
    """Print the update's events until it settles (or at once with ``detach``)."""
    from netlab.manager.events import parse_lines, render
    from netlab.manager.process import events_name
    st = common.store()
    if detach:
        click.echo(f"  netlab events {lab} --follow   (the update goes on in the manager)")
        return
    seen = len(parse_lines(st.read_file(lab, events_name(lab)) or b""))
    while True:
        evs = parse_lines(st.read_file(lab, events_name(lab)) or b"")
        for e in evs[seen:]:
            if (e.kind == "service" and e.subject == service) or \
                    (e.kind == "task" and e.subject.partition(".")[0] == service):
                click.echo(render(e))
        seen = len(evs)
        state = st.require(lab)
        now = state.updates.get(service)
        if now is None or (now.state in SETTLED and now.started >= started.started):
            break
        if not state.manager_pid:
            raise NetlabError(f"the manager of {lab} stopped; the update waits for it "
                              f"(hint: netlab up {state.scenario} starts it again)")
        time.sleep(0.2)
    assert now is not None
    click.echo(f"{service}: {now.state.replace('_', ' ')}: {now.message}")
    ok = "rollback_completed" if started.rollback else "completed"
    if now.state != ok:
        raise NetlabError(f"{service}: the {'rollback' if started.rollback else 'update'} did "
                          f"not complete ({now.state.replace('_', ' ')}; netlab events {lab})")


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("service")
@click.option("--image", default=None, metavar="NAME:TAG",
              help="The image the new tasks run; its tag is the version their replies report.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE",
              help="Add or change an environment variable (repeat for more); "
                   "NETLAB_APP_HEALTH=fail makes a version that fails its health check.")
@click.option("--update-parallelism", type=Parallelism(), default=None,
              help="Tasks updated at once (0: all).")
@click.option("--update-delay", type=GoDuration(), default=None, help="Wait between batches.")
@click.option("--update-order", type=click.Choice(["stop-first", "start-first"]), default=None,
              help="stop-first: the old task stops, then the new one starts; start-first: "
                   "the new one starts beside it, and the old one stops once it runs.")
@click.option("--update-failure-action", type=click.Choice(["pause", "continue", "rollback"]),
              default=None, help="What a failed update does.")
@click.option("--update-monitor", type=GoDuration(), default=None,
              help="How long each new task is watched for failure.")
@click.option("--update-max-failure-ratio", type=Ratio(), default=None,
              help="The share of failed tasks an update tolerates (0 to 1).")
@click.option("--detach", "-d", is_flag=True,
              help="Return at once; the manager carries the update out.")
def update(lab: str, service: str, image: str | None, env: tuple[str, ...],
           update_parallelism: int | None, update_delay: float | None,
           update_order: str | None, update_failure_action: str | None,
           update_monitor: float | None, update_max_failure_ratio: float | None,
           detach: bool) -> None:
    """Update SERVICE of LAB: its tasks are replaced by tasks of the new spec, batch by
    batch, as Swarm's rolling updater does (see ``netlab events LAB``)."""
    config = {k: v for k, v in (("parallelism", update_parallelism), ("delay", update_delay),
                                ("order", update_order),
                                ("failure_action", update_failure_action),
                                ("monitor", update_monitor),
                                ("max_failure_ratio", update_max_failure_ratio)) if v is not None}
    status = tasks.begin_update(lab, service, common.store(), _image(image), _env(env), config,
                                common.host())
    if status is None:
        click.echo(f"{service}: nothing to update (every task runs this spec)")
        return
    click.echo(f"{service}: updating from {status.previous_image}")
    _follow(lab, service, status, detach)


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.argument("service")
@click.option("--detach", "-d", is_flag=True,
              help="Return at once; the manager carries the rollback out.")
def rollback(lab: str, service: str, detach: bool) -> None:
    """Roll SERVICE of LAB back to its previous spec, with its rollback_config."""
    status = tasks.begin_rollback(lab, service, common.store(), common.host())
    click.echo(f"{service}: rolling back to {common.store().require(lab).model.service(service).image}")
    _follow(lab, service, status, detach)
