"""A mining run of the trained embedded zoo labels its concepts by the world's ground truth
(dictionary.json, manifest.json, the report); a run whose images are not its scenes' gets none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from invert_support import mine_in_process
from rosetta_core.data import render_batch
from rosetta_core.report import render_report
from rosetta_core.data.factors import factor_masks
from rosetta_core.run import MineConfig, Run
from rosetta_core.run.ground_truth import label_concepts, run_truth
from rosetta_core.zoo.embedded.mini_gen import GEN_WORLD
from oracles import dissection_ious as oracle_ious

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gt-run")
    config = MineConfig(encoders=("mini-resnet.sup", "mini-clip.rn"), n=40, k=3, chunk_size=16, seed=3, dtype="float32")
    run, _, _ = mine_in_process(run_dir, config, null=False)
    return run_dir, run


def test_every_concept_has_a_label_and_the_manifest_a_summary(trained):
    run_dir, _ = trained
    dictionary = json.loads((run_dir / "dictionary.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert dictionary["concepts"], "the trained zoo finds concepts at n=40"
    for concept in dictionary["concepts"]:
        gt = concept["ground_truth"]
        assert gt["iou"] >= gt["runner_up"]["iou"] >= 0 and gt["factor"] != gt["runner_up"]["factor"]
        assert gt["aligned"] == (gt["iou"] >= 0.04)
        assert set(gt["models"]) == {"mini-gen", "mini-resnet.sup", "mini-clip.rn"}
    summary = manifest["summary"]["ground_truth"]
    assert summary == dictionary["ground_truth"]
    aligned = np.mean([c["ground_truth"]["aligned"] for c in dictionary["concepts"]])
    assert summary["aligned"] == pytest.approx(aligned) and 0 <= summary["random_baseline"] <= 1
    assert summary["threshold"] == 0.04 and summary["quantile"] == 0.995 and summary["images"] == 40
    assert summary["image_error"] < 8  # the trained generator draws its scenes
    assert sum(v["labelled"] for v in summary["per_factor"].values()) == len(dictionary["concepts"])
    assert {"object", "contour", "shadow", "background", "kind:circle", "colour:red", "slot:1"} <= set(summary["per_factor"])
    html = Path(render_report(run_dir)).read_text()
    assert '<h3 style="margin-top:14px">Ground truth</h3>' in html
    assert f'data-stat="ground_truth/aligned">{summary["aligned"]:.3f}<' in html
    shown = dictionary["concepts"][:40]
    assert html.count('class="r truth"') == len(shown)
    for concept in shown:
        assert f'data-truth="{concept["ground_truth"]["factor"]}"' in html


def test_a_concepts_label_is_the_brute_force_of_its_stored_units(trained):
    run_dir, run = trained
    run = Run.open(run_dir)
    dictionary = json.loads((run_dir / "dictionary.json").read_text())
    names, masks = factor_masks(render_batch(3, np.arange(40), GEN_WORLD))
    concept = max(dictionary["concepts"], key=lambda c: len(c["anchor_units"]) + sum(map(len, c["members"].values())))
    per_model = []
    for model, rows in [("mini-gen", concept["anchor_units"]), *concept["members"].items()]:
        scores = []
        for u in rows:
            maps = np.asarray(run.store.array(run.maps_key(model, u["layer"]))[:, [u["channel"]]], dtype=np.float64)
            scores.append(oracle_ious(maps, masks, 0.995)[0][0])
        per_model.append(np.mean(scores, axis=0))
    want = np.mean(per_model, axis=0)
    gt = concept["ground_truth"]
    assert gt["factor"] == names[int(np.argmax(want))]
    assert gt["iou"] == pytest.approx(want.max(), abs=2e-3)


def test_relabelling_is_deterministic_and_takes_other_settings(trained):
    run_dir, run = trained
    run = Run.open(run_dir)
    content = json.loads((run_dir / "dictionary.json").read_text())
    again = label_concepts(run, json.loads(json.dumps(content)))
    assert again == content["ground_truth"]
    loose = label_concepts(run, content, quantile=0.9, threshold=0.1, draws=3)
    assert loose["quantile"] == 0.9 and loose["threshold"] == 0.1 and loose["random_draws_per_concept"] == 3


def test_a_random_generator_has_no_ground_truth(tmp_path):
    config = MineConfig(encoders=("mini-resnet.sup",), n=24, k=3, chunk_size=12, weights="random", dtype="float32")
    run, _, _ = mine_in_process(tmp_path, config, null=False)
    assert run_truth(run) is None  # its images are not the scenes its latents encode
    dictionary = json.loads((tmp_path / "dictionary.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "ground_truth" not in dictionary and "ground_truth" not in manifest["summary"]
    assert all("ground_truth" not in c for c in dictionary["concepts"])
    html = Path(render_report(tmp_path)).read_text()
    assert "Ground truth" not in html and 'class="r truth"' not in html
