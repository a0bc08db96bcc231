"""Mining an image folder (`--images`): the flow under a real Prefect API on a Dask LocalCluster,
checked against activations recomputed from the files and a float64 brute-force table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rosetta_core.data.image_source import read_images
from rosetta_core.data.scene_files import write_scenes
from rosetta_core.matching.dictionary import validate_dictionary
from rosetta_core.run import MineConfig, Run, StoreMismatch
from oracles import brute_force_table

pytestmark = pytest.mark.integration

ENCODERS = ("mini-resnet.sup", "mini-vit.mae")


def _dataset(folder: Path, n: int = 26) -> Path:
    """``n`` rendered scenes plus the awkward files a real folder has: another size, greyscale,
    RGBA, a palette image, a corrupt file and a text file."""
    write_scenes(folder, n, seed=31)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (90, 50, 3), dtype=np.uint8)).save(folder / "tall.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(folder / "grey.png")
    (folder / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (33, 70, 4), dtype=np.uint8)).save(folder / "sub" / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).convert("P").save(folder / "palette.gif")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _activations(files: list[np.ndarray], name: str) -> list[np.ndarray]:
    from rosetta_core.zoo import load

    encoder = load(name, "random")
    batch = torch.stack([encoder.image_transform()(rgb) for rgb in files])
    with torch.no_grad():
        maps = encoder.activations(batch)
    return [maps[layer].double().numpy() for layer in encoder.select_layers()], batch


def test_an_image_folder_is_mined_with_each_encoders_own_preprocessing(prefect_api, tmp_path):
    from flows.mine import mine

    folder = _dataset(tmp_path / "photos")
    config = MineConfig(images=str(folder), encoders=ENCODERS, anchor="mini-vit.mae", k=3, chunk_size=8,
                        weights="random", dtype="float32")
    out = tmp_path / "run"
    state = mine(config, str(out), return_state=True)
    assert state.is_completed(), state

    run = Run.open(out)
    manifest = json.loads((out / "manifest.json").read_text())
    sources = run.sources()
    assert sources == sorted(sources) and len(sources) == 26 + 4
    assert {"tall.jpg", "grey.png", "sub/alpha.png", "palette.gif"} <= set(sources)
    assert [s["file"] for s in manifest["images"]["skipped_files"]] == ["corrupt.jpg"]
    assert manifest["summary"]["images"] == {"used": 30, "skipped": 1}
    assert manifest["summary"]["anchor"] == "mini-vit.mae"
    assert "latents" not in run.store

    # the store's source coordinate labels the images, as xarray reads it
    tree = run.tree()
    assert [str(v) for v in tree["images"].coords["source"].values] == sources

    # each encoder's activations are its own transform of the files, and the table is exact
    files = read_images(str(folder), sources)
    mine_maps = {}
    for name in ENCODERS:
        maps, batch = _activations(files, name)
        mine_maps[name] = maps
        for layer, expected in zip(run.plan.layer_names(name), maps):
            stored = np.asarray(run.store.array(run.maps_key(name, layer))[...], dtype=np.float64)
            np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)
        if name == "mini-vit.mae":  # the anchor's view of each file is the stored image
            np.testing.assert_array_equal(np.asarray(run.store.array("images")[...]), batch.numpy())
    table = run.table("mini-vit.mae", "mini-resnet.sup")
    oracle = brute_force_table(mine_maps["mini-vit.mae"], mine_maps["mini-resnet.sup"], run.config.center)
    np.testing.assert_allclose(table, oracle, atol=2e-4)

    # tuples and concepts anchor on the chosen encoder; examples name their files
    dictionary = validate_dictionary(json.loads((out / "dictionary.json").read_text()))
    assert dictionary.anchor == "mini-vit.mae" and set(dictionary.best_buddies) == {"mini-resnet.sup"}
    anchor_layers = set(run.plan.layer_names("mini-vit.mae"))
    assert dictionary.concepts, "a run of 30 images with K=3 finds concepts"
    for concept in dictionary.concepts:
        assert {u.layer for u in concept.anchor_units} <= anchor_layers
        assert set(concept.members) == {"mini-resnet.sup"}
        assert concept.example_files == [sources[i] for i in concept.examples]
    html = (out / "report" / "index.html").read_text()
    assert "from the dataset" in html and "example images" in html

    # a changed folder is another configuration: refused with the reason, nothing lost
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "new.png")
    with pytest.raises(StoreMismatch, match="images_digest"):
        Run(out, config).validate()
    assert Run.open(out).table("mini-vit.mae", "mini-resnet.sup") is not None

    from rosetta_core.inversion import open_run

    with pytest.raises(ValueError, match="no generator.*need a run of a generator"):
        open_run(out)  # inversion needs a generator: one clear line, not a crash deep in a job


@pytest.mark.parametrize("count, message", [
    (0, "holds no image files"),
    (5, "has 5 readable images.*2K = 6"),
])
def test_too_few_images_is_one_clear_error_before_anything_runs(tmp_path, count, message):
    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    run = Run(tmp_path / "run", MineConfig(images=str(folder), encoders=ENCODERS, k=3, weights="random"))
    with pytest.raises(ValueError, match=message):
        run.validate()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fields, message", [
    ({"generator": "mini-gen"}, "were both given"),
    ({"encoders": ("mini-resnet.sup",)}, "at least two"),
    ({"anchor": "mini-clip.rn"}, "not one of the encoders"),
    ({"truncation": 0.7}, "generator setting"),
    ({"n": 100}, "has only 6 readable images"),
])
def test_image_run_settings_are_checked_with_one_clear_error(tmp_path, fields, message):
    folder = tmp_path / "six"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    config = MineConfig(**({"images": str(folder), "encoders": ENCODERS, "k": 3, "weights": "random"} | fields))
    with pytest.raises(ValueError, match=message):
        Run(tmp_path / "run", config).validate()


def test_a_generator_run_keeps_its_defaults_and_refuses_an_encoder_anchor():
    config = MineConfig()
    assert (config.generator, config.n, config.anchor_model) == ("mini-gen", 1600, "mini-gen")
    with pytest.raises(ValueError, match="anchors on its generator"):
        MineConfig(anchor="mini-vit.mae").validate()


def test_the_default_anchor_is_recorded_so_a_reordered_run_is_another_configuration(tmp_path):
    from invert_support import mine_in_process

    folder = tmp_path / "six"
    write_scenes(folder, 8, seed=2)
    config = MineConfig(images=str(folder), encoders=ENCODERS, k=3, chunk_size=4, weights="random")
    mine_in_process(tmp_path / "run", config, null=False)
    grown = MineConfig(images=str(folder), encoders=("mini-clip.rn", *ENCODERS), k=3, chunk_size=4, weights="random")
    with pytest.raises(StoreMismatch, match="anchor: stored 'mini-resnet.sup', asked 'mini-clip.rn'"):
        Run(tmp_path / "run", grown).validate()
    # the same encoder added after the anchor is an addition: only its activations and pairs are computed
    added = MineConfig(images=str(folder), encoders=(*ENCODERS, "mini-clip.rn"), k=3, chunk_size=4, weights="random")
    run, states, _ = mine_in_process(tmp_path / "run", added, null=False)
    assert states.count("computed") == 2 and run.table("mini-resnet.sup", "mini-clip.rn") is not None
