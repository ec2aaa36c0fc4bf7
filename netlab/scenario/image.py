"""What a service's tasks run: ``image:`` and ``environment:``.

netlab's own task app answers in every task, whatever the image; the image
is what the app reports (``image`` and its tag as ``version``), so a rolling
update from ``web:1`` to ``web:2`` can be watched. ``environment`` is kept
as Compose writes it, a mapping or a list of ``KEY=VALUE`` (compose-spec
``05-services.md``, ``environment``).
"""

from __future__ import annotations

from netlab.model import normalized_image
from netlab.scenario.fields import check_repeated, kind_of
from netlab.scenario.issues import IssueLog, field, item
from netlab.scenario.yamltree import Mapping, Pos, Scalar, Sequence, Value

IMAGE_EXAMPLE = "image: web:2 (NAME[:TAG], the tag latest when none)"
ENV_EXAMPLE = 'environment: {MODE: blue, WORKERS: "4"} or ["MODE=blue", "WORKERS=4"]'
_VALUE_MAX = 4096


def read_image(value: Value, path: str, log: IssueLog) -> str | None:
    """``image: NAME[:TAG]``, the tag ``latest`` when none is written; None after an issue."""
    if not (isinstance(value, Scalar) and isinstance(value.value, str)):
        log.add(path, f"image must be a string, not {kind_of(value)}", f"write {IMAGE_EXAMPLE}",
                value.pos)
        return None
    image, why = normalized_image(value.value)
    if image is None:
        log.add(path, why, f"write {IMAGE_EXAMPLE}", value.pos)
    return image


def _variable(name: str, path: str, log: IssueLog, pos: Pos) -> bool:
    """True for a usable variable name; else an issue."""
    if not name or "=" in name or any(c.isspace() or not c.isprintable() for c in name):
        log.add(path, f"{name!r} is not a variable name", f"write {ENV_EXAMPLE}", pos)
        return False
    return True


def _scalar_text(value: Value, path: str, log: IssueLog) -> str | None:
    """A mapping's value as the text the task would see (a number as written)."""
    if isinstance(value, Scalar) and isinstance(value.value, str):
        text = value.value
    elif isinstance(value, Scalar) and isinstance(value.value, bool):
        log.add(path, f"YAML reads {value.raw} as a boolean", f'quote it: "{value.raw}"',
                value.pos)
        return None
    elif isinstance(value, Scalar) and isinstance(value.value, int | float):
        text = value.raw
    elif isinstance(value, Scalar) and value.value is None:
        log.add(path, "the variable has no value", "give it one: netlab does not read the "
                "shell's environment (Compose would take it from there)", value.pos)
        return None
    else:
        log.add(path, f"a variable's value is a string or a number, not {kind_of(value)}",
                f"write {ENV_EXAMPLE}", value.pos)
        return None
    if "\0" in text or len(text) > _VALUE_MAX:
        log.add(path, "the value holds a NUL or is over 4096 characters",
                "write a short line of text", value.pos)
        return None
    return text


def read_environment(value: Value, path: str, log: IssueLog) -> tuple[tuple[str, str], ...] | None:
    """``environment:`` as (name, value) pairs sorted by name; None after an issue."""
    before = log.count()
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        check_repeated(value, path, log, "variable")
        for entry in value.entries:
            if entry.key is None:
                log.add(path, "a variable name must be a plain name, not a list or mapping",
                        f"write {ENV_EXAMPLE}", entry.key_pos)
                continue
            if not _variable(entry.key, field(path, entry.key), log, entry.key_pos):
                continue
            text = _scalar_text(entry.value, field(path, entry.key), log)
            if text is not None:
                out.setdefault(entry.key, text)
    elif isinstance(value, Sequence):
        for i, v in enumerate(value.items):
            if not (isinstance(v, Scalar) and isinstance(v.value, str)):
                log.add(item(path, i), f"an entry must be a string KEY=VALUE, not {kind_of(v)}",
                        f"write {ENV_EXAMPLE}", v.pos)
                continue
            name, eq, text = v.value.partition("=")
            if not _variable(name, item(path, i), log, v.pos):
                continue
            if not eq:
                log.add(item(path, i), f"{name} has no value", "write NAME=VALUE: netlab does "
                        "not read the shell's environment (Compose would take it from there)",
                        v.pos)
            elif name in out:
                log.add(item(path, i), f"variable {name!r} is given twice", "list it once", v.pos)
            elif "\0" in text or len(text) > _VALUE_MAX:
                log.add(item(path, i), "the value holds a NUL or is over 4096 characters",
                        "write a short line of text", v.pos)
            else:
                out[name] = text
    elif isinstance(value, Scalar) and value.value is None:
        return ()
    else:
        log.add(path, f"environment must be a mapping or a list, not {kind_of(value)}",
                f"write {ENV_EXAMPLE}", value.pos)
    if log.count() != before:
        return None
    return tuple(sorted(out.items()))
