"""``--detach`` on a change (``scale``, ``node drain|active``): the same command, run
on its own in the background, its output appended to the lab's log.

As ``docker service scale --detach``: the command returns once the change is
asked for; the change takes the lab's change lock as any other (one at a time,
never interleaved) and converges while the shell is free; ``netlab status``
and ``netlab events`` show where it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import netlab
from netlab.errors import NetlabError
from netlab.state import StateStore


def run_detached(store: StateStore, lab: str, argv: list[str]) -> int:
    """Start ``netlab <argv>`` in its own session, its output appended to ``lab``'s log;
    returns its pid at once. Raises NetlabError when it cannot be started."""
    fd = os.open(store.log_path(lab), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o600)
    env = dict(os.environ)
    src = str(Path(netlab.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "netlab", *argv], stdin=subprocess.DEVNULL,
                                stdout=fd, stderr=fd, start_new_session=True, close_fds=True,
                                cwd="/", env=env)
    except OSError as exc:
        raise NetlabError(f"cannot start the change in the background: {exc}") from None
    finally:
        os.close(fd)
    pid = proc.pid
    with warnings.catch_warnings():      # let go of the child
        warnings.simplefilter("ignore", ResourceWarning)
        del proc
    return pid
