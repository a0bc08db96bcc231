"""Guided inversion on a real (tiny) finished mining run: the statistics it normalises with,
determinism, batch independence, the jobs' files and their errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from invert_support import scene_pngs, tiny_run
from oracles import resized

from rosetta_core.inversion import InversionConfig, encoder_matches, invert, open_run, self_matches
from rosetta_core.inversion import optimize as optimize_module
from rosetta_core.inversion.edits import (EDIT_FITS, EDIT_HOLDS, FIT_BOXES, default_box, default_fit, default_hold, edit,
                                          edit_problem, edit_targets)
from rosetta_core.inversion.jobs import check_job, edit_job, invert_file, job_done, visualize_job
from rosetta_core.inversion.losses import ImageCorrAct, act_loss, generator_maps, image_targets, normalised_targets
from rosetta_core.inversion.optimize import BOX_SAMPLES, BOX_SEED, latent_box, optimise, target_maps, to_uint8
from rosetta_core.zoo import load

pytestmark = pytest.mark.integration


def _prior_reg(gen, alpha):
    """``alpha * mean(((z - mean) / std)**2)`` with the prior's statistics computed here in float64
    from the same prior sample (std 1 where the prior is constant)."""
    sample = gen.sample_latents(BOX_SEED, np.arange(BOX_SAMPLES)).double().numpy()
    mean, std = sample.mean(0), sample.std(0, ddof=1)
    std = np.where(std > 1e-6 * (1 + np.abs(mean)), std, 1.0)
    m, s = torch.from_numpy(mean).float(), torch.from_numpy(std).float()
    return lambda z: alpha * ((z - m) / s).pow(2).mean(1)


# Two formulations that are equal in exact arithmetic are compared by one evaluation of their loss,
# L_act and gradient, not by optimisation trajectories: Adam divides each step by the gradient's
# running RMS, so a component whose gradient is near 0 steps by up to lr whatever its sign, and
# float rounding that differs between the two forms (and between CPUs: AVX2 / AVX-512 kernels sum
# in other orders) grows over the steps (edit against its direct form after 6 steps: 3.4e-4 on a
# 2-core AMD EPYC with AVX-512). A tolerance that held on any CPU would be of the order of the
# distance Adam can move (lr per step), too loose to tell a wrong objective.


def _near(z: torch.Tensor, count: int = 2, scale: float = 0.1, seed: int = 0) -> list[torch.Tensor]:
    """``z`` and ``count`` seeded perturbations of it (points off the start, where a pull to the
    start latent, which vanishes at the start, has a value and a gradient)."""
    rng = torch.Generator().manual_seed(seed)
    return [z] + [z + scale * torch.randn(z.shape, generator=rng) for _ in range(count)]


def _evaluate(gen, layers, objective, z, full=False):
    """(loss, act, d sum(loss) / dz) of ``objective`` at latents ``z``, the maps taken as
    ``optimise`` takes them (``full=False``: the forward pass stops at the deepest layer)."""
    z = z.detach().clone().requires_grad_(True)
    out, maps = generator_maps(gen.module.eval(), z, layers, images=full)
    loss, act = objective(z, out, maps)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach(), act.detach(), grad


def _assert_same_evaluation(got, want):
    """Equal up to the float32 rounding of one evaluation: 1e-5 of each tensor's largest
    magnitude (measured: at most 7e-7 of it, batched against alone; 6e-7 for the other pairs).
    A wrong term is far off: near the source latent, leaving out a hold of 3 moves the loss by 0.03
    and the gradient by 0.04 (of at most ~0.2)."""
    for name, g, w in zip(("loss", "act", "gradient"), got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5 * float(w.abs().max()), msg=lambda m, n=name: f"{n}: {m}")


def _posed(monkeypatch) -> list[SimpleNamespace]:
    """Records what each ``invert`` hands to ``optimise`` (start, layers, objective,
    needs_images); the optimisation then runs as usual."""
    posed, real = [], optimize_module.optimise

    def record(gen, start, layers, objective, config, progress=None, lr=None, needs_images=True):
        posed.append(SimpleNamespace(start=start, layers=layers, objective=objective, needs_images=needs_images))
        return real(gen, start, layers, objective, config, progress, lr, needs_images)

    monkeypatch.setattr(optimize_module, "optimise", record)
    return posed


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_run(tmp_path_factory.mktemp("inv") / "run")


def _layer_maps(run, model, layer):
    return np.asarray(run.store.array(run.maps_key(model, layer))[...], dtype=np.float64)


def test_pair_statistics_are_the_dataset_moments_of_each_resized_pair(run_dir):
    run = open_run(run_dir)
    matches = encoder_matches(run)
    assert matches.n_pairs == len(run.dictionary["best_buddies"]["mini-resnet.sup"]) - matches.dropped
    checked = 0
    for group in matches.groups[:6]:
        g = resized(_layer_maps(run, "mini-gen", group.gen_layer), group.grid)
        t = resized(_layer_maps(run, group.target_model, group.target_layer), group.grid)
        for p in range(min(len(group), 3)):
            a, b = g[:, group.gen_channels[p]], t[:, group.target_channels[p]]
            np.testing.assert_allclose(group.gen_mean[p], a.mean(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(group.target_mean[p], b.mean(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(group.gen_std[p], a.std(ddof=1), rtol=1e-4)
            np.testing.assert_allclose(group.target_std[p], b.std(ddof=1), rtol=1e-4)
            checked += 1
    assert checked >= 6
    own = self_matches(run).groups[0]  # a unit with itself: its own grid, its self statistics
    a = _layer_maps(run, "mini-gen", own.gen_layer)[:, own.gen_channels[0]]
    assert own.grid == a.shape[1:]
    np.testing.assert_allclose(own.gen_std[0], a.std(ddof=1), rtol=1e-4)


def test_inversion_is_deterministic_and_batch_independent(run_dir, monkeypatch):
    """Two identical runs give identical results; in a batch, an image gets the start, loss, L_act
    and gradient it gets alone (so, Adam being elementwise, the steps it takes alone)."""
    run = open_run(run_dir)
    gen = load("mini-gen", "random")
    encs = {"mini-resnet.sup": load("mini-resnet.sup", "random")}
    matches = encoder_matches(run)
    images = torch.from_numpy(np.asarray(run.store.array("images")[3:5]))
    cfg = InversionConfig(mode="ood", steps=4, seed=7)
    posed = _posed(monkeypatch)
    a = invert(gen, encs, matches, images, cfg)
    b = invert(gen, encs, matches, images, cfg)
    assert torch.equal(a.latents, b.latents) and np.array_equal(a.act, b.act)
    invert(gen, encs, matches, images[1:], cfg)
    batched, alone = posed[0], posed[2]
    assert torch.equal(batched.start[1], alone.start[0]) and batched.layers == alone.layers
    for z in _near(batched.start):
        got = _evaluate(gen, batched.layers, batched.objective, z)
        _assert_same_evaluation([t[1:] for t in got], _evaluate(gen, alone.layers, alone.objective, z[1:]))
    assert a.strip.shape[1:] == (2, 3, 64, 64) and len(a.history) == 4
    assert a.history[-1]["loss"] < a.history[1]["loss"]  # guidance is being optimised
    other = invert(gen, encs, matches, images, InversionConfig(mode="ood", steps=4, seed=8))
    assert not torch.equal(other.latents, a.latents)


def test_fast_path_follows_the_direct_form(run_dir, monkeypatch):
    """Folded kernels + a forward pass that stops at the deepest matched layer give the loss,
    L_act and gradient of the direct form (full forward, act_loss per pair) at the start and
    near it, the final L_act of the direct form, and a strip rendered from the step's latents."""
    run = open_run(run_dir)
    gen = load("mini-gen", "random")
    encs = {"mini-resnet.sup": load("mini-resnet.sup", "random")}
    matches = encoder_matches(run)
    images = torch.from_numpy(np.asarray(run.store.array("images")[:2]))
    cfg = InversionConfig(mode="ood", steps=5, seed=3, reg_center="prior")
    posed = _posed(monkeypatch)
    fast = invert(gen, encs, matches, images, cfg)
    (problem,) = posed
    layers = sorted({g.gen_layer for g in matches.groups})
    start = gen.sample_latents(cfg.seed, np.zeros(1, dtype=np.int64)).repeat(2, 1)
    assert problem.needs_images is False and problem.layers == layers and torch.equal(problem.start, start)
    targets = normalised_targets(matches, target_maps(encs, matches, images))
    reg = _prior_reg(gen, cfg.alpha)

    def direct(z, out, maps):
        assert out is not None  # the full forward pass ran
        act = act_loss(matches, maps, targets)
        return reg(z) - act, act

    for z in _near(start):
        _assert_same_evaluation(_evaluate(gen, layers, problem.objective, z), _evaluate(gen, layers, direct, z, full=True))
    with torch.no_grad():
        _, final = generator_maps(gen.module, fast.latents, layers)
        np.testing.assert_allclose(fast.act, act_loss(matches, final, targets).numpy(), rtol=1e-5, atol=1e-6)
        # the frame of step 0 (taken before its step) and the result are rendered from their latents
        assert torch.equal(fast.strip[0], to_uint8(gen.module(start)))
        assert torch.equal(fast.images, to_uint8(gen.module(fast.latents)))


