"""The task image's server (scripts/task-image.sh), run natively with the machine's busybox
on loopback: its answer carries every field netlab's own app answers with, so curl,
load and trace read a container's answer as they read the app's."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from netlab.workload.endpoints import AppEndpoint
from netlab.workload.http import reply_fields

REPO = Path(__file__).resolve().parents[2]


def _heredoc(name: str) -> str:
    """The script the image's build writes to /bin/<name>."""
    text = (REPO / "scripts" / "task-image.sh").read_text()
    m = re.search(rf"cat > \"\$root/bin/{name}\" <<'([A-Z]+)'\n(.*?)\n\1\n", text, re.S)
    assert m, f"no /bin/{name} in task-image.sh"
    return m.group(2) + "\n"


@pytest.fixture
def image_root(tmp_path):
    busybox = shutil.which("busybox")
    assert busybox, "busybox is missing (scripts/setup.sh installs busybox-static)"
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for applet in ("sh", "cat", "hostname", "nc", "printf", "awk", "readlink"):
        (bin_ / applet).symlink_to(busybox)
    answer = bin_ / "answer"
    # The image's /bin/answer, with its own path for nc -e.
    answer.write_text(_heredoc("answer"))
    answer.chmod(0o755)
    return bin_


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_busybox_answer_has_the_apps_fields(image_root):
    port = _free_port()
    env = {"PATH": str(image_root), "SERVICE": "hello-a", "NODE": "node1",
           "TASK_IP": "10.0.0.5"}
    server = subprocess.Popen([str(image_root / "nc"), "-ll", "-p", str(port), "-e",
                               str(image_root / "answer")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = None
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/x?y=1", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.1)
    finally:
        server.kill()
        server.wait()
    assert body is not None, "the busybox server never answered"
    app = reply_fields(AppEndpoint("x", "hello-a", "t", "node1", "10.0.0.5", port), "127.0.0.1",
                       1, "/x")
    assert set(body) == set(app) | {"server"}
    assert body["server"] == "busybox"
    assert (body["service"], body["node"], body["task_ip"], body["port"], body["path"]) == \
        ("hello-a", "node1", "10.0.0.5", port, "/x?y=1")
    assert body["task"] == socket.gethostname()        # the container's hostname is its task
    assert body["client"] == "127.0.0.1" and 0 < body["client_port"] < 65536
    assert body["client_port"] != port
