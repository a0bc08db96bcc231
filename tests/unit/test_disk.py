"""Disk (issue 20, part 4): the store's size against the free space at a local --out, checked by
``Run.validate`` and ``rosetta plan`` before anything is computed; ``--activations none`` sizes.

The free space is the only thing faked (``shutil.disk_usage``, as the check reads it): the
sizes, the store, the run's validation and the CLI are real."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple

import numpy as np
import pytest

from rosetta_core.engine.planner import plan_size
from rosetta_core.run import MineConfig, Run, StoreMismatch, plan_run
from rosetta_core.run import disk
from rosetta_core.run.disk import NotEnoughDisk, check_fits, format_bytes, remaining_bytes, run_size
from rosetta_core.run.extraction import generate_chunk, prepare_store
from rosetta_core.run.folding import fold_steps, fold_tree

pytestmark = pytest.mark.unit

G = [("g1", 2, 4, 4), ("g2", 3, 8, 8)]
E = [("e1", 5, 2, 2)]
Usage = namedtuple("Usage", "total used free")


def _free(monkeypatch, free: int) -> list[str]:
    """Pretend the filesystem has ``free`` bytes free; returns the paths asked about."""
    asked: list[str] = []

    def usage(path):
        asked.append(str(path))
        return Usage(10**12, 10**12 - free, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return asked


def _config(**kw) -> MineConfig:
    return MineConfig(**({"encoders": ("mini-resnet.sup",), "n": 24, "k": 3, "chunk_size": 8, "weights": "random"} | kw))


# -- sizes -----------------------------------------------------------------------------------


def test_sizes_without_activations_by_hand():
    keep = plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, dtype="float32", chunk_size=4, threads=2)
    none = plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, dtype="float32", chunk_size=4, threads=2,
                     activations="none")
    assert keep.fold_bytes == 0 and keep.disk_bytes == keep.store_bytes == 18588
    moments = 2272 + 2064 + 2272  # pair, self pair, null (tests/unit/test_planner.py)
    # no maps, the anchor's peaks (n x 5 units float32) instead; images, moments and tables as kept
    assert none.peaks_bytes == 4 * 10 * 5
    assert none.store_bytes == 200 + 1920 + 2 * (2272 + 100) + (2064 + 100) == 9028
    # 3 chunks: a tree of 2 levels, so 2 + 2 = 4 partial states of every pair at most
    assert none.fold_bytes == 4 * moments and none.disk_bytes == 9028 + 4 * moments
    one = plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, chunk_size=10, activations="none")
    assert one.fold_bytes == 0  # one chunk folds straight into the pair's moments
    many = plan_size("G", {"G": G, "E": E}, ["E"], n=100, image_size=8, chunk_size=4, activations="none")
    assert many.fold_bytes == (5 + 2) * sum(p.moments_bytes for p in many.pairs)  # 25 chunks: 5 levels
    with pytest.raises(ValueError, match=r"activations='some'; valid: keep, none"):
        plan_size("G", {"G": G, "E": E}, ["E"], n=10, image_size=8, activations="some")


def test_fold_tree_is_the_reduction_tree_and_merges_follow_their_last_chunk():
    from rosetta_core.engine.reduction import tree_reduce

    for chunks in (1, 2, 3, 5, 8, 11):
        spans = tree_reduce([(c, c + 1) for c in range(chunks)], lambda l, r: (l[0], r[1], l, r))
        assert len(fold_tree(chunks)) == chunks - 1
        if chunks > 1:
            assert (spans[0], spans[1]) == (0, chunks)
        seen: set[tuple[int, int]] = set()
        for step in fold_steps(chunks):
            if step[0] == "chunk":
                seen.add((step[1], step[1] + 1))
                continue
            _, first, mid, stop = step
            assert (first, mid) in seen and (mid, stop) in seen  # both halves submitted before
            seen.add((first, stop))
        assert (0, chunks) in seen
        # each merge comes right after the chunk that completes it
        order = list(fold_steps(chunks))
        for i, step in enumerate(order):
            if step[0] == "merge":
                last_chunk = max(s[1] for s in order[:i] if s[0] == "chunk")
                assert last_chunk == step[3] - 1


def test_run_size_follows_the_config():
    keep, none = run_size(_config(n=1600, chunk_size=100)), run_size(_config(n=1600, chunk_size=100, activations="none"))
    assert keep.units == none.units and keep.pairs == none.pairs
    assert none.disk_bytes < keep.disk_bytes and none.store_bytes < keep.store_bytes
    keep, none = run_size(_config()), run_size(_config(activations="none"))  # 24 images: the moments outweigh the maps
    assert none.store_bytes < keep.store_bytes < none.disk_bytes
    assert run_size(_config(dtype="float32")).activation_bytes["mini-gen"] == 2 * keep.activation_bytes["mini-gen"]


# -- the check -------------------------------------------------------------------------------


def test_check_fits_names_sizes_path_and_remedies(tmp_path, monkeypatch):
    where = str(tmp_path / "deep" / "run")  # not there yet: its nearest existing folder is asked
    asked = _free(monkeypatch, 1_000)
    config = _config(dtype="float32", n=1600, chunk_size=100)
    need = run_size(config).disk_bytes
    with pytest.raises(NotEnoughDisk) as err:
        check_fits(where, need, config)
    message = str(err.value)
    assert "\n" not in message and asked == [str(tmp_path)]
    assert message.startswith(f"the run needs {format_bytes(need)} more at {where} (store estimate, uncompressed) "
                              "but only 1.0 KB is free there; use another --out on a disk with more free space, a smaller --n, ")
    none, half = run_size(config, activations="none"), run_size(config, dtype="float16")
    assert message.endswith(f"--dtype float16 (store {format_bytes(half.disk_bytes)}) or "
                            f"--activations none (store {format_bytes(none.disk_bytes)})")
    check_fits(where, 1_000, config)  # exactly fits
    with pytest.raises(NotEnoughDisk) as err:  # float16 and none already: only the other remedies
        check_fits(where, 5_000_000, _config(activations="none"), done=2_000_000)
    assert "--dtype" not in str(err.value) and "--activations" not in str(err.value)
    assert str(err.value).endswith("2.0 MB of it already written) but only 1.0 KB is free there; use another --out on "
                                   "a disk with more free space or a smaller --n")
    with pytest.raises(NotEnoughDisk) as err:  # 24 images: keeping no maps would need more, so it is not offered
        check_fits(where, run_size(_config()).disk_bytes, _config())
    assert "--activations" not in str(err.value)


def test_an_fsspec_url_is_not_checked(monkeypatch):
    asked = _free(monkeypatch, 0)
    check_fits("s3://bucket/runs/x", 10**15, _config())
    assert asked == []


def test_validate_refuses_before_anything_is_computed(tmp_path, monkeypatch):
    config = _config(n=1600, chunk_size=100)
    need = run_size(config).disk_bytes
    _free(monkeypatch, need - 1)
    with pytest.raises(NotEnoughDisk, match=rf"needs {format_bytes(need)} more at {tmp_path / 'run'} "):
        Run(tmp_path / "run", config).validate()
    assert not (tmp_path / "run" / "store.zarr").exists()
    _free(monkeypatch, need)
    Run(tmp_path / "run", config).validate()
    # keeping no activations needs less: the same free space now holds it
    small = run_size(config, activations="none").disk_bytes
    _free(monkeypatch, small)
    with pytest.raises(NotEnoughDisk, match=rf"or --activations none \(store {format_bytes(small)}\)"):
        Run(tmp_path / "run", config).validate()
    Run(tmp_path / "run", _config(n=1600, chunk_size=100, activations="none")).validate()


def test_a_partly_written_run_needs_only_the_rest(tmp_path, monkeypatch):
    config = _config()
    run = Run(tmp_path / "run", config)
    run.validate()
    prepare_store(run, plan_run(config))
    size = run_size(config)
    assert remaining_bytes(run, size, True) == size.disk_bytes
    generate_chunk(run, 0)
    generate_chunk(run, 2)
    # two of three chunks of the generator's maps and images are there
    rest = size.disk_bytes - round(2 / 3 * (size.activation_bytes["mini-gen"] + size.image_bytes))
    assert abs(remaining_bytes(run, size, True) - rest) <= 1
    assert remaining_bytes(run, size, False) == size.disk_bytes  # --overwrite: everything again
    _free(monkeypatch, rest + 1)
    Run(tmp_path / "run", config).validate()  # fits: only the rest is compared
    with pytest.raises(NotEnoughDisk, match=rf"needs {format_bytes(size.disk_bytes)} more at .* \(store estimate, uncompressed\) but"):
        Run(tmp_path / "run", config).validate(overwrite=True)  # discarding the run: all of it again
    _free(monkeypatch, rest - 2)
    written = format_bytes(size.disk_bytes - remaining_bytes(run, size, True))
    with pytest.raises(NotEnoughDisk, match=rf"needs {format_bytes(rest)} more at .*, {written} of it already written\)"):
        Run(tmp_path / "run", config).validate()


def test_plan_cli_compares_with_the_free_space_at_out(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    argv = ["plan", "--encoders", "mini-resnet.sup", "--n", "1600", "--out", str(tmp_path / "r")]
    big = _config(weights="trained", n=1600, chunk_size=100)
    need = run_size(big).disk_bytes
    _free(monkeypatch, need)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"disk: needs {format_bytes(need)} at {tmp_path / 'r'}, {format_bytes(need)} free there" in out
    assert "random-init companion (RUN/random-init" in out  # trained encoders: the companion is said apart
    _free(monkeypatch, need - 1)
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"rosetta plan: error: the run needs {format_bytes(need)} more at")
    assert "plan: mini-gen vs mini-resnet.sup" in captured.out  # the plan is printed before the refusal
    assert main([*argv, "--activations", "none", "--json"]) == 0  # fits without the maps
    got = json.loads(capsys.readouterr().out)
    assert got["activations"] == "none" and got["disk_bytes"] == run_size(big, activations="none").disk_bytes
    assert got["random_init_companion"] is True
    assert got["needed_bytes"] == got["disk_bytes"] and got["free_bytes"] == need - 1
    assert main([*argv[:-1], "s3://bucket/runs/x"]) == 0  # not checked
    assert "s3://bucket/runs/x is an fsspec URL: no free space to compare with (not checked)" in capsys.readouterr().out


# -- the configuration -----------------------------------------------------------------------


def test_activations_is_checked_and_part_of_the_identity(tmp_path):
    with pytest.raises(ValueError, match=r"activations='all'; valid: keep, none"):
        _config(activations="all").validate()
    assert _config(activations="none").run_identity()["activations"] == "none"
    config = _config()
    run = Run(tmp_path / "run", config)
    run.validate()
    prepare_store(run, plan_run(config))
    with pytest.raises(StoreMismatch, match=r"activations: stored 'keep', asked 'none'"):
        Run(tmp_path / "run", _config(activations="none")).validate()
    # recorded only when not 'keep': a store written before the field existed is a 'keep' store
    assert "activations" not in run.store.attrs["run"]
    none = Run(tmp_path / "none", _config(activations="none"))
    none.validate()
    prepare_store(none, plan_run(none.config))
    assert none.store.attrs["run"]["activations"] == "none"
    with pytest.raises(StoreMismatch, match=r"activations: stored 'none', asked 'keep'"):
        Run(tmp_path / "none", config).validate()


def test_numbers_format_like_the_plan():
    assert [format_bytes(v) for v in (999, 1000, 1_234_567, 5 * 10**12)] == ["999 B", "1.0 KB", "1.2 MB", "5.0 TB"]
    assert np.isclose(disk.free_bytes("/"), shutil.disk_usage("/").free, rtol=0.01)
