"""mini-resnet.sup / mini-resnet.ssl: registry, layers, hooks, recipes, weights files, gates."""

from __future__ import annotations

import numpy as np
import pytest
import timm.data
import torch
from safetensors.torch import save_file

from rosetta_core.data import KINDS, WorldConfig, render_batch
from rosetta_core.zoo import registry
from rosetta_core.zoo.embedded import mini_resnet as mr
from rosetta_core.zoo.embedded import resnet_recipes as rr

pytestmark = pytest.mark.unit

NAMES = (mr.SUP_NAME, mr.SSL_NAME)
EXPECTED = [("layer1", 16, (32, 32)), ("layer2", 32, (16, 16)), ("layer3", 64, (8, 8)), ("layer4", 128, (4, 4))]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(render_batch(5, range(6)).images)


@pytest.fixture(scope="module", params=NAMES)
def adapter(request):
    return registry.load(request.param, weights="random", seed=0)


def _hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def test_registry_builds_both_with_random_weights(adapter):
    spec = registry.get_spec(adapter.name)
    assert spec.kind == adapter.kind == "encoder"
    assert adapter.weights == "random(seed=0)" and not adapter.module.training
    assert spec.weights_file.name == f"{adapter.name}.safetensors"
    again = registry.load(adapter.name, weights="random", seed=0)
    other = registry.load(adapter.name, weights="random", seed=1)
    assert again.weights_hash == adapter.weights_hash != other.weights_hash


def test_sup_has_presence_head_and_ssl_has_none():
    sup = registry.load(mr.SUP_NAME, weights="random")
    ssl = registry.load(mr.SSL_NAME, weights="random")
    x = torch.zeros(2, 3, 64, 64)
    assert sup.module(x).shape == (2, mr.N_OUTPUTS)
    assert ssl.module(x).shape == (2, 128)
    assert set(sup.module.state_dict()) - set(ssl.module.state_dict()) == {"fc.weight", "fc.bias"}


def test_layers_match_captured_maps_and_are_post_relu(adapter, images):
    assert [(i.name, i.units, i.grid) for i in adapter.layers()] == EXPECTED
    maps = adapter.activations(images)
    assert list(maps) == [name for name, _, _ in EXPECTED]
    for name, units, grid in EXPECTED:
        assert maps[name].dtype == torch.float32
        assert tuple(maps[name].shape) == (len(images), units, *grid)
        assert float(maps[name].min()) >= 0.0
        assert float(maps[name].max()) > 0.0
    assert list(adapter.activations(images, "layer[24]")) == ["layer2", "layer4"]


def test_hooks_are_removed_also_after_an_error(adapter, images, monkeypatch):
    assert _hook_count(adapter.module) == 0
    adapter.activations(images[:2])
    adapter.layers()
    assert _hook_count(adapter.module) == 0

    def broken(_x):
        raise RuntimeError("boom")

    monkeypatch.setattr(adapter.module.layer3, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        adapter.activations(images[:2])
    assert _hook_count(adapter.module) == 0


def test_unknown_layer_pattern_lists_available_layers(adapter, images):
    with pytest.raises(ValueError, match="layer9.*available layers: layer1, layer2, layer3, layer4"):
        adapter.activations(images[:1], ["layer9"])


def test_preprocess_uses_timm_data_config_and_checks_input(adapter, images):
    cfg = timm.data.resolve_model_data_config(adapter.module)
    assert tuple(cfg["mean"]) == mr.MEAN and tuple(cfg["std"]) == mr.STD
    x = adapter.preprocess(images)
    expected = (images.float() / 255 - torch.tensor(mr.MEAN).view(1, 3, 1, 1)) / torch.tensor(mr.STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)
    with pytest.raises(ValueError, match="uint8"):
        adapter.preprocess(images.float())
    with pytest.raises(ValueError, match="takes \\(64, 64\\)"):
        adapter.preprocess(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_classify_kinds_gives_presence_probabilities(images):
    sup = registry.load(mr.SUP_NAME, weights="random")
    probs = mr.classify_kinds(sup, images)
    assert probs.shape == (len(images), len(KINDS))
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    with pytest.raises(ValueError, match="no presence classifier"):
        mr.classify_kinds(registry.load(mr.SSL_NAME, weights="random"), images)


def test_presence_labels_and_set_metrics():
    scenes = render_batch(3, range(20))
    labels = mr.presence_labels(scenes)
    for i in range(20):
        kinds = {int(k) for k in scenes.kinds[i] if k >= 0}
        colours = {int(c) for c in scenes.colours[i] if c >= 0}
        assert set(np.flatnonzero(labels[i, :5].numpy())) == kinds
        assert set(np.flatnonzero(labels[i, 5:].numpy())) == colours
    perfect = mr.set_metrics(labels, labels)
    assert perfect["kind_set_accuracy"] == perfect["colour_set_accuracy"] == 1.0
    wrong = labels.clone()
    wrong[:10, 0] = 1 - wrong[:10, 0]
    metrics = mr.set_metrics(wrong, labels)
    assert metrics["kind_set_accuracy"] == 0.5 and metrics["colour_set_accuracy"] == 1.0
    assert metrics["kind_label_accuracy"] == pytest.approx(1 - 10 / 100)


def test_linear_probe_separates_separable_labels():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=gen)
    y = torch.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.3], 1).float()
    probs = mr.linear_probe(x[:300], y[:300], x[300:])
    assert ((probs > 0.5) == (y[300:] > 0.5)).float().mean() > 0.95


