"""The lab's event log: each step the manager (or a command) took, with its time.

One JSON object per line in ``<lab>.events`` in the state store (mode 0600,
appended, removed by ``down``): ``time`` (epoch seconds), ``kind`` (``manager``,
``node``, ``task``, ``service``), ``subject`` (a node, task or service name, or the lab),
``action`` (a word: ``down``, ``heartbeat-missed``, ``restart-scheduled``...)
and ``message``. ``netlab events`` prints them; ``netlab load`` can attribute
failures to them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

KINDS = ("manager", "node", "task", "service")   # service: its update or rollback
FILE_SUFFIX = "events"
#: A line longer than this is not an event (and is skipped when read).
LINE_MAX = 4096


@dataclass(frozen=True)
class Event:
    """One step, as the log holds it."""

    time: float
    kind: str
    subject: str
    action: str
    message: str

    def to_line(self) -> bytes:
        doc = {"time": round(self.time, 3), "kind": self.kind, "subject": self.subject,
               "action": self.action, "message": self.message}
        return (json.dumps(doc, ensure_ascii=False) + "\n").encode()

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, "subject": self.subject,
                "action": self.action, "message": self.message}


def event(kind: str, subject: str, action: str, message: str, at: float | None = None) -> Event:
    """An event stamped ``at`` (epoch seconds; default now); raises ValueError for an
    unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return Event(time.time() if at is None else at, kind, subject, action, message)


def parse_lines(data: bytes) -> list[Event]:
    """The events in ``data`` (whole lines only); a line that is not an event, or
    the unfinished last one, is skipped."""
    out = []
    for raw in data.split(b"\n")[:-1]:
        if not raw or len(raw) > LINE_MAX:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        t, kind = doc.get("time"), doc.get("kind")
        subject, action, message = (doc.get(k) for k in ("subject", "action", "message"))
        if (not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t)
                or kind not in KINDS or not isinstance(subject, str)
                or not isinstance(action, str) or not isinstance(message, str)):
            continue
        out.append(Event(float(t), kind, subject, action, message))
    return out


def render(e: Event, scale: float | None = None) -> str:
    """One line for a person: UTC time with milliseconds, kind, subject, action, message."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(e.time)) + f".{int(e.time * 1000) % 1000:03d}"
    return f"{stamp}  {e.kind:<7} {e.subject:<14} {e.action:<18} {e.message}"
