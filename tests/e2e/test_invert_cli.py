"""`rosetta invert | edit | visualize` run as subprocesses, the way a user runs them."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from cli_helpers import prefect_env, rosetta_command
from invert_support import scene_pngs, tiny_run
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _rosetta(*args: str, home: str) -> subprocess.CompletedProcess:
    env = prefect_env(home) | {"OMP_NUM_THREADS": "1"}
    return subprocess.run([*rosetta_command(), *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("cli") / "run")


def test_invert_batch_continues_past_bad_images(run_dir, tmp_path):
    good = scene_pngs(tmp_path / "img", 2)
    grey = tmp_path / "img" / "grey.png"
    Image.new("L", (64, 64), 128).save(grey)
    corrupt = tmp_path / "img" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    tiny = tmp_path / "img" / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("invert", "--run", str(run_dir), "--steps", "2", *good, str(grey), str(corrupt), str(tiny), home=home)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-3000:]
    assert "inverted 3, skipped 0 (already done), failed 2" in text
    assert "corrupt.png' is unreadable or corrupt" in text and "is 4x4 pixels" in text
    assert "Traceback" not in text
    out = Path(run_dir) / "inversions"  # --out defaults to a folder inside the run
    for name in ("scene0", "scene1", "grey"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["steps"] == 2 and isinstance(metrics["psnr"], float)  # one image: numbers, not lists
    assert json.loads((out / "grey" / "metrics.json").read_text())["notes"] == ["converted from L (1 channels) to RGB"]
    again = _rosetta("invert", "--run", str(run_dir), "--steps", "2", *good, home=home)
    assert again.returncode == 0 and "inverted 0, skipped 2" in again.stdout + again.stderr


def test_edit_and_visualize_write_outputs(run_dir, tmp_path):
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("edit", "--run", str(run_dir), "--out", str(tmp_path), "--edit", "zoom", "--steps", "2", "--index", "2",
                    "--hold", "0.5", "--reg-center", "prior", "--pad", "zero", "--fit", "corr", "--box", "off", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "edit-zoom-2" / "result.png").is_file() and (tmp_path / "edit-zoom-2" / "latent.npy").is_file()
    recorded = json.loads((tmp_path / "edit-zoom-2" / "metrics.json").read_text())
    assert recorded["hold"] == 0.5 and recorded["settings"]["reg_center"] == "prior" and recorded["pad"] == "zero"
    assert recorded["fit"] == "corr" and recorded["box"] is False  # corr's default box is on
    concept = json.loads((Path(run_dir) / "dictionary.json").read_text())["concepts"][0]["id"]
    proc = _rosetta("visualize", "--run", str(run_dir), "--out", str(tmp_path), "--concept", str(concept), "--steps", "2",
                    "--starts", "2", "--act", "image", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads((tmp_path / f"concept-{concept}" / "metrics.json").read_text())
    assert shown["starts"] == 2 and shown["settings"]["act"] == "image" and recorded["settings"]["act"] == "dataset"
    assert len(shown["final_l_act"]) == 2 and isinstance(recorded["final_l_act"], float)


@pytest.mark.parametrize("args,message", [
    (["visualize", "--concept", "424242"], "concept 424242 is not in"),
    (["edit", "--edit", "remove"], "needs --concept ID or --unit N"),
    (["invert", "--mode", "sideways", "x.png"], "invalid choice: 'sideways'"),
    (["edit", "--edit", "twist"], "invalid choice: 'twist'"),
    (["edit", "--edit", "shift", "--hold", "-1"], "--hold -1.0 must be >= 0"),
    (["invert", "--reg-center", "median", "x.png"], "invalid choice: 'median'"),
    (["invert", "--act", "pixels", "x.png"], "invalid choice: 'pixels'"),
    (["edit", "--edit", "shift", "--pad", "edge"], "invalid choice: 'edge'"),
    (["edit", "--edit", "shift", "--fit", "huber"], "invalid choice: 'huber'"),
    (["edit", "--edit", "zoom", "--box", "maybe"], "invalid choice: 'maybe'"),
])
def test_bad_arguments_are_one_clear_error(run_dir, args, message):
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta(args[0], "--run", str(run_dir), *args[1:], home=home)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_run_without_finished_mining_is_refused(tmp_path):
    (tmp_path / "store.zarr").mkdir()
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("invert", "--run", str(tmp_path), "x.png", home=home)
    assert proc.returncode == 2 and "is not a finished mining run" in proc.stderr and "Traceback" not in proc.stderr
