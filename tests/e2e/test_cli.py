"""The command line, run the way a user runs it."""

from __future__ import annotations

import subprocess

import pytest
from cli_helpers import prefect_env, rosetta_command

pytestmark = pytest.mark.e2e


def rosetta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*rosetta_command(), *args], capture_output=True, text=True, timeout=300)


def test_demo_recovers_every_planted_pair():
    proc = rosetta("demo", "--n", "150", "--planted", "5")
    assert proc.returncode == 0, proc.stderr
    assert "planted pairs recovered: 5 of 5" in proc.stdout
    assert "MISSED" not in proc.stdout


def test_bad_option_is_one_clear_error_without_traceback():
    proc = rosetta("demo", "--n", "1")
    assert proc.returncode == 2
    assert "n=1" in proc.stderr and "Traceback" not in proc.stderr


def test_version():
    proc = rosetta("--version")
    assert proc.returncode == 0 and "rosetta-neurons" in proc.stdout


def test_zoo_list_json_lists_every_embedded_model():
    import json

    proc = rosetta("zoo", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert {"mini-gen", "mini-resnet.sup", "mini-resnet.ssl", "mini-vit.mae", "mini-clip.rn"} <= set(rows)
    assert rows["mini-gen"]["kind"] == "generator" and rows["mini-vit.mae"]["kind"] == "encoder"
    for row in rows.values():
        if row["weights_hash"] is None:  # network pickles: no architecture until a pickle is given
            assert row["weights"].startswith("not loaded") and row["layers"] == []
            continue
        assert row["total_units"] == sum(layer["units"] for layer in row["layers"]) > 0
    text = rosetta("zoo", "list")
    assert "mini-resnet.sup  [encoder]" in text.stdout and "total units" in text.stdout


def test_zoo_train_resumes_and_reports_the_gate(tmp_path):
    cmd = [*rosetta_command(), "zoo", "train", "mini-gen", "--steps", "2", "--batch", "4",
           "--out", str(tmp_path / "zoo"), "--quick-gate"]
    env = prefect_env(str(tmp_path / "prefect"))
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 1, first.stderr[-2000:]  # two steps cannot pass the gate
    out = first.stdout + first.stderr
    assert "| mini-gen | 2 |" in out and "FAILED" in out
    assert (tmp_path / "zoo" / "mini-gen" / "ckpt.pt").is_file()
    assert not (tmp_path / "zoo" / "mini-gen.safetensors").exists()
    bad = subprocess.run([*rosetta_command(), "zoo", "train", "nope"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "unknown embedded model(s) nope; trainable: mini-gen" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_zoo_evaluate_passes_a_shipped_model():
    run = subprocess.run([*rosetta_command(), "zoo", "evaluate", "mini-vit.mae", "--quick"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mini-vit.mae: gate PASSED" in run.stdout
