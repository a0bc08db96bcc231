"""The provenance record of result files (rosetta_core.evidence): commit and dirty tree of the
code's checkout, the exact command, seeds, machine and wall time."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from rosetta_core.evidence import git_state, machine, start
from rosetta_core.evidence.provenance import REPO, command_line

pytestmark = pytest.mark.unit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@needs_git
def test_git_state_names_the_commit_and_the_changed_tracked_files(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False, "changed_files": []}
    (tmp_path / "new.txt").write_text("untracked files do not make the tree dirty\n")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True, "changed_files": ["a.py"]}


def test_git_state_outside_a_checkout_is_not_recorded(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None, "changed_files": None}


def test_command_line_is_what_a_shell_takes():
    assert command_line(["plan", "--n", "20", "--layers", "a=b c"], program="rosetta") == "rosetta plan --n 20 --layers 'a=b c'"
    script = command_line(["--n", "8"])
    assert script.startswith("python ") and script.endswith(" --n 8")


def test_a_finished_record_has_every_field_and_is_json(monkeypatch):
    prov = start(["--n", "8"], program="python bench/x.py", seeds={"images": 3}, code=REPO)
    time.sleep(0.02)
    record = prov.finish(repeats=2)
    assert json.loads(json.dumps(record)) == record
    assert record["command"] == "python bench/x.py --n 8" and record["seeds"] == {"images": 3} and record["repeats"] == 2
    assert record["wall_seconds"] >= 0.02 and record["started_utc"].endswith("+00:00")
    assert {"commit", "dirty", "changed_files"} <= set(record)
    mach = record["machine"]
    assert mach["cpu_threads"] >= 1 and mach["usable_threads"] >= 1 and mach["device"] == "cpu" and mach["gpu"] is None
    assert "numpy" in mach["versions"] and len(mach["load_average_end"]) == 3


def test_a_gpu_record_names_the_device_even_without_one():
    """On a machine without CUDA the record says what went wrong instead of raising."""
    gpu = machine("cuda")["gpu"]
    assert isinstance(gpu, str) and gpu
    assert machine("cpu")["gpu"] is None


def test_seeds_must_be_named():
    with pytest.raises(TypeError, match="seeds must be a mapping"):
        start(seeds=[0, 1])
