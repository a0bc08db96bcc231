"""The embedded zoo's training table: every shipped weight file passes its gate; training
resumes; exported weights load back through the registry."""

from __future__ import annotations

import pytest
import torch

from rosetta_core.zoo import get_spec, load
from rosetta_core.zoo.embedded.catalogue import SETUPS, evaluate, export_weights, train_model

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_every_shipped_weight_file_passes_its_gate_on_a_small_held_out_set(name):
    path = get_spec(name).weights_file
    if path is None or not path.is_file():
        pytest.skip(f"{name} ships no weights ({path.name}): its recipe has not passed its gate yet")
    report = evaluate(name, small=True)
    assert report.passed, report.summary()


def test_random_weights_fail_the_gate():
    report = evaluate("mini-vit.mae", load("mini-vit.mae", "random"), small=True)
    assert not report.passed and "probe_accuracy" in report.failures[0]


def test_unknown_model_lists_the_trainable_ones():
    with pytest.raises(ValueError, match="unknown embedded model 'nope'; trainable models: mini-gen"):
        evaluate("nope")
    with pytest.raises(ValueError, match="steps=0"):
        train_model("mini-gen", "/nonexistent", steps=0)


def test_exported_weights_load_back_through_the_registry(tmp_path):
    adapter = load("mini-vit.mae", "random", seed=3)
    path = export_weights("mini-vit.mae", adapter, tmp_path / "w.safetensors")
    again = load("mini-vit.mae", str(path))
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    a, b = adapter.activations(images), again.activations(images)
    for layer in a:
        assert torch.allclose(a[layer], b[layer], atol=2e-2), layer  # fp16 storage


def test_training_resumes_from_its_checkpoint_and_judges_the_result(tmp_path):
    first = train_model("mini-gen", tmp_path, steps=2, batch=4, small_gate=True)
    assert first["resumed_from"] == 0 and (tmp_path / "mini-gen" / "ckpt.pt").is_file()
    assert not first["gate"].passed and first["weights"] is None  # two steps draw no shapes
    again = train_model("mini-gen", tmp_path, steps=3, batch=4, small_gate=True)
    assert again["resumed_from"] == 2
