"""The mining steps on a real Zarr store with the embedded zoo (random weights), no Prefect."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from rosetta_core import pearson_table
from rosetta_core.matching.dictionary import validate_dictionary
from rosetta_core.run.mining import MineConfig, extract_chunk, generate_chunk, init_store, load_plan, plan_run
from rosetta_core.run.results import pair_statistics, write_dictionary, write_manifest
from rosetta_core.run.lock import RunLocked, run_lock
from rosetta_core.run.store import RunStore, StoreMismatch

pytestmark = pytest.mark.integration

ENCODERS = ("mini-resnet.sup", "mini-vit.mae")


def _config(**kw) -> MineConfig:
    return MineConfig(**({"encoders": ENCODERS, "n": 24, "k": 3, "chunk_size": 8, "weights": "random"} | kw))


def _run_all(run_dir, config):
    store = RunStore(str(run_dir / "store.zarr"))
    init_store(store, plan_run(config))
    plan = load_plan(store)
    states = []
    for chunk in range(len(plan.chunks)):
        states.append(generate_chunk(store, plan, chunk))
        states += [extract_chunk(store, plan, m, chunk) for m in config.encoders]
    summaries = [pair_statistics(store, plan, a, b) for a, b in plan.pairs()]
    summaries.append(pair_statistics(store, plan, config.generator, config.encoders[0], null=True))
    content = write_dictionary(run_dir, store, plan)
    write_manifest(run_dir, store, plan, content, {})
    return store, plan, states, summaries


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    store, plan, states, summaries = _run_all(run_dir, _config())
    return run_dir, store, plan, states, summaries


def test_store_layout_opens_with_xarray(run):
    run_dir, store, plan, states, _ = run
    assert set(states) == {"computed"}
    ds = xr.open_zarr(run_dir / "store.zarr")
    assert ds["images"].dims == ("image", "channel", "y", "x") and ds.sizes["image"] == 24
    layer, shape = plan.layers["mini-vit.mae"][0]
    da = store.open_layer("mini-vit.mae", layer)
    assert da.dims == ("image", "unit", "y", "x") and da.shape == (24, *shape)
    assert str(da.dtype) == "float16"


def test_tables_equal_the_engine_on_the_stored_activations(run):
    _, store, plan, _, _ = run
    gen = [np.asarray(store.array(k)[...], dtype=np.float32) for k in plan.keys("mini-gen")]
    enc = [np.asarray(store.array(k)[...], dtype=np.float32) for k in plan.keys("mini-resnet.sup")]
    stored = np.asarray(store.array("correlation/mini-gen__mini-resnet.sup")[...])
    np.testing.assert_allclose(stored, pearson_table(gen, enc), atol=1e-5)


def test_dictionary_and_manifest(run):
    run_dir, _, _, _, summaries = run
    content = json.loads((run_dir / "dictionary.json").read_text())
    parsed = validate_dictionary(content)
    assert set(parsed.pairs) == {"mini-gen__mini-resnet.sup", "mini-gen__mini-vit.mae", "mini-gen__mini-gen"}
    assert parsed.pairs["mini-gen__mini-vit.mae"].best_buddies == summaries[1]["best_buddies"]
    assert "mini-gen__mini-resnet.sup" in parsed.null
    for concept in parsed.concepts:
        assert set(concept.members) == set(ENCODERS) and all(concept.members.values())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["complete"] and manifest["summary"]["concepts"] == len(parsed.concepts)


def test_rerun_skips_everything_and_gives_identical_tables(run):
    run_dir, store, plan, _, _ = run
    before = np.asarray(store.array("correlation/mini-gen__mini-vit.mae")[...])
    assert generate_chunk(store, plan, 1) == "skipped"
    assert extract_chunk(store, plan, "mini-vit.mae", 2) == "skipped"
    assert pair_statistics(store, plan, "mini-gen", "mini-vit.mae")["status"] == "skipped"
    np.testing.assert_array_equal(np.asarray(store.array("correlation/mini-gen__mini-vit.mae")[...]), before)


def test_corrupt_chunk_is_detected_and_recomputed(run):
    run_dir, store, plan, _, _ = run
    key = plan.keys("mini-resnet.sup")[0]
    good = np.asarray(store.array(key)[8:16])
    chunk_file = run_dir / "store.zarr" / key / "c" / "1" / "0" / "0" / "0"
    data = chunk_file.read_bytes()
    chunk_file.write_bytes(data[: len(data) // 2])  # truncated, as by a killed writer
    assert store.chunk_readable(key, slice(8, 16)) is not None  # the decode error names the cause
    assert extract_chunk(store, plan, "mini-resnet.sup", 1) == "computed"
    np.testing.assert_array_equal(np.asarray(store.array(key)[8:16]), good)


def test_a_different_configuration_is_refused(run):
    _, store, _, _, _ = run
    with pytest.raises(StoreMismatch, match=r"different configuration \(n: stored 24, asked 32"):
        init_store(store, plan_run(_config(n=32)))


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
