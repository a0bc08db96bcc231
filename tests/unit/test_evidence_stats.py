"""The paired bootstrap interval (rosetta_core.evidence.stats) and the resumable progress file
(rosetta_core.evidence.resume) of the benches."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from rosetta_core.evidence import ProgressFile, paired_bootstrap_ci

pytestmark = pytest.mark.unit


def _loop_bootstrap(a, b, n_boot, seed, level):
    """float64 loops over the documented draw: resample r takes units idx[r, 0..n-1]."""
    n = len(a)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    means = []
    for r in range(n_boot):
        total = 0.0
        for j in range(n):
            total += float(a[idx[r, j]]) - float(b[idx[r, j]])
        means.append(total / n)
    means.sort()
    tail = (1 - level) / 2

    def quantile(q):  # linear interpolation between order statistics, numpy's default
        pos = q * (len(means) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (pos - lo) * (means[hi] - means[lo])

    return sum(float(x) - float(y) for x, y in zip(a, b)) / n, quantile(tail), quantile(1 - tail)


def test_matches_a_float64_loop_over_the_documented_draw():
    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.2, 37).astype(np.float32)
    b = (a - rng.normal(0.05, 0.1, 37)).astype(np.float32)
    got = paired_bootstrap_ci(a, b, n_boot=3000, seed=11)
    want = _loop_bootstrap(a, b, 3000, 11, 0.95)
    assert got.diff == pytest.approx(want[0], abs=1e-12)
    assert (got.lo, got.hi) == pytest.approx(want[1:], abs=1e-12)
    assert got.n == 37 and got.n_boot == 3000 and got.level == 0.95


def test_interval_converges_to_the_exact_bootstrap_distribution():
    # n = 4 units: all 4^4 equally likely resamples give the exact bootstrap distribution
    d = np.array([0.0, 1.0, 3.0, 8.0])
    exact = np.sort([np.mean(d[list(c)]) for c in itertools.product(range(4), repeat=4)])
    got = paired_bootstrap_ci(d, np.zeros(4), n_boot=200_000, seed=1)
    # the Monte Carlo quantiles lie within one point of probability of the exact ones
    assert np.quantile(exact, 0.015) <= got.lo <= np.quantile(exact, 0.035)
    assert np.quantile(exact, 0.965) <= got.hi <= np.quantile(exact, 0.985)
    assert np.quantile(exact, 0.035) < np.quantile(exact, 0.965)  # the bands are not one value
    assert got.diff == 3.0


def test_pairing_removes_the_units_own_spread():
    # b = a - 0.1 exactly: every resample's mean difference is 0.1, whatever a's spread
    a = np.random.default_rng(0).uniform(0, 1, 50)
    got = paired_bootstrap_ci(a, a - 0.1)
    assert got.lo == pytest.approx(0.1) and got.hi == pytest.approx(0.1) and got.excludes_zero
    # an unpaired gap of the same size hidden in noise is not supported
    noisy = paired_bootstrap_ci(a, np.random.default_rng(1).uniform(0, 1, 50) - 0.02)
    assert noisy.lo < 0 < noisy.hi and not noisy.excludes_zero


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_ci([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap_ci([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        paired_bootstrap_ci([1], [0])


def _fake_bench(progress, scenes, stop_after=None):
    """A bench loop as bench/invert.py runs one: skips recorded scenes, records each as done."""
    did = 0
    for s in progress.missing(scenes):
        if stop_after is not None and did == stop_after:
            raise KeyboardInterrupt
        progress.add(s, {"scene": s, "iou": float(np.sin(s) ** 2)})
        did += 1
    return progress.get(scenes)


def test_an_interrupted_then_resumed_run_gives_the_records_of_one_run(tmp_path):
    scenes = list(range(7))
    whole = _fake_bench(ProgressFile(tmp_path / "a.jsonl", {"steps": 3}), scenes)
    path = tmp_path / "b.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _fake_bench(ProgressFile(path, {"steps": 3}), scenes, stop_after=3)
    again = ProgressFile(path, {"steps": 3})
    assert sorted(again.records) == ["0", "1", "2"]
    assert _fake_bench(again, scenes) == whole
    assert len(path.read_text().splitlines()) == 1 + len(scenes)  # settings + one line per scene, none twice


def test_a_cut_off_last_line_is_dropped_and_other_settings_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    p = ProgressFile(path, {"steps": 3, "seed": 31337})
    p.add("0", {"iou": 0.5})
    with open(path, "a") as f:
        f.write('{"key": "1", "record": {"io')  # killed mid-write
    q = ProgressFile(path, {"steps": 3, "seed": 31337})
    assert list(q.records) == ["0"]
    q.add("1", {"iou": 0.25})
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()[1:]] == ["0", "1"]
    with pytest.raises(ValueError, match="other settings.*steps"):
        ProgressFile(path, {"steps": 500, "seed": 31337})
    with pytest.raises(ValueError, match="already recorded"):
        q.add("1", {"iou": 0.0})
    with pytest.raises(KeyError, match="'2'"):
        q.get(["0", "2"])


def test_merging_a_second_processs_records(tmp_path):
    a = ProgressFile(tmp_path / "a.jsonl", {"steps": 3})
    b = ProgressFile(tmp_path / "b.jsonl", {"steps": 3})
    for k in ("0", "1"):
        a.add(k, {"iou": float(k)})
    for k in ("1", "2", "3"):  # "1": both processes ran the unit where they met (timed differently)
        b.add(k, {"iou": float(k), "seconds": 9.0})
    a.records["1"]["seconds"] = 5.0
    assert a.merge(tmp_path / "b.jsonl") == 2
    assert [r["iou"] for r in ProgressFile(tmp_path / "a.jsonl", {"steps": 3}).get(["0", "1", "2", "3"])] == [0, 1, 2, 3]
    c = ProgressFile(tmp_path / "c.jsonl", {"steps": 3})
    c.add("9", {"iou": 9.0})  # new, but the file also disagrees on unit 0: nothing is merged
    c.add("0", {"iou": 0.5})
    with pytest.raises(ValueError, match="different records of unit '0'"):
        a.merge(tmp_path / "c.jsonl")
    assert "9" not in ProgressFile(tmp_path / "a.jsonl", {"steps": 3}).records
    ProgressFile(tmp_path / "d.jsonl", {"steps": 4})
    with pytest.raises(ValueError, match="other settings"):
        a.merge(tmp_path / "d.jsonl")
