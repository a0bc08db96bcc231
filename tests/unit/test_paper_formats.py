"""The paper's models in their official checkpoint formats, each rebuilt as a tiny (or random)
model of the same structure and loaded through the registry (``load(name, weights=PATH)``, the
``--weights NAME=PATH`` path); the paper's layer presets and the truncation setting."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from pickle_support import source_tree_pickle

from rosetta_core.run import MineConfig
from rosetta_core.run.models import check_models
from rosetta_core.zoo import get_spec, load
from rosetta_core.zoo.base import select_layer_names
from rosetta_core.zoo.hooks import capture
from rosetta_core.zoo.paper import pickled
from rosetta_core.zoo.paper.biggan import BIGGAN_DEEP_256, build_module, layer_table
from rosetta_core.zoo.paper.stylegan2_zoo import g_ema_checkpoint
from rosetta_core.zoo.paper.truncation import set_truncation
from rosetta_core.zoo.probe import layer_table as probe_table
from rosetta_core.zoo.probe import model_layers

pytestmark = pytest.mark.unit
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def stylegan():
    return load("stylegan2.lsun-cat", "random")


# --- BigGAN-deep: a from_pretrained folder (config.json + pytorch_model.bin) -------------------

#: a BigGAN-deep of the package with the structure of biggan-deep-256 in small: 4 GenBlocks
#: (channels halving from 16 x width as the package's generator requires), self-attention before
#: the third, 16x16 images, 10 classes
TINY_BIGGAN = dict(
    output_dim=16, z_dim=16, class_embed_dim=16, channel_width=4, num_classes=10,
    layers=[[True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1]], attention_layer_position=2, eps=1e-4, n_stats=51,
)


@pytest.fixture(scope="module")
def biggan_folder(tmp_path_factory):
    """A folder as ``BigGAN.from_pretrained(folder)`` reads it, holding a tiny random BigGAN."""
    folder = tmp_path_factory.mktemp("biggan-tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        module = build_module(TINY_BIGGAN)
        for name, tensor in module.biggan.state_dict().items():  # trained-like batch-norm statistics
            if name.endswith(("running_means", "running_vars")):
                tensor.copy_(torch.rand_like(tensor) + (0.5 if name.endswith("vars") else -0.5))
    (folder / "config.json").write_text(json.dumps(TINY_BIGGAN))
    torch.save(module.biggan.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_biggan_from_pretrained_folder_computes_the_packages_function(biggan_folder):
    from pytorch_pretrained_biggan import BigGAN

    reference = BigGAN.from_pretrained(str(biggan_folder)).eval()  # what the package's users run
    weights = f"random,biggan-deep-256={biggan_folder}"
    check_models(MineConfig(generator="biggan-deep-256", encoders=("mini-resnet.sup",), weights=weights))
    assert probe_table("biggan-deep-256", weights) == layer_table(TINY_BIGGAN)  # what `rosetta plan` sizes
    adapter = load("biggan-deep-256", weights, seed=9)
    assert adapter.weights == str(biggan_folder.resolve())
    assert adapter.layers() == layer_table(TINY_BIGGAN)
    latents = adapter.sample_latents(0, [0, 1, 2])
    assert latents.shape == (3, 16 + 10)
    for truncation in (0.4, 1.0):
        adapter.truncation = truncation
        with torch.no_grad():
            want = reference(latents[:, :16], latents[:, 16:], truncation)
            got = adapter.module(latents)
        assert torch.equal(got, want)
    # every hook point against the package's own modules (pre-BN convs: the paper's; post-ReLU: ours)
    names = [l.name for l in adapter.layers()]
    _, maps = adapter.generate(latents, names)
    modules = dict(reference.generator.named_modules())
    paper = [n for n in names if not (".relu." in n or n == "relu")]
    with torch.no_grad(), capture({n: modules[n] for n in paper}) as store:
        reference(latents[:, :16], latents[:, 16:], 1.0)
    for name in paper:
        assert torch.equal(maps[name], store[name][0]), name
    assert maps["layers.1.relu.0"].min() >= 0 and maps["layers.1.conv_0"].min() < 0  # before vs after the ReLU


def test_biggan_paper_preset_is_every_conv_the_papers_code_hooked(biggan_folder):
    """The paper's code hooked every module of ``BigGAN`` with "conv" in its name."""
    from pytorch_pretrained_biggan import BigGAN

    reference = BigGAN.from_pretrained(str(biggan_folder))
    hooked = [n.removeprefix("generator.") for n, _ in reference.named_modules() if "conv" in n]
    adapter = load("biggan-deep-256", str(biggan_folder))
    assert adapter.select_layers("@paper") == hooked
    full = [l.name for l in layer_table(BIGGAN_DEEP_256)]
    paper = select_layer_names("biggan-deep-256", full, "@paper")
    assert len(paper) == 12 * 4 + 4 + 1 and paper[-1] == "conv_to_rgb" and "layers.8.snconv1x1_o_conv" in paper
    assert sum(l.units for l in layer_table(BIGGAN_DEEP_256) if l.name in paper) == 23296  # as docs/paper-models.md says
    assert len(select_layer_names("biggan-deep-256", full, None)) == 49  # the default stays post-ReLU