def test_edit_hold_adds_a_pull_to_the_source_latent(run_dir):
    """``edit_problem(hold=h, fit=f)`` is Eq. 5 + ``h * mean((z - z_source)**2)`` written out
    directly (act_loss on the edited targets; ``fit="mse"``: half the mean squared difference of
    the normalised maps instead of ``-L_act``): the same loss, L_act and gradient at the source
    latent and near it; ``edit`` optimises that problem, and a larger hold ends nearer the source."""
    run = open_run(run_dir)
    gen = load("mini-gen", "random")
    matches = self_matches(run)
    latents = torch.from_numpy(np.asarray(run.store.array("latents")[2:4], dtype=np.float32))
    cfg = InversionConfig(mode="ood", steps=6, seed=1, lr=0.2)
    layers = sorted({g.gen_layer for g in matches.groups})
    _, source = gen.generate(latents, layers)
    targets = normalised_targets(matches, edit_targets(matches, source, "shift", None, 0.25, 0.0))
    # mse's loss is E / 2 - L_act (MapEnergy): the half squared difference minus the targets' own half energy
    own = 0.5 * sum(t.pow(2).mean(dim=(2, 3)).sum(dim=1) for t in targets) / matches.n_pairs

    def direct(hold, fit="mse"):
        def objective(z, _out, maps):
            act = act_loss(matches, maps, targets)
            if fit == "mse":
                misfit = -own
                for g, t in zip(matches.groups, targets):
                    m = F.interpolate(maps[g.gen_layer][:, g.gen_channels], size=g.grid, mode="bilinear", align_corners=False)
                    mean = torch.as_tensor(g.gen_mean).float()
                    mean = mean[None, :, None, None] if mean.ndim == 1 else mean[None]
                    std = torch.as_tensor(g.gen_std).float()[None, :, None, None]
                    misfit = misfit + 0.5 * ((m - mean) / std - t).pow(2).mean(dim=(2, 3)).sum(dim=1) / matches.n_pairs
            else:
                misfit = -act
            return cfg.alpha * z.pow(2).mean(1) + hold * (z - latents).pow(2).mean(1) + misfit, act

        return objective

    # (arguments, the hold and fit they mean); the defaults are per edit: a shift fits by mse
    # without a hold or box, with corr it holds (EDIT_HOLDS) inside the box (FIT_BOXES)
    cases = (({"hold": 0.0, "fit": "mse"}, 0.0, "mse"), ({"hold": 3.0, "fit": "mse"}, 3.0, "mse"),
             ({"hold": 3.0, "fit": "corr"}, 3.0, "corr"), ({}, 0.0, "mse"),
             ({"fit": "corr"}, EDIT_HOLDS["corr"]["shift"], "corr"))
    for kwargs, hold, fit in cases:
        problem = edit_problem(gen, matches, latents, "shift", cfg, **kwargs)
        assert torch.equal(problem.start, latents) and problem.layers == layers
        assert problem.config.project is FIT_BOXES[fit] and problem.config.steps == cfg.steps
        for z in _near(latents):  # the pull vanishes at the source latent itself
            _assert_same_evaluation(_evaluate(gen, layers, problem.objective, z), _evaluate(gen, layers, direct(hold, fit), z))
    # edit is that problem optimised (the same process: bit for bit), and the fits end apart (by 0.5)
    held = {}
    for fit in ("corr", "mse"):
        problem = edit_problem(gen, matches, latents, "shift", cfg, hold=3.0, fit=fit)
        held[fit] = edit(gen, matches, latents, "shift", cfg, hold=3.0, fit=fit)[0].latents
        assert torch.equal(held[fit], optimise(gen, problem.start, layers, problem.objective, problem.config,
                                               needs_images=False).latents)
    assert float((held["corr"] - held["mse"]).abs().max()) > 0.05
    # zoom fits by mse too; copy-paste by corr without a hold, inside the box
    assert default_fit("shift") == EDIT_FITS["shift"] == "mse" and default_hold("shift") == 0
    assert default_box("shift") is False and default_box("shift", "corr") is True
    assert default_hold("shift", "corr") == EDIT_HOLDS["corr"]["shift"] > 0
    assert default_fit("zoom") == "mse" and default_hold("zoom") == 0 and default_hold("zoom", "corr") == EDIT_HOLDS["corr"]["zoom"] > 0
    assert default_fit("copy-paste") == "corr" and default_hold("copy-paste") == 0 and default_box("copy-paste") is True
    assert torch.equal(edit(gen, matches, latents, "copy-paste", cfg)[0].latents,
                       edit(gen, matches, latents, "copy-paste", cfg, hold=0.0)[0].latents)
    # orderings with wide margins (distances about 6.1 / 1.1 / 0.04), not equalities
    longer = dataclasses.replace(cfg, steps=40)
    distance = {hold: float((edit(gen, matches, latents, "shift", longer, hold=hold)[0].latents - latents).norm())
                for hold in (0.0, 3.0, 1000.0)}
    assert distance[1000.0] < distance[3.0] < distance[0.0] and distance[0.0] > 0
    with pytest.raises(ValueError, match="hold=-1.0 must be >= 0"):
        edit(gen, matches, latents, "shift", cfg, hold=-1.0)


