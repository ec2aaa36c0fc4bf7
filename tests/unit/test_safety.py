"""No command can be turned against the machine (no root needed).

The state store lives in a scratch directory (``<tmp>/run/netlab``) with
files of an innocent bystander beside it (``<tmp>/etc``); ``down`` talks to a
fake host, so its namespace sweeping is seen without a kernel. Every hostile
case checks the exit code, the message, and that nothing outside the store
changed.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import ipam, lifecycle, safefile, state
from netlab.cli import common
from netlab.cli.main import cli
from netlab.errors import NetlabError
from netlab.kernel import features, netns, xtables
from netlab.plan import names
from netlab.scenario import load_lab

from tests.unit.fakes import FakeHost

REPO = Path(__file__).resolve().parents[2]
SEED = str(REPO / "scenarios" / "hello-a.yaml")


@dataclass
class World:
    tmp: Path
    store: state.StateStore
    host: FakeHost

    def run(self, *args: str):
        return CliRunner().invoke(cli, list(args))

    def up(self, lab: str, pid: int | None = None) -> list[str]:
        """A lab as ``up`` leaves it: its state file, namespaces and supervisor (all fake)."""
        model = load_lab(SEED, name_override=lab)
        st = lifecycle.state_for(model, ipam.allocate(model), SEED)
        st.supervisor_pid, st.complete = pid, True
        self.store.save(st)
        self.host.namespaces |= set(st.netns)
        if pid:
            self.host.supervisors[pid] = str(self.store.root / f"{lab}.endpoints.json")
        for name in (f"{lab}.log", f"{lab}.endpoints.json", f"{lab}.endpoints.json.status"):
            (self.store.root / name).write_text("x")
        return st.netns

    def state_file(self, lab: str) -> Path:
        return self.store.root / f"{lab}.json"

    def corrupt_copies(self, lab: str) -> list[Path]:
        return sorted(self.store.root.glob(f"{lab}.json.corrupt-*"))


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    root = tmp_path / "run" / "netlab"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "x.json").write_text('{"precious": true}')
    (tmp_path / "etc" / "x.conf").write_text("precious")
    (tmp_path / "etc" / "x.d").mkdir()
    (tmp_path / "etc" / "x.d" / "file").write_text("precious")
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    st = state.StateStore(root)
    fake = FakeHost()
    monkeypatch.setattr(common, "store", lambda: st)
    monkeypatch.setattr(common, "host", fake.host)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")   # graph reads a scenario path relative to here
    return World(tmp_path, st, fake)


def snapshot(top: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every path under ``top`` (but ``skip``) with its type, mode and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if skip and (p == skip or skip in p.parents):
                continue
            st = os.lstat(p)
            body = p.read_bytes() if stat.S_ISREG(st.st_mode) else (
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
            out[str(p.relative_to(top))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), body)
    return out


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in result.output, result.output


# -- lab names from the command line --------------------------------------------------------

HOSTILE = ["../../etc/x", "../etc/x", "*", "/", "..", ".", "x/../../etc/x", "hello\n", "a" * 21,
           "x.json", "x-", "A", "a b", "é"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_down_of_a_hostile_name_is_refused_before_any_path(world, bad):
    world.up("a")
    world.up("b", pid=4242)
    before = snapshot(world.tmp)
    r = world.run("down", bad)
    assert_one_line_error(r, "LAB", "is not a lab name", "hint")
    assert snapshot(world.tmp) == before
    assert world.host.torn_down == [] and world.host.stopped == []


@pytest.mark.parametrize("verb", [["status"], ["exec"], ["graph"], ["trace"], ["curl"]])
@pytest.mark.parametrize("bad", ["../../etc/x", "*", "/"])
def test_every_verb_refuses_a_hostile_lab_name(world, verb, bad):
    world.up("a")
    before = snapshot(world.tmp)
    extra = {"exec": ["node1", "--", "true"], "trace": ["node2:5000"], "curl": ["node2:5000"]}
    r = world.run(*verb, bad, *extra.get(verb[0], []))
    # graph takes a path too: "../../etc/x" and "/" are read (and refused) as scenario paths
    assert_one_line_error(r, "is not a lab name" if verb != ["graph"] else "hint")
    assert snapshot(world.tmp) == before


@pytest.mark.parametrize("verb", ["up", "plan"])
@pytest.mark.parametrize("bad", ["../x", "a/b", "x\n", "*"])
def test_name_option_is_checked_before_anything(world, monkeypatch, verb, bad):
    def forbidden(*_a, **_k):
        raise AssertionError("touched the kernel")
    monkeypatch.setattr(features, "require_lab_features", forbidden)
    monkeypatch.setattr(netns, "create", forbidden)
    before = snapshot(world.tmp)
    r = world.run(verb, SEED, "--name", bad)
    assert_one_line_error(r, "--name", "is not a lab name")
    assert snapshot(world.tmp) == before
    assert world.host.kernel.applied == [] and world.host.started == []


def test_the_store_refuses_an_invalid_name_itself(world):
    for bad in HOSTILE:
        with pytest.raises(NetlabError, match="not a lab name"):
            world.store.load(bad)
        with pytest.raises(NetlabError, match="not a lab name"):
            world.store.remove(bad)
        with pytest.raises(NetlabError, match="not a lab name"):
            lifecycle.down(bad, world.store, world.host.host())


# -- down: exactly what the lab owns --------------------------------------------------------

def test_down_removes_the_lab_and_only_the_lab(world):
    a = world.up("hello", pid=11)
    b = world.up("hello-a", pid=12)
    for name in ("hello.conf", "hello.d", "hello-a.log.1", "hellox.log"):
        (world.store.root / name).write_text("not netlab's")
    for lab in ("hello", "hello-a"):     # the rules status read last (netlab.savecache)
        (world.store.root / f"{lab}.iptables-saves").write_text("{}")
    outside = snapshot(world.tmp, skip=world.store.root)
    r = world.run("down", "hello")
    assert r.exit_code == 0, r.output
    assert f"lab hello is down: {len(a)} namespaces removed, task apps stopped, state removed" \
        in r.output
    assert sorted(world.host.torn_down) == sorted(a)
    assert world.host.torn_down[-1] == names.lan_ns("hello")   # the LAN goes last
    assert world.host.namespaces == set(b) and world.host.stopped == [11]
    left = sorted(p.name for p in world.store.root.iterdir())
    assert left == sorted(["hello.conf", "hello.d", "hello-a.log.1", "hellox.log", "hello-a.json",
                           "hello-a.log", "hello-a.endpoints.json",
                           "hello-a.endpoints.json.status", "hello-a.iptables-saves"])
    assert snapshot(world.tmp, skip=world.store.root) == outside


def test_down_without_state_sweeps_the_prefix_and_finds_the_supervisor(world):
    owned = world.up("x", pid=77)
    world.state_file("x").unlink()
    world.host.namespaces |= {"nl-xy.node1", "nl-x-node1", "nl-other.x"}
    r = world.run("down", "x")
    assert r.exit_code == 0, r.output
    assert sorted(world.host.torn_down) == sorted(owned)
    assert world.host.namespaces == {"nl-xy.node1", "nl-x-node1", "nl-other.x"}
    assert world.host.stopped == [77]


def test_down_of_an_unknown_lab_exits_2_naming_the_known_labs(world):
    world.up("a")
    world.up("b")
    before = snapshot(world.tmp)
    r = world.run("down", "nolab")
    assert_one_line_error(r, "no lab named 'nolab'", "hint: known labs: a, b")
    assert snapshot(world.tmp) == before and world.host.torn_down == []


def test_down_of_an_unknown_lab_with_no_lab_at_all(world):
    r = world.run("down", "nolab")
    assert_one_line_error(r, "no lab named 'nolab'", "no lab is up")


def test_down_needs_root(world):
    world.up("a")
    world.host.root = False
    r = world.run("down", "a")
    assert_one_line_error(r, "root")
    assert world.state_file("a").exists() and world.host.torn_down == []


@pytest.mark.parametrize("planted", ["/etc/passwd", "../x", "../../etc/passwd", "nl-x./etc",
                                     "nl-other.node1", "nl-x..", "nl-x.a/../../b"])
def test_a_planted_state_file_cannot_aim_down_elsewhere(world, planted):
    world.up("x")
    world.host.namespaces.add("nl-other.node1")
    doc = json.loads(world.state_file("x").read_text())
    doc["netns"].append(planted)
    world.state_file("x").write_text(json.dumps(doc))
    outside = snapshot(world.tmp, skip=world.store.root)
    r = world.run("down", "x")
    assert r.exit_code == 0, r.output
    assert "is corrupt" in r.output and "moved aside" in r.output
    assert planted not in world.host.torn_down
    assert all(names.owned_by("x", n) for n in world.host.torn_down)
    assert "nl-other.node1" in world.host.namespaces
    assert snapshot(world.tmp, skip=world.store.root) == outside
    assert len(world.corrupt_copies("x")) == 1   # kept, not deleted


def test_status_of_a_planted_state_file_is_refused(world):
    world.up("x")
    doc = json.loads(world.state_file("x").read_text())
    doc["targets"]["node1"] = "/etc/passwd"
    world.state_file("x").write_text(json.dumps(doc))
    r = world.run("exec", "x", "node1", "--", "true")
    assert_one_line_error(r, "is corrupt", "targets['node1']", "/etc/passwd", "netlab down x")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "..", ".", "", "a/b", "a\0b", "x" * 256])
def test_netns_paths_are_confined_to_the_netns_directory(bad):
    for call in (netns.path, netns.exists, netns.remove, netns.create):
        with pytest.raises(netns.NetnsError, match="not a plain name"):
            call(bad)


def test_netns_path_of_a_plain_name():
    assert netns.path("nl-x.node1") == "/var/run/netns/nl-x.node1"


# -- corrupt state files --------------------------------------------------------------------

def _write(path: Path, content) -> None:
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())


def _valid_doc(world, lab: str) -> dict:
    world.up(lab)
    return json.loads(world.state_file(lab).read_text())


def _v(doc: dict) -> dict:
    """``doc`` as the current version of the state file."""
    return {"version": state.VERSION, **doc}


CORRUPT = {
    "array": ([], "JSON array, not an object"),
    "unknown-key": ({"lab": "x", "scenario": SEED, "extra": 1}, "unknown key 'extra'"),
    "old-format": ({"lab": "x", "scenario": SEED, "netns": ["nl-x.node1"], "complete": True},
                   "it is from another netlab (no 'version'; this one reads version 2)"),
    "future": ({"version": 99, "lab": "x", "scenario": SEED}, "version '99'"),
    "no-model": (_v({"lab": "x", "scenario": SEED}), "'model' is missing"),
    "binary": (b"\xff\xfe\x00\x01binary\x00junk", "not JSON"),
    "empty": (b"", "not JSON"),
    "nan": (b'{"lab": "x", "scenario": "s", "supervisor_pid": NaN}', "not JSON"),
    "deep": (b"[" * 100000 + b"]" * 100000, "not JSON"),
    "no-scenario": (_v({"lab": "x"}), "'scenario' is missing"),
    "other-lab": (_v({"lab": "y", "scenario": SEED}), "'lab' is 'y'"),
    "netns-string": (_v({"lab": "x", "scenario": SEED, "netns": "nl-x.a"}), "'netns' must be a list"),
    "netns-int": (_v({"lab": "x", "scenario": SEED, "netns": [1]}), "netns[0]"),
    "pid-string": (_v({"lab": "x", "scenario": SEED, "supervisor_pid": "12"}), "supervisor_pid"),
    "pid-bool": (_v({"lab": "x", "scenario": SEED, "supervisor_pid": True}), "supervisor_pid"),
    "pid-negative": (_v({"lab": "x", "scenario": SEED, "supervisor_pid": -1}), "supervisor_pid"),
    "complete-string": (_v({"lab": "x", "scenario": SEED, "complete": "yes"}), "'complete'"),
    "lan-ip": (_v({"lab": "x", "scenario": SEED, "lan": {"node1": "not-an-ip"}}), "lan['node1']"),
    "targets-list": (_v({"lab": "x", "scenario": SEED, "targets": []}), "'targets' must be an object"),
    "scenario-int": (_v({"lab": "x", "scenario": 5}), "'scenario'"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
@pytest.mark.parametrize("verb", ["status", "exec", "graph", "trace", "curl"])
def test_a_corrupt_state_is_one_line_and_moved_aside(world, kind, verb):
    content, reason = CORRUPT[kind]
    world.store.root.mkdir(parents=True, mode=0o700)
    _write(world.state_file("x"), content)
    outside = snapshot(world.tmp, skip=world.store.root)
    extra = {"exec": ["node1", "--", "true"], "trace": ["node2:5000"], "curl": ["node2:5000"]}
    r = world.run(verb, "x", *extra.get(verb, []))
    assert_one_line_error(r, f"{world.state_file('x')} is corrupt", reason,
                          "moved aside to", "hint: netlab down x")
    assert not world.state_file("x").exists()
    [aside] = world.corrupt_copies("x")
    assert aside.read_bytes() == (content if isinstance(content, bytes)
                                  else json.dumps(content).encode())
    assert snapshot(world.tmp, skip=world.store.root) == outside
    # Once moved aside the lab is simply unknown.
    assert_one_line_error(world.run("status", "x"), "no lab named 'x'")


def _plant(world, kind: str) -> str:
    """A non-file at x.json; returns the reason expected in the message."""
    world.store.root.mkdir(parents=True, mode=0o700, exist_ok=True)
    path = world.state_file("x")
    if kind == "directory":
        path.mkdir()
        (path / "inside").write_text("kept")
        return "it is a directory"
    if kind == "fifo":
        os.mkfifo(path)
        return "not a regular file"
    if kind == "symlink":
        path.symlink_to(world.tmp / "etc" / "x.json")
        return "symbolic link"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_a_state_path_that_is_not_a_file_is_moved_aside(world, kind):
    reason = _plant(world, kind)
    outside = snapshot(world.tmp, skip=world.store.root)
    r = world.run("status", "x")
    assert_one_line_error(r, "is corrupt", reason, "moved aside")
    assert not os.path.lexists(world.state_file("x"))
    assert len(world.corrupt_copies("x")) == 1
    assert snapshot(world.tmp, skip=world.store.root) == outside


def test_a_state_file_over_the_size_cap_is_corrupt(world, monkeypatch):
    _valid_doc(world, "x")
    monkeypatch.setattr(state, "MAX_BYTES", world.state_file("x").stat().st_size - 1)
    r = world.run("status", "x")
    assert_one_line_error(r, "is corrupt", "larger than")


@pytest.mark.parametrize("kind", ["array", "binary", "unknown-key", "netns-int", "directory",
                                  "fifo", "symlink"])
def test_a_corrupt_state_never_blocks_down(world, kind):
    owned = world.up("x", pid=31)
    other = world.up("y", pid=32)
    world.state_file("x").unlink()
    if kind in CORRUPT:
        _write(world.state_file("x"), CORRUPT[kind][0])
    else:
        _plant(world, kind)
    outside = snapshot(world.tmp, skip=world.store.root)
    r = world.run("down", "y")          # another lab: never reads x.json
    assert r.exit_code == 0, r.output
    assert sorted(world.host.torn_down) == sorted(other) and world.host.stopped == [32]
    r = world.run("down", "x")          # the lab itself: sweeps nl-x. and its supervisor
    assert r.exit_code == 0, r.output
    assert "is corrupt" in r.output and "lab x is down" in r.output
    assert sorted(world.host.torn_down) == sorted(other + owned)
    assert world.host.stopped == [32, 31] and not world.host.namespaces
    assert len(world.corrupt_copies("x")) == 1
    assert snapshot(world.tmp, skip=world.store.root) == outside


def test_down_all_downs_valid_labs_reports_corrupt_ones_and_lists_strangers(world):
    a = world.up("a", pid=1)
    b = world.up("b")
    c = world.up("c", pid=3)
    _write(world.state_file("c"), [])
    stranger = {"nl-lost.node1", "nl-lost.lan", "nl-old-node1", "nl-foo"}
    world.host.namespaces |= stranger
    r = world.run("down", "--all")
    assert r.exit_code == 0, r.output
    assert "lab a is down" in r.output and "lab b is down" in r.output
    assert "c.json is corrupt" in r.output
    assert sorted(world.host.torn_down) == sorted(a + b)
    assert world.host.namespaces == stranger | set(c)
    assert world.host.stopped == [1] and 3 in world.host.supervisors
    [listed] = [line for line in r.output.splitlines() if line.startswith("left ")]
    for name in stranger | set(c):
        assert name in listed
    assert "netlab down c" in listed and "netlab down lost" in listed


def test_down_all_with_nothing(world):
    r = world.run("down", "--all")
    assert r.exit_code == 0 and "no lab with a valid state file here" in r.output


# -- up: a lab's namespaces without its state -----------------------------------------------

def test_up_refuses_namespaces_no_state_file_claims(world, monkeypatch):
    monkeypatch.setenv("NETLAB_IPTABLES", "legacy")
    monkeypatch.setattr(xtables, "find_tool", lambda name: f"/usr/sbin/{name}")
    world.host.namespaces |= {"nl-hello-a.node1", "nl-hello-a.lan", "nl-other.node1"}
    r = world.run("up", SEED)
    assert world.host.kernel.applied == [] and world.host.started == []
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.splitlines()[-1].startswith("Error: LAB: 2 namespaces named nl-hello-a.* "
                                                "exist that no state file of this store claims")
    assert "hint: netlab down hello-a" in r.output
    assert not world.state_file("hello-a").exists()


# -- writing the store -----------------------------------------------------------------------

def _a_state(lab: str = "x") -> state.LabState:
    model = load_lab(SEED, name_override=lab)
    return lifecycle.state_for(model, ipam.allocate(model), SEED)


def test_the_store_is_created_private_and_files_are_0600(world):
    world.store.save(_a_state())
    assert stat.S_IMODE(world.store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(world.state_file("x").stat().st_mode) == 0o600
    assert world.store.load("x") == _a_state()
    assert sorted(p.name for p in world.store.root.iterdir()) == ["x.json"]   # no temporary left


def test_a_symlink_planted_at_the_temporary_name_is_never_followed(world, monkeypatch):
    world.store.root.mkdir(parents=True, mode=0o700)
    victim = world.tmp / "etc" / "passwd"
    tokens = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(safefile.secrets, "token_hex", lambda _n: next(tokens))
    planted = world.store.root / f".x.json.{'0' * 16}.tmp"
    planted.symlink_to(victim)
    for old_name in ("x.tmp", ".x.json.tmp", "x.json.tmp"):   # fixed names of old
        (world.store.root / old_name).symlink_to(victim)
    before = victim.read_bytes()
    world.store.save(_a_state())
    assert victim.read_bytes() == before
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert world.store.load("x") == _a_state()


def test_when_every_temporary_name_is_taken_save_fails_cleanly(world, monkeypatch):
    world.store.root.mkdir(parents=True, mode=0o700)
    victim = world.tmp / "etc" / "passwd"
    monkeypatch.setattr(safefile.secrets, "token_hex", lambda _n: "0" * 16)
    (world.store.root / f".x.json.{'0' * 16}.tmp").symlink_to(victim)
    before = victim.read_bytes()
    with pytest.raises(NetlabError, match="cannot create a temporary state file"):
        world.store.save(_a_state())
    assert victim.read_bytes() == before and not world.state_file("x").exists()


def test_a_symlink_at_the_state_path_is_replaced_not_followed(world):
    world.store.root.mkdir(parents=True, mode=0o700)
    victim = world.tmp / "etc" / "x.json"
    world.state_file("x").symlink_to(victim)
    before = victim.read_bytes()
    world.store.save(_a_state())
    assert victim.read_bytes() == before
    assert not world.state_file("x").is_symlink() and world.store.load("x") == _a_state()


def test_a_symlinked_store_is_refused(world):
    real = world.tmp / "elsewhere"
    real.mkdir(mode=0o700)
    world.store.root.parent.mkdir(parents=True, exist_ok=True)
    world.store.root.symlink_to(real)
    with pytest.raises(state.UnsafeStore, match="is a symbolic link"):
        world.store.save(_a_state())
    assert list(real.iterdir()) == []
    assert_one_line_error(world.run("status", "x"), "is a symbolic link", "NETLAB_STATE_DIR")
    assert_one_line_error(world.run("down", "x"), "is a symbolic link")


def test_a_store_open_to_others_is_refused(world):
    world.store.root.mkdir(parents=True, mode=0o700)
    os.chmod(world.store.root, 0o755)
    with pytest.raises(state.UnsafeStore, match=r"open to other users \(mode 0755"):
        world.store.save(_a_state())
    assert list(world.store.root.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory someone else's needs root")
def test_a_store_owned_by_someone_else_is_refused(world):
    world.store.root.mkdir(parents=True, mode=0o700)
    os.chown(world.store.root, 12345, 12345)
    with pytest.raises(state.UnsafeStore, match="owned by uid 12345"):
        world.store.load("x")
    assert_one_line_error(world.run("down", "--all"), "owned by uid 12345")


def test_a_store_that_is_a_file_is_refused(world):
    world.store.root.parent.mkdir(parents=True, exist_ok=True)
    world.store.root.write_text("not a directory")
    with pytest.raises(state.UnsafeStore):
        world.store.save(_a_state())
    assert world.store.root.read_text() == "not a directory"


def test_labs_lists_only_lab_state_files(world):
    world.up("a")
    for name in ("x.endpoints.json", "UPPER.json", "a.json.corrupt-1", ".b.json.0.tmp", "c.txt"):
        (world.store.root / name).write_text("{}")
    assert world.store.labs() == ["a"]


def test_remove_files_refuses_names_outside_the_lab(world):
    world.up("a")
    for bad in (["../etc/x.json"], ["a.json"], ["b.log"], ["a./../x"]):
        with pytest.raises(NetlabError, match="refusing to remove"):
            world.store.remove_files("a", bad)
    assert world.state_file("a").exists()
