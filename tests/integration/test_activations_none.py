"""``--activations none`` (issue 20, part 4): a run that folds each chunk's co-moments right after
its extraction and keeps no maps gives the tables of the same run keeping its maps; it resumes
per chunk, grows by an encoder, and its report recomputes the example heatmaps. Real stores,
the embedded zoo (random weights), no Prefect except the one flow test."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from invert_support import mine_in_process
from rosetta_core.data.scene_files import write_scenes
from rosetta_core.run import MineConfig, Run, plan_run
from rosetta_core.run.extraction import prepare_store
from rosetta_core.run.folding import fold_chunk, fold_pairs, fold_steps, merge_folds
from rosetta_core.run.outputs import unit_peaks

pytestmark = pytest.mark.integration

ENCODERS = ("mini-resnet.sup", "mini-vit.mae")
PAIRS = [("mini-gen", "mini-resnet.sup", False), ("mini-gen", "mini-vit.mae", False), ("mini-gen", None, False)]
NULLS = [("mini-gen", "mini-resnet.sup", True), ("mini-gen", "mini-vit.mae", True)]  # a shuffled null per encoder


def _config(**kw) -> MineConfig:
    return MineConfig(**({"encoders": ENCODERS, "n": 24, "k": 3, "chunk_size": 8, "weights": "random"} | kw))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("none")
    keep, _, _ = mine_in_process(base / "keep", _config())
    none, states, _ = mine_in_process(base / "none", _config(activations="none"))
    return keep, none, states


def without_checks(concepts: list[dict]) -> list[dict]:
    """Concepts without their checks: the null's chance levels differ in float rounding, like its table."""
    return [{k: v for k, v in c.items() if k != "checks"} for c in concepts]


def _state(acc) -> dict:
    return {k: np.asarray(v) for k, v in acc.state_dict().items()}


def test_tables_and_moments_equal_the_run_that_keeps_its_maps(runs):
    keep, none, states = runs
    assert states == ["computed"] * 5  # 3 chunks and 2 merges
    for a, b, null in PAIRS:  # same chunks, same fold, same tree: the same numbers
        np.testing.assert_array_equal(none.table(a, b, null), keep.table(a, b, null))
        kept, folded = _state(keep.moments(a, b, null)), _state(none.moments(a, b, null))
        assert kept.keys() == folded.keys()
        for key in kept:
            np.testing.assert_array_equal(folded[key], kept[key], err_msg=f"{a} {b} {key}")
        assert json.dumps(none.pair_summary(a, b, null)) == json.dumps(keep.pair_summary(a, b, null))
    for null in NULLS:  # the null pairs the same images; its chunks group them differently: equal up to float rounding
        np.testing.assert_allclose(none.table(*null), keep.table(*null), rtol=0, atol=1e-5)
        kept, folded = _state(keep.moments(*null)), _state(none.moments(*null))
        for key in kept:
            if kept[key].dtype.kind == "f":  # float32 sums within a chunk: 1e-5 of the array's scale
                assert np.abs(folded[key] - kept[key]).max() <= 1e-5 * np.abs(kept[key]).max(), (null, key)
            else:  # count, centring, shapes
                np.testing.assert_array_equal(folded[key], kept[key], err_msg=f"{null} {key}")
    d_keep, d_none = keep.dictionary, none.dictionary
    assert without_checks(d_none["concepts"]) == without_checks(d_keep["concepts"]) and d_none["pairs"] == d_keep["pairs"]
    for got, want in zip(d_none["concepts"], d_keep["concepts"]):
        for m, check in want["checks"]["shuffled_null"]["models"].items():
            assert got["checks"]["shuffled_null"]["models"][m]["chance"] == pytest.approx(check["chance"], abs=1e-5)
    assert d_none["rosetta_units"] == d_keep["rosetta_units"]


def test_the_store_keeps_images_latents_moments_and_tables_only(runs):
    keep, none, _ = runs
    for key in ("images", "latents"):
        np.testing.assert_array_equal(np.asarray(none.store.array(key)[...]), np.asarray(keep.store.array(key)[...]))
    for model, layers in none.plan.layers.items():
        for layer, _ in layers:
            assert none.maps_key(model, layer) not in none.store
    assert "folds" not in none.store or not list(none.store.group["folds"].keys())  # merged and deleted
    np.testing.assert_array_equal(unit_peaks(none, "mini-gen"), unit_peaks(keep, "mini-gen"))
    for a, b, null in [*PAIRS, *NULLS]:
        assert none.correlation_key(a, b, null) in none.store and none.moments_group(a, b, null) in none.store
    none.tree()  # still opens whole
    size = {r: sum(f.stat().st_size for f in Path(r.store_path).rglob("*") if f.is_file()) for r in (keep, none)}
    assert size[none] < size[keep]
    manifest = json.loads(Path(none.manifest_path).read_text())
    assert manifest["complete"] and manifest["config"]["activations"] == "none"


def test_the_report_recomputes_its_example_heatmaps(runs):
    keep, none, _ = runs
    from rosetta_core.report._parts import _Maps

    needs = {("mini-gen", "block2"): {0, 3}, ("mini-vit.mae", none.plan.layer_names("mini-vit.mae")[-1]): {1, 2},
             ("mini-resnet.sup", "layer1"): {0}}
    images = [5, 0, 17, 9]
    got, want = _Maps(none, images, needs), _Maps(keep, images, needs)
    np.testing.assert_array_equal(got.pixels, want.pixels)
    for key in needs:
        np.testing.assert_array_equal(got.maps[key][0], want.maps[key][0], err_msg=str(key))
        assert got.maps[key][1] == want.maps[key][1]
    from rosetta_core.report import render_report

    pngs = [re.findall(r'src="(data:image/png;base64,[^"]+)"', Path(render_report(r.location)).read_text())
            for r in (keep, none)]
    assert len(pngs[1]) > 10 and pngs[0] == pngs[1]  # the same example images and heatmaps