def test_edit_box_keeps_the_latent_inside_the_prior(run_dir):
    """``box=True`` projects every step onto the prior's box whatever ``config.project`` says;
    ``box=False`` lets a large step leave it; the default follows the fit (FIT_BOXES)."""
    run = open_run(run_dir)
    gen = load("mini-gen", "random")
    matches = self_matches(run)
    latents = torch.from_numpy(np.asarray(run.store.array("latents")[2:4], dtype=np.float32))
    low, high = latent_box(gen)
    cfg = InversionConfig(mode="ood", steps=4, seed=1, lr=2.0, warmup=0.0, rampdown=0.0)

    def outside(z):
        return float(torch.clamp(low - z, min=0).sum() + torch.clamp(z - high, min=0).sum())

    boxed = edit(gen, matches, latents, "zoom", dataclasses.replace(cfg, project=False), fit="mse", box=True)[0].latents
    free = edit(gen, matches, latents, "zoom", cfg, fit="mse", box=False)[0].latents
    assert outside(boxed) == 0 and outside(free) > 0.1
    torch.testing.assert_close(edit(gen, matches, latents, "zoom", cfg)[0].latents, free)  # zoom: mse, no box
    assert outside(edit(gen, matches, latents, "zoom", cfg, fit="corr", hold=0.0)[0].latents) == 0


