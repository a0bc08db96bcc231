"""A memory budget cuts a pair's statistics into blocks of units (issue 20 part 3): the tables and
moments assembled from the blocks in the store equal the uncut pair's and the float64
brute-force oracle; a pair that fits is computed bit for bit as without a budget; a resumed pair
keeps the blocks it has. Real Zarr store, embedded zoo (random weights), dask's local scheduler."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from invert_support import mine_in_process
from oracles import brute_force_table
from rosetta_core.run import MineConfig, Run
from rosetta_core.run import statistics
from rosetta_core.run.statistics import pair_blocks, pair_statistics

pytestmark = pytest.mark.integration

ENCODERS = ("mini-resnet.sup", "mini-vit.mae")
PAIRS = [("mini-gen", "mini-vit.mae", False), ("mini-gen", None, False), ("mini-gen", "mini-resnet.sup", True)]


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """A run mined without a budget (every pair in one block), its tables and moments kept."""
    config = MineConfig(encoders=ENCODERS, n=20, k=3, chunk_size=8, weights="random", dtype="float32")
    run, _, _ = mine_in_process(tmp_path_factory.mktemp("run"), config)
    kept = {p: (run.table(p[0], p[1], p[2]), run.moments(p[0], p[1], p[2]).state_dict(), run.pair_summary(*p))
            for p in PAIRS}
    return run, kept


def _redo(run: Run, a, b, null, budget) -> dict:
    """Forget the pair's results and compute it again under ``budget``."""
    for key in (run.pair_group(a, b, null), run.moments_group(a, b, null)):
        del run.store.group[key]
    with dask.config.set(scheduler="synchronous"):
        return pair_statistics(run, a, b, null, budget=budget)


def _cut(run: Run, a, b) -> int:
    """A budget that cuts the pair into several blocks: below its one-block tasks."""
    whole = pair_blocks(run, a, b, None)[0]
    return int(0.7 * whole.task_bytes)


@pytest.mark.parametrize("pair", PAIRS, ids=["encoder", "self", "null"])
def test_a_pair_cut_into_blocks_equals_the_uncut_pair(mined, pair):
    run, kept = mined
    a, b, null = pair
    budget = _cut(run, a, b)
    blocks = pair_blocks(run, a, b, budget)
    assert len(blocks) > 1 and all(k.task_bytes <= budget for k in blocks)
    if b is None:  # the self pair keeps the blocks i <= j of one cut
        assert {k.rows for k in blocks} == {k.cols for k in blocks} and all(k.rows[0] <= k.cols[0] for k in blocks)
    got = _redo(run, a, b, null, budget)
    assert got["status"] == "computed"
    table, moments, summary = kept[pair]
    split = run.table(a, b, null)
    np.testing.assert_allclose(split, table, rtol=0, atol=2e-6)
    if b is None:
        np.testing.assert_array_equal(split, split.T)
    state = run.moments(a, b, null).state_dict()
    assert set(state) == set(moments)
    for key, value in moments.items():
        if np.asarray(value).dtype.kind == "f":
            # the same sums; a chunk's float32 products are grouped by units otherwise: float32 rounding
            np.testing.assert_allclose(state[key], value, rtol=1e-6, atol=1e-6 * np.abs(value).max(), err_msg=key)
        else:
            np.testing.assert_array_equal(state[key], value, err_msg=key)
    assert got["constant_units_a"] == summary["constant_units_a"] and got["constant_units_b"] == summary["constant_units_b"]
    assert run.blocks_group(a, b, null) not in run.store  # the block states are dropped once assembled
    # the float64 oracle on the stored activations of the last two layers of each side (the
    # largest maps; the null: image order of b permuted)
    maps_a = [np.asarray(run.store.array(k)[...], dtype=np.float64) for k in run.model_keys(a)[-2:]]
    maps_b = [np.asarray(run.store.array(k)[...], dtype=np.float64) for k in run.model_keys(b or a)[-2:]]
    if null:
        perm = np.random.default_rng(statistics.SHUFFLE_SEED).permutation(run.plan.n)
        maps_b = [x[perm] for x in maps_b]
    rows, cols = sum(x.shape[1] for x in maps_a), sum(x.shape[1] for x in maps_b)
    np.testing.assert_allclose(split[-rows:, -cols:], brute_force_table(maps_a, maps_b, run.config.center), atol=2e-5)


def test_the_torch_engine_reduces_blocks_as_the_numpy_engine(mined):
    """``device="cpu"``: the torch engine (on a GPU the same code, asking for the ``GPU``
    resource) reduces the blocks of a cut pair to the uncut table."""
    run, kept = mined
    a, b, null = PAIRS[0]
    budget = _cut(run, a, b)
    assert len(pair_blocks(run, a, b, budget)) > 1
    for key in (run.pair_group(a, b, null), run.moments_group(a, b, null)):
        del run.store.group[key]
    with dask.config.set(scheduler="synchronous"):
        assert pair_statistics(run, a, b, null, device="cpu", budget=budget)["status"] == "computed"
    np.testing.assert_allclose(run.table(a, b, null), kept[PAIRS[0]][0], rtol=0, atol=2e-6)


