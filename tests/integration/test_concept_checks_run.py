"""Every concept of a run with trained encoders records the shuffled-null and random-init checks
(issue 21, item 5), through the mining flow on a real Prefect API and Dask cluster, checked
against float64 loop oracles over the run's own stored tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rosetta_core.matching.dictionary import validate_dictionary

pytestmark = pytest.mark.integration

ENCODERS = ("mini-resnet.sup", "mini-clip.rn")  # trained weights: the companion is their random-init version
SMALL = {"encoders": ENCODERS, "n": 32, "k": 3, "chunk_size": 16, "dtype": "float32"}


def _chance(table: np.ndarray) -> float:
    best = sorted(max(v for v in row if math.isfinite(v)) for row in table.tolist() if any(map(math.isfinite, row)))
    pos = 0.95 * (len(best) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return best[lo] + (best[hi] - best[lo]) * (pos - lo)


def _matched(table: np.ndarray, k: int) -> set[int]:
    rows, cols = table.shape
    key = np.nan_to_num(table, nan=-np.inf)
    out = set()
    for g in range(rows):
        for e in sorted(range(cols), key=lambda j: -key[g, j])[:k]:
            if math.isfinite(key[g, e]) and g in sorted(range(rows), key=lambda h: -key[h, e])[:k]:
                out.add(g)
    return out


def _files(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_runs_concepts_record_both_checks_and_the_companion_is_mined_once(prefect_api, tmp_path):
    from flows.mine import mine
    from rosetta_core.run import MineConfig, Run

    out = tmp_path / "run"
    first = mine(MineConfig(**SMALL, random_init=False), str(out))
    assert first["status"] == "computed" and not (out / "random-init").exists()
    checks = json.loads((out / "dictionary.json").read_text())["checks"]
    assert checks["random_init"]["companion"] is None and checks["shuffled_null"]["checked"] > 0
    assert "random_init_companion" not in json.loads((out / "manifest.json").read_text())["seconds"]
    kept = _files(out / "store.zarr" / "pairs")

    # turned on for the finished run: the companion is mined, the run's own tables stay as they were
    got = mine(MineConfig(**SMALL), str(out))
    assert got["status"] == "computed" and _files(out / "store.zarr" / "pairs") == kept
    run, companion = Run.open(out), Run.open(out / "random-init", finished=True)
    assert companion.config.weights == "random,mini-gen=trained" and companion.config.random_init is False
    assert companion.config.n == run.config.n and companion.config.seed == run.config.seed
    np.testing.assert_array_equal(companion.store.array("images")[...], run.store.array("images")[...])

    content = json.loads((out / "dictionary.json").read_text())
    validate_dictionary(content)
    levels = {m: _chance(run.table("mini-gen", m, True)) for m in ENCODERS}
    matched = {m: _matched(companion.table("mini-gen", m), run.config.k) for m in ENCODERS}
    for m in ENCODERS:
        assert content["checks"]["shuffled_null"]["chance"][m] == pytest.approx(levels[m], abs=1e-12)
        assert content["checks"]["random_init"]["matched_anchor_units"][m] == len(matched[m])
    beat = also = 0
    for concept in content["concepts"]:
        null, random = concept["checks"]["shuffled_null"], concept["checks"]["random_init"]
        units = [u["unit"] for u in concept["anchor_units"]]
        for m, members in concept["members"].items():
            r = max(max(run.table("mini-gen", m)[g, u["unit"]] for g in units) for u in members)
            assert null["models"][m]["r"] == pytest.approx(float(r), abs=1e-6)
            assert null["models"][m]["beats"] == (r > levels[m])
            assert random["models"][m] == {"matched": sum(g in matched[m] for g in units), "of": len(units)}
        assert null["beats"] == all(v["beats"] for v in null["models"].values())
        assert random["also_random"] == any(v["matched"] >= 0.5 * v["of"] for v in random["models"].values())
        beat += null["beats"]
        also += random["also_random"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seconds"]["random_init_companion"] > 0  # what the companion cost, beside the stages
    summary = manifest["summary"]["checks"]
    assert summary == {"concepts": len(content["concepts"]), "beat_null": beat, "also_random": also,
                       "random_init_companion": "random-init"}
    assert 0 < also < len(content["concepts"]) or 0 < beat < len(content["concepts"])  # the checks separate concepts

    page = (out / "report" / "index.html").read_text()
    articles = {int(part.split('"', 1)[0]): part for part in page.split('<article class="concept" id="concept-')[1:]}
    assert len(articles) >= 10  # the report shows the strongest concepts (at most its max_concepts)
    for concept in content["concepts"]:
        if concept["id"] in articles:
            section, checks = articles[concept["id"]], concept["checks"]
            assert ('data-check="fails-null"' in section) == (not checks["shuffled_null"]["beats"])
            assert ('data-check="also-random"' in section) == checks["random_init"]["also_random"]
    assert f'<b data-stat="checks/beat_null">{beat}</b>' in page
    assert 'href="../random-init/report/index.html"' in page and (out / "random-init" / "report" / "index.html").is_file()

    again = mine(MineConfig(**SMALL), str(out))
    assert again["status"] == "complete"  # the run and its companion are both finished: nothing to do