def test_augmentations_keep_range_shape_and_are_seeded():
    x, labels, maps = rr.render_mix(1, 0, 20)
    assert x.shape == (20, 3, 64, 64) and labels.shape == (20, mr.N_OUTPUTS)
    assert maps.shape == (20, 1 + len(KINDS), rr.AUX_GRID, rr.AUX_GRID)
    torch.testing.assert_close(maps.sum(1), torch.ones(20, rr.AUX_GRID, rr.AUX_GRID))
    torch.testing.assert_close(rr.blur(x, torch.zeros(20)), x)
    flipped, flipped_maps = rr.augment_sup(x, torch.Generator().manual_seed(3), maps)
    torch.testing.assert_close(flipped_maps.sum((2, 3)), maps.sum((2, 3)))  # symmetries move, keep mass
    for fn in (rr.augment_sup, rr.augment_view):
        a = fn(x, torch.Generator().manual_seed(3))
        b = fn(x, torch.Generator().manual_seed(3))
        assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
        torch.testing.assert_close(a, b)
        assert not torch.equal(a, x)


def test_nt_xent_prefers_matching_views():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=gen)
    matched, accuracy = rr.nt_xent(torch.cat([z, z + 0.01]), 0.2)
    unmatched, _ = rr.nt_xent(torch.cat([z, torch.randn(8, 16, generator=gen)]), 0.2)
    assert float(accuracy) == 1.0 and float(matched) < float(unmatched)


def test_supervised_steps_reduce_the_loss():
    torch.manual_seed(0)
    recipe = rr.SupervisedRecipe(steps=10, batch=8, seed=0)
    losses = [recipe.step(step)["loss"] for step in range(10)]  # ten different batches
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, losses


def test_simclr_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    recipe = rr.SimCLRRecipe(steps=6, batch=8, seed=0)
    losses = [recipe.step(0)["loss"] for _ in range(6)]  # the same views: the encoder learns them
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 1.0, losses


def test_view_coordinates_say_where_each_pixel_comes_from():
    x, _, _ = rr.render_mix(1, 0, 6)
    gen = torch.Generator().manual_seed(1)
    both = rr._crop(torch.cat([x, rr.pixel_coordinates(6)], 1), gen)
    view, where = rr._flips([both[:, :3], both[:, 3:]], gen)
    back = torch.nn.functional.grid_sample(x, where.permute(0, 2, 3, 1), mode="bilinear",
                                           padding_mode="reflection", align_corners=False)
    torch.testing.assert_close(back, view, atol=1e-4, rtol=0)
    _, coords = rr.augment_view(x, torch.Generator().manual_seed(2), with_coordinates=True)
    assert coords.shape == (6, 2, 64, 64) and float(coords.abs().max()) <= 1.0


def test_dense_nt_xent_rewards_matching_cells_only_where_views_overlap():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 16, 8, 8, generator=gen)
    where = rr.pixel_coordinates(3, 8)
    same = rr.dense_nt_xent(z, z, where, where, 0.2, 0.15)
    other = rr.dense_nt_xent(z, torch.randn(3, 16, 8, 8, generator=gen), where, where, 0.2, 0.15)
    assert float(same) < float(other)
    far = rr.dense_nt_xent(z, z, where, where + 5.0, 0.2, 0.15)  # no overlap: no dense signal
    assert float(far) == 0.0


