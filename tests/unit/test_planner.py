"""`rosetta plan` arithmetic: exact counts for a small configuration, checked by hand and against
the real co-moment accumulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rosetta_core.engine.comoments import CoMoments
from rosetta_core.engine.grid_sums import BLOCK_BYTES
from rosetta_core.engine.planner import BLOCK_TEMPORARIES, matmul_flop_rate, plan_size

pytestmark = pytest.mark.unit

G = [("g1", 2, 4, 4), ("g2", 3, 8, 8)]
TEMP = BLOCK_TEMPORARIES * BLOCK_BYTES  # a thread's temporaries of one block of images
E = [("e1", 5, 2, 2)]


@pytest.fixture
def size():
    return plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, dtype="float32", chunk_size=4, threads=2)


def test_exact_counts_of_a_small_run(size):
    pair, self_pair, null = size.pairs
    assert (pair.a, pair.b, self_pair.b, null.b) == ("G", "E", "G", "E (shuffled null)")
    # (g1, e1) on 2x2: 2*2*5*10*4; (g2, e1): 2*3*5*10*4
    assert pair.cross_flops == 800 + 1200
    # g1 4x4 -> 2x2: (2*4*4*2 + 2*2*4*2) per image and unit; g2 8x8 -> 2x2: (2*8*8*2 + 2*2*8*2)
    assert pair.projection_flops == 10 * 2 * 96 + 10 * 3 * 320
    assert pair.moments_bytes == 8 * ((10 + 2 + 5) + (15 + 3 + 5) + (2 * 16 + 3 * 64) + 5 * 4)
    assert pair.table_bytes == 4 * 5 * 5
    # chunk task: float32 inputs and mean maps of one chunk (one step: no float32 copy of a float32
    # store), projections (e1 on its own 2x2 grid included: a centred copy), per thread (2) a
    # float32 scratch table of the largest layer pair (3 x 5) and a block's temporaries, float64
    # moments; merge task: 3 moments
    assert pair.task_bytes == max(4 * 4 * (32 + 192 + 20) + 4 * (32 + 192 + 20) + 4 * 4 * (2 * 4 + 3 * 4 + 5 * 4)
                                  + 2 * (4 * 15 + TEMP) + 2272, 3 * 2272) == 7912 + 2 * TEMP
    # self pair: (g1, g1) 4x4, (g1, g2) 4x4 with g2 projected 8x8 -> 4x4, (g2, g2) 8x8
    assert self_pair.cross_flops == 1280 + 1920 + 11520
    assert self_pair.projection_flops == 10 * 3 * (2 * 8 * 8 * 4 + 2 * 4 * 8 * 4)
    assert self_pair.moments_bytes == 8 * (8 + 11 + 15 + 2 * 16 + 3 * 64)
    # projections: g1 on 4x4 (own), g2 on 4x4 and on 8x8 (own)
    assert self_pair.task_bytes == (4 * 4 * 224 + 4 * 224 + 4 * 4 * (2 * 16 + 3 * 16 + 3 * 64) + 2 * (4 * 9 + TEMP)
                                    + 2064) == 10968 + 2 * TEMP
    assert null == type(null)(pair.a, "E (shuffled null)", *[getattr(pair, f) for f in
                              ("cross_flops", "projection_flops", "moments_bytes", "table_bytes", "chunk_task_bytes",
                               "table_task_bytes", "blocks")])
    # no budget: no pair is cut; the table task holds the moments, the table, its work copy and a byte per entry
    assert [len(p.blocks) for p in size.pairs] == [1, 1, 1] and pair.table_task_bytes == 2272 + 2 * 100 + 25
    assert size.total_flops == 2 * (2000 + 11520) + 14720 + 23040 == 64800
    assert size.units == {"G": 5, "E": 5}
    assert size.activation_bytes == {"G": 10 * 4 * (32 + 192), "E": 10 * 4 * 20}
    assert size.image_bytes == 10 * 3 * 64
    assert size.store_bytes == 8960 + 800 + 1920 + 2 * (2272 + 100) + (2064 + 100) == 18588
    assert size.peak_task_bytes == 10968 + 2 * TEMP
    assert size.seconds(1e3) == pytest.approx(64.8)


def _state_bytes(acc: CoMoments) -> int:
    return sum(v.nbytes for k, v in acc.state_dict().items() if k.split("/")[0] in ("mean_a", "mean_b", "m2_a", "m2_b", "cross"))


def test_moment_bytes_match_the_real_accumulator(size):
    shapes_g = [(u, h, w) for _, u, h, w in G]
    shapes_e = [(u, h, w) for _, u, h, w in E]
    assert size.pairs[0].moments_bytes == _state_bytes(CoMoments(shapes_g, shapes_e))
    assert size.pairs[1].moments_bytes == _state_bytes(CoMoments(shapes_g))


@pytest.mark.parametrize("self_pair", [False, True])
def test_chunk_task_bytes_match_the_engine_buffers(size, self_pair):
    """The chunk task's estimate against the buffers the engine takes for one chunk: inputs,
    mean maps, the projection workspace, per-thread scratch tables and the moments."""
    from rosetta_core.engine import get_centring
    from rosetta_core.engine.grid_sums import PairSums, Workspace

    rng = np.random.default_rng(0)
    a = [rng.standard_normal((4, u, h, w), dtype=np.float32) for _, u, h, w in G]
    b = None if self_pair else [rng.standard_normal((4, u, h, w), dtype=np.float32) for _, u, h, w in E]
    acc = CoMoments([x.shape[1:] for x in a], None if b is None else [x.shape[1:] for x in b])
    sums, workspace = PairSums(a, b, acc._pair_grids(), centring=get_centring("global")), Workspace()
    sums.prepare(workspace=workspace)
    layers = a + ([] if b is None else b)
    means = sum(m.nbytes for m in sums.means("a") + ([] if b is None else sums.means("b")))
    scratch = 2 * 4 * max(table.size for table in acc.cross_.values())  # 2 threads, float32
    engine = sum(x.nbytes for x in layers) + means + workspace.take(0).base.nbytes + scratch + _state_bytes(acc)
    # plus each thread's temporaries of one block of images (measured with tracemalloc below)
    assert size.pairs[1 if self_pair else 0].chunk_task_bytes == engine + 2 * TEMP


def test_cross_flops_match_the_matmul_the_engine_does():
    # the engine's cross moment of a layer pair is (ua, n*hs*ws) @ (n*hs*ws, ub)
    ua, ub, n, hs, ws = 3, 5, 10, 2, 2
    size = plan_size("G", {"G": [("g", ua, 4, 4)], "E": [("e", ub, hs, ws)]}, ["E"], n=n, image_size=4)
    assert size.pairs[0].cross_flops == 2 * ua * ub * (n * hs * ws)


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="dtype='int8'; valid: float16, float32"):
        plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, dtype="int8")
    with pytest.raises(ValueError, match=r"no layers given for \['X'\]"):
        plan_size("G", {"G": G}, ["X"], n=10, image_size=8)
    with pytest.raises(ValueError, match="threads=0 must be >= 1"):
        plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, threads=0)


def test_matmul_rate_is_measured():
    rate = matmul_flop_rate(size=128, seconds=0.05)
    assert np.isfinite(rate) and rate > 1e6


def test_plan_cli_json_matches_the_core(capsys):
    from flows.cli import main

    code = main(["plan", "--generator", "mini-gen", "--encoders", "mini-resnet.sup", "--n", "50", "--dtype", "float32",
                 "--chunk-size", "25", "--layers", "mini-resnet.sup=layer4", "--gpu", "A100", "--threads", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    layers = {m: [tuple(l) for l in ls] for m, ls in out["layers"].items()}
    assert [l[0] for l in layers["mini-resnet.sup"]] == ["layer4"]
    expected = plan_size("mini-gen", layers, ["mini-resnet.sup"], n=50, image_size=64, dtype="float32", chunk_size=25)
    assert out["total_flops"] == expected.total_flops and out["store_bytes"] == expected.store_bytes
    assert out["threads"] == 3 and out["peak_task_bytes"] == plan_size(
        "mini-gen", layers, ["mini-resnet.sup"], n=50, image_size=64, dtype="float32", chunk_size=25, threads=3).peak_task_bytes
    assert out["seconds_gpu"] == pytest.approx(expected.total_flops / 19.5e12)


def test_model_layers_of_registry_models_come_from_the_zoo():
    """The zoo, not the engine, builds models to list their layers (the engine imports no zoo)."""
    from rosetta_core.zoo.probe import model_layers

    layers, finest = model_layers("mini-gen")
    assert finest == 64 and layers and all(isinstance(name, str) and min(dims) >= 1 for name, *dims in layers)
    chosen, _ = model_layers("mini-resnet.sup", ["layer4"])
    assert [l[0] for l in chosen] == ["layer4"]


def test_plan_cli_json_file_records_its_provenance(tmp_path, capsys):
    """``--json FILE`` writes the plan with the commit, the exact command and the machine, and
    still prints the table; the printed JSON (``--json`` alone) carries the same record."""
    from flows.cli import main

    argv = ["plan", "--generator", "mini-gen", "--encoders", "mini-resnet.sup", "--n", "20",
            "--layers", "mini-resnet.sup=layer4", "--json", str(tmp_path / "plan.json")]
    assert main(argv) == 0
    assert "plan: mini-gen vs mini-resnet.sup" in capsys.readouterr().out
    out = json.loads((tmp_path / "plan.json").read_text())
    prov = out["provenance"]
    assert prov["command"] == "rosetta " + " ".join(argv[:-1]) + " " + str(tmp_path / "plan.json")
    assert len(prov["commit"]) == 40 and isinstance(prov["dirty"], bool)
    assert prov["machine"]["cpu_threads"] >= 1 and prov["machine"]["gpu"] is None and prov["wall_seconds"] > 0
    assert out["setup"]["n"] == 20 and out["setup"]["encoders"] == ["mini-resnet.sup"]


def test_plan_for_this_machines_gpu_names_its_class_or_says_what_to_give(monkeypatch, capsys):
    import torch

    from flows.cli import main
    from flows.cli_plan import gpu_class

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="finds no CUDA device here.*--gpu CLASS"):
        gpu_class("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert gpu_class("cuda:0") == "H100"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-40GB")
    assert gpu_class("cuda") == "A100"
    assert main(["plan", "--encoders", "mini-resnet.sup", "--n", "50", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "statistics time on A100:" in out and "19.5 TFLOP/s, vendor data sheet" in out


def test_task_budget_is_the_pause_share_of_the_limit_per_thread():
    from rosetta_core.engine.planner import task_budget

    assert task_budget(10**9) == 8 * 10**8 and task_budget(10**9, threads_per_worker=4) == 2 * 10**8
    with pytest.raises(ValueError, match="must be >= 1"):
        task_budget(0)


def _cover(blocks, rows: int, cols: int) -> np.ndarray:
    seen = np.zeros((rows, cols), dtype=int)
    for k in blocks:
        seen[k.rows[0]:k.rows[1], k.cols[0]:k.cols[1]] += 1
    return seen


@pytest.mark.parametrize("self_pair", [False, True])
def test_blocks_fit_the_budget_and_cover_every_unit_pair_once(self_pair):
    from rosetta_core.engine.planner import plan_blocks

    la = [("g1", 64, 16, 16), ("g2", 96, 32, 32), ("g3", 16, 64, 64)]
    lb = None if self_pair else [("e1", 128, 8, 8), ("e2", 48, 16, 16)]
    whole = plan_blocks(la, lb, 50, 1, "float16")
    assert len(whole) == 1 and whole[0].rows == (0, 176)  # no budget: one block, the whole pair
    budget = whole[0].task_bytes // 2
    blocks = plan_blocks(la, lb, 50, 1, "float16", budget)
    assert len(blocks) > 1 and max(k.task_bytes for k in blocks) <= budget
    if self_pair:  # one cut of the units for both sides; blocks i <= j hold each unordered pair once
        assert {k.rows for k in blocks} == {k.cols for k in blocks} and all(k.rows[0] <= k.cols[0] for k in blocks)
        seen = _cover(blocks, 176, 176)
        for k in blocks:  # a block on the diagonal is symmetric: it holds its unit pairs once, as l <= m
            if k.rows == k.cols:
                seen[k.rows[0]:k.rows[1], k.cols[0]:k.cols[1]] = np.triu(seen[k.rows[0]:k.rows[1], k.cols[0]:k.cols[1]])
        both = seen + seen.T
        np.fill_diagonal(both, np.diag(seen))
        assert (both == 1).all()
    else:
        assert (_cover(blocks, 176, 176) == 1).all()
    # a block's tasks are the pair restricted to its units: the same formulas over the slices
    k = blocks[0]
    assert k.moments_bytes < whole[0].moments_bytes and k.table_bytes == 4 * (k.rows[1] - k.rows[0]) * (k.cols[1] - k.cols[0])
    with pytest.raises(ValueError, match="blocks of one unit of each side still need .* give a smaller --chunk-size"):
        plan_blocks(la, lb, 50, 1, "float16", 3 * 2 * 50 * 16 * 64 * 64)  # one stored chunk of g3, decoded
    with pytest.raises(ValueError, match="table of 176 x 176 units .* over the budget"):
        plan_blocks(la, lb, 50, 1, "float16", 100)


def test_plan_size_cuts_pairs_to_its_budget(size):
    cut = plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, dtype="float32", chunk_size=4, threads=2,
                    budget=size.peak_task_bytes - 1)
    assert cut.budget == size.peak_task_bytes - 1 and cut.peak_task_bytes <= cut.budget
    assert any(p.split for p in cut.pairs) and [p.flops for p in cut.pairs] == [p.flops for p in size.pairs]
    assert cut.pairs[2].blocks == cut.pairs[0].blocks  # the null is cut as its pair


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_block_chunk_task_estimate_matches_the_measured_peak(tmp_path, monkeypatch, dtype):
    """The chunk task's estimate against the peak of numpy's and zarr's allocations (tracemalloc)
    of the real task (:func:`rosetta_core.run.statistics.chunk_comoments`) reading a real Zarr
    store, for the whole pair, blocks of it and the self pair: an upper bound, within 15% for
    float16 stores (the default) and at most twice the peak for float32 ones, whose decoded
    chunks dominate (zarr's buffers while it decodes vary from run to run by a quarter of the
    peak: the estimate takes their most)."""
    import tracemalloc

    from rosetta_core.engine.planner import plan_blocks
    from rosetta_core.run.statistics import _slices, chunk_comoments
    from rosetta_core.run.store import RunStore

    monkeypatch.setenv("ROSETTA_THREADS", "1")
    chunk, n = 60, 60
    la, lb = [("a1", 24, 32, 32), ("a2", 48, 16, 16)], [("b1", 40, 16, 16), ("b2", 64, 8, 8)]
    store, rng = RunStore(str(tmp_path / "s.zarr"), mode="w"), np.random.default_rng(0)

    def stored(layers):
        out = []
        for name, u, h, w in layers:
            arr = store.require(name, (n, u, h, w), (chunk, u, h, w), dtype, ["image", "unit", "y", "x"])
            arr[...] = np.maximum(rng.standard_normal((n, u, h, w)), 0).astype(dtype)
            out.append(arr)
        return out

    side_a, side_b = stored(la), stored(lb)
    whole = plan_blocks(la, lb, chunk, 1, dtype)[0]
    cut = plan_blocks(la, lb, chunk, 1, dtype, int(0.75 * whole.task_bytes))
    assert len(cut) > 1
    cases = [(whole, side_b), (cut[0], side_b), (cut[-1], side_b), (plan_blocks(la, None, chunk, 1, dtype)[0], None)]
    ratios = []
    for block, b in cases:
        units_a = _slices([(l, (u, h, w)) for l, u, h, w in la], block.rows)
        units_b = None if b is None else _slices([(l, (u, h, w)) for l, u, h, w in lb], block.cols)
        tracemalloc.start()
        try:
            chunk_comoments(side_a, b, 0, chunk, None, "global", None, units_a, units_b)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        ratios.append(block.chunk_task_bytes / peak)
    assert all(1.0 <= r <= 2.0 for r in ratios), ratios
    if dtype == "float16":  # the runs' default: the step's float32 copy and projections dominate, zarr's buffers less
        assert all(r <= 1.15 for r in ratios), ratios
