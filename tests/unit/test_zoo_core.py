"""Registry, hooks and the resumable training loop (model-independent parts of the zoo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rosetta_core.zoo.hooks import capture
from rosetta_core.zoo import LayerInfo, ModelSpec, get_spec, load, load_state, register, tokens_to_maps
from rosetta_core.zoo.base import EncoderAdapter
from rosetta_core.zoo.registry import _REGISTRY, register_modules
from rosetta_core.zoo.training import train

pytestmark = pytest.mark.unit


class _Tiny(EncoderAdapter):
    name, arch = "test-tiny", "conv-relu"

    def __init__(self):
        self.module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1), nn.ReLU())
        self.weights = "random"

    def layers(self):
        return [LayerInfo("relu1", 4, (8, 8)), LayerInfo("relu2", 2, (4, 4))]

    def preprocess(self, images):
        return images.float() / 255

    def activations(self, images, layers=None):
        names = self.select_layers(layers)
        mods = {"relu1": self.module[1], "relu2": self.module[3]}
        with capture({n: mods[n] for n in names}) as got:
            self.module(self.preprocess(images))
        return {n: got[n][0] for n in names}


@pytest.fixture(scope="module")
def tiny_spec():
    spec = ModelSpec("test-tiny", "encoder", "conv-relu", "a test model", build=_Tiny)
    register(spec)
    yield spec
    _REGISTRY.pop("test-tiny", None)


def test_duplicate_and_unknown_names_are_errors(tiny_spec):
    with pytest.raises(ValueError, match="already registered"):
        register(tiny_spec)
    with pytest.raises(ValueError, match=r"unknown model 'nope'; known models: .*test-tiny"):
        get_spec("nope")


def test_a_missing_zoo_module_is_an_error_not_skipped():
    with pytest.raises(ModuleNotFoundError, match="rosetta_core.zoo.embedded.mini_nothing"):
        register_modules("rosetta_core.zoo.embedded", ("mini_nothing",))


@pytest.mark.parametrize("name", ["biggan-deep-256", "resnet50.tv_in1k", "stylegan2.lsun-cat"])
def test_paper_weights_checks_share_the_choice_rules(name, tmp_path):
    check = get_spec(name).check_weights
    check("random")  # needs nothing
    (tmp_path / "w.pt").touch()
    check(str(tmp_path / "w.pt"))  # an existing file is read when loading
    with pytest.raises(ValueError, match=f"weights file '.*none.pt' for {name} does not exist"):
        check(str(tmp_path / "none.pt"))


def test_random_weights_are_seeded_and_hashed(tiny_spec):
    a, b, c = load("test-tiny", "random", seed=1), load("test-tiny", "random", seed=1), load("test-tiny", "random", seed=2)
    assert a.weights_hash == b.weights_hash != c.weights_hash
    assert a.weights == "random(seed=1)"


def test_missing_weights_file_and_mismatching_tensor_are_named(tiny_spec, tmp_path):
    with pytest.raises(ValueError, match="ships no weights"):
        load("test-tiny", "trained")
    from safetensors.torch import save_file

    state = _Tiny().module.state_dict()
    state["2.weight"] = torch.zeros(3, 4, 3, 3)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r"tensor '2.weight' has shape \(3, 4, 3, 3\) in the file but \(2, 4, 3, 3\)"):
        load("test-tiny", str(path))
    good = {k: v for k, v in _Tiny().module.state_dict().items() if k != "0.bias"}
    with pytest.raises(ValueError, match="'0.bias' is missing"):
        load_state(_Tiny().module, good, "x")


def test_layer_patterns_and_hooks_are_removed(tiny_spec):
    model = load("test-tiny", "random")
    assert model.select_layers("relu*") == ["relu1", "relu2"]
    with pytest.raises(ValueError, match="available layers: relu1, relu2"):
        model.select_layers(["conv9"])
    maps = model.activations(torch.zeros(2, 3, 8, 8, dtype=torch.uint8) + 100)
    assert maps["relu2"].shape == (2, 2, 4, 4) and (maps["relu1"] >= 0).all()
    assert all(not m._forward_hooks for m in model.module.modules())


def test_hooks_removed_on_error():
    relu = nn.ReLU()
    with pytest.raises(RuntimeError):
        with capture({"r": relu}):
            raise RuntimeError("boom")
    assert not relu._forward_hooks


def test_tokens_to_maps_drops_the_class_token():
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    maps = tokens_to_maps(tokens, (2, 2))
    assert maps.shape == (2, 3, 2, 2)
    assert torch.equal(maps[:, :, 0, 0], tokens[:, 1])
    with pytest.raises(ValueError, match="1 \\+ 3x3 tokens"):
        tokens_to_maps(tokens, (3, 3))


class _Regression:
    """A recipe: fit y = 3x with SGD, batches drawn from the step number."""

    name = "regression"

    def __init__(self):
        self.w = nn.Parameter(torch.zeros(1))
        self.opt = torch.optim.SGD([self.w], lr=0.05)

    def step(self, step):
        x = torch.from_numpy(np.random.default_rng(step).normal(size=8)).float()
        noise = 0.01 * torch.randn(8)  # exercises the saved RNG state
        loss = ((self.w * x - (3 * x + noise)) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def state_dict(self):
        return {"w": self.w.detach().clone(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.opt.load_state_dict(state["opt"])


def test_training_resumes_exactly_and_the_loss_decreases(tmp_path):
    straight = _Regression()
    full = train(straight, 40, tmp_path / "a.pt", every=10)
    assert full.mean_loss("loss", last=5) < 0.1 * full.mean_loss("loss", first=5)
    first = _Regression()
    train(first, 20, tmp_path / "b.pt", every=10)  # "killed" after 20 steps
    resumed = _Regression()
    again = train(resumed, 40, tmp_path / "b.pt", every=10)
    assert again.resumed_from == 20 and len(again.history) == 40
    assert torch.equal(resumed.w, straight.w)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in full.history]
