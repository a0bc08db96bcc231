"""`rosetta mine` killed with SIGKILL mid-extraction and mid-reduction, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from cli_helpers import prefect_env, rosetta_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARGS = ["mine", "--n", "48", "--k", "3", "--chunk-size", "8", "--weights", "random",
        "--encoders", "mini-resnet.sup,mini-vit.mae"]


_env = prefect_env


def _cmd(out: Path) -> list[str]:
    return [*rosetta_command(), *ARGS, "--out", str(out)]


def _flags(out: Path, key: str) -> int:
    folder = out / "store.zarr" / "done" / key / "c"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def _kill_when(out: Path, ready, home: str, timeout: float = 600) -> None:
    proc = subprocess.Popen(_cmd(out), env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    start = time.time()
    try:
        while not ready():
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.time() - start < timeout, "the run made no progress"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tables(out: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(out / "store.zarr"), mode="r")
    return {name: np.asarray(pair["correlation"][...]) for name, pair in group["pairs"].groups()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = subprocess.run(_cmd(out), env=_env(tempfile.mkdtemp()), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _tables(out)


def _resume(out: Path, home: str) -> None:
    proc = subprocess.run(_cmd(out), env=_env(home), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (out / "manifest.json").is_file() and not (out / ".lock").exists()


def test_killed_mid_extraction_resumes_to_identical_tables(tmp_path, reference):
    out, home = tmp_path / "run", tempfile.mkdtemp()
    key = "activations/mini-resnet.sup/layer1/maps"
    _kill_when(out, lambda: 1 <= _flags(out, key) < 6, home)
    assert not (out / "manifest.json").exists()
    _resume(out, home)
    got = _tables(out)
    assert set(got) == set(reference)
    for name, table in reference.items():
        np.testing.assert_array_equal(got[name], table, err_msg=name)


def test_killed_mid_reduction_resumes_to_identical_tables(tmp_path, reference):
    out, home = tmp_path / "run", tempfile.mkdtemp()
    first = out / "store.zarr" / "moments" / "mini-gen__mini-resnet.sup"
    _kill_when(out, lambda: first.is_dir(), home)
    assert not (out / "manifest.json").exists()
    _resume(out, home)
    for name, table in reference.items():
        np.testing.assert_array_equal(_tables(out)[name], table, err_msg=name)