def test_a_pair_that_fits_is_computed_bit_for_bit_as_without_a_budget(mined):
    run, kept = mined
    a, b, null = PAIRS[0]
    budget = pair_blocks(run, a, b, None)[0].task_bytes  # exactly enough: one block
    assert len(pair_blocks(run, a, b, budget)) == 1
    _redo(run, a, b, null, budget)
    np.testing.assert_array_equal(run.table(a, b, null), kept[PAIRS[0]][0])


def test_a_resumed_pair_keeps_its_stored_blocks_and_drops_another_cut(mined, monkeypatch):
    run, kept = mined
    a, b, null = PAIRS[1]
    budget = _cut(run, a, b)
    blocks = pair_blocks(run, a, b, budget)
    stored = []
    real_store, real_chunk = statistics._store_block, statistics.chunk_comoments

    def killed_after_one(where, *args):
        if stored:
            raise RuntimeError("worker killed")
        stored.append(args[3])
        real_store(where, *args)

    monkeypatch.setattr(statistics, "_store_block", killed_after_one)
    with pytest.raises(RuntimeError, match="worker killed"):
        _redo(run, a, b, null, budget)
    assert run.pair_summary(a, b, null) is None and run.block_done(a, b, null, stored[0])
    monkeypatch.setattr(statistics, "_store_block", real_store)
    reduced = []
    monkeypatch.setattr(statistics, "chunk_comoments", lambda *args: reduced.append(args) or real_chunk(*args))
    with dask.config.set(scheduler="synchronous"):
        assert pair_statistics(run, a, b, null, budget=budget)["status"] == "computed"
    assert len(reduced) == (len(blocks) - 1) * len(run.plan.chunks)  # the stored block is not reduced again
    np.testing.assert_allclose(run.table(a, b, null), kept[PAIRS[1]][0], rtol=0, atol=2e-6)
    # a run resumed with another budget: blocks of the old cut are deleted, not mixed in
    run.start_blocks(a, b, null, blocks)
    run.write_block(a, b, null, blocks[0], _zero_state(run, a, blocks[0]))
    other = pair_blocks(run, a, b, None)  # no budget: one block
    assert len(other) == 1 < len(blocks)
    run.start_blocks(a, b, null, other)
    assert not run.block_done(a, b, null, blocks[0])
    run.drop_blocks(a, b, null)


def _zero_state(run: Run, a: str, block):
    from rosetta_core.engine import CoMoments

    shapes = [(hi - lo, *run.plan.layers[a][i][1][1:]) for i, lo, hi in statistics._slices(run.plan.layers[a], block.rows)]
    return CoMoments(shapes)


def test_the_flow_with_a_memory_limit_reduces_in_blocks_on_statistics_workers(prefect_api, tmp_path, mined, monkeypatch):
    """``mine(..., memory_limit=...)`` without a scheduler address: statistics worker processes
    with that limit (Dask's pause and kill switched off: 40 MB is below any interpreter) reduce
    the pairs, cut into blocks, and the tables equal the uncut ones of the same images."""
    from dask.utils import parse_bytes

    from flows.mine import mine
    from rosetta_core.engine.planner import task_budget

    run, kept = mined
    config = MineConfig(encoders=ENCODERS, n=20, k=3, chunk_size=8, weights="random", dtype="float32", random_init=False)
    for k in ("TARGET", "SPILL", "PAUSE", "TERMINATE"):  # the worker processes read dask's settings from here
        monkeypatch.setenv(f"DASK_DISTRIBUTED__WORKER__MEMORY__{k}", "False")
    state = mine(config, str(tmp_path / "run"), memory_limit="40MB", return_state=True)
    assert state.is_completed(), state
    again = Run.open(tmp_path / "run")
    budget = task_budget(parse_bytes("40MB"))
    assert sum(len(pair_blocks(again, a, b, budget, threads=2)) > 1 for a, b, _ in PAIRS) >= 2
    for pair in PAIRS:
        np.testing.assert_allclose(again.table(*pair), kept[pair][0], rtol=0, atol=2e-6, err_msg=str(pair))
        assert again.blocks_group(*pair) not in again.store


def test_a_bad_memory_limit_is_one_clear_error():
    from flows.mine import check_memory_limit

    for bad in ("lots", "12XB", "100"):
        with pytest.raises(ValueError, match="is not a memory size of at least 1 MB; valid: e.g. 24GB"):
            check_memory_limit(bad)
    check_memory_limit("1.5GiB")
    check_memory_limit(None)


def test_the_flow_with_a_memory_limit_that_cuts_nothing_merges_on_statistics_workers(prefect_api, tmp_path, mined):
    """1 GB: no pair is cut, so each pair is one block of 3 chunks merged as a tree; the merges ask
    for the statistics workers too (unannotated, they once waited forever)."""
    from flows.mine import mine

    run, kept = mined
    config = MineConfig(encoders=ENCODERS, n=20, k=3, chunk_size=8, weights="random", dtype="float32", random_init=False)
    state = mine.with_options(timeout_seconds=600)(config, str(tmp_path / "run"), memory_limit="1GB", return_state=True)
    assert state.is_completed(), state
    again = Run.open(tmp_path / "run")
    for pair in PAIRS:
        np.testing.assert_allclose(again.table(*pair), kept[pair][0], rtol=0, atol=2e-6, err_msg=str(pair))