def test_image_act_optimises_each_pairs_correlation_on_the_image(run_dir):
    """act="image": the optimisation raises the per-image correlation (ImageCorrAct on the
    final maps, built here from the target maps), bounded by 1, and lands elsewhere than Eq. 6."""
    run = open_run(run_dir)
    gen = load("mini-gen", "random")
    encs = {"mini-resnet.sup": load("mini-resnet.sup", "random")}
    matches = encoder_matches(run)
    images = torch.from_numpy(np.asarray(run.store.array("images")[5:7]))
    cfg = InversionConfig(mode="ood", steps=6, seed=2, act="image", reg_center="prior")
    got = invert(gen, encs, matches, images, cfg)
    act = ImageCorrAct(matches, image_targets(matches, target_maps(encs, matches, images)))
    with torch.no_grad():
        _, maps = generator_maps(gen.module, got.latents, sorted({g.gen_layer for g in matches.groups}))
    np.testing.assert_allclose(got.act, act(maps).numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(got.act) <= 1) and got.history[-1]["act"] > got.history[0]["act"]
    dataset = invert(gen, encs, matches, images, dataclasses.replace(cfg, act="dataset"))
    assert not torch.allclose(dataset.latents, got.latents)
    with pytest.raises(ValueError, match="act='image': edits fit the generator's own edited maps"):
        edit(gen, self_matches(run), gen.sample_latents(0, np.arange(1)), "zoom", cfg)
    with pytest.raises(ValueError, match="act='pixels' is not supported; valid: dataset, image"):
        check_job(run_dir, InversionConfig(act="pixels"))


