"""Weights choices of the paper's models: per-model overrides, offline errors, library caches used offline."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from rosetta_core.run import MineConfig
from rosetta_core.run.models import check_models
from rosetta_core.zoo import load, weights_for

pytestmark = pytest.mark.unit
torch.set_num_threads(2)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty library caches (real cache locations moved to tmp_path)."""
    import huggingface_hub.constants
    import pytorch_pretrained_biggan.file_utils as biggan_files

    monkeypatch.setenv("ROSETTA_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(biggan_files, "PYTORCH_PRETRAINED_BIGGAN_CACHE", str(tmp_path / "biggan"))
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield tmp_path
    torch.hub.set_dir(old_hub)


def test_weights_for_parses_a_default_and_overrides(tmp_path):
    spec = "pretrained,stylegan2.lsun-cat=/ckpt/cat.pt, dino-resnet50=random"
    assert weights_for("stylegan2.lsun-cat", spec) == "/ckpt/cat.pt"
    assert weights_for("dino-resnet50", spec) == "random"
    assert weights_for("RN50.openai", spec) == "pretrained"
    assert weights_for("mini-gen", "mini-gen=random") == "random" and weights_for("x", "mini-gen=random") == "trained"
    odd = tmp_path / "a=b.pt"
    odd.write_bytes(b"")
    assert weights_for("x", str(odd)) == str(odd)  # an existing file whose name holds '=' stays a path


@pytest.mark.parametrize("encoder, expected", [
    ("resnet50.tv_in1k", "model.safetensors of the Hugging Face repo timm/resnet50.tv_in1k"),
    ("vit_base_patch16_224.mae", "timm/vit_base_patch16_224.mae"),
    ("RN50.openai", "timm/resnet50_clip.openai"),
    ("dino-resnet50", "dino_resnet50_pretrain.pth"),
])
def test_offline_pretrained_is_one_error_naming_the_file(offline, encoder, expected):
    config = MineConfig(generator="mini-gen", encoders=(encoder,), weights=f"random,{encoder}=pretrained")
    with pytest.raises(ValueError) as err:
        check_models(config)
    message = str(err.value)
    assert expected in message and f"--weights {encoder}=PATH" in message and "offline" in message


def test_offline_biggan_and_stylegan2_errors(offline, monkeypatch):
    from rosetta_core.zoo.paper import stylegan2_zoo

    with pytest.raises(ValueError, match=r"no pretrained weights for 'biggan-deep-256'.*package cache"):
        check_models(MineConfig(generator="biggan-deep-256", encoders=("mini-resnet.sup",), weights="random,biggan-deep-256=pretrained"))
    monkeypatch.setattr(stylegan2_zoo, "WEIGHTS_HOME", offline / "weights")
    with pytest.raises(ValueError, match=r"weights/stylegan2.lsun-horse.pt does not exist.*--weights stylegan2.lsun-horse=PATH"):
        check_models(MineConfig(generator="stylegan2.lsun-horse", encoders=("mini-resnet.sup",), weights="random,stylegan2.lsun-horse=pretrained"))
    check_models(MineConfig(generator="biggan-deep-256", encoders=("resnet50.tv_in1k",), weights="random", class_index=999))
    with pytest.raises(ValueError, match=r"valid: 0..999"):
        check_models(MineConfig(generator="biggan-deep-256", encoders=("resnet50.tv_in1k",), weights="random", class_index=1000))
    with pytest.raises(ValueError, match="does not exist"):
        check_models(MineConfig(generator="biggan-deep-256", encoders=("resnet50.tv_in1k",), weights=str(offline / "none.pt")))


def test_dino_pretrained_from_the_torch_hub_cache_offline(offline):
    import torchvision

    from rosetta_core.zoo.paper.encoder_zoo import DINO_RN50_URL

    reference = torchvision.models.resnet50(weights=None)
    cached = offline / "torch_hub" / "checkpoints" / DINO_RN50_URL.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}, cached)
    check_models(MineConfig(generator="mini-gen", encoders=("dino-resnet50",), weights="random,dino-resnet50=pretrained"))
    adapter = load("dino-resnet50", "pretrained")
    assert adapter.weights == f"torch.hub: {DINO_RN50_URL}"
    torch.testing.assert_close(adapter.module.state_dict()["layer4.2.conv3.weight"], reference.state_dict()["layer4.2.conv3.weight"])


def test_biggan_pretrained_from_the_package_cache_offline(offline):
    from pytorch_pretrained_biggan.model import PRETRAINED_MODEL_ARCHIVE_MAP

    source = load("biggan-deep-256", "random", seed=5)
    url = PRETRAINED_MODEL_ARCHIVE_MAP["biggan-deep-256"]
    cache = offline / "biggan"
    cache.mkdir()
    name = hashlib.sha256(url.encode()).hexdigest()  # the package names cached files by URL hash
    torch.save(source.module.biggan.state_dict(), cache / name)
    (cache / f"{name}.json").write_text(json.dumps({"url": url, "etag": None}))
    adapter = load("biggan-deep-256", "pretrained")
    assert adapter.weights == "pytorch-pretrained-biggan: biggan-deep-256"
    assert adapter.weights_hash == source.weights_hash


def test_biggan_file_without_power_iteration_vectors_still_matches(tmp_path):
    source = load("biggan-deep-256", "random", seed=5)
    state = {k: v for k, v in source.module.biggan.state_dict().items() if not k.endswith(("weight_u", "weight_v"))}
    torch.save({"state_dict": state}, tmp_path / "biggan.pt")
    loaded = load("biggan-deep-256", str(tmp_path / "biggan.pt"), seed=9)  # other random u, v to start from
    latents = source.sample_latents(0, [0])
    _, want = source.generate(latents, ["layers.11.relu.3"])
    _, got = loaded.generate(latents, ["layers.11.relu.3"])
    # power iteration from other starting vectors: the same maps up to its convergence (without
    # re-running it, stale vectors overflow to inf/NaN within a few blocks)
    assert want["layers.11.relu.3"].max() > 0.3
    torch.testing.assert_close(got["layers.11.relu.3"], want["layers.11.relu.3"], rtol=0, atol=0.02)