def test_a_killed_run_resumes_per_chunk_and_a_grown_run_folds_only_its_new_pairs(runs, tmp_path):
    _, full, _ = runs
    # one encoder first, killed after its first chunk and part of its second
    small = _config(encoders=ENCODERS[:1], activations="none")
    run = Run(tmp_path / "run", small)
    run.validate()
    prepare_store(run, plan_run(small))
    assert fold_chunk(run, 0) == "computed" and fold_chunk(run, 1) == "computed"
    run.drop_fold("mini-gen", None, False, 1, 2)  # as if killed before chunk 1's self pair was stored
    with pytest.raises(ValueError, match=r"folds/mini-gen__mini-gen/1-2: not folded yet"):
        merge_folds(run, 0, 1, 2)
    calls = []
    original = Run.write_fold

    def counted(self, a, b, null, first, stop, acc):
        calls.append((self.pair_name(a, b, null), first, stop))
        return original(self, a, b, null, first, stop, acc)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Run, "write_fold", counted)
        _, states, _ = mine_in_process(tmp_path / "run", small)
    assert states == ["skipped", "computed", "computed", "computed", "computed"]
    assert calls[0] == ("mini-gen__mini-gen", 1, 2)  # chunk 1: only the lost pair again
    assert not any(first == 0 and stop == 1 for _, first, stop in calls)
    # grown by an encoder: only its pair and its null are folded, every chunk again (the anchor's maps too)
    calls.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Run, "write_fold", counted)
        grown, states, _ = mine_in_process(tmp_path / "run", _config(activations="none"))
    assert states == ["computed"] * 5 and {name for name, _, _ in calls} == {"mini-gen__mini-vit.mae",
                                                                                    "mini-gen__mini-vit.mae__shuffled"}
    for pair in [*PAIRS, *NULLS]:
        np.testing.assert_array_equal(grown.table(*pair), full.table(*pair), err_msg=str(pair))
    assert fold_pairs(grown)[-2:] == NULLS


def test_an_image_run_keeping_no_maps_gives_the_same_tables(tmp_path):
    folder = tmp_path / "photos"
    write_scenes(folder, 20, seed=5)
    base = dict(images=str(folder), encoders=ENCODERS, anchor="mini-vit.mae", k=3, chunk_size=8, weights="random")
    keep, _, _ = mine_in_process(tmp_path / "keep", MineConfig(**base))
    none, states, _ = mine_in_process(tmp_path / "none", MineConfig(**base, activations="none"))
    assert "computed" in states and "latents" not in none.store
    assert none.sources() == keep.sources()
    np.testing.assert_array_equal(np.asarray(none.store.array("images")[...]), np.asarray(keep.store.array("images")[...]))
    for b in ("mini-resnet.sup", None):
        np.testing.assert_array_equal(none.table("mini-vit.mae", b), keep.table("mini-vit.mae", b))
    np.testing.assert_allclose(none.table("mini-vit.mae", "mini-resnet.sup", True),
                               keep.table("mini-vit.mae", "mini-resnet.sup", True), rtol=0, atol=1e-5)
    assert without_checks(none.dictionary["concepts"]) == without_checks(keep.dictionary["concepts"])


def test_the_mining_flow_folds_chunks_and_merges_them_on_its_cluster(prefect_api, runs, tmp_path, monkeypatch):
    """Through the flow's tasks on its Dask cluster, folding with the torch engine on the CPU
    (``--stats-device cpu``: the path a GPU takes apart from the device)."""
    from flows.mine import mine
    from rosetta_core.run import statistics

    engines = []  # the engine of every fold (the local cluster's workers are threads here)
    real = statistics.fold_chunks
    monkeypatch.setattr(statistics, "fold_chunks", lambda *a, **kw: engines.append(kw.get("device")) or real(*a, **kw))
    keep, _, _ = runs
    state = mine(_config(activations="none"), str(tmp_path / "flow"), stats_device="cpu", return_state=True)
    assert state.is_completed(), state
    assert set(engines) == {"cpu"} and len(engines) == 3 * 5  # 3 chunks x 5 pairs (a null per encoder)
    run = Run.open(tmp_path / "flow")
    for pair in [*PAIRS, *NULLS]:
        np.testing.assert_allclose(run.table(*pair), keep.table(*pair), rtol=0, atol=1e-5)
    manifest = json.loads((tmp_path / "flow" / "manifest.json").read_text())
    assert "fold" in manifest["seconds"] and "extract" not in manifest["seconds"]
    shutil.rmtree(tmp_path / "flow")


def test_ground_truth_labels_are_those_of_the_run_that_keeps_its_maps(tmp_path):
    """The trained zoo's concepts are labelled from the maps of the first images: computed again
    model by model when the run keeps none, and the labels are the same."""
    base = dict(encoders=("mini-resnet.sup", "mini-clip.rn"), n=40, k=3, chunk_size=16, seed=3)
    keep, _, _ = mine_in_process(tmp_path / "keep", MineConfig(**base), null=False)
    none, _, _ = mine_in_process(tmp_path / "none", MineConfig(**base, activations="none"), null=False)
    truth = keep.dictionary.get("ground_truth")
    assert truth is not None and keep.dictionary["concepts"], "the trained zoo finds labelled concepts at n=40"
    assert none.dictionary["ground_truth"] == truth
    assert [c["ground_truth"] for c in none.dictionary["concepts"]] == [c["ground_truth"] for c in keep.dictionary["concepts"]]
