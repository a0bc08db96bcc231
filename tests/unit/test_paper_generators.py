"""The paper's generators with random weights: BigGAN-deep-256, StyleGAN2 (g_ema format), trusted pickles."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from pickle_support import source_tree_pickle

from rosetta_core.zoo.hooks import capture
from rosetta_core.inversion.optimize import InversionConfig, latent_prior, regulariser
from rosetta_core.zoo import load
from rosetta_core.zoo.paper import pickled
from rosetta_core.zoo.paper.stylegan2 import Upsample
from rosetta_core.zoo.paper.stylegan2_zoo import g_ema_checkpoint

pytestmark = pytest.mark.unit
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def biggan():
    return load("biggan-deep-256", "random")


@pytest.fixture(scope="module")
def stylegan():
    return load("stylegan2.lsun-cat", "random")


def test_biggan_layers_count_every_relu_application(biggan):
    default = set(biggan.select_layers(None))
    layers = [l for l in biggan.layers() if l.name in default]
    assert len(layers) == 12 * 4 + 1 and sum(l.units for l in layers) == 24320
    assert all(".relu." in l.name or l.name == "relu" for l in layers)
    by_name = {l.name: (l.units, l.grid) for l in layers}
    assert by_name["layers.0.relu.0"] == (2048, (4, 4))
    # an upsampling block: applications 0-1 before the x2 upsampling, 2-3 after it
    assert [by_name[f"layers.1.relu.{j}"] for j in range(4)] == [(2048, (4, 4)), (512, (4, 4)), (512, (8, 8)), (512, (8, 8))]
    assert "layers.8.relu.0" not in by_name  # index 8 is the self-attention, not a GenBlock
    assert by_name["relu"] == (128, (256, 256))


def test_biggan_forward_batch1_with_class_vector(biggan):
    biggan.class_index = 207
    try:
        latents = biggan.sample_latents(0, [5])
    finally:
        biggan.class_index = None
    assert latents.shape == (1, 1128) and latents[0, 128 + 207] == 1 and latents[0, 128:].sum() == 1
    images, maps = biggan.generate(latents, None)
    assert images.shape == (1, 3, 256, 256) and images.dtype == torch.uint8
    default = biggan.select_layers(None)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {l.name: (1, l.units, *l.grid) for l in biggan.layers() if l.name in default}
    assert all(torch.isfinite(v).all() and v.min() >= 0 for v in maps.values())
    # the applications of one ReLU module are different maps, not one map repeated
    assert not torch.equal(maps["layers.0.relu.1"], maps["layers.0.relu.2"])


def test_biggan_latents_truncated_normal_seeded_per_image(biggan):
    biggan.truncation = 0.5
    try:
        latents = biggan.sample_latents(3, range(40))
    finally:
        biggan.truncation = 0.4
    z = latents[:, :128]
    assert z.abs().max() <= 2 * 0.5 and z.std() > 0.3
    torch.testing.assert_close(biggan.sample_latents(3, [7, 39])[:, 128:], latents[[7, 39], 128:])
    classes = latents[:, 128:].argmax(1)
    assert len(set(classes.tolist())) > 30  # no --class-index: a class drawn per image
    with pytest.raises(ValueError, match="truncation=1.5"):
        biggan.truncation = 1.5


def test_stylegan2_layers_and_forward_256_batch1(stylegan):
    layers = stylegan.layers()
    convs = [l for l in layers if not l.name.startswith("to_rgb")]
    assert len(convs) == 13 and sum(l.units for l in convs) == 5376
    assert [l.grid[0] for l in layers if l.name.startswith("to_rgb")] == [4, 8, 16, 32, 64, 128, 256]
    images, maps = stylegan.generate(stylegan.sample_latents(0, [0]), ["convs.*", "to_rgbs.5"])
    assert images.shape == (1, 3, 256, 256) and images.float().std() > 1
    assert maps["convs.11"].shape == (1, 128, 256, 256) and maps["to_rgbs.5"].shape == (1, 3, 256, 256)


def test_stylegan2_maps_are_post_leaky_relu(stylegan):
    block = stylegan.module.generator.convs[4]
    with capture({"pre": block.noise}) as pre:
        _, maps = stylegan.generate(stylegan.sample_latents(0, [1]), ["convs.4"])
    expected = F.leaky_relu(pre["pre"][0] + block.activate.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(maps["convs.4"], expected)


def test_g_ema_key_format(stylegan):
    state = g_ema_checkpoint(stylegan.module)["g_ema"]
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["style.1.weight"] == (512, 512) and "style.9.weight" not in shapes
    assert shapes["input.input"] == (1, 512, 4, 4)
    assert shapes["conv1.conv.weight"] == (1, 512, 512, 3, 3) and shapes["conv1.noise.weight"] == (1,)
    assert shapes["convs.0.conv.blur.kernel"] == (4, 4) and shapes["convs.11.activate.bias"] == (128,)
    assert shapes["to_rgbs.5.conv.weight"] == (1, 3, 128, 1, 1) and shapes["to_rgbs.0.upsample.kernel"] == (4, 4)
    assert shapes["to_rgb1.bias"] == (1, 3, 1, 1) and shapes["noises.noise_12"] == (1, 1, 256, 256)
    assert sum(v.numel() for k, v in state.items() if not k.startswith("noises.") and "kernel" not in k) == 30034338


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_stylegan2_checkpoint_round_trip(tmp_path, stylegan, fmt):
    checkpoint = g_ema_checkpoint(stylegan.module)
    path = tmp_path / f"cat.{fmt}"
    if fmt == "pt":
        torch.save(checkpoint, path)
    else:
        from safetensors.torch import save_file

        save_file({f"g_ema.{k}": v.contiguous() for k, v in checkpoint["g_ema"].items()} | {"latent_avg": checkpoint["latent_avg"]}, str(path))
    loaded = load("stylegan2.lsun-cat", f"pretrained,stylegan2.lsun-cat={path}", seed=11)
    assert loaded.weights_hash == stylegan.weights_hash
    z = stylegan.sample_latents(4, [0])
    assert torch.equal(loaded.generate(z)[0], stylegan.generate(z)[0])


def test_stylegan2_checkpoint_missing_a_tensor_is_named(tmp_path, stylegan):
    checkpoint = g_ema_checkpoint(stylegan.module)
    del checkpoint["g_ema"]["convs.3.conv.modulation.weight"]
    torch.save(checkpoint, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="convs.3.conv.modulation.weight"):
        load("stylegan2.lsun-cat", str(tmp_path / "broken.pt"))


def test_fir_upsample_keeps_a_constant_image_constant():
    x = torch.full((1, 2, 8, 8), 3.0)
    y = Upsample()(x)
    assert y.shape == (1, 2, 16, 16)
    torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))


TINY_NETWORK = """
import torch
from torch import nn


