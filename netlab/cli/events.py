"""``netlab events LAB [--follow] [--json]``: each step the lab's manager took, with its time."""

from __future__ import annotations

import json
import time

import click

from netlab.cli import common

#: How often --follow looks for new lines (and whether the lab is still up).
FOLLOW_POLL = 0.2


@click.command()
@click.argument("lab", callback=common.lab_name)
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new events until interrupted or the lab is down.")
@common.json_option("One JSON document per event, one per line.")
def events(lab: str, follow: bool, as_json: bool) -> None:
    """Print LAB's events: heartbeats missed, nodes down and ready, tasks shut down and
    restarted, the manager started and stopped; times are UTC."""
    from netlab.manager.events import parse_lines, render
    from netlab.manager.process import events_name
    st = common.store()
    state = common.lab_state(st, lab)
    name = events_name(state.lab)
    if not as_json:
        click.echo(f"events of lab {state.lab} (time scale {state.time_scale:g}; times UTC)")
    seen = 0
    while True:
        raw = st.read_file(state.lab, name) or b""
        whole = raw[: raw.rfind(b"\n") + 1]
        for e in parse_lines(whole[seen:]):
            click.echo(json.dumps(e.to_dict()) if as_json else render(e))
        seen = len(whole)
        if not follow:
            return
        if st.load(state.lab) is None:
            return       # the lab is down: nothing more will come
        try:
            time.sleep(FOLLOW_POLL)
        except KeyboardInterrupt:
            return
