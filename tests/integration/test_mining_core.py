"""The mining steps on a real Zarr store with the embedded zoo (random weights), no Prefect."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from rosetta_core import pearson_table
from rosetta_core.matching.dictionary import validate_dictionary
from invert_support import mine_in_process
from rosetta_core.run import MineConfig, Run, StoreMismatch, plan_run
from rosetta_core.run.extraction import extract_chunk, generate_chunk, prepare_store
from rosetta_core.run.lock import RunLocked, run_lock
from rosetta_core.run.statistics import pair_statistics

pytestmark = pytest.mark.integration

ENCODERS = ("mini-resnet.sup", "mini-vit.mae")


def _config(**kw) -> MineConfig:
    return MineConfig(**({"encoders": ENCODERS, "n": 24, "k": 3, "chunk_size": 8, "weights": "random"} | kw))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    mined, states, summaries = mine_in_process(run_dir, _config())
    return run_dir, mined, states, summaries


def test_the_store_opens_whole_as_labelled_arrays(run):
    run_dir, mined, states, _ = run
    assert set(states) == {"computed"}
    ds = xr.open_zarr(run_dir / "store.zarr")
    assert ds["images"].dims == ("image", "rgb", "height", "width") and ds.sizes["image"] == 24
    tree = xr.open_datatree(run_dir / "store.zarr", engine="zarr")
    assert set(mined.tree().groups) == set(tree.groups)  # the Run opens the same tree
    plan = mined.plan
    for model, layers in plan.layers.items():
        for layer, shape in layers:
            maps = tree[mined.layer_group(model, layer)]["maps"]
            assert maps.dims == ("image", "unit", "y", "x") and maps.shape == (24, *shape)
            assert str(maps.dtype) == plan.config.dtype
            start = plan.offsets(model)[layer]
            assert maps["unit"].values.tolist() == list(range(start, start + shape[0]))
            assert maps["channel"].values.tolist() == list(range(shape[0]))
            assert set(maps["layer"].values.tolist()) == {layer} and str(maps["model"].values) == model
    layer, shape = plan.layers["mini-vit.mae"][1]
    da = mined.layer("mini-vit.mae", layer)
    assert da.dims == ("image", "unit", "y", "x") and da.shape == (24, *shape)
    for a, b, null in [("mini-gen", "mini-vit.mae", False), ("mini-gen", None, False), ("mini-gen", "mini-resnet.sup", True)]:
        pair = tree[mined.pair_group(a, b, null)]
        units_a, units_b = plan.unit_coords(a), plan.unit_coords(b or a)
        assert pair["correlation"].dims == ("unit_a", "unit_b")
        assert pair["correlation"].shape == (len(units_a["unit"]), len(units_b["unit"]))
        assert pair["layer_b"].values.tolist() == units_b["layer"].tolist()
        assert pair["channel_a"].values.tolist() == units_a["channel"].tolist()
        assert pair["top_b"].dims == ("unit_a", "rank_b") and pair["top_a"].dims == ("unit_b", "rank_a")
        np.testing.assert_array_equal(pair["correlation"].values, mined.table(a, b, null))
    cross = tree[f"{mined.moments_group('mini-gen', 'mini-vit.mae')}/layer_pairs/{plan.layers['mini-gen'][0][0]}/{layer}"]
    assert cross["cross"].dims == ("unit_a", "unit_b") and cross["unit_b"].values[0] == plan.offsets("mini-vit.mae")[layer]


def test_moments_read_back_equal_the_ones_written(run):
    _, mined, _, _ = run
    from rosetta_core.run.statistics import pair_comoments

    for b in ("mini-vit.mae", None):
        again = mined.moments("mini-gen", b)
        fresh = pair_comoments(mined, "mini-gen", b)
        for key, value in fresh.state_dict().items():
            np.testing.assert_array_equal(np.asarray(again.state_dict()[key]), np.asarray(value), err_msg=key)


def test_tables_equal_the_engine_on_the_stored_activations(run):
    _, mined, _, _ = run
    gen = [np.asarray(mined.store.array(k)[...], dtype=np.float32) for k in mined.model_keys("mini-gen")]
    enc = [np.asarray(mined.store.array(k)[...], dtype=np.float32) for k in mined.model_keys("mini-resnet.sup")]
    stored = mined.table("mini-gen", "mini-resnet.sup")
    np.testing.assert_allclose(stored, pearson_table(gen, enc, center=mined.config.center), atol=1e-5)


def test_dictionary_and_manifest(run):
    run_dir, _, _, summaries = run
    content = json.loads((run_dir / "dictionary.json").read_text())
    parsed = validate_dictionary(content)
    assert set(parsed.pairs) == {"mini-gen__mini-resnet.sup", "mini-gen__mini-vit.mae", "mini-gen__mini-gen"}
    assert parsed.pairs["mini-gen__mini-vit.mae"].best_buddies == summaries[1]["best_buddies"]
    assert set(parsed.null) == {"mini-gen__mini-resnet.sup", "mini-gen__mini-vit.mae"}  # a null per encoder
    for concept in parsed.concepts:
        assert set(concept.members) == set(ENCODERS) and all(concept.members.values())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["complete"] and manifest["summary"]["concepts"] == len(parsed.concepts)


def test_rerun_skips_everything_and_gives_identical_tables(run):
    _, mined, _, _ = run
    before = mined.table("mini-gen", "mini-vit.mae")
    assert generate_chunk(mined, 1) == "skipped"
    assert extract_chunk(mined, "mini-vit.mae", 2) == "skipped"
    assert pair_statistics(mined, "mini-gen", "mini-vit.mae")["status"] == "skipped"
    np.testing.assert_array_equal(mined.table("mini-gen", "mini-vit.mae"), before)


def test_corrupt_chunk_is_detected_and_recomputed(run):
    run_dir, mined, _, _ = run
    store = mined.store
    key = mined.model_keys("mini-resnet.sup")[0]
    good = np.asarray(store.array(key)[8:16])
    chunk_file = run_dir / "store.zarr" / key / "c" / "1" / "0" / "0" / "0"
    data = chunk_file.read_bytes()
    chunk_file.write_bytes(data[: len(data) // 2])  # truncated, as by a killed writer
    assert store.chunk_readable(key, slice(8, 16)) is not None  # the decode error names the cause
    assert extract_chunk(mined, "mini-resnet.sup", 1) == "computed"
    np.testing.assert_array_equal(np.asarray(store.array(key)[8:16]), good)


def test_a_different_configuration_is_refused(run):
    run_dir, _, _, _ = run
    with pytest.raises(StoreMismatch, match=r"different configuration \(n: stored 24, asked 32"):
        prepare_store(Run(run_dir, _config(n=32)), plan_run(_config(n=32)))
    with pytest.raises(StoreMismatch, match=r"different configuration \(n: stored 24, asked 32"):
        Run(run_dir, _config(n=32)).validate()


def test_second_holder_of_the_lock_fails_fast(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunLocked, match=r"in use by another mining run \(pid \d+"):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):  # released: can be taken again
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    import socket

    (tmp_path / ".lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] != 2**22 + 12345
