"""bench/invert.py's resumable loop: a run interrupted between chunks, then rerun with the same
progress file, gives the records of one uninterrupted run and redoes no finished scene."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rosetta_core.evidence import ProgressFile

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_invert", ROOT / "bench" / "invert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _work(calls, fail_at=None):
    def work(idx):
        calls.append(list(idx))
        if fail_at is not None and fail_at in idx:
            raise KeyboardInterrupt
        return [{"scene": int(i), "iou": float(np.cos(i)) ** 2} for i in idx]
    return work


def test_resume_gives_the_uninterrupted_records(bench, tmp_path):
    units = list(range(9))
    calls = []
    whole = bench._resumable(ProgressFile(tmp_path / "a.jsonl", {"steps": 2}), "ood/sketch", units, 4, _work(calls))
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    path = tmp_path / "b.jsonl"
    first = []
    with pytest.raises(KeyboardInterrupt):
        bench._resumable(ProgressFile(path, {"steps": 2}), "ood/sketch", units, 4, _work(first, fail_at=5))
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7]]  # the second chunk died: none of it recorded
    again = []
    resumed = bench._resumable(ProgressFile(path, {"steps": 2}), "ood/sketch", units, 4, _work(again))
    assert again == [[4, 5, 6, 7], [8]]  # finished scenes are not run again
    assert resumed == whole
    # without a progress file (the in-memory stand-in) the records are the same
    assert bench._resumable(bench._Memory(), "ood/sketch", units, 3, _work([])) == whole
