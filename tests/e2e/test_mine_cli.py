"""`rosetta mine` run as a subprocess, the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import tempfile

import pytest
import xarray as xr
from cli_helpers import prefect_env, rosetta_command

from rosetta_core.matching.dictionary import validate_dictionary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _rosetta(*args: str, home: str) -> subprocess.CompletedProcess:
    return subprocess.run([*rosetta_command(), *args], capture_output=True, text=True, timeout=900, env=prefect_env(home))


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
    # a quiet terminal: the summary and one line per stage, no Prefect or Dask INFO logs
    printed = (proc.stdout + proc.stderr).splitlines()
    assert len(printed) <= 40, "\n".join(printed)
    assert not [line for line in printed if "INFO" in line or "Finished in state" in line], "\n".join(printed)

    again = _rosetta("mine", "--n", "128", "--weights", "random", "--chunk-size", "64", "--out", str(out), home=home)
    assert again.returncode == 0 and "already complete" in again.stdout + again.stderr

    other = _rosetta("mine", "--n", "64", "--weights", "random", "--out", str(out), home=home)
    assert other.returncode == 2 and "different configuration" in other.stderr and "Traceback" not in other.stderr
