"""Packet capture on a trace's capture points, through the kernel reader.

The sockets and the sniffer are the kernel's
(:meth:`netlab.kernel.reader.KernelReader.capture`); here each frame the
kernel hands back is tied to the capture point it was seen at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netlab.kernel.capture import CaptureSession
from netlab.kernel.reader import KernelReader
from netlab.trace.points import CapturePoint


@dataclass(frozen=True)
class Frame:
    """One captured frame: where, when (kernel time, seconds), which way, the bytes."""

    point: CapturePoint
    time: float
    outgoing: bool
    data: bytes


class Capture:
    """Capture on many points at once; a context manager.

    ``with Capture(points, reader) as cap: send(); frames = cap.stop()``.
    Capture has started when ``__enter__`` returns. Raises NetnsError when a
    point's namespace cannot be opened.
    """

    def __init__(self, points: Iterable[CapturePoint], reader: KernelReader):
        self.points = tuple(points)
        self._by_iface = {(p.netns, p.iface): p for p in self.points}
        ifaces: dict[str, set[str]] = {}
        for p in self.points:
            ifaces.setdefault(p.netns, set()).add(p.iface)
        self._session: CaptureSession = reader.capture(
            {ns: frozenset(names) for ns, names in ifaces.items()})

    def __enter__(self) -> Capture:
        self._session.__enter__()
        return self

    def stop(self) -> list[Frame]:
        """Stop capturing and return every frame seen at a capture point, by time."""
        out = []
        for f in self._session.stop():
            point = self._by_iface.get((f.netns, f.iface))
            if point is not None:
                out.append(Frame(point, f.time, f.outgoing, f.data))
        return sorted(out, key=lambda f: f.time)

    def __exit__(self, *exc) -> None:
        self._session.__exit__(*exc)
