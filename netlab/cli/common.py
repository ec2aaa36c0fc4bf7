"""Helpers shared by the CLI verbs: loading a scenario, finding a lab, the store."""

from __future__ import annotations

import click

from netlab.errors import BadInput
from netlab.model import Lab
from netlab.scenario import load_lab
from netlab.state import LabState, StateStore


def store() -> StateStore:
    return StateStore()


def load(scenario: str, name: str | None = None) -> Lab:
    """The validated lab of ``scenario``; raises ScenarioError (exit 2)."""
    return load_lab(scenario, name_override=name)


def lab_state(st: StateStore, lab: str | None) -> LabState:
    """The state of ``lab`` (or of the only lab there is); raises BadInput."""
    if lab is None:
        labs = st.labs()
        if len(labs) != 1:
            raise BadInput("LAB: name the lab " + (
                f"(hint: one of {', '.join(labs)})" if labs else "(hint: no lab is up; netlab up SCENARIO)"))
        lab = labs[0]
    state = st.load(lab)
    if state is None:
        known = st.labs()
        raise BadInput(f"LAB: no lab named {lab!r} is up (hint: "
                       + (f"known labs: {', '.join(known)})" if known else "netlab up SCENARIO)"))
    return state


def lab_from_state(state: LabState) -> Lab:
    """Rebuild the model the lab was brought up from (its scenario file, as named)."""
    return load_lab(state.scenario, name_override=state.lab)


def progress(message: str) -> None:
    click.echo(f"  … {message}", err=True)
