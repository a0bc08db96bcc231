"""Exact maths of guided inversion against float64 brute force: L_act (Eq. 6) and its per-image
variant, the schedule, SSIM/PSNR, the moments round trip (edit transforms: test_edit_maps.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rosetta_core.inversion.edits import resolve_fit
from rosetta_core.inversion.losses import (ImageCorrAct, LinearAct, MapEnergy, act_loss, generator_maps, image_targets, lr_factor,
                                          normalised_targets, reg_loss)
from rosetta_core.inversion.matches import Matches, PairGroup
from rosetta_core.inversion.metrics import psnr, ssim
from rosetta_core.inversion.optimize import BOX_SAMPLES, BOX_SEED, InversionConfig, latent_prior, regulariser
from rosetta_core.engine.resize import bilinear_matrix
from rosetta_core.zoo import load

pytestmark = pytest.mark.unit

GEN_SHAPES = {"g4": (6, 4, 4), "g8": (5, 8, 8), "g3x7": (2, 3, 7)}
ENC_SHAPES = {"e8": (7, 8, 8), "e2": (3, 2, 2), "e5x2": (4, 5, 2)}


def _group(rng, gl, el, pairs, position: bool) -> PairGroup:
    (_, gh, gw), (_, eh, ew) = GEN_SHAPES[gl], ENC_SHAPES[el]
    grid = (max(gh, eh), max(gw, ew))
    cg, ce = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    shape = (len(pairs), *grid) if position else (len(pairs),)
    return PairGroup(gl, "enc", el, grid, cg, ce, cg + 100, rng.normal(size=shape), rng.uniform(0.5, 2, len(pairs)),
                     rng.normal(size=shape), rng.uniform(0.5, 2, len(pairs)))


def _brute(groups, gmaps, emaps) -> np.ndarray:
    """Per image: mean over pairs of (1/HW) sum_x of the two normalised, resized maps, in loops."""
    n = next(iter(gmaps.values())).shape[0]
    out = np.zeros(n)
    count = 0
    for g in groups:
        for p in range(len(g)):
            H, W = g.grid
            for i in range(n):
                a = gmaps[g.gen_layer][i, g.gen_channels[p]].astype(np.float64)
                b = emaps[g.target_layer][i, g.target_channels[p]].astype(np.float64)
                ra = bilinear_matrix(a.shape[0], H) @ a @ bilinear_matrix(a.shape[1], W).T
                rb = bilinear_matrix(b.shape[0], H) @ b @ bilinear_matrix(b.shape[1], W).T
                total = 0.0
                for y in range(H):
                    for x in range(W):
                        mg = g.gen_mean[p, y, x] if g.gen_mean.ndim == 3 else g.gen_mean[p]
                        me = g.target_mean[p, y, x] if g.target_mean.ndim == 3 else g.target_mean[p]
                        total += (ra[y, x] - mg) * (rb[y, x] - me) / math.sqrt(g.gen_std[p] ** 2 * g.target_std[p] ** 2)
                out[i] += total / (H * W)
            count += 1
    return out / count


@pytest.mark.parametrize("position", [False, True])
def test_act_loss_matches_brute_force(position):
    rng = np.random.default_rng(3)
    groups = (
        _group(rng, "g4", "e8", [(0, 1), (5, 6), (2, 2)], position),
        _group(rng, "g8", "e2", [(4, 0), (1, 2)], position),
        _group(rng, "g4", "e2", [(3, 1)], position),
    )
    gmaps = {k: rng.gamma(2.0, size=(2, *s)) for k, s in GEN_SHAPES.items()}
    emaps = {k: rng.gamma(2.0, size=(2, *s)) for k, s in ENC_SHAPES.items()}
    matches = Matches("gen", groups)
    targets = normalised_targets(matches, {"enc": {k: torch.from_numpy(v) for k, v in emaps.items()}})
    got = act_loss(matches, {k: torch.from_numpy(v) for k, v in gmaps.items()}, targets)
    np.testing.assert_allclose(got.numpy(), _brute(groups, gmaps, emaps), rtol=1e-5)
    # one-hot weights give that single pair's value
    weights = torch.zeros(matches.n_pairs)
    weights[4] = 1.0
    single = act_loss(matches, {k: torch.from_numpy(v) for k, v in gmaps.items()}, targets, weights)
    only = _brute((_group_slice(groups[1], 1),), gmaps, emaps)
    np.testing.assert_allclose(single.numpy(), only, rtol=1e-5)


@pytest.mark.parametrize("position", [False, True])
def test_linear_act_equals_brute_force_and_direct_gradients(position):
    """The folded kernels (targets projected onto the generator's grids, pairs sharing a unit
    summed) give the brute-force L_act, and the same gradient as the direct form."""
    rng = np.random.default_rng(5)
    groups = (
        _group(rng, "g4", "e8", [(0, 1), (5, 6), (0, 2)], position),  # unit 0 in two pairs
        _group(rng, "g8", "e2", [(4, 0), (1, 2)], position),
        _group(rng, "g4", "e2", [(3, 1), (0, 0)], position),
        _group(rng, "g3x7", "e5x2", [(1, 3), (0, 0)], position),  # rectangular, each side larger on one axis
    )
    gmaps = {k: rng.gamma(2.0, size=(3, *s)) for k, s in GEN_SHAPES.items()}
    emaps = {k: rng.gamma(2.0, size=(3, *s)) for k, s in ENC_SHAPES.items()}
    matches = Matches("gen", groups)
    targets = normalised_targets(matches, {"enc": {k: torch.from_numpy(v) for k, v in emaps.items()}})
    maps = {k: torch.from_numpy(v).requires_grad_(True) for k, v in gmaps.items()}
    linear = LinearAct(matches, targets)
    got = linear(maps)
    np.testing.assert_allclose(got.detach().numpy(), _brute(groups, gmaps, emaps), rtol=1e-6)
    got.sum().backward()
    folded = {k: v.grad.clone() for k, v in maps.items()}
    for v in maps.values():
        v.grad = None
    act_loss(matches, maps, targets).sum().backward()
    for k in maps:
        np.testing.assert_allclose(folded[k].numpy(), maps[k].grad.numpy(), rtol=1e-9, atol=1e-12)
    weights = torch.zeros(matches.n_pairs, dtype=torch.float64)
    weights[3] = 2.0
    np.testing.assert_allclose(LinearAct(matches, targets, weights)(maps).detach().numpy(),
                               _brute((_group_slice(groups[1], 0),), gmaps, emaps), rtol=1e-6)
    # float32 maps (the optimisation's path) agree to float32 precision
    maps32 = {k: torch.from_numpy(v.astype(np.float32)) for k, v in gmaps.items()}
    got32 = LinearAct(matches, targets)(maps32)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), _brute(groups, gmaps, emaps), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="2 target groups for 4"):
        LinearAct(matches, targets[:2])


def _half_mse_loop(groups, gmaps, tmaps) -> np.ndarray:
    """Per image: mean over pairs of (1/2HW) sum_x (g - t)^2 of the normalised, resized maps of
    a self pair (the target is another map of the same generator unit), in loops."""
    n = next(iter(gmaps.values())).shape[0]
    out, count = np.zeros(n), 0
    for g in groups:
        H, W = g.grid
        for p in range(len(g)):
            for i in range(n):
                a, b = (m[g.gen_layer][i, g.gen_channels[p]].astype(np.float64) for m in (gmaps, tmaps))
                ra, rb = (bilinear_matrix(v.shape[0], H) @ v @ bilinear_matrix(v.shape[1], W).T for v in (a, b))
                total = 0.0
                for y in range(H):
                    for x in range(W):
                        mean = g.gen_mean[p, y, x] if g.gen_mean.ndim == 3 else g.gen_mean[p]
                        total += ((ra[y, x] - mean) / g.gen_std[p] - (rb[y, x] - mean) / g.gen_std[p]) ** 2
                out[i] += total / (2 * H * W)
            count += 1
    return out / count


@pytest.mark.parametrize("position", [False, True])
def test_map_energy_turns_l_act_into_the_squared_difference(position):
    """``E / 2 - L_act`` equals half the mean squared difference of the normalised maps up to a
    constant of the targets (loops, self pairs as edits use, one on a larger grid than its map);
    at the targets themselves its gradient vanishes, while ``-L_act``'s does not."""
    rng = np.random.default_rng(11)

    def group(layer, channels, grid):
        shape = (len(channels), *grid) if position else (len(channels),)
        ch, mean, std = np.array(channels), rng.normal(size=shape), rng.uniform(0.5, 2, len(channels))
        return PairGroup(layer, "gen", layer, grid, ch, ch, ch + 100, mean, std, mean, std)

    groups = (group("g8", [0, 3], (8, 8)), group("g4", [1, 5], (8, 8)), group("g3x7", [1], (3, 7)))
    matches = Matches("gen", groups)
    gmaps = {k: rng.normal(size=(3, *s)) for k, s in GEN_SHAPES.items()}
    tmaps = {k: rng.normal(size=(3, *s)) for k, s in GEN_SHAPES.items()}
    targets = normalised_targets(matches, {"gen": {k: torch.from_numpy(v) for k, v in tmaps.items()}})
    const = 0.5 * torch.stack([t.pow(2).mean(dim=(2, 3)).sum(dim=1) for t in targets]).sum(dim=0) / matches.n_pairs
    maps = {k: torch.from_numpy(v) for k, v in gmaps.items()}
    fit = 0.5 * MapEnergy(matches)(maps) - LinearAct(matches, targets)(maps) + const
    np.testing.assert_allclose(fit.numpy(), _half_mse_loop(groups, gmaps, tmaps), rtol=1e-6)  # targets are float32
    at_target = {k: torch.from_numpy(v).requires_grad_(True) for k, v in tmaps.items()}
    (0.5 * MapEnergy(matches)(at_target) - LinearAct(matches, targets)(at_target)).sum().backward()
    assert max(float(v.grad.abs().max()) for v in at_target.values()) < 1e-6
    at_target = {k: torch.from_numpy(v).requires_grad_(True) for k, v in tmaps.items()}
    (-LinearAct(matches, targets)(at_target)).sum().backward()
    assert max(float(v.grad.abs().max()) for v in at_target.values()) > 1e-3
    maps32 = {k: v.float() for k, v in maps.items()}
    np.testing.assert_allclose(MapEnergy(matches)(maps32).numpy(), MapEnergy(matches)(maps).numpy(), rtol=1e-5)
    assert resolve_fit("shift", "corr") == "corr" and resolve_fit("shift", None) == "mse"
    with pytest.raises(ValueError, match="fit 'huber' is not supported; valid: mse, corr"):
        resolve_fit("shift", "huber")


