"""The paper's models through `rosetta mine` and `rosetta plan`, run as a user runs them (random weights, CPU)."""

from __future__ import annotations

import json
import subprocess
import tempfile

import pytest
import xarray as xr
from cli_helpers import prefect_env, rosetta_command

from rosetta_core.matching.dictionary import validate_dictionary

ENCODERS = "resnet50.tv_in1k,vit_base_patch16_224.dino,RN50.openai"
#: layers that keep the smoke run to about two minutes on two cores
SMALL_LAYERS = ["--layers", "biggan-deep-256=layers.4.relu.*", "--layers", "resnet50.tv_in1k=layer3,layer4",
                "--layers", "vit_base_patch16_224.dino=blocks.11.mlp.act", "--layers", "RN50.openai=layer4"]


def _rosetta(*args: str, home: str, **env: str) -> subprocess.CompletedProcess:
    environment = prefect_env(home) | {"OMP_NUM_THREADS": "2"} | env
    return subprocess.run([*rosetta_command(), *args], capture_output=True, text=True, timeout=1200, env=environment)


@pytest.mark.e2e
@pytest.mark.slow
def test_mine_biggan_with_three_paper_encoders_random_weights(tmp_path):
    out = tmp_path / "run"
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("mine", "--generator", "biggan-deep-256", "--encoders", ENCODERS, "--weights", "random",
                    "--n", "8", "--k", "3", "--chunk-size", "8", "--out", str(out), *SMALL_LAYERS, home=home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    dictionary = validate_dictionary(json.loads((out / "dictionary.json").read_text()))
    assert dictionary.run["generator"] == "biggan-deep-256" and dictionary.run["encoders"] == ENCODERS.split(",")
    ds = xr.open_zarr(out / "store.zarr")
    assert ds.sizes["image"] == 8 and ds["images"].shape == (8, 3, 256, 256)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and set(manifest["weights_hashes"]) == {"biggan-deep-256", *ENCODERS.split(",")}
    layers = {m: {name: shape for name, shape in ls} for m, ls in manifest["layers"].items()}
    assert layers["vit_base_patch16_224.dino"] == {"blocks.11.mlp.act": [3072, 14, 14]}
    assert layers["RN50.openai"] == {"layer4": [2048, 7, 7]}
    assert layers["biggan-deep-256"]["layers.4.relu.0"] == [1024, 16, 16]


@pytest.mark.e2e
def test_offline_pretrained_weights_one_clear_error(tmp_path):
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("mine", "--generator", "stylegan2.lsun-cat", "--encoders", "dino-resnet50", "--weights", "pretrained",
                    "--out", str(tmp_path / "run"), home=home, ROSETTA_OFFLINE="1", HF_HUB_OFFLINE="1",
                    ROSETTA_WEIGHTS_DIR=str(tmp_path / "weights"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()
    assert len(message) == 1 and str(tmp_path / "weights" / "stylegan2.lsun-cat.pt") in message[0]
    assert "--weights stylegan2.lsun-cat=PATH" in message[0]


@pytest.mark.e2e
def test_unknown_layer_pattern_is_one_error_listing_layers(tmp_path):
    home = tempfile.mkdtemp(prefix="prefect-home-")
    proc = _rosetta("plan", "--generator", "stylegan2.lsun-cat", "--encoders", "resnet50.tv_in1k", "--weights", "random",
                    "--layers", "resnet50.tv_in1k=layer9", home=home)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "['layer9']" in proc.stderr and "available layers: layer1, layer2, layer3, layer4" in proc.stderr


@pytest.mark.e2e
def test_mine_checks_layer_patterns_before_the_flow(tmp_path):
    home = tempfile.mkdtemp(prefix="prefect-home-")
    base = ["mine", "--generator", "stylegan2.lsun-cat", "--encoders", "resnet50.tv_in1k", "--weights", "random",
            "--n", "10", "--out", str(tmp_path / "run")]
    bad_layer = _rosetta(*base, "--layers", "stylegan2.lsun-cat=convs.99", home=home)
    assert bad_layer.returncode == 2 and "Traceback" not in bad_layer.stderr
    assert "['convs.99'] match no layer of stylegan2.lsun-cat; available layers: conv1, to_rgb1, convs.0" in bad_layer.stderr
    bad_model = _rosetta(*base, "--layers", "dino-resnet50=layer4", home=home)
    assert bad_model.returncode == 2 and "--layers names 'dino-resnet50', which is not in this run" in bad_model.stderr
    assert not (tmp_path / "run" / "store.zarr").exists()
