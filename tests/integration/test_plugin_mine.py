"""The plugin example (examples/plugin) mined as a user would: installed (into a temporary target
folder on PYTHONPATH, so the project's venv stays clean) and found through its entry point by
`rosetta mine` and by the `mine` deployment run by a real process worker; and named with
`--plugin` / the `plugins` parameter where it is importable but not installed. Every Dask worker
of those runs imports the plugins itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prefect_server import deploy, prefect_server, run_script, worker

from rosetta_core.run import Run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"
SMALL = ["--weights", "random", "--n", "16", "--k", "3", "--chunk-size", "8"]
#: a second plugin, importable but not installed: one more encoder built on the example's
EXTRA = """
import rosetta_tiny_models as tiny
from rosetta_core.zoo import ModelSpec, register


class Copy(tiny.TinyCNN):
    name = "tiny-cnn.copy"


register(ModelSpec("tiny-cnn.copy", "encoder", tiny.TinyCNN.arch, "a second tiny CNN", build=Copy, layers=tiny.cnn_layers))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """examples/plugin installed with pip into a fresh target folder (from a copy: the build
    writes nothing into the checkout); put the folder on PYTHONPATH to use it."""
    base = tmp_path_factory.mktemp("plugin")
    source = base / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--no-build-isolation", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (target / "rosetta_tiny_models.py").is_file() and list(target.glob("*.dist-info/entry_points.txt"))
    return target


def _env(home: Path, *paths: Path) -> dict[str, str]:
    env = os.environ | {
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PYTHONPATH": os.pathsep.join([str(p) for p in paths] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    }
    env.pop("PREFECT_API_URL", None)
    return env


def _rosetta(env: dict, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("rosetta", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "flows.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)


def _mined(out: Path, generator: str, encoders: list[str]) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"]
    assert set(manifest["summary"]["best_buddies"]) == {f"{generator}__{e}" for e in [*encoders, generator]}
    run = Run.open(out)
    assert run.layer(generator, "block3").sizes["image"] == 16
    assert all(run.table(generator, e) is not None for e in encoders)
    return manifest


def test_rosetta_mine_with_the_installed_plugin(installed, tmp_path):
    env = _env(tmp_path / "home", installed)
    listed = _rosetta(env, "zoo", "list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    kinds = {row["name"]: row["kind"] for row in json.loads(listed.stdout)}
    assert kinds["tiny-gen"] == "generator" and kinds["tiny-cnn"] == "encoder" and "mini-gen" in kinds

    out = tmp_path / "run"
    mine = ["mine", "--generator", "tiny-gen", "--encoders", "tiny-cnn,mini-resnet.sup", *SMALL, "--out", str(out)]
    proc = _rosetta(env, *mine)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = _mined(out, "tiny-gen", ["tiny-cnn", "mini-resnet.sup"])

    # without the plugin: one line naming the model, and the finished run is left as it was
    gone = _rosetta(_env(tmp_path / "home"), *mine)
    assert gone.returncode == 2 and gone.stderr.strip().splitlines() == [gone.stderr.strip()]
    assert gone.stderr.startswith("rosetta mine: error: unknown model 'tiny-gen'")
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_rosetta_mine_with_a_plugin_module_that_is_not_installed(tmp_path):
    env = _env(tmp_path / "home", EXAMPLE)  # importable, but no distribution declares its entry point
    out = tmp_path / "run"
    args = ["mine", "--generator", "tiny-gen", "--encoders", "tiny-cnn", *SMALL, "--out", str(out)]
    missing = _rosetta(env, *args)
    assert missing.returncode == 2 and "unknown model 'tiny-gen'" in missing.stderr  # not found by itself
    proc = _rosetta(env, *args, "--plugin", "rosetta_tiny_models")  # the Dask workers import it too
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _mined(out, "tiny-gen", ["tiny-cnn"])
    bad = _rosetta(env, *args, "--plugin", "rosetta_tiny_modelz")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "rosetta mine: error: --plugin rosetta_tiny_modelz: no module named 'rosetta_tiny_modelz'")


TRIGGER = """
import json, sys
from prefect.deployments import run_deployment

run = run_deployment("mine/mine", parameters=json.loads(sys.argv[1]), timeout=600)
print("RESULT " + json.dumps({"state": run.state.type.value, "message": run.state.message or ""}))
"""


def test_the_mine_deployment_with_installed_and_named_plugins(installed, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "extra_tiny.py").write_text(EXTRA)
    config = {"generator": "tiny-gen", "encoders": ["tiny-cnn", "tiny-cnn.copy"], "n": 16, "k": 3, "chunk_size": 8,
              "weights": "random"}
    out = tmp_path / "run"
    with prefect_server(tmp_path / "prefect-home") as server:
        env = server | {"PYTHONPATH": _env(tmp_path, installed, extra)["PYTHONPATH"]}
        with worker("cpu", env):
            deploy("mine", env)
            done = run_script(env, TRIGGER, json.dumps({"config": config, "out": str(out), "plugins": ["extra_tiny"]}))
            assert done["state"] == "COMPLETED", done
            _mined(out, "tiny-gen", ["tiny-cnn", "tiny-cnn.copy"])

            bad = run_script(env, TRIGGER, json.dumps({"config": config, "out": str(tmp_path / "bad"),
                                                       "plugins": ["extra_tiny", "nope_plugin"]}))
            assert bad["state"] == "FAILED" and "plugins nope_plugin: no module named 'nope_plugin'" in bad["message"]
            assert not (tmp_path / "bad").exists()