def _image_corr_loop(groups, gmaps, emaps, eps) -> np.ndarray:
    """Per image: mean over pairs of the spatial correlation of the two resized maps, each
    standardised over its own positions with variance floor eps * dataset variance, in loops."""
    n = next(iter(gmaps.values())).shape[0]
    out, count = np.zeros(n), 0
    for g in groups:
        H, W = g.grid
        for p in range(len(g)):
            for i in range(n):
                sides = []
                for maps, layer, ch, std in ((gmaps, g.gen_layer, g.gen_channels[p], g.gen_std[p]),
                                             (emaps, g.target_layer, g.target_channels[p], g.target_std[p])):
                    v = maps[layer][i, ch].astype(np.float64)
                    r = bilinear_matrix(v.shape[0], H) @ v @ bilinear_matrix(v.shape[1], W).T
                    mean = sum(r[y, x] for y in range(H) for x in range(W)) / (H * W)
                    var = sum((r[y, x] - mean) ** 2 for y in range(H) for x in range(W)) / (H * W)
                    sides.append((r - mean) / math.sqrt(var + eps * std**2))
                out[i] += sum(sides[0][y, x] * sides[1][y, x] for y in range(H) for x in range(W)) / (H * W)
            count += 1
    return out / count


@pytest.mark.parametrize("eps", [1e-12, 0.5])
def test_image_corr_act_against_loops(eps):
    """act="image": each pair's correlation over the image's own positions (loops, float64),
    unchanged by a per-map affine change of the generator's maps (tiny eps), 1 for a map
    against itself, 0 with a finite gradient for a constant map; eps 0 is refused."""
    rng = np.random.default_rng(17)
    groups = (
        _group(rng, "g4", "e8", [(0, 1), (5, 6), (0, 2)], False),
        _group(rng, "g8", "e2", [(4, 0), (1, 2)], True),  # position statistics: only the std is used
        _group(rng, "g3x7", "e5x2", [(1, 3), (0, 0)], False),
    )
    gmaps = {k: rng.gamma(2.0, size=(3, *s)) for k, s in GEN_SHAPES.items()}
    emaps = {k: rng.gamma(2.0, size=(3, *s)) for k, s in ENC_SHAPES.items()}
    matches = Matches("gen", groups)
    targets = image_targets(matches, {"enc": {k: torch.from_numpy(v) for k, v in emaps.items()}}, eps)
    act = ImageCorrAct(matches, targets, eps)
    maps = {k: torch.from_numpy(v) for k, v in gmaps.items()}
    oracle = _image_corr_loop(groups, gmaps, emaps, eps)
    np.testing.assert_allclose(act(maps).numpy(), oracle, rtol=1e-5)  # targets are float32
    assert np.all(np.abs(oracle) < 1)
    if eps < 1e-6:
        scaled = {k: 3.0 * v + 7.0 for k, v in maps.items()}
        np.testing.assert_allclose(act(scaled).numpy(), oracle, rtol=1e-5)
    # a map against itself: 1 per pair (eps 0), below 1 with a floor
    self_groups = (PairGroup("g8", "gen", "g8", (8, 8), np.array([0, 2]), np.array([0, 2]), np.array([0, 2]),
                             np.zeros(2), np.ones(2), np.zeros(2), np.ones(2)),)
    self_matches = Matches("gen", self_groups)
    own = ImageCorrAct(self_matches, image_targets(self_matches, {"gen": maps}, eps), eps)(maps).numpy()
    np.testing.assert_allclose(own, _image_corr_loop(self_groups, gmaps, gmaps, eps), rtol=1e-5)
    assert np.allclose(own, 1.0, atol=1e-6) if eps < 1e-6 else np.all(own < 0.999)
    flat = {k: torch.ones_like(v).requires_grad_(True) for k, v in maps.items()}
    value = act(flat)
    value.sum().backward()
    np.testing.assert_allclose(value.detach().numpy(), 0.0, atol=1e-12)
    assert all(torch.isfinite(v.grad).all() for v in flat.values())
    with pytest.raises(ValueError, match="2 target groups for 3"):
        ImageCorrAct(matches, targets[:2])
    with pytest.raises(ValueError, match="eps=0 must be > 0"):
        ImageCorrAct(matches, targets, 0)
    with pytest.raises(ValueError, match="eps=0.0 must be > 0"):
        image_targets(matches, {"enc": {k: torch.from_numpy(v) for k, v in emaps.items()}}, 0.0)


