"""The scenario file itself: a regular, small, UTF-8 text file, read safely.

A path on the command line may name anything: a directory, a FIFO that never
delivers, ``/dev/zero`` that never ends, a 50 MB log or a binary. The file is
opened without blocking, checked with ``fstat`` on the open descriptor (so
what is checked is what is read), and at most :data:`MAX_BYTES` + 1 bytes are
read. Nothing here parses YAML.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from netlab.scenario.issues import Issue, ScenarioError

MAX_BYTES = 1 << 20
_PICK_A_FILE = "pass a scenario .yaml file, e.g. scenarios/hello-a.yaml"
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


def _refuse(source: str, message: str, hint: str) -> ScenarioError:
    return ScenarioError(source, [Issue("", message, hint)])


def _line_col(data: bytes, offset: int) -> str:
    """``line L, column C`` of byte ``offset`` (columns count bytes)."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _read_capped(fd: int, source: str) -> bytes:
    """At most MAX_BYTES from ``fd``; raises ScenarioError when there is more."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BYTES:
        chunk = os.read(fd, MAX_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_BYTES:
        raise _too_big(source, None)
    return b"".join(chunks)


def _too_big(source: str, size: int | None) -> ScenarioError:
    what = f"is {size:,} bytes" if size is not None else "is larger than 1 MiB"
    return _refuse(source, f"{what}; a scenario may be at most {MAX_BYTES:,} bytes (1 MiB)",
                   "a lab's scenario is a few kilobytes; check that this is the scenario file")


def read_scenario_text(path: str | Path) -> str:
    """The text of the scenario file at ``path``.

    Raises ScenarioError (exit 2) naming the file when it is missing,
    unreadable, not a regular file, larger than 1 MiB, binary (a NUL byte) or
    not UTF-8. Never blocks on a FIFO or a device.
    """
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _refuse(source, "no such file", "check the path") from None
    except OSError as err:
        raise _refuse(source, f"cannot be read: {err.strerror}",
                      "check the path and its permissions") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "something")
            raise _refuse(source, f"is {kind}, not a regular file", _PICK_A_FILE)
        if info.st_size > MAX_BYTES:
            raise _too_big(source, info.st_size)
        try:
            data = _read_capped(fd, source)
        except OSError as err:
            raise _refuse(source, f"cannot be read: {err.strerror}",
                          "check the path and its permissions") from None
    finally:
        os.close(fd)
    if (nul := data.find(b"\0")) >= 0:
        raise _refuse(source, f"is binary, not YAML text (a NUL byte at {_line_col(data, nul)})",
                      "a scenario is a UTF-8 YAML text file; UTF-16 is not accepted either")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _refuse(source, f"is not UTF-8 text (byte {err.start}, {_line_col(data, err.start)})",
                      "save the scenario as UTF-8") from None