class Synthesis(nn.Module):
    layer_names = ["L0_8_16", "L1_16_8"]

    def __init__(self):
        super().__init__()
        self.L0_8_16 = nn.Sequential(nn.ConvTranspose2d(4, 16, 8), nn.LeakyReLU(0.2))
        self.L1_16_8 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), nn.LeakyReLU(0.2))
        self.rgb = nn.Conv2d(8, 3, 1)

    def forward(self, w):
        return torch.tanh(self.rgb(self.L1_16_8(self.L0_8_16(w[:, :, None, None]))))


class TinyGenerator(nn.Module):
    z_dim, c_dim = 4, 3

    def __init__(self):
        super().__init__()
        self.mapping = nn.Linear(4 + 3, 4)
        self.synthesis = Synthesis()

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        return self.synthesis(self.mapping(torch.cat([z, c], 1)) * truncation_psi)
"""


@pytest.fixture
def tiny_pickle(tmp_path):
    with source_tree_pickle(tmp_path, "tiny_networks", TINY_NETWORK, lambda m: {"G_ema": m.TinyGenerator(), "G": None}) as made:
        yield made


def test_pickle_needs_explicit_trust_and_source_tree(tiny_pickle, tmp_path):
    path, tree = tiny_pickle
    with pytest.raises(ValueError, match="--trust-pickle"):
        pickled.load_network(path, tree, trust_pickle=False)
    with pytest.raises(ValueError, match="needs module 'tiny_networks'"):
        pickled.load_network(path, tmp_path, trust_pickle=True)
    network = pickled.load_network(path, tree, trust_pickle=True)
    assert network.z_dim == 4 and str(tree) not in sys.path


def test_pickled_generator_through_the_registry(tiny_pickle, monkeypatch):
    path, tree = tiny_pickle
    with pytest.raises(ValueError, match="add --trust-pickle"):
        load("stylegan3.pickle", str(path))
    with pytest.raises(ValueError, match="random init is not available"):
        load("stylegan3.pickle", "random")
    monkeypatch.setenv(pickled.TRUST_ENV, "1")
    monkeypatch.setenv(pickled.SOURCE_ENV, str(tree))
    adapter = load("stylegan3.pickle", str(path))
    assert [(l.name, l.units, l.grid) for l in adapter.layers()] == [("L0_8_16", 16, (8, 8)), ("L1_16_8", 8, (16, 16))]
    adapter.class_index = 2
    latents = adapter.sample_latents(0, [0, 1])
    assert latents.shape == (2, 7) and torch.equal(latents[:, 4:], torch.tensor([[0.0, 0, 1]] * 2))
    images, maps = adapter.generate(latents, ["L1_*"])
    assert images.shape == (2, 3, 16, 16) and set(maps) == {"L1_16_8"} and maps["L1_16_8"].shape == (2, 8, 16, 16)
    mean, std = latent_prior(adapter)
    assert torch.equal(mean, torch.zeros(7)) and torch.equal(std, torch.ones(7))


def test_paper_generators_regularise_with_the_papers_plain_norm(biggan, stylegan):
    """L_reg of a N(0, I) generator is the paper's ||z||^2 under both centrings."""
    for gen in (biggan, stylegan):
        z = gen.sample_latents(3, [0, 1]) * 1.7 + 0.2
        want = 0.1 * z.double().pow(2).mean(1)
        for center in ("prior", "zero"):
            got = regulariser(gen, InversionConfig(alpha=0.1, reg_center=center))(z)
            torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)