def test_generator_maps_stops_after_the_deepest_requested_layer():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.ReLU()
            self.calls = 0

        def activation_modules(self):
            return {"a": self.a, "b": self.b, "c": self.c}

        def forward(self, z):
            h = self.b(self.a(z) * 2)
            self.calls += 1
            return self.c(h + 1)

    net, z = Net(), torch.ones(2, 3, requires_grad=True)
    images, maps = generator_maps(net, z, ["a", "b"], images=False)
    assert images is None and set(maps) == {"a", "b"} and net.calls == 0
    maps["b"].sum().backward()
    assert torch.equal(z.grad, torch.full((2, 3), 2.0))
    images, maps = generator_maps(net, z, ["a"], images=True)
    assert images is not None and net.calls == 1 and set(maps) == {"a"}
    assert not net.a._forward_hooks  # hooks removed


def _group_slice(g: PairGroup, p: int) -> PairGroup:
    s = slice(p, p + 1)
    return PairGroup(g.gen_layer, g.target_model, g.target_layer, g.grid, g.gen_channels[s], g.target_channels[s],
                     g.gen_units[s], g.gen_mean[s], g.gen_std[s], g.target_mean[s], g.target_std[s])


def test_act_loss_has_gradients_and_reg_losses():
    rng = np.random.default_rng(0)
    groups = (_group(rng, "g4", "e8", [(0, 1)], False),)
    matches = Matches("gen", groups)
    targets = normalised_targets(matches, {"enc": {"e8": torch.rand(1, 7, 8, 8)}})
    g = torch.rand(1, 6, 4, 4, requires_grad=True)
    act_loss(matches, {"g4": g}, targets).sum().backward()
    assert g.grad is not None and g.grad.abs().sum() > 0
    z = torch.tensor([[3.0, -4.0]])
    assert reg_loss(z, "l2").item() == pytest.approx(12.5)
    assert reg_loss(z, "l1").item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="reg='l3'"):
        reg_loss(z, "l3")


