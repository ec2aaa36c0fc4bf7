"""``netlab validate SCENARIO``: check a scenario file without touching the kernel."""

from __future__ import annotations

import json
from pathlib import Path

import click

from netlab.cli.common import json_option
from netlab.errors import BadInput
from netlab.scenario import ScenarioError, load_lab


@click.command("validate")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--name", "name", metavar="LAB", default=None,
              help="Lab name to check instead of the file's name: key.")
@json_option("One JSON document: the counts, or every problem under issues.")
@click.pass_context
def validate(ctx: click.Context, scenario: Path, name: str | None, as_json: bool) -> None:
    """Check SCENARIO and report every problem in it at once.

    Prints a one-line summary and exits 0 when the scenario is usable;
    otherwise prints each problem on its own line to stderr
    (FILE:LINE:COL: FIELD: message (hint: ...)) and exits 2; with --json,
    also one JSON document on stdout. Needs no root.
    """
    try:
        lab = load_lab(scenario, name_override=name)
    except ScenarioError as err:
        if as_json:
            click.echo(json.dumps(err.details(), indent=2))
        click.echo(err.format(), err=True)
        ctx.exit(BadInput.exit_code)
    if as_json:
        click.echo(json.dumps({"ok": True, "file": str(scenario), "lab": lab.name,
                               "nodes": len(lab.nodes), "services": len(lab.services),
                               "tasks": len(lab.tasks)}, indent=2))
        return
    click.echo(f"ok: {scenario}: {len(lab.nodes)} nodes, {len(lab.services)} services, "
               f"{len(lab.tasks)} tasks")