def test_jobs_written_before_act_existed_still_count_as_done(tmp_path):
    """metrics.json of older jobs lacks the settings recorded since (act, and the config fields
    jobs did not record: perceptual_weight, warmup, rampdown, snapshots, project); they ran with
    today's defaults of those, so they count as done, and only with those values."""
    record = InversionConfig(steps=2).record()
    assert record["act"] == "dataset" and record["encoders"] == []
    old = {k: v for k, v in record.items() if k not in ("act", "perceptual_weight", "warmup", "rampdown", "snapshots", "project")}
    (tmp_path / "metrics.json").write_text(json.dumps({"settings": old}))
    assert job_done(tmp_path, record)
    assert not job_done(tmp_path, InversionConfig(steps=2, act="image").record())
    assert not job_done(tmp_path, InversionConfig(steps=2, snapshots=3).record())


def test_one_config_from_flow_parameters_to_the_record():
    """The config normalises lists to tuples (a flow or deployment parameter from JSON), so equal
    configurations compare equal, and its record gives it back; it is checked only by validate()."""
    config = InversionConfig(mode="rec", encoders=["mini-resnet.sup"], lr=0.2)
    assert config.encoders == ("mini-resnet.sup",) and config == InversionConfig(**config.record())
    assert json.loads(json.dumps(config.record())) == config.record()
    InversionConfig(steps=0)  # building one checks nothing; validate() does, once, at the start of a job
    with pytest.raises(ValueError, match="steps=0 must be an integer >= 1"):
        InversionConfig(steps=0).validate()