def test_recipe_resumes_exactly():
    torch.manual_seed(0)
    first = rr.SupervisedRecipe(steps=10, batch=8)
    for step in range(2):
        first.step(step)
    state = first.state_dict()
    torch.manual_seed(1)
    second = rr.SupervisedRecipe(steps=10, batch=8)
    second.load_state_dict(state)
    assert first.step(2) == second.step(2)


def test_weights_file_roundtrip_and_wrong_shape_error(tmp_path):
    sup = registry.load(mr.SUP_NAME, weights="random", seed=3)
    state = {k: v.half() if v.is_floating_point() else v for k, v in sup.module.state_dict().items()}
    good = tmp_path / "good.safetensors"
    save_file(state, str(good))
    loaded = registry.load(mr.SUP_NAME, weights=str(good))
    assert loaded.weights == str(good) and loaded.module.conv1[0].weight.dtype == torch.float32
    torch.testing.assert_close(loaded.module.fc.weight, sup.module.fc.weight, atol=1e-3, rtol=1e-3)
    state["layer2.0.conv1.weight"] = torch.zeros(1, 2, 3, 3, dtype=torch.float16)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(ValueError, match="layer2.0.conv1.weight.*shape"):
        registry.load(mr.SUP_NAME, weights=str(bad))
    with pytest.raises(ValueError, match=r"fc\.(weight|bias)"):  # a sup file is not an ssl model
        registry.load(mr.SSL_NAME, weights=str(good))


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no weights for 'mini-resnet.ssl'.*weights='random'"):
        registry.load(mr.SSL_NAME, weights=str(tmp_path / "absent.safetensors"))


def _shipped(name: str):
    path = registry.get_spec(name).weights_file
    if not path.is_file():
        pytest.skip(f"{path.name} is not shipped yet: train it with bench/train_resnet.py")
    return registry.load(name)


def test_shipped_sup_weights_pass_the_gate_on_a_small_held_out_set():
    metrics = mr.evaluate_sup(_shipped(mr.SUP_NAME), n=200)
    for key, low in mr.SUP_GATE.items():  # 200 scenes: allow ~3 standard errors below the gate
        assert metrics[key] >= low - 0.05, metrics


def _ssl_gate_margins(adapter, n: int = 300, n_train: int = 1500) -> tuple[float, float]:
    """(kind_label_accuracy of ``adapter``, its margin over the seeded random init) on the
    simple world (the gate's world), with a smaller probe set than the gate's."""
    simple = WorldConfig.simple()
    trained = mr.evaluate_ssl(adapter, n=n, n_train=n_train, config=simple)["kind_label_accuracy"]
    random_init = mr.evaluate_ssl(registry.load(mr.SSL_NAME, weights="random"), n=n, n_train=n_train,
                                  config=simple)["kind_label_accuracy"]
    return trained, trained - random_init


def test_shipped_ssl_weights_pass_the_linear_probe_gate_on_a_small_held_out_set():
    accuracy, margin = _ssl_gate_margins(_shipped(mr.SSL_NAME))
    # 300 scenes x 5 decisions: allow ~3 standard errors below the gate's 0.80 and 0.10
    assert accuracy >= mr.SSL_GATE["kind_label_accuracy"] - 0.03, accuracy
    assert margin >= 0.10 - 0.03, (accuracy, margin)


def test_the_ssl_weight_check_fails_a_random_init():
    accuracy, margin = _ssl_gate_margins(registry.load(mr.SSL_NAME, weights="random", seed=1))
    assert accuracy < mr.SSL_GATE["kind_label_accuracy"] - 0.03 and margin < 0.10 - 0.03


def test_world_config_of_the_mix_is_valid():
    weights = [w for w, _, _ in rr.TRAIN_MIX]
    assert sum(weights) == pytest.approx(1.0)
    assert all(isinstance(cfg, WorldConfig) for _, cfg, _ in rr.TRAIN_MIX)
    assert all(cfg.max_objects == 3 for _, cfg, _ in rr.SSL_MIX)  # same scene in every style