def test_prior_regulariser_against_float64_oracle():
    """mini-gen's prior is a scene code (flags and colours in [0, 1]): ``reg_center="prior"``
    standardises by the prior's per-dimension mean and std; the default ``"zero"`` is the raw
    ``mean(z**2)``; constant dimensions get std 1; an unknown centring is one clear error."""
    gen = load("mini-gen", "random")
    sample = gen.sample_latents(BOX_SEED, np.arange(BOX_SAMPLES)).double().numpy()
    mean, std = sample.mean(0), sample.std(0, ddof=1)
    constant = std <= 1e-6 * (1 + np.abs(mean))
    assert constant.any() and (np.abs(mean[~constant]) > 0.05).any()  # not a N(0, I) prior
    got_mean, got_std = latent_prior(gen)
    np.testing.assert_allclose(got_mean.numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_std.numpy(), np.where(constant, 1.0, std), rtol=1e-5, atol=1e-7)
    z = gen.sample_latents(5, np.arange(3)) + 0.3
    zd = z.double().numpy()
    for kind, power in (("l2", 2), ("l1", 1)):
        want = 0.7 * (np.abs((zd - mean) / np.where(constant, 1.0, std)) ** power).mean(1)
        got = regulariser(gen, InversionConfig(alpha=0.7, reg=kind, reg_center="prior"))(z)
        np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5)
        raw = regulariser(gen, InversionConfig(alpha=0.7, reg=kind))(z)
        np.testing.assert_allclose(raw.double().numpy(), 0.7 * (np.abs(zd) ** power).mean(1), rtol=1e-5)
    with pytest.raises(ValueError, match="reg_center='median' is not supported; valid: prior, zero"):
        InversionConfig(reg_center="median").validate()