def test_biggan_folder_missing_a_file_is_one_error(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"has no config.json; pass a folder holding config.json and pytorch_model.bin"):
        check_models(MineConfig(generator="biggan-deep-256", encoders=("mini-resnet.sup",), weights=str(tmp_path)))
    with pytest.raises(ValueError, match="has no config.json"):
        load("biggan-deep-256", str(tmp_path))


# --- DINO ResNet-50: the full training checkpoint of main_dino.py ------------------------------

def test_dino_full_training_checkpoint_loads_the_teacher_backbone(tmp_path):
    import torchvision

    teacher = torchvision.models.resnet50(weights=None)  # DINO's backbone: torchvision's ResNet-50, fc dropped
    backbone = {k: v for k, v in teacher.state_dict().items() if not k.startswith("fc.")}
    checkpoint = {
        "student": {f"module.backbone.{k}": v + 1 for k, v in list(backbone.items())[:4]}
        | {"module.head.mlp.0.weight": torch.zeros(8, 2048)},
        "teacher": {f"module.backbone.{k}": v for k, v in backbone.items()}
        | {"module.head.mlp.0.weight": torch.zeros(8, 2048), "module.head.last_layer.weight_g": torch.ones(16, 1)},
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.03, "params": [0]}]},
        "epoch": 100,
        "args": argparse.Namespace(arch="resnet50", out_dim=60000, lr=0.03, output_dir="/ckpt/dino", use_fp16=False),
        "dino_loss": {"center": torch.zeros(1, 16)},
    }
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    adapter = load("dino-resnet50", f"random,dino-resnet50={path}")
    assert argparse.Namespace not in torch.serialization.get_safe_globals()  # allowed for that load only
    own = adapter.module.state_dict()
    assert all(torch.equal(own[k], v) for k, v in backbone.items())
    x = torch.randn(1, 3, 64, 64)
    teacher.eval()
    with torch.no_grad():
        want = teacher.layer4(teacher.layer3(teacher.layer2(teacher.layer1(
            teacher.maxpool(teacher.relu(teacher.bn1(teacher.conv1(x))))))))
        got = adapter.module.forward_features(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# --- StyleGAN2-ADA: network pickles whose synthesis blocks return (x, img) --------------------

TINY_ADA = """
import torch
import torch.nn.functional as F
from torch import nn


class SynthesisBlock(nn.Module):
    # as StyleGAN2-ADA's: forward(x, img, ws) -> (x, img), the feature map and the RGB skip
    def __init__(self, c_in, c_out, resolution):
        super().__init__()
        self.resolution = resolution
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.torgb = nn.Conv2d(c_out, 3, 1)

    def forward(self, x, img, ws):
        if x is None:
            x = ws[:, :, None, None].expand(-1, -1, self.resolution, self.resolution)
        else:
            x = F.interpolate(x, scale_factor=2.0)
        x = F.leaky_relu(self.conv1(x), 0.2)
        y = self.torgb(x)
        img = y if img is None else F.interpolate(img, scale_factor=2.0) + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim):
        super().__init__()
        self.block_resolutions = [4, 8]
        self.b4 = SynthesisBlock(w_dim, 6, 4)
        self.b8 = SynthesisBlock(6, 5, 8)

    def forward(self, ws):
        x = img = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, ws)
        return img


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = 4, 0, 4
        self.mapping = nn.Linear(4, 4)
        self.synthesis = SynthesisNetwork(4)

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        return torch.tanh(self.synthesis(self.mapping(z) * truncation_psi))
"""


@pytest.fixture
def ada_pickle(tmp_path):
    def snapshot(module):
        network = module.Generator()
        return {"G": network, "D": None, "G_ema": network, "augment_pipe": None}

    with source_tree_pickle(tmp_path, "tiny_ada", TINY_ADA, snapshot, "network-snapshot.pkl") as made:
        yield made


def test_stylegan2_ada_pickle_hooks_the_feature_map_of_tuple_outputs(ada_pickle, monkeypatch):
    path, tree = ada_pickle
    monkeypatch.setenv(pickled.TRUST_ENV, "1")
    monkeypatch.setenv(pickled.SOURCE_ENV, str(tree))
    adapter = load("stylegan3.pickle", f"random,stylegan3.pickle={path}")
    assert [(l.name, l.units, l.grid) for l in adapter.layers()] == [("b4", 6, (4, 4)), ("b8", 5, (8, 8))]
    adapter.truncation = 0.5
    latents = adapter.sample_latents(0, [0, 1])
    images, maps = adapter.generate(latents, None)
    net = adapter.module.network
    with torch.no_grad():
        ws = net.mapping(latents) * 0.5
        x4, img4 = net.synthesis.b4(None, None, ws)
        x8, img8 = net.synthesis.b8(x4, img4, ws)
    assert torch.equal(maps["b4"], x4) and torch.equal(maps["b8"], x8)
    assert torch.equal(images, ((torch.tanh(img8) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"truncation=1.5 is invalid for stylegan3.pickle: use a number in \(0, 1\]"):
        adapter.truncation = 1.5


# --- CLIP RN50: OpenAI's TorchScript archive -----------------------------------------------------

class _OpenAIStyleCLIP(torch.nn.Module):
    """The key layout of OpenAI's scripted CLIP RN50: the image tower under ``visual.`` next to
    text-tower tensors and ``logit_scale``, in float16 as OpenAI ships it."""

    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.visual = visual
        self.positional_embedding = torch.nn.Parameter(torch.randn(77, 8))
        self.token_embedding = torch.nn.Embedding(10, 8)
        self.text_projection = torch.nn.Parameter(torch.randn(8, 1024))
        self.logit_scale = torch.nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image) * self.logit_scale.exp()


def test_openai_clip_torchscript_archive_loads_its_image_tower(tmp_path):
    import warnings

    source = load("RN50.openai", "random", seed=4)
    source.module.half().float()  # the values a float16 file holds
    scripted_from = _OpenAIStyleCLIP(source.module).half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated; OpenAI's files are TorchScript
        torch.jit.script(scripted_from).save(str(tmp_path / "RN50.pt"))
    source.module.float()
    loaded = load("RN50.openai", f"random,RN50.openai={tmp_path / 'RN50.pt'}")
    assert loaded.weights_hash != load("RN50.openai", "random").weights_hash
    own, want = loaded.module.state_dict(), source.module.state_dict()
    assert own.keys() == want.keys() and all(torch.equal(own[k], want[k]) for k in own)
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    got, ref = loaded.activations(images, ["layer2"]), source.activations(images, ["layer2"])
    assert torch.equal(got["layer2"], ref["layer2"])


# --- StyleGAN2 (rosinality g_ema): files without noise buffers, training checkpoints, LSUN car -----

def test_g_ema_file_without_noise_buffers_loads_with_fresh_ones_and_a_note(tmp_path, stylegan):
    checkpoint = g_ema_checkpoint(stylegan.module)
    checkpoint["g_ema"] = {k: v for k, v in checkpoint["g_ema"].items() if not k.startswith("noises.")}
    torch.save(checkpoint, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match=r"no noises\.\* buffers in the file"):
        loaded = load("stylegan2.lsun-cat", f"random,stylegan2.lsun-cat={tmp_path / 'old.pt'}", seed=0)
    assert loaded.weights.startswith(str((tmp_path / "old.pt").resolve())) and "fresh noise buffers" in loaded.weights
    z = stylegan.sample_latents(0, [0])
    assert torch.equal(loaded.generate(z)[0], stylegan.generate(z)[0])  # same build seed: the same noise
    checkpoint["g_ema"]["noises.noise_0"] = torch.zeros(1, 1, 4, 4)  # some buffers but not all: a broken file
    torch.save(checkpoint, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="noises.noise_1"):
        load("stylegan2.lsun-cat", str(tmp_path / "partial.pt"))


def test_rosinality_training_checkpoint_with_args_loads_g_ema(tmp_path, stylegan):
    checkpoint = {"g_ema": stylegan.module.generator.state_dict(), "g_optim": {"state": {}, "param_groups": []},
                  "args": argparse.Namespace(size=256, channel_multiplier=2, batch=16, path="/data/lsun-cat")}
    torch.save(checkpoint, tmp_path / "090000.pt")
    loaded = load("stylegan2.lsun-cat", str(tmp_path / "090000.pt"))
    assert loaded.weights_hash == stylegan.weights_hash


def test_stylegan2_lsun_car_is_the_papers_512px_generator(tmp_path):
    spec = get_spec("stylegan2.lsun-car")
    table = {l.name: (l.units, l.grid) for l in spec.layers()}
    assert table["convs.13"] == (64, (512, 512)) and table["to_rgbs.6"] == (3, (512, 512)) and len(table) == 23
    source = load("stylegan2.lsun-car", "random", seed=2)
    state = g_ema_checkpoint(source.module)
    assert tuple(state["g_ema"]["noises.noise_14"].shape) == (1, 1, 512, 512)
    torch.save(state, tmp_path / "stylegan2-car-config-f.pt")
    loaded = load("stylegan2.lsun-car", str(tmp_path / "stylegan2-car-config-f.pt"))
    assert loaded.weights_hash == source.weights_hash
    images, maps = loaded.generate(loaded.sample_latents(0, [0]), ["to_rgbs.6"])
    assert images.shape == (1, 3, 512, 512) and maps["to_rgbs.6"].shape == (1, 3, 512, 512)
    assert sum(table[n][0] for n in select_layer_names("stylegan2.lsun-car", list(table), "@paper")) == 5528 - 512 - 3


# --- layer presets --------------------------------------------------------------------------------

def test_stylegan2_paper_preset_is_the_papers_hook_points(stylegan):
    g = stylegan.module.generator
    # the paper's code: ("convs." and "activate" in name) or ("to_rgbs" and "conv" in name, not "modulation")
    hooked = [n for n, _ in g.named_modules()
              if ("convs." in n and "activate" in n) or ("to_rgbs" in n and "conv" in n and "modulation" not in n)]
    chosen = stylegan.select_layers(["@paper"])
    assert sorted(chosen) == sorted(n.rpartition(".")[0] for n in hooked)
    assert sum(l.units for l in stylegan.layers() if l.name in chosen) == 4882
    modules = dict(g.named_modules())
    with capture({"convs.4.activate": modules["convs.4.activate"], "to_rgbs.2.conv": modules["to_rgbs.2.conv"]}) as store:
        _, maps = stylegan.generate(stylegan.sample_latents(0, [0]), "@paper")
    assert torch.equal(maps["convs.4"], store["convs.4.activate"][0]) and torch.equal(maps["to_rgbs.2"], store["to_rgbs.2.conv"][0])


def test_every_declared_preset_glob_matches_a_layer_of_the_declared_table():
    import fnmatch

    from rosetta_core.zoo import list_models

    specs = [s for s in list_models() if s.layer_presets]
    assert {"biggan-deep-256", "stylegan2.lsun-cat", "stylegan2.lsun-car"} <= {s.name for s in specs}
    for spec in specs:
        names = [l.name for l in spec.layers()]
        for preset, globs in spec.layer_presets.items():
            for glob in globs:
                assert any(fnmatch.fnmatchcase(n, glob) for n in names), f"{spec.name} @{preset}: {glob}"


def test_preset_syntax_and_errors():
    table = [l.name for l in get_spec("stylegan2.lsun-cat").layers()]
    assert select_layer_names("stylegan2.lsun-cat", table, ["@paper", "conv1"]) == [n for n in table if n != "to_rgb1"]
    assert select_layer_names("stylegan2.lsun-cat", table, "@all") == table == select_layer_names("stylegan2.lsun-cat", table, "@default")
    with pytest.raises(ValueError) as err:
        select_layer_names("stylegan2.lsun-cat", table, ["@papers"])
    assert str(err.value) == "unknown layer preset '@papers' for stylegan2.lsun-cat; valid presets: @all, @default, @paper"
    with pytest.raises(ValueError, match=r"valid presets: @all, @default$"):
        select_layer_names("mini-gen", ["a", "b"], "@paper")
    assert select_layer_names("any", ["a.x", "b.x", "c"], "@mine", presets={"mine": ("*.x",)}) == ["a.x", "b.x"]
    layers, _ = model_layers("biggan-deep-256", ["@paper"])
    assert len(layers) == 53 and layers[-1] == ("conv_to_rgb", 128, 256, 256)
    check_models(MineConfig(generator="stylegan2.lsun-cat", encoders=("mini-resnet.sup",), weights="random",
                            layers={"stylegan2.lsun-cat": ("@paper",)}))
    with pytest.raises(ValueError, match="unknown layer preset '@pape'"):
        check_models(MineConfig(generator="stylegan2.lsun-cat", encoders=("mini-resnet.sup",), weights="random",
                                layers={"stylegan2.lsun-cat": ("@pape",)}))


# --- truncation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, default, paper", [
    ("biggan-deep-256", 0.4, 1.0), ("stylegan2.lsun-cat", 0.7, 1.0), ("stylegan2.lsun-horse", 0.7, 1.0),
    ("stylegan2.lsun-car", 0.7, 1.0), ("stylegan-xl.imagenet256", 0.7, 0.5), ("stylegan3.pickle", 0.7, 1.0),
])
def test_every_truncated_generator_lists_its_default_and_the_papers_truncation(name, default, paper):
    extra = get_spec(name).extra
    assert (extra["truncation"], extra["paper_truncation"]) == (default, paper)


def test_truncation_is_set_per_run(stylegan):
    z = stylegan.sample_latents(0, [0])
    at_default = stylegan.generate(z)[0]
    try:
        assert set_truncation(stylegan, "paper") == 1.0 == stylegan.truncation
        assert not torch.equal(stylegan.generate(z)[0], at_default)
        for bad in (0, 1.2, float("nan"), True, "0.5"):
            with pytest.raises(ValueError, match=r"is invalid for stylegan2.lsun-cat: use a number in \(0, 1\]"):
                set_truncation(stylegan, bad)
    finally:
        set_truncation(stylegan, "default")
    assert stylegan.truncation == 0.7
    with pytest.raises(ValueError, match="mini-gen has no truncation setting"):
        set_truncation(load("mini-gen", "random"), 1.0)
