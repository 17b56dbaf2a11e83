"""`superfed demo` says plainly when its API port is taken, before starting anything."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from broker.procs import free_port, port_taken
from tests.support.servers import superfed


def test_a_port_in_use_is_said_plainly_and_nothing_starts(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert port_taken(port)
        done = subprocess.run(superfed("demo", "--port", str(port), "--workdir", str(tmp_path / "demo")),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == f"superfed demo: port {port} is in use (by another process); pass --port or stop it\n"
    assert not (tmp_path / "demo").exists()  # nothing was started
    assert not port_taken(port)
