"""The save texts ``status`` read last, kept in the lab's state directory.

A file of the lab's (``<lab>.iptables-saves``, mode 0600, removed by
``down``) holding, per namespace, the ``iptables-nft-save`` text read and
the key its rules were at (:mod:`netlab.kernel.nftgen`). The next
``status`` reads again only the namespaces whose key moved. It is a cache:
a file that is missing, unreadable or not this shape is ignored and
rewritten, never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from netlab.errors import NetlabError
from netlab.kernel.nftgen import SavedRules
from netlab.state import StateStore

SUFFIX = ".iptables-saves"
VERSION = 1


def file_name(lab: str) -> str:
    """The cache file's name in the state directory."""
    return lab + SUFFIX


@dataclass(frozen=True)
class SaveFile:
    """The save texts of ``lab``, kept in ``store`` (a :class:`~netlab.kernel.nftgen.SaveMemory`)."""

    store: StateStore
    lab: str

    def recall(self) -> dict[str, SavedRules]:
        """What the file holds; empty when it is missing, unreadable or not this shape."""
        try:
            raw = self.store.read_file(self.lab, file_name(self.lab))
        except OSError:
            return {}
        if raw is None:
            return {}
        try:
            doc = json.loads(raw)
            if doc.get("version") != VERSION:
                return {}
            return {name: SavedRules((int(e["cookie"]), int(e["generation"])), str(e["text"]))
                    for name, e in doc["netns"].items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return {}

    def keep(self, saved: dict[str, SavedRules]) -> None:
        """Write ``saved`` over the file, only where the store holds the lab's state
        (never a file for a lab that is not there). A store that refuses the
        write (full, read-only) costs the next status its shortcut, not this
        status its answer: nothing is raised."""
        if not self.store.path(self.lab).exists():
            return
        doc = {"version": VERSION,
               "netns": {name: {"cookie": s.key[0], "generation": s.key[1], "text": s.text}
                         for name, s in saved.items()}}
        try:
            self.store.write_file(self.lab, file_name(self.lab), json.dumps(doc).encode())
        except (OSError, NetlabError):
            return
