"""`rosetta plan` arithmetic: exact counts for a small configuration, checked by hand and against
the real co-moment accumulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rosetta_core.engine.comoments import CoMoments
from rosetta_core.engine.planner import matmul_flop_rate, plan_size

pytestmark = pytest.mark.unit

G = [("g1", 2, 4, 4), ("g2", 3, 8, 8)]
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
    # chunk task: float32 inputs and mean maps of one chunk, projections (e1 on its own 2x2 grid
    # included: a centred copy), a float32 scratch table of the largest layer pair (3 x 5) per
    # thread (2), float64 moments; merge task: 3 moments
    assert pair.task_bytes == max(4 * 4 * (32 + 192 + 20) + 4 * (32 + 192 + 20) + 4 * 4 * (2 * 4 + 3 * 4 + 5 * 4)
                                  + 2 * 4 * 15 + 2272, 3 * 2272) == 7912
    # self pair: (g1, g1) 4x4, (g1, g2) 4x4 with g2 projected 8x8 -> 4x4, (g2, g2) 8x8
    assert self_pair.cross_flops == 1280 + 1920 + 11520
    assert self_pair.projection_flops == 10 * 3 * (2 * 8 * 8 * 4 + 2 * 4 * 8 * 4)
    assert self_pair.moments_bytes == 8 * (8 + 11 + 15 + 2 * 16 + 3 * 64)
    # projections: g1 on 4x4 (own), g2 on 4x4 and on 8x8 (own)
    assert self_pair.task_bytes == 4 * 4 * 224 + 4 * 224 + 4 * 4 * (2 * 16 + 3 * 16 + 3 * 64) + 2 * 4 * 9 + 2064 == 10968
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
    assert size.peak_task_bytes == 10968
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
    assert size.pairs[1 if self_pair else 0].chunk_task_bytes == engine


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
