"""The ``netlab`` group loads a verb's module only when the verb runs: ``--help`` and
``exec`` import neither pyroute2, scapy, the docker SDK, python-iptables nor rich,
and ``--help`` still lists every verb with the short help of its command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from netlab.cli.main import VERBS, cli

REPO = Path(__file__).resolve().parents[2]
SEED = str(REPO / "scenarios" / "hello-a.yaml")
HEAVY = ("pyroute2", "scapy", "docker", "iptc", "rich")


def _heavy_modules_after(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; the heavy packages and the netlab modules
    it left in sys.modules (the code prints nothing else on stdout)."""
    probe = code + (
        "\nimport json, sys\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
        "mine = [m for m in sys.modules if m.startswith('netlab')]\n"
        "print(json.dumps({'heavy': sorted(heavy), 'netlab': sorted(mine)}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_the_cli_pulls_in_no_heavy_package():
    seen = _heavy_modules_after("import netlab.cli.main")
    assert seen["heavy"] == []
    assert "netlab.cli.main" in seen["netlab"]
    for module in ("netlab.lifecycle", "netlab.plan.build", "netlab.kernel.netns",
                   "netlab.cli.lab", "netlab.cli.trace", "netlab.state"):
        assert module not in seen["netlab"], module


def test_help_imports_no_verb_module():
    seen = _heavy_modules_after(
        "from click.testing import CliRunner\n"
        "from netlab.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0 and 'vm ' in r.output, r.output\n")
    assert seen["heavy"] == []
    assert not [m for m in seen["netlab"] if m.startswith("netlab.cli.")
                and m not in ("netlab.cli.main", "netlab.cli.common", "netlab.cli.usage")]


def test_exec_reads_the_state_and_execs_without_heavy_packages(tmp_path):
    # A state file of lab hc-x (from the seed), made here; the fresh interpreter runs exec
    # up to the exec of ip netns exec, which is replaced by a recorder, as is the
    # namespace check (no namespace exists here).
    from netlab import ipam, lifecycle, state
    from netlab.scenario import load_lab
    lab = load_lab(SEED, name_override="hc-x")
    state.StateStore(tmp_path).save(lifecycle.state_for(lab, ipam.allocate(lab), SEED))
    seen = _heavy_modules_after(
        "import os\n"
        f"os.environ['NETLAB_STATE_DIR'] = {str(tmp_path)!r}\n"
        "from click.testing import CliRunner\n"
        "from netlab.cli.main import cli\n"
        "from netlab.kernel import netnsdir\n"
        "ran = []\n"
        "netnsdir.exists = lambda ns: True\n"
        "netnsdir.exec_in = lambda ns, cmd: ran.append((ns, list(cmd)))\n"
        "r = CliRunner().invoke(cli, ['exec', 'hc-x', 'node1', 'true'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert ran == [('nl-hc-x.node1', ['true'])], ran\n")
    assert seen["heavy"] == []
    for module in ("netlab.lifecycle", "netlab.plan.build", "netlab.kernel.netns",
                   "netlab.model", "netlab.codec", "netlab.ipam"):
        assert module not in seen["netlab"], module
    assert "netlab.cli.lab" in seen["netlab"] and "netlab.kernel.netnsdir" in seen["netlab"]


def test_help_lists_every_verb_as_the_commands_themselves_would():
    ctx = cli.make_context("netlab", ["--help"], resilient_parsing=True)
    names = cli.list_commands(ctx)
    assert names == sorted(VERBS)
    eager = click.Group("netlab", help=cli.help, params=cli.params)
    for name in names:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, name
        eager.add_command(command)
    lazy_help = CliRunner().invoke(cli, ["--help"], prog_name="netlab")
    eager_help = CliRunner().invoke(eager, ["--help"], prog_name="netlab")
    assert lazy_help.exit_code == 0 and lazy_help.output == eager_help.output
    for name in names:
        assert f"\n  {name} " in lazy_help.output, name


def test_an_unknown_verb_is_not_a_command():
    ctx = cli.make_context("netlab", ["--help"], resilient_parsing=True)
    assert cli.get_command(ctx, "nosuch") is None
    assert cli.get_command(ctx, "exec_") is None


def test_version_still_prints_the_version():
    r = CliRunner().invoke(cli, ["--version"], prog_name="netlab")
    assert r.exit_code == 0 and r.output.startswith("netlab, version ")