def test_schedule_warmup_flat_cosine():
    steps = 500
    f = [lr_factor(s, steps) for s in range(steps)]
    assert f[0] == 0.0
    assert f[12] == pytest.approx(12 / 25)  # linear over the first 5% (25 steps)
    assert f[25] == pytest.approx(1.0) and f[300] == pytest.approx(1.0) and f[375] == pytest.approx(1.0)
    t = 450 / 500
    assert f[450] == pytest.approx(0.5 - 0.5 * math.cos((1 - t) / 0.25 * math.pi))
    assert all(a >= b for a, b in zip(f[375:], f[376:]))  # ramps down monotonically
    assert f[-1] < 1e-3


def _ssim_loop(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    vals = []
    for c in range(a.shape[0]):
        for y in range(a.shape[1] - 10):
            for x0 in range(a.shape[2] - 10):
                pa, pb = a[c, y : y + 11, x0 : x0 + 11], b[c, y : y + 11, x0 : x0 + 11]
                ma, mb = (win * pa).sum(), (win * pb).sum()
                va, vb = (win * (pa - ma) ** 2).sum(), (win * (pb - mb) ** 2).sum()
                cov = (win * (pa - ma) * (pb - mb)).sum()
                vals.append((2 * ma * mb + 1e-4) * (2 * cov + 9e-4) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4)))
    return float(np.mean(vals))


def test_ssim_and_psnr_against_loops():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, size=(2, 3, 16, 14), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, size=a.shape), 0, 255).astype(np.uint8)
    got = ssim(a, b)
    for i in range(2):
        assert got[i] == pytest.approx(_ssim_loop(a[i], b[i]), rel=1e-9)
    assert ssim(a, a) == pytest.approx([1.0, 1.0])
    mse = ((a.astype(float) - b) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(psnr(a, b), 10 * np.log10(255**2 / mse))