def test_jobs_write_their_files(run_dir, tmp_path):
    image = scene_pngs(tmp_path / "img", 1)[0]
    settings = InversionConfig(mode="rec", steps=2)
    run = check_job(run_dir, settings)
    metrics = invert_file(run, image, tmp_path / "out", settings)
    folder = tmp_path / "out" / "scene0"
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["perceptual"].startswith("features of mini-resnet.sup") and saved["lpips"] is None
    assert saved["steps"] == 2 and saved["seconds"] > 0 and metrics["out"] == str(folder)
    # one image: numbers, not one-element lists
    assert all(isinstance(saved[k], float) for k in ("psnr", "ssim", "final_l_act")), saved
    assert np.load(folder / "latent.npy").shape[0] == 1 and (folder / "strip.png").is_file()
    assert invert_file(run, image, tmp_path / "out", settings)["skipped"] is True
    assert metrics["settings"]["mode"] == "rec" and saved["settings"] == settings.record() | {"image": str(Path(image).resolve())}
    config = InversionConfig(steps=2)
    edited = edit_job(run, tmp_path / "out", "shift", config, index=1)
    assert edited["hold"] == 0.0 and edited["pad"] == "mean" and edited["fit"] == "mse" and edited["edit"] == "shift" and (tmp_path / "out" / "edit-shift-1" / "result.png").is_file()
    assert isinstance(edited["psnr"], float) and isinstance(edited["final_l_act"], float)
    concept = run.dictionary["concepts"][0]["id"]
    with pytest.raises(ValueError, match="--fit 'huber' is not supported; valid: mse, corr"):
        edit_job(run, tmp_path / "out", "shift", config, index=1, fit="huber")
    removed = edit_job(run, tmp_path / "out", "remove", config, concept=concept, fit="corr")
    zoomed = edit_job(run, tmp_path / "out", "zoom", config, index=1)
    assert zoomed["fit"] == "mse" and zoomed["hold"] == 0.0 and zoomed["box"] is False
    boxed = edit_job(run, tmp_path / "out2", "zoom", config, index=1, fit="corr")
    assert boxed["fit"] == "corr" and boxed["hold"] == EDIT_HOLDS["corr"]["zoom"] and boxed["box"] is True
    assert removed["concept"] == concept and removed["hold"] == 0.0 and removed["fit"] == "corr"
    shown = visualize_job(run, tmp_path / "out", concept, config, starts=3)
    assert np.load(tmp_path / "out" / f"concept-{concept}" / "latent.npy").shape[0] == 3
    assert shown["starts"] == 3 and len(shown["final_l_act"]) == 3  # a batch of starts: lists
    entry = run.dictionary["concepts"][0]
    unit = entry["anchor_units"][0]["unit"]
    single = visualize_job(run, tmp_path / "out", concept, config, starts=1, unit=unit)
    assert isinstance(single["final_l_act"], list) and len(single["final_l_act"]) == 1
    one = encoder_matches(run, concept=concept, gen_unit=unit)
    assert single["pairs"] == one.n_pairs and {int(u) for g in one.groups for u in g.gen_units} == {unit}
    assert (tmp_path / "out" / f"concept-{concept}-unit-{unit}" / "result.png").is_file()
    # out=None: a folder inside the run
    default = visualize_job(run, None, concept, config, starts=1)
    assert default["out"] == str(run_dir / "visualizations" / f"concept-{concept}")
    assert (run_dir / "visualizations" / f"concept-{concept}" / "metrics.json").is_file()


def test_bad_runs_concepts_and_settings_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(ValueError, match="nope is not a finished mining run"):
        open_run(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.json").write_text('{"complete": false}')
    with pytest.raises(ValueError, match="is not a finished mining run"):
        open_run(tmp_path / "half")
    run = open_run(run_dir)
    with pytest.raises(ValueError, match=r"encoder\(s\) \['mini-vit.mae'\] were not mined .* valid: mini-resnet.sup"):
        encoder_matches(run, ["mini-vit.mae"])
    with pytest.raises(ValueError, match=r"--encoders \['mini-vit.mae'\] were not mined .* valid: mini-resnet.sup"):
        check_job(run_dir, InversionConfig(encoders=("mini-vit.mae",)))
    with pytest.raises(ValueError, match="--perceptual-encoder: unknown model 'vgg-nope'; known models: "):
        check_job(run_dir, InversionConfig(mode="rec", perceptual_encoder="vgg-nope"))
    config = InversionConfig(steps=1)
    with pytest.raises(ValueError, match="concept 99999 is not in .*valid ids: 0\\.\\."):
        visualize_job(run, tmp_path, 99999, config)
    first = run.dictionary["concepts"][0]
    with pytest.raises(ValueError, match=r"generator unit 100000 has no usable matched pairs|generator unit 100000 \(the concept's"):
        encoder_matches(run, concept=first["id"], gen_unit=100000)
    with pytest.raises(ValueError, match="mode='sideways' is not supported; valid: ood, rec"):
        check_job(run_dir, InversionConfig(mode="sideways"))
    with pytest.raises(ValueError, match="edit 'rotate' is not supported"):
        edit_job(run, tmp_path, "rotate", config)
    with pytest.raises(ValueError, match="needs --concept ID or --unit"):
        edit_job(run, tmp_path, "remove", config)
    with pytest.raises(ValueError, match="--index 500 is out of range; the run has images 0..23"):
        edit_job(run, tmp_path, "zoom", config, index=500)
    with pytest.raises(ValueError, match=r"--hold -2.0 must be >= 0 \(0 = the paper's Eq. 5"):
        edit_job(run, tmp_path, "zoom", config, hold=-2.0)
    with pytest.raises(ValueError, match="steps=0 must be an integer >= 1"):
        InversionConfig(steps=0).validate()
