"""The ``netlab`` command: a thin Click group; each verb family is its own module,
imported only when its verb runs (Click's lazily loading group), so ``netlab
--help`` and ``netlab exec`` start without pyroute2, scapy, docker or the plan
builder."""

from __future__ import annotations

import importlib
import json
import resource
import sys
from dataclasses import dataclass

import click

from netlab.cli import usage
from netlab.cli.common import JSON_ERRORS
from netlab.errors import NetlabError


@dataclass(frozen=True)
class Verb:
    """Where a verb's command lives (``module:attribute``) and its short help,
    kept here so ``netlab --help`` lists every verb without importing any."""

    module: str
    attribute: str
    help: str   # the first paragraph of the command's docstring


VERBS: dict[str, Verb] = {
    "validate": Verb("netlab.cli.validate", "validate",
                     "Check SCENARIO and report every problem in it at once."),
    "plan": Verb("netlab.cli.lab", "plan",
                 "Print the desired kernel state of SCENARIO, per namespace (no root needed)."),
    "up": Verb("netlab.cli.lab", "up", "Build the lab of SCENARIO, or converge it if it is up."),
    "down": Verb("netlab.cli.lab", "down",
                 "Remove everything LAB owns (namespaces, processes, state); succeeds on "
                 "leftovers."),
    "status": Verb("netlab.cli.status", "status",
                   "Nodes, services, tasks, the netns of each target, and drift against the plan."),
    "scale": Verb("netlab.cli.scale", "scale",
                  "Scale services of LAB to N replicas each and converge every node (from its "
                  "state)."),
    "node": Verb("netlab.cli.node", "node",
                 "Fail, bring back, drain or reactivate NODE of LAB; its tasks restart elsewhere "
                 "as Swarm's do (none move back on up or active)."),
    "update": Verb("netlab.cli.update", "update",
                   "Update SERVICE of LAB: its tasks are replaced by tasks of the new spec, batch "
                   "by batch, as Swarm's rolling updater does (see netlab events LAB)."),
    "rollback": Verb("netlab.cli.update", "rollback",
                     "Roll SERVICE of LAB back to its previous spec, with its rollback_config."),
    "task": Verb("netlab.cli.task", "task",
                 "Make TASK of LAB fail: its app exits (kill), stops answering (hang), fails its "
                 "health check (unhealthy), or answers again (healthy)."),
    "events": Verb("netlab.cli.events", "events",
                   "Print LAB's events: heartbeats missed, nodes down and ready, tasks shut down "
                   "and restarted, the manager started and stopped; times are UTC."),
    "exec": Verb("netlab.cli.lab", "exec_",
                 "Run CMD inside TARGET's namespace: node1, node1/ingress_sbox, node1/ov-ingress, "
                 "hello-a.1, client or lan."),
    "curl": Verb("netlab.cli.curl", "curl",
                 "HTTP requests from the client namespace to NODE's published PORT, or with --from "
                 "from a task to a service by name (its VIP, or its tasks for dnsrr); one line per "
                 "reply."),
    "load": Verb("netlab.cli.load", "load",
                 "Send HTTP GETs to TARGET (NODE:PORT, or SERVICE:PORT from a task) from the "
                 "client or a task, C at a time, until N requests or S seconds; report rate, "
                 "latency, errors, replies per task, and the failures during and after each change "
                 "of the lab (scale, node) that overlapped."),
    "trace": Verb("netlab.cli.trace", "trace",
                  "Send one real request to NODE's published PORT (or, --from a task, to a service "
                  "by name or VIP, east-west) and show every hop, there and back."),
    "graph": Verb("netlab.cli.lab", "graph",
                  "Draw the plumbing of a lab (or of a scenario file): namespaces, bridges, "
                  "veths, VXLAN."),
    "vm": Verb("netlab.cli.vm", "vm",
               "Run COMMAND as root inside a throwaway VM whose kernel has IPVS."),
    "swarm": Verb("netlab.cli.swarm", "swarm",
                  "A real Docker Swarm: export it as a scenario, diff a node against a plan."),
}


class NetlabGroup(click.Group):
    """The ``netlab`` group: loads a verb's module only when the verb runs, and maps
    errors to one line on stderr and an exit code.

    A NetlabError exits with its own code (1 failure, 2 bad input, 3 missing
    feature); a Click usage error (a missing argument, a bad choice or range,
    an unknown option) exits 2. When the command has ``--json`` and it is on
    the command line, the error is also printed on stdout as one JSON document
    (``{"error", "field", "hint", "exit_code"}``).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*VERBS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The verb's command, importing its module now; None for an unknown verb."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        verb = VERBS.get(cmd_name)
        if verb is None:
            return None
        command = getattr(importlib.import_module(verb.module), verb.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{verb.module}.{verb.attribute} is not a Click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The Commands section of ``netlab --help`` from :data:`VERBS`, as Click
        would write it from the commands themselves, without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, (self.commands.get(n) or click.Command(n, help=VERBS[n].help))
                 .get_short_help_str(limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[usage.RAW_ARGS] = tuple(args)   # --json may follow a bad parameter
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:
            usage.fail(usage.document(err), as_json=False)   # the group has no --json

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NetlabError as err:
            if ctx.meta.get(JSON_ERRORS):
                click.echo(json.dumps(err.details(), indent=2))
            click.echo(f"Error: {err}", err=True)
            sys.exit(err.exit_code)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:
            if err.ctx is None:   # Click's parser says "requires an argument" without one
                err.ctx = self._verb_context(ctx)
            usage.fail(usage.document(err),
                       usage.asks_for_json(err.ctx, ctx.meta.get(usage.RAW_ARGS, ())))

    def _verb_context(self, ctx: click.Context) -> click.Context:
        """A context of the verb being run (for its name and its --json), else ``ctx``."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        return click.Context(command, info_name=name, parent=ctx) if command else ctx


@click.group(cls=NetlabGroup)
@click.version_option(package_name="netlab")
def cli() -> None:
    """Docker Swarm's ingress routing mesh, rebuilt in network namespaces."""


def raise_open_files_limit() -> None:
    """Lift this process's soft limit on open files to its hard limit.

    Applying a plan holds a few descriptors per namespace at once (netlink
    sockets, namespace files), so a lab of a few hundred namespaces passes
    the usual soft limit of 1024 and ``scale`` failed with "Too many open
    files". dockerd's unit sets ``LimitNOFILE=infinity`` for the same reason.
    The hard limit is left alone; a refusal leaves the soft one as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def main() -> None:
    raise_open_files_limit()
    cli(prog_name="netlab")
