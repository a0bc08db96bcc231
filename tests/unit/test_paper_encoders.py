"""The paper's encoders (timm / open_clip) with random weights: layers, maps, preprocessing, weights files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rosetta_core.zoo import load
from rosetta_core.zoo.paper.encoder_zoo import build_clip, build_timm

pytestmark = pytest.mark.unit
torch.set_num_threads(2)

RESNETS = ("resnet50.tv_in1k", "dino-resnet50", "RN50.openai")
VITS = ("vit_base_patch16_224.dino", "vit_base_patch16_224.mae")
STAGES = [("layer1", 256, (56, 56)), ("layer2", 512, (28, 28)), ("layer3", 1024, (14, 14)), ("layer4", 2048, (7, 7))]


@pytest.fixture(scope="module")
def resnet_224():
    return {name: load(name, "random") for name in RESNETS}


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_stage_units_and_grids_at_224(resnet_224, name):
    layers = resnet_224[name].layers()
    assert [(l.name, l.units, l.grid) for l in layers] == STAGES
    assert sum(l.units for l in layers) == 3840


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_maps_are_post_relu_with_the_listed_shapes(resnet_224, name):
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)  # a generator's 256 px output
    maps = resnet_224[name].activations(images)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {n: (2, u, *g) for n, u, g in STAGES}
    for value in maps.values():
        assert value.dtype == torch.float32 and value.min() >= 0 and value.max() > 0


def test_vit_mlp_gelu_units_grids_and_class_token_dropped():
    adapter = load("vit_base_patch16_224.dino", "random")
    layers = adapter.layers()
    assert [l.name for l in layers] == [f"blocks.{i}.mlp.act" for i in range(12)]
    assert {(l.units, l.grid) for l in layers} == {(3072, (14, 14))}
    assert sum(l.units for l in layers) == 36864
    images = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8)
    maps = adapter.activations(images, ["blocks.0.*", "blocks.11.*"])
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "blocks.0.mlp.act": (1, 3072, 14, 14), "blocks.11.mlp.act": (1, 3072, 14, 14)}
    # the map is the GELU output of the 196 patch tokens, in row-major order (no class token)
    captured = {}
    handle = adapter.module.blocks[0].mlp.act.register_forward_hook(lambda m, a, out: captured.setdefault("t", out))
    with torch.no_grad():
        adapter.module(adapter.preprocess(images))
    handle.remove()
    tokens = captured["t"][:, 1:].transpose(1, 2).reshape(1, 3072, 14, 14)
    torch.testing.assert_close(maps["blocks.0.mlp.act"], tokens)
    assert maps["blocks.0.mlp.act"].min() >= -0.1701  # GELU's minimum is about -0.17


@pytest.mark.parametrize("name", VITS)
def test_small_input_vits_give_gelu_maps(name):
    adapter = build_timm(name, name, image_size=64)
    assert {(l.units, l.grid) for l in adapter.layers()} == {(3072, (4, 4))}
    maps = adapter.activations(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8), ["blocks.5.mlp.act"])
    value = maps["blocks.5.mlp.act"]
    assert value.shape == (2, 3072, 4, 4) and value.min() >= -0.1701 and (value < 0).any()


def test_small_input_clip_skips_the_attention_pool():
    adapter = build_clip("RN50.openai", image_size=64)  # attnpool only accepts 224: never reached
    maps = adapter.activations(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "layer1": (256, 16, 16), "layer2": (512, 8, 8), "layer3": (1024, 4, 4), "layer4": (2048, 2, 2)}


def test_layer_globs_and_unknown_pattern_error(resnet_224):
    adapter = resnet_224["resnet50.tv_in1k"]
    assert adapter.select_layers(["layer[34]"]) == ["layer3", "layer4"]
    with pytest.raises(ValueError, match=r"\['block9'\].*available layers: layer1, layer2, layer3, layer4"):
        adapter.activations(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), ["layer1", "block9"])


def test_preprocessing_comes_from_the_library_configs(resnet_224):
    import open_clip

    clip = resnet_224["RN50.openai"].norm.describe()
    assert np.allclose(clip["mean"], open_clip.OPENAI_DATASET_MEAN) and np.allclose(clip["std"], open_clip.OPENAI_DATASET_STD)
    assert clip["interpolation"] == "bicubic" and clip["size"] == 224
    tv = resnet_224["resnet50.tv_in1k"].norm.describe()
    assert np.allclose(tv["mean"], (0.485, 0.456, 0.406)) and tv["interpolation"] == "bilinear"
    x = resnet_224["resnet50.tv_in1k"].preprocess(torch.full((1, 3, 256, 256), 255, dtype=torch.uint8))
    assert x.shape == (1, 3, 224, 224)
    torch.testing.assert_close(x[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))


def test_local_weights_file_with_prefixes_and_head_loads(tmp_path, resnet_224):
    from safetensors.torch import save_file

    source = load("resnet50.tv_in1k", "random", seed=3)
    state = {f"module.{k}": v.clone() for k, v in source.module.state_dict().items()}
    state["module.fc.weight"], state["module.fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path / "rn50.safetensors"
    save_file(state, str(path))
    loaded = load("resnet50.tv_in1k", f"resnet50.tv_in1k={path}")
    assert loaded.weights_hash == source.weights_hash != resnet_224["resnet50.tv_in1k"].weights_hash
    assert loaded.weights == str(path.resolve())


def test_dino_checkpoint_keys_map_into_timm_resnet50(tmp_path):
    import torchvision

    reference = torchvision.models.resnet50(weights=None)  # DINO's backbone is a torchvision ResNet-50
    teacher = {f"module.backbone.{k}": v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    teacher["module.head.mlp.0.weight"] = torch.zeros(2048, 2048)
    path = tmp_path / "dino_full_checkpoint.pth"
    torch.save({"teacher": teacher, "epoch": 3}, path)
    adapter = load("dino-resnet50", str(path))
    own = adapter.module.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(own[key], value, msg=key)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference.eval()
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))
        got = adapter.module.forward_features(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_mismatched_file_names_the_tensor(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(3, 3)}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not match the architecture"):
        load("resnet50.tv_in1k", str(tmp_path / "bad.pt"))


def test_pickled_code_is_refused_by_weights_only(tmp_path):
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": _Opaque()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        load("resnet50.tv_in1k", str(tmp_path / "code.pt"))


class _Opaque:
    """A class a weights-only unpickler must refuse."""
