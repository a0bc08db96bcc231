"""`rosetta data render`, run the way a user runs it: PNG scenes with their ground-truth masks,
the same files for the same seed, masks equal to ``truth_masks`` of the same scenes, and one
error line for bad input."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from cli_helpers import rosetta_command
from PIL import Image

from rosetta_core.data import COLOURS, KINDS, WorldConfig, render_batch, truth_masks

pytestmark = pytest.mark.e2e


def rosetta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*rosetta_command(), *args], capture_output=True, text=True, timeout=300)


def _folder(path) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """images (n, 3, h, w), stacked masks name -> (n, ...) and index.json of a rendered folder."""
    index = json.loads((path / "index.json").read_text())
    images = np.stack([np.asarray(Image.open(path / s["image"])).transpose(2, 0, 1) for s in index["scenes"]])
    loaded = [np.load(path / s["masks"]) for s in index["scenes"]]
    masks = {name: np.stack([m[name] for m in loaded]) for name in index["masks"]}
    return images, masks, index


def test_render_writes_scenes_with_their_truth_deterministically(tmp_path):
    proc = rosetta("data", "render", "--n", "6", "--out", str(tmp_path / "a"), "--style", "sketch", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 6 sketch scenes" in proc.stdout
    images, masks, index = _folder(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["index.json"] + [f"scene_{i:05d}.png" for i in range(6)] + [f"scene_{i:05d}.masks.npz" for i in range(6)])
    assert index["factors"] == {"kinds": list(KINDS), "colours": list(COLOURS)}
    assert (index["seed"], index["style"], index["n"]) == (7, "sketch", 6)
    assert [s["index"] for s in index["scenes"]] == list(range(6))

    scenes = render_batch(7, np.arange(6), WorldConfig(), style="sketch")  # the same scenes, in the library
    kinds, colours = truth_masks(scenes)
    assert images.dtype == np.uint8 and np.array_equal(images, scenes.images)
    assert masks["kinds"].dtype == bool and np.array_equal(masks["kinds"], kinds)
    assert np.array_equal(masks["colours"], colours)
    assert np.array_equal(masks["objects"], scenes.object_masks)
    assert np.array_equal(masks["background"], scenes.background) and masks["kinds"].any()
    for entry, row in zip(index["scenes"], scenes.kinds):
        assert [o["kind"] for o in entry["objects"]] == [KINDS[k] for k in row if k >= 0]

    # determinism: scene i depends only on (seed, i); a larger folder starts with the same files
    again = rosetta("data", "render", "--n", "9", "--out", str(tmp_path / "b"), "--style", "sketch", "--seed", "7")
    assert again.returncode == 0, again.stderr
    for i in range(6):
        name = f"scene_{i:05d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = rosetta("data", "render", "--n", "2", "--out", str(tmp_path / "c"), "--seed", "8", "--world", "simple")
    assert other.returncode == 0, other.stderr
    images_c, masks_c, _ = _folder(tmp_path / "c")
    simple = render_batch(8, np.arange(2), WorldConfig.simple())
    assert np.array_equal(images_c, simple.images) and np.array_equal(masks_c["kinds"], truth_masks(simple)[0])
    assert not np.array_equal(images_c, images[:2])


@pytest.mark.parametrize(("args", "said"), [
    (["--n", "0"], "n=0 is invalid"),
    (["--n", "2", "--style", "oil"], "style='oil' is invalid: expected one of photo, sketch, cartoon"),
    (["--n", "2", "--seed", "-1"], "seed=-1 is invalid"),
    (["--n", "2", "--out", "{file}/sub"], "is not a writable folder"),
    (["--n", "2", "--world", "moon"], "--world 'moon' is invalid"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, said):
    (tmp_path / "file").write_text("not a folder")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    proc = rosetta("data", "render", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rosetta data: error: ") and said in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_of_other_scenes_is_refused_not_overwritten(tmp_path):
    assert rosetta("data", "render", "--n", "2", "--out", str(tmp_path)).returncode == 0
    before = (tmp_path / "scene_00000.png").read_bytes()
    proc = rosetta("data", "render", "--n", "2", "--out", str(tmp_path), "--style", "cartoon")
    assert proc.returncode == 2 and "holds other scenes" in proc.stderr
    assert (tmp_path / "scene_00000.png").read_bytes() == before
