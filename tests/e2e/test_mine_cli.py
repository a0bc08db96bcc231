"""`rosetta mine` run as a subprocess, the way a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import xarray as xr

from rosetta_core.dictionary import validate_dictionary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _rosetta(*args: str, home: str) -> subprocess.CompletedProcess:
    exe = shutil.which("rosetta", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "flows.cli"]
    env = os.environ | {
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
    }
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=900, env=env)


def test_rosetta_mine_n128(tmp_path):
    out = tmp_path / "run"
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("mine", "--n", "128", "--weights", "random", "--chunk-size", "64", "--out", str(out), home=home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ds = xr.open_zarr(out / "store.zarr")
    assert ds.sizes["image"] == 128 and ds["images"].dtype == "uint8"
    dictionary = validate_dictionary(json.loads((out / "dictionary.json").read_text()))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["summary"]["concepts"] == len(dictionary.concepts)
    assert set(manifest["summary"]["best_buddies"]) == {f"mini-gen__{m}" for m in dictionary.run["encoders"]} | {"mini-gen__mini-gen"}
    html = (out / "report" / "index.html").read_text()
    assert html.count('class="concept"') >= min(len(dictionary.concepts), 1) or not dictionary.concepts
    assert "Rosetta units" in proc.stdout + proc.stderr

    again = _rosetta("mine", "--n", "128", "--weights", "random", "--chunk-size", "64", "--out", str(out), home=home)
    assert again.returncode == 0 and "already complete" in again.stdout + again.stderr

    other = _rosetta("mine", "--n", "64", "--weights", "random", "--out", str(out), home=home)
    assert other.returncode == 2 and "different configuration" in other.stderr and "Traceback" not in other.stderr
