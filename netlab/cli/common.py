"""Helpers shared by the CLI verbs: loading a scenario, finding a lab, the store.

Every verb imports this module, so it imports Click and netlab's errors only;
the store, the lifecycle, the scenario loader and the plan builder are
imported by the helper that uses them (``netlab --help`` and ``netlab exec``
start without them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from netlab.errors import BadInput

if TYPE_CHECKING:
    from netlab import lifecycle
    from netlab.model import Lab
    from netlab.plan.types import Plan
    from netlab.state import LabState, StateStore


JSON_ERRORS = "netlab.json_errors"


def json_option(help_text: str = "One JSON document."):
    """The ``--json`` flag; with it, an error is also printed as a JSON document on stdout."""
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.meta[JSON_ERRORS] = True  # ctx.meta is shared with the group's context
        return value
    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember,
                        help=help_text)


def store() -> StateStore:
    """The state store at $NETLAB_STATE_DIR (default /run/netlab); raises BadInput
    (exit 2) naming NETLAB_STATE_DIR when it is empty or relative."""
    from netlab.state import StateStore
    return StateStore()


def host() -> lifecycle.Host:
    """What ``up`` and ``down`` ask of the machine (tests replace it with fakes)."""
    from netlab import lifecycle
    return lifecycle.Host()


def lab_name(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for a LAB argument or a --name option: the name, checked
    before it touches any path; raises BadInput (exit 2) naming the parameter."""
    if value is None:
        return None
    from netlab.state import check_lab
    what = param.opts[0] if isinstance(param, click.Option) else "LAB"
    return check_lab(value, what)


def load(scenario: str, name: str | None = None) -> Lab:
    """The validated lab of ``scenario``; raises ScenarioError (exit 2)."""
    from netlab.scenario import load_lab
    return load_lab(scenario, name_override=name)


def lab_state(st: StateStore, lab: str | None) -> LabState:
    """The state of ``lab`` (or of the only lab there is).

    Raises BadInput for an invalid or unknown lab name, UnsafeStore for an
    unsafe store and CorruptState (both BadInput) for a corrupt state file.
    """
    if lab is None:
        labs = st.labs()
        if len(labs) != 1:
            raise BadInput("LAB: name the lab " + (
                f"(hint: one of {', '.join(labs)})" if labs else "(hint: no lab is up; netlab up SCENARIO)"))
        lab = labs[0]
    return st.require(lab)


def plan_from_state(state: LabState) -> Plan:
    """The lab's plan, rebuilt from its state alone (model, allocations, the tasks
    still starting and the peers each node holds failed), never from its scenario
    file: the same state always gives the same plan."""
    from netlab.lifecycle import hidden, unbound, weighted
    from netlab.plan.build import build_plan
    plan = build_plan(state.model, state.allocations)
    # A task still starting (its health check not yet passed) is at weight 0, and
    # one on a node that a node's NetworkDB holds failed is not in that node's IPVS.
    plan = weighted(plan, unbound(state.actual_tasks, state.model, state.allocations), 0)
    return hidden(plan, state.model, state.allocations, state.gossip_failed)


def progress(message: str) -> None:
    click.echo(f"  … {message}", err=True)
