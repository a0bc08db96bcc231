"""mini-gen: the embedded conditional renderer, its latents, hooks, recipe and quality gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rosetta_core.data import KINDS, render_batch
from rosetta_core.zoo.hooks import capture
from rosetta_core.zoo import GeneratorAdapter, load
from rosetta_core.zoo.embedded.gen_recipes import (
    GenRecipe, evaluate_gen, gate_numbers, intended_kinds, pixel_metrics,
)
from rosetta_core.zoo.embedded.mini_gen import CODE_DIM, GEN_WORLD, LATENT_DIM, Z_DIM, MiniGenerator

pytestmark = pytest.mark.unit

GRIDS = {"block1": 4, "block2": 8, "block3": 16, "block4": 32, "block5": 64}


@pytest.fixture(scope="module")
def gen() -> GeneratorAdapter:
    torch.set_num_threads(1)
    return load("mini-gen", weights="random", seed=3)


def test_registry_builds_random_generator(gen):
    assert isinstance(gen, GeneratorAdapter) and gen.kind == "generator"
    assert gen.weights == "random(seed=3)"
    assert [info.name for info in gen.layers()] == list(GRIDS)
    assert all(info.grid == (g, g) for info, g in zip(gen.layers(), GRIDS.values()))
    assert not gen.module.training  # load() puts the module in eval mode


def test_layers_match_captured_maps(gen):
    images, maps = gen.generate(gen.sample_latents(0, range(3)), layers=None)
    assert set(maps) == set(GRIDS)
    for info in gen.layers():
        assert tuple(maps[info.name].shape) == (3, info.units, *info.grid), info.name
        assert maps[info.name].dtype == torch.float32
    _, some = gen.generate(gen.sample_latents(0, range(2)), layers=["block2", "block5"])
    assert set(some) == {"block2", "block5"}
    assert gen.generate(gen.sample_latents(0, [1]))[1] == {}


def test_maps_are_post_relu(gen):
    latents = gen.sample_latents(1, range(4))
    modules = gen.module.activation_modules()
    with torch.no_grad(), capture(modules, inputs=True) as pre:
        gen.module(latents)
    _, maps = gen.generate(latents, layers=None)
    for name, post in maps.items():
        assert post.min() >= 0, name
        assert torch.allclose(post, F.relu(pre[name][0]), atol=1e-6), name
        assert (pre[name][0] < 0).any(), f"{name}: pre-activation never negative, test is vacuous"
    assert all(not m._forward_hooks for m in modules.values())  # hooks removed


def test_latents_deterministic_and_batch_equals_singles(gen):
    a = gen.sample_latents(5, [0, 7, 3])
    b = gen.sample_latents(5, [0, 7, 3])
    assert a.dtype == torch.float32 and tuple(a.shape) == (3, LATENT_DIM) == (3, CODE_DIM + Z_DIM)
    assert torch.equal(a, b)
    singles = torch.cat([gen.sample_latents(5, [i]) for i in (0, 7, 3)])
    assert torch.equal(a, singles)
    assert not torch.equal(a, gen.sample_latents(6, [0, 7, 3]))
    codes = render_batch(5, [0, 7, 3], GEN_WORLD).codes
    assert np.array_equal(a[:, :CODE_DIM].numpy(), codes)
    z = gen.sample_latents(5, range(400))[:, CODE_DIM:]
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.1


def test_generate_uint8_and_module_differentiable(gen):
    latents = gen.sample_latents(2, range(3))
    images, _ = gen.generate(latents)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (3, 3, 64, 64)
    x = latents.clone().requires_grad_(True)
    out = gen.module(x)
    assert out.min() >= -1 and out.max() <= 1
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_inputs_raise_value_error(gen):
    with pytest.raises(ValueError, match="latents of shape"):
        gen.generate(torch.zeros(2, LATENT_DIM + 1))
    with pytest.raises(ValueError, match="match no layer"):
        gen.generate(gen.sample_latents(0, [0]), layers=["block9"])
    with pytest.raises(ValueError, match="widths"):
        MiniGenerator(widths=(8, 8))


def test_training_steps_reduce_loss():
    torch.manual_seed(0)
    recipe = GenRecipe(MiniGenerator(widths=(32, 16, 16, 8, 8)), batch=4, lr=3e-3)
    recipe.batch_at = lambda step, fixed=recipe.batch_at(0): fixed  # one fixed batch
    losses = [recipe.step(s)["loss"] for s in range(15)]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_loss_weights_objects_and_outlines():
    from rosetta_core.zoo.embedded.gen_recipes import training_tensors

    scenes = render_batch(2, range(6), GEN_WORLD)
    latents, target, weight = training_tensors(scenes, 2, mask_weight=5.0, dilate=2, contour_weight=10.0)
    assert tuple(latents.shape) == (6, LATENT_DIM) and tuple(weight.shape) == (6, 1, 64, 64)
    assert target.min() >= -1 and target.max() <= 1
    w = weight[:, 0].numpy()
    inside = scenes.object_masks.any(axis=1)
    assert np.all(w[scenes.contour] == 15.0)
    far = ~inside & (w < 2)
    assert far.mean() > 0.3 and np.all(w[far] == 1.0)
    assert set(np.unique(w)) <= {1.0, 5.0, 11.0, 15.0}


def test_lr_schedule_constant_then_cosine():
    recipe = GenRecipe(MiniGenerator(widths=(8, 8, 8, 8, 8)), lr=1e-3, total_steps=100, decay_frac=0.4)
    assert recipe.lr_at(0) == recipe.lr_at(60) == 1e-3
    assert recipe.lr_at(80) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert recipe.lr_at(100) == pytest.approx(5e-5)


def test_gate_numbers_hand_made():
    classes = KINDS  # circle, square, triangle, star, cross
    c, s, t, x = (KINDS.index(k) for k in ("circle", "square", "triangle", "cross"))
    probs = np.full((10, 5), 0.0)
    # argmax: circle x3, square x3, triangle x2, cross x2; 8 rows confident (>= 0.9), 2 not
    rows = [(c, .95), (c, .95), (c, .5), (s, .91), (s, .9), (s, .6), (t, .99), (t, .99), (x, .92), (x, .9)]
    for i, (k, p) in enumerate(rows):
        probs[i] = (1 - p) / 4
        probs[i, k] = p
    intended = np.array([c, c, s, s, s, s, t, c, x, t])  # agrees on rows 0,1,3,4,5,6,8 -> 7/10
    out = gate_numbers(probs, intended, classes, ("circle", "square", "triangle", "cross"))
    assert out["confident"] == pytest.approx(0.8)
    assert out["kind_fractions"] == pytest.approx({"circle": .3, "square": .3, "triangle": .2, "cross": .2})
    assert out["min_kind_fraction"] == pytest.approx(0.2)
    assert out["agreement"] == pytest.approx(0.7)
    assert out["passed"] is False  # confident 0.8 < 0.85 and agreement 0.7 < 0.8
    probs[2, c], probs[5, s] = 0.97, 0.97
    intended[2], intended[7], intended[9] = c, t, x
    out = gate_numbers(probs, intended, classes, ("circle", "square", "triangle", "cross"))
    assert (out["confident"], out["agreement"], out["passed"]) == (1.0, 1.0, True)
    # presence classifier on two-object scenes: the top kind may be the smaller object's kind
    two = np.array([[0.99, 0.98, 0.0, 0.0, 0.0],    # top circle, intended square (0.98): agrees
                    [0.99, 0.40, 0.0, 0.0, 0.0],    # top circle, intended square missed: no
                    [0.0, 0.0, 0.97, 0.0, 0.95],    # top triangle not asked (cross + square): no
                    [0.0, 0.0, 0.0, 0.0, 0.96]])    # top cross == intended: agrees
    asked = np.zeros((4, 5), dtype=bool)
    asked[0, [c, s]] = asked[1, [c, s]] = asked[2, [x, s]] = asked[3, [x]] = True
    out = gate_numbers(two, np.array([s, s, x, x]), classes, ("circle",), present=asked)
    assert out["agreement_strict"] == pytest.approx(0.25) and out["agreement"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="present"):
        gate_numbers(two, np.array([s, s, x, x]), classes, ("circle",), present=asked[:, :4])
    with pytest.raises(ValueError, match="probabilities"):
        gate_numbers(probs * 3, intended, classes, ("circle",))
    with pytest.raises(ValueError, match="shape"):
        gate_numbers(probs[:, :4], intended, classes, ("circle",))


def test_evaluate_gen_with_stand_in_classifier(gen):
    n, seed = 24, 9
    scenes = render_batch(seed, range(n), GEN_WORLD)
    intended = intended_kinds(scenes)
    sizes = np.nan_to_num(scenes.sizes, nan=-1)
    largest = sizes.argmax(axis=1)
    assert np.array_equal(intended, scenes.kinds[np.arange(n), largest])

    def always_circle(images: torch.Tensor) -> torch.Tensor:  # four columns: the world's kinds
        assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (3, 64, 64)
        return torch.tensor([[0.94, 0.02, 0.02, 0.02]]).repeat(len(images), 1)

    out = evaluate_gen(gen, always_circle, n=n, seed=seed, reference=True)
    expected = float(np.mean(intended == KINDS.index("circle")))
    assert out["confident"] == 1.0 and out["min_kind_fraction"] == 0.0
    assert out["kind_fractions"]["circle"] == 1.0
    assert out["agreement"] == pytest.approx(expected) and out["passed"] is False
    assert out["real"]["agreement"] == pytest.approx(expected)


def test_pixel_metrics_true_vs_blank():
    scenes = render_batch(4, range(40), GEN_WORLD)
    perfect = pixel_metrics(scenes.images, scenes)
    assert perfect["l1"] == 0.0 and perfect["fg_iou"] > 0.9
    assert all(perfect[f"iou_{k}"] > 0.9 for k in GEN_WORLD.kinds)
    blank = np.broadcast_to(scenes.images[:, :, :1, :1], scenes.images.shape)  # corner colour
    worst = pixel_metrics(np.ascontiguousarray(blank), scenes)
    assert worst["l1"] > 0.02 and worst["fg_iou"] < 0.1


def test_fp16_weights_load_as_float32(gen, tmp_path):
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in gen.module.state_dict().items()}
    save_file(state, str(tmp_path / "g.safetensors"))
    again = load("mini-gen", weights=str(tmp_path / "g.safetensors"))
    assert all(p.dtype == torch.float32 for p in again.module.parameters())
    lat = gen.sample_latents(0, range(2))
    a, b = gen.generate(lat)[0].int(), again.generate(lat)[0].int()
    assert (a - b).abs().max() <= 3  # fp16 rounding only


def test_shipped_weights_draw_the_scenes():
    from rosetta_core.zoo import get_spec

    path = get_spec("mini-gen").weights_file
    if path is None or not path.is_file():
        pytest.skip(f"mini-gen ships no trained weights yet ({path}): run bench/train_gen.py")
    adapter = load("mini-gen")
    scenes = render_batch(777, range(64), adapter.world)
    images, _ = adapter.generate(adapter.sample_latents(777, range(64)))
    m = pixel_metrics(images.numpy(), scenes)
    assert m["l1"] < 0.05 and m["fg_iou"] > 0.75, m
    assert min(m[f"iou_{k}"] for k in adapter.world.kinds) > 0.6, m
