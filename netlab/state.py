"""The state file of a lab: ``/run/netlab/<lab>.json`` (mode 0600).

It records the scenario, the namespaces the lab owns (written *before* any is
created, so ``down`` can clean up after an ``up`` killed halfway) and the
workload supervisor's pid. The store is passed in, never global.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("NETLAB_STATE_DIR", "/run/netlab"))


@dataclass
class LabState:
    lab: str
    scenario: str
    netns: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)   # target -> netns
    supervisor_pid: int | None = None
    complete: bool = False
    lan: dict[str, str] = field(default_factory=dict)      # node -> LAN IP
    client_ip: str | None = None
    iptables: str = "legacy"   # the backend the rules are in (labs before nft support: legacy)


@dataclass(frozen=True)
class StateStore:
    """Reads and writes lab state files under ``root``."""

    root: Path = DEFAULT_ROOT

    def path(self, lab: str) -> Path:
        return self.root / f"{lab}.json"

    def save(self, state: LabState) -> None:
        """Write atomically with mode 0600."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path(state.lab).with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(state), f, indent=2)
        os.replace(tmp, self.path(state.lab))

    def load(self, lab: str) -> LabState | None:
        try:
            data = json.loads(self.path(lab).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return LabState(**data)

    def remove(self, lab: str) -> bool:
        try:
            self.path(lab).unlink()
            return True
        except FileNotFoundError:
            return False

    def labs(self) -> list[str]:
        if not self.root.exists():
            return []
        # Lab names are DNS labels (no dots): other files (x.endpoints.json) are not labs.
        return sorted(p.stem for p in self.root.glob("*.json") if p.name.count(".") == 1)

    def log_path(self, lab: str) -> Path:
        return self.root / f"{lab}.log"
