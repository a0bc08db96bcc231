"""The run lock's view of a holder on this host: a dead pid, a zombie (a killed flow run's
process that nobody reaped) and a pid now used by another process are all gone; the process
that wrote the lock, still running, is not."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rosetta_core.run.lock import RunLocked, run_lock

pytestmark = pytest.mark.unit

linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")


def _process(pid: int) -> tuple[str, str]:
    """(state letter, "<boot id>:<start ticks>") of ``pid``, read from /proc here."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}:{fields[19]}"


def _lock(folder: Path, **holder) -> None:
    (folder / ".lock").write_text(json.dumps({"host": socket.gethostname(), "token": "theirs"} | holder))


def _taken_over(folder: Path) -> bool:
    try:
        with run_lock(folder) as path:
            return json.loads(path.read_text())["token"] != "theirs"
    except RunLocked:
        return False


@linux
def test_a_zombie_holder_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):  # exited, not reaped yet: a zombie
            if _process(child.pid)[0] == "Z":
                break
            time.sleep(0.05)
        assert _process(child.pid)[0] == "Z"
        with tempfile.TemporaryDirectory() as folder:
            _lock(Path(folder), pid=child.pid, started=_process(child.pid)[1])
            assert _taken_over(Path(folder))
    finally:
        child.wait()


@linux
def test_a_pid_now_used_by_another_process_is_gone_but_the_holder_itself_is_not(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _, started = _process(child.pid)
        _lock(tmp_path, pid=child.pid, started=started)
        assert not _taken_over(tmp_path)  # the holder runs: the lock stays
        assert json.loads((tmp_path / ".lock").read_text())["token"] == "theirs"
        boot, ticks = started.rsplit(":", 1)
        _lock(tmp_path, pid=child.pid, started=f"{boot}:{int(ticks) - 1}")  # its pid, another process
        assert _taken_over(tmp_path)
        _lock(tmp_path, pid=child.pid)  # a lock written without a start: the pid alone decides
        assert not _taken_over(tmp_path)
    finally:
        child.kill()
        child.wait()


@linux
def test_the_lock_records_its_holders_start(tmp_path):
    import os

    with run_lock(tmp_path) as path:
        holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid() and holder["started"] == _process(os.getpid())[1]
