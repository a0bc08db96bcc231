"""Issue 23's CPU path for mini-resnet.ssl: the cached scene set, the batched views against
per-image references, the cached-scene recipes and VICReg against a float64 loop oracle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rosetta_core.data import WorldConfig, render_batch
from rosetta_core.zoo.embedded import augmentations as aug
from rosetta_core.zoo.embedded.scene_cache import SceneCache, cached_scenes
from rosetta_core.zoo.embedded.ssl_recipes import CachedSSLRecipe, vicreg_loss

pytestmark = pytest.mark.unit

SIMPLE = WorldConfig.simple()


# ------------------------------------------------------------------ the cache
def test_cache_holds_the_rendered_scenes_and_is_reused(tmp_path):
    images = cached_scenes(tmp_path, 7, seed=4, config=SIMPLE)
    assert isinstance(images, np.memmap) and images.dtype == np.uint8 and images.shape == (7, 3, 64, 64)
    np.testing.assert_array_equal(images, render_batch(4, range(7), SIMPLE, "photo").images)
    cache = SceneCache(tmp_path, 7, 4, SIMPLE)
    stamp = cache.images_path.stat().st_mtime_ns
    cached_scenes(tmp_path, 7, seed=4, config=SIMPLE)
    assert cache.images_path.stat().st_mtime_ns == stamp  # not rendered again
    assert SceneCache(tmp_path, 8, 4, SIMPLE).key != cache.key != SceneCache(tmp_path, 7, 5, SIMPLE).key


@pytest.mark.parametrize("damage", ["images_missing", "record_missing", "flipped_byte", "truncated", "other_set"])
def test_cache_is_made_again_when_missing_or_corrupt(tmp_path, damage):
    cache = SceneCache(tmp_path, 5, 1, SIMPLE)
    good = np.array(cache.open())
    if damage == "images_missing":
        cache.images_path.unlink()
    elif damage == "record_missing":
        cache.meta_path.unlink()
    elif damage == "flipped_byte":
        raw = bytearray(cache.images_path.read_bytes())
        raw[-100] ^= 0xFF
        cache.images_path.write_bytes(bytes(raw))
    elif damage == "truncated":
        cache.images_path.write_bytes(cache.images_path.read_bytes()[:-64])
    else:
        record = json.loads(cache.meta_path.read_text())
        record["set"]["n"] = 6
        cache.meta_path.write_text(json.dumps(record))
    assert cache.problem() is not None
    again = cache.open()
    assert cache.problem() is None
    np.testing.assert_array_equal(again, good)


def test_cache_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="positive number"):
        cached_scenes(tmp_path, 0, seed=1)


# ------------------------------------------------------------------ batched views
@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    return torch.from_numpy(render_batch(3, range(12), SIMPLE, "photo").images)


def test_batched_views_equal_views_made_one_image_at_a_time(scenes):
    params = aug.draw_views(len(scenes), torch.Generator().manual_seed(1))
    for size in (64, 48):
        batched = aug.apply_views(scenes, params, size)
        assert batched.shape == (12, 3, size, size) and batched.min() >= 0 and batched.max() <= 1
        single = torch.cat([aug.apply_views(scenes[i:i + 1], aug.view_slice(params, slice(i, i + 1)), size)
                            for i in range(len(scenes))])
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_draw_views_crops_inside_the_image_and_is_seeded():
    a = aug.draw_views(500, torch.Generator().manual_seed(2))
    b = aug.draw_views(500, torch.Generator().manual_seed(2))
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    linear = a["theta"][:, :, :2]
    half_extent = linear.abs().sum(2)  # how far the crop reaches from its centre, per source axis
    assert (half_extent + a["theta"][:, :, 2].abs() <= 1 + 1e-6).all()
    area = linear.det().abs()
    assert area.min() >= 0.35 - 1e-5 and area.max() <= 1 + 1e-5
    assert set(a["symmetry"].tolist()) == set(range(8))


def _reference_crop(image: torch.Tensor, x0: int, y0: int, side: int, symmetry: int) -> torch.Tensor:
    """Crop pixels [y0, y0 + side) x [x0, x0 + side), resize to 64 with interpolate, then move
    pixels one by one: view pixel (row v, column u) shows the resized crop's point D @ (u, v),
    D = ``_DIHEDRAL[symmetry]`` (a coordinate -c is pixel index 63 - c)."""
    crop = F.interpolate(image[None, :, y0:y0 + side, x0:x0 + side], size=64, mode="bilinear", align_corners=False)[0]
    d = aug._DIHEDRAL[symmetry].int().tolist()
    out = torch.empty_like(crop)

    def coordinate(row, u, v):
        value = row[0] * u + row[1] * v  # in signed index form: +-(index + 1)
        return value - 1 if value > 0 else 64 + value

    for v in range(64):
        for u in range(64):
            x = coordinate(d[0], u + 1, v + 1)
            y = coordinate(d[1], u + 1, v + 1)
            out[:, v, u] = crop[:, y, x]
    return out


@pytest.mark.parametrize("symmetry", range(8))
def test_crop_and_flip_equal_an_integer_crop_resized_by_interpolate(scenes, symmetry):
    image = scenes[0].float() / 255.0
    x0, y0, side = 12, 20, 32
    s = side / 64
    params = aug.draw_views(1, torch.Generator().manual_seed(0), strength=(0, 0, 0, 0), p_grey=0.0)
    theta = torch.zeros(1, 2, 3)
    theta[0, :, :2] = s * aug._DIHEDRAL[symmetry]
    theta[0, 0, 2], theta[0, 1, 2] = (2 * x0 + side) / 64 - 1, (2 * y0 + side) / 64 - 1
    params["theta"] = theta
    got = aug.apply_views(image[None], params)[0]
    want = _reference_crop(image, x0, y0, side, symmetry)
    # interpolate clamps at the crop's edge where grid_sample reads the neighbouring source
    # pixel: compare away from the border
    torch.testing.assert_close(got[:, 2:-2, 2:-2], want[:, 2:-2, 2:-2], atol=1e-5, rtol=0)


def _reference_colour(x: np.ndarray, b: float, c: float, s: float, hue: float, grey: bool) -> np.ndarray:
    """Sequential colour jitter of one float64 image (3, h, w), no clamps until the end."""
    w = np.array([0.299, 0.587, 0.114])
    x = x * b
    m = np.einsum("c,chw->hw", w, x).mean()
    x = (x - m) * c + m
    g = np.einsum("c,chw->hw", w, x)
    x = (x - g) * s + g
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    y, i, q = np.einsum("ij,jhw->ihw", yiq, x)
    i, q = i * math.cos(hue) - q * math.sin(hue), i * math.sin(hue) + q * math.cos(hue)
    x = np.einsum("ij,jhw->ihw", np.linalg.inv(yiq), np.stack([y, i, q]))
    if grey:
        x = np.broadcast_to(np.einsum("c,chw->hw", w, x), x.shape)
    return np.clip(x, 0, 1)


def test_colour_jitter_equals_a_sequential_per_image_reference(scenes):
    params = aug.draw_views(len(scenes), torch.Generator().manual_seed(5), scale=(1.0, 1.0), p_grey=0.5)
    params["theta"] = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(len(scenes), 2, 3).clone()
    assert params["grey"].any() and not params["grey"].all() and (params["hue"].abs() > 1).any()
    got = aug.apply_views(scenes, params).double().numpy()
    for i in range(len(scenes)):
        want = _reference_colour(scenes[i].double().numpy() / 255.0, *(float(params[k][i]) for k in
                                 ("brightness", "contrast", "saturation", "hue")), bool(params["grey"][i]))
        np.testing.assert_allclose(got[i], want, atol=2e-5)


def test_identity_view_returns_the_image(scenes):
    params = aug.draw_views(3, torch.Generator().manual_seed(0), strength=(0, 0, 0, 0), p_grey=0.0)
    params["theta"] = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(3, 2, 3).clone()
    torch.testing.assert_close(aug.apply_views(scenes[:3], params), scenes[:3].float() / 255, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ recipes and losses
def test_vicreg_equals_a_float64_loop_oracle():
    gen = torch.Generator().manual_seed(0)
    za, zb = torch.randn(9, 5, generator=gen, dtype=torch.float64), torch.randn(9, 5, generator=gen, dtype=torch.float64)
    za[:, 0] *= 0.1  # one dimension below the variance hinge
    loss, parts = vicreg_loss(za, zb)
    a, b = za.numpy(), zb.numpy()
    inv = ((a - b) ** 2).mean()
    var = 0.5 * sum(np.mean([max(0.0, 1 - math.sqrt(z[:, j].var(ddof=1) + 1e-4)) for j in range(5)]) for z in (a, b))
    cov = 0.0
    for z in (a, b):
        c = np.cov(z, rowvar=False)
        cov += sum(c[i, j] ** 2 for i in range(5) for j in range(5) if i != j) / 5
    assert parts["invariance"] == pytest.approx(inv) and parts["variance"] == pytest.approx(var)
    assert parts["covariance"] == pytest.approx(cov)
    assert float(loss) == pytest.approx(25 * inv + 25 * var + cov)


@pytest.mark.parametrize("objective", ["simclr", "vicreg"])
def test_cached_recipe_batches_are_pure_and_steps_train(scenes, objective):
    images = scenes.numpy()
    recipe = CachedSSLRecipe(images, steps=10, objective=objective, batch=4, view_size=32)
    a1, b1 = recipe.batch_at(3)
    a2, b2 = recipe.batch_at(3)
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(b1, b2)
    assert a1.shape == (4, 3, 32, 32) and not torch.equal(a1, b1)
    assert not torch.equal(recipe.batch_at(4)[0], a1)
    before = [p.detach().clone() for p in recipe.adapter.module.parameters()]
    losses = recipe.step(0)
    assert math.isfinite(losses["loss"])
    assert any(not torch.equal(p, q) for p, q in zip(before, recipe.adapter.module.parameters()))


def test_cached_recipe_rejects_unknown_objective(scenes):
    with pytest.raises(ValueError, match="objective='byol'"):
        CachedSSLRecipe(scenes.numpy(), steps=10, objective="byol")


def test_zoo_train_builds_the_shipped_recipe_on_its_cached_set(tmp_path, monkeypatch, scenes):
    from rosetta_core.zoo.embedded import catalogue, ssl_recipes

    asked = []

    def small_set(folder):
        asked.append(folder)
        return scenes.numpy()

    monkeypatch.setattr(ssl_recipes, "shipped_training_set", small_set)
    monkeypatch.setattr(catalogue, "evaluate", lambda name, adapter, small: catalogue.GateReport(name, {}, ["skipped"]))
    row = catalogue.train_model("mini-resnet.ssl", tmp_path, steps=2, batch=4)
    assert asked == [tmp_path / "mini-resnet.ssl" / "scene-cache"]
    assert row["steps"] == 2 and row["weights"] is None and (tmp_path / "mini-resnet.ssl" / "ckpt.pt").is_file()
    recipe = catalogue.SETUPS["mini-resnet.ssl"].make(10, "cpu", 4, folder=tmp_path)
    assert (recipe.objective, recipe.view_size, recipe.batch) == (ssl_recipes.SHIPPED.objective, ssl_recipes.SHIPPED.view_size, 4)
    with pytest.raises(ValueError, match="pass folder="):
        catalogue.SETUPS["mini-resnet.ssl"].make(10, "cpu", 4)
