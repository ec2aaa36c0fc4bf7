"""Placement constraints: ``node.role==manager``, ``node.hostname!=node2``.

The same syntax as ``docker service create --constraint`` and Compose's
``deploy.placement.constraints`` (spaces around the operator are allowed).
Only ``node.role`` and ``node.hostname`` are modelled.
"""

from __future__ import annotations

import re

from netlab.model import Constraint
from netlab.scenario.fields import did_you_mean, expect_list, kind_of
from netlab.scenario.issues import IssueLog, item
from netlab.scenario.yamltree import Scalar, Value

KEYS = ("node.role", "node.hostname")
ROLES = ("manager", "worker")
_DOCKER_ONLY = ("node.id", "node.labels", "node.platform", "engine.labels")
_FORM = re.compile(r"\s*(?P<key>[^=!<>\s]+)\s*(?P<op>==|!=)\s*(?P<value>\S+)\s*")
_EXAMPLE = '"node.role==manager" or "node.hostname!=node2"'


def parse_constraint(text: str) -> Constraint | tuple[str, str]:
    """The constraint written as ``text``, or (message, hint) saying what is wrong."""
    match = _FORM.fullmatch(text)
    if not match:
        if re.search(r"[^=!]=[^=]", text) and "==" not in text:
            return f"malformed constraint {text!r}", "compare with == or !=, e.g. \"node.role==manager\""
        return f"malformed constraint {text!r}", f"write KEY==VALUE or KEY!=VALUE, e.g. {_EXAMPLE}"
    key, op, value = match["key"], match["op"], match["value"]
    if key not in KEYS:
        if key.startswith(_DOCKER_ONLY):
            return (f"constraint key {key!r} is not supported by this lab",
                    "use node.role or node.hostname")
        return f"unknown constraint key {key!r}", f"{did_you_mean(key, KEYS)}use node.role or node.hostname"
    if key == "node.role" and value not in ROLES:
        return (f"node.role is manager or worker, not {value!r}",
                f"{did_you_mean(value, ROLES)}write node.role==manager or node.role==worker")
    return Constraint(key, value, op == "==")


def read_constraints(value: Value, path: str, log: IssueLog) -> tuple[Constraint, ...] | None:
    """A ``constraints:`` list; None (after recording every bad entry) if any is wrong."""
    listed = expect_list(value, path, log, f"a list: [{_EXAMPLE.split(' or ')[0]}]")
    if listed is None:
        return None
    constraints: list[Constraint] = []
    ok = True
    for i, entry in enumerate(listed.items):
        where = item(path, i)
        if not isinstance(entry, Scalar) or not isinstance(entry.value, str):
            log.add(where, f"a constraint must be a string, not {kind_of(entry)}",
                    f"write {_EXAMPLE}", entry.pos)
            ok = False
            continue
        parsed = parse_constraint(entry.value)
        if isinstance(parsed, tuple):
            log.add(where, parsed[0], parsed[1], entry.pos)
            ok = False
        else:
            constraints.append(parsed)
    return tuple(constraints) if ok else None
