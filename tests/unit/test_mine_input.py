"""Bad input to `rosetta mine` (issue 4 §8): one clear error each, no traceback, nothing lost.

These run the real command-line entry point in-process. The checks live in the flow
(:meth:`Run.validate` at its start), so every refusal happens before any model is loaded or
anything is written, with the same message from the CLI, the Python API and a deployment.
"""

from __future__ import annotations

import json

import pytest
import torch

from flows.cli import main
from rosetta_core.run import MineConfig, Run, StoreMismatch
from rosetta_core.run.run import run_identity
from rosetta_core.run.models import check_models, model, using_model
from rosetta_core.run.store import STORE_VERSION, RunStore
from rosetta_core.zoo import GeneratorAdapter, LayerInfo
from rosetta_core.zoo.registry import _REGISTRY, ModelSpec, register

pytestmark = pytest.mark.unit

RANDOM = ["--weights", "random"]


class _Conditional(GeneratorAdapter):
    """A 3-class conditional generator stand-in (registered for these tests only)."""

    name, arch = "test-cond-gen", "none"

    def __init__(self):
        self.module = torch.nn.Identity()
        self.weights = "random"
        self.class_index = None

    def layers(self):
        return [LayerInfo("relu", 1, (2, 2))]

    def sample_latents(self, seed, indices):
        return torch.zeros(len(indices), 1)

    def generate(self, latents, layers=()):
        return torch.zeros(len(latents), 3, 4, 4, dtype=torch.uint8), {}


@pytest.fixture(scope="module")
def conditional():
    register(ModelSpec("test-cond-gen", "generator", "none", "a 3-class test generator", build=_Conditional,
                       extra={"classes": 3}))
    yield "test-cond-gen"
    _REGISTRY.pop("test-cond-gen", None)


def _run(capsys, *args: str) -> tuple[int, str]:
    """The command's exit code and what it printed to stderr, less the flow run's UI address
    (printed first when a Prefect server is set, e.g. by another test's API in the session)."""
    rc = main(["mine", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, "".join(line for line in err.splitlines(keepends=True) if not line.startswith("Prefect UI: "))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generator", "nope"], r"unknown model 'nope'; known models: .*mini-gen"),
        (["--encoders", "mini-resnet.sup,nope"], r"unknown model 'nope'; known models: .*mini-vit\.mae"),
        (["--generator", "mini-vit.mae"], r"generator='mini-vit\.mae' is an encoder"),
        (["--n", "9"], r"n=9 is too small for k=5; need n >= 2k = 10"),
        (["--k", "0"], r"k=0 must be >= 1"),
        (["--class-index", "0"], r"class_index=0 was given but mini-gen is unconditional"),
        (["--chunk-size", "1"], r"chunk_size=1 must be >= 2"),
        (["--encoders", "mini-vit.mae,mini-vit.mae"], r"lists a model twice"),
    ],
)
def test_bad_values_are_one_error_line(capsys, tmp_path, args, message):
    import re

    rc, err = _run(capsys, *RANDOM, "--out", str(tmp_path / "run"), *args)
    assert rc == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was created


def test_class_index_of_a_conditional_generator_must_be_in_range(conditional):
    check_models(MineConfig(generator=conditional, weights="random", class_index=2))
    for bad in (3, -1):
        with pytest.raises(ValueError, match=rf"class_index={bad} is out of range for test-cond-gen; valid: 0\.\.2"):
            check_models(MineConfig(generator=conditional, weights="random", class_index=bad))


def test_the_run_passes_its_class_to_a_conditional_generator(conditional):
    config = MineConfig(generator=conditional, weights="random", class_index=1)
    assert model(config, conditional).class_index == 1
    with using_model(MineConfig(generator=conditional, weights="random"), conditional) as gen:
        assert gen.class_index is None  # the cached adapter follows each run's configuration


def test_unwritable_out_is_refused(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rc, err = _run(capsys, *RANDOM, "--out", str(blocker / "run"))
    assert rc == 2 and f"--out '{blocker / 'run'}' is not writable" in err


def _store(path, **attrs):
    store = RunStore(str(path / "store.zarr"))
    store.group.attrs.update(attrs)
    return (path / "store.zarr" / "zarr.json").read_bytes()


def test_a_store_of_another_version_is_refused_naming_both_versions(capsys, tmp_path):
    config = MineConfig(weights="random").identity()
    before = _store(tmp_path, store_version=0, config=config)
    rc, err = _run(capsys, *RANDOM, "--out", str(tmp_path))
    assert rc == 2 and "written by store version 0" in err and f"reads store version {STORE_VERSION}" in err
    assert (tmp_path / "store.zarr" / "zarr.json").read_bytes() == before  # nothing lost


def test_a_run_of_another_configuration_is_refused_unless_overwrite(tmp_path):
    stored = run_identity(MineConfig(weights="random", n=400, encoders=("mini-vit.mae",)), {"mini-gen": "x"})
    before = _store(tmp_path, store_version=STORE_VERSION, **stored)
    with pytest.raises(StoreMismatch, match=r"different configuration \(n: stored 400, asked 800\).*--overwrite"):
        Run(tmp_path, MineConfig(weights="random", n=800, encoders=("mini-vit.mae",))).validate()
    with pytest.raises(StoreMismatch, match=r"different configuration \(mini-vit.mae weights: stored 'random', asked 'trained'\)"):
        Run(tmp_path, MineConfig(weights="random,mini-vit.mae=trained", n=400, encoders=("mini-vit.mae",))).validate()
    with pytest.raises(StoreMismatch, match=r"\(mini-gen layers: stored \[\], asked \['block1'\]\)"):
        Run(tmp_path, MineConfig(weights="random", n=400, encoders=("mini-vit.mae",), layers={"mini-gen": ["block1"]})).validate()
    Run(tmp_path, MineConfig(weights="random", n=400, encoders=("mini-vit.mae",))).validate()  # the same run resumes
    # another encoder is an addition to the run, not another configuration
    Run(tmp_path, MineConfig(weights="random", n=400, encoders=("mini-vit.mae", "mini-clip.rn"))).validate()
    Run(tmp_path, MineConfig(weights="random", n=800)).validate(overwrite=True)
    assert (tmp_path / "store.zarr" / "zarr.json").read_bytes() == before


def test_overwrite_empties_a_store_of_another_configuration(tmp_path):
    store = RunStore(str(tmp_path / "store.zarr"))
    store.check_or_set_identity({"run": {"n": 400}, "models": {"g": {"weights": "random"}}})
    store.require("latents", (400, 2), (100, 2), "float32", ["image", "latent"])
    with pytest.raises(StoreMismatch):
        store.check_or_set_identity({"run": {"n": 800}, "models": {}})
    with pytest.raises(StoreMismatch, match="g weights: stored 'random', asked 'trained'"):
        store.check_or_set_identity({"run": {"n": 400}, "models": {"g": {"weights": "trained"}}})
    assert "latents" in store  # a refusal keeps what was computed
    store.check_or_set_identity({"run": {"n": 400}, "models": {"e": {"weights": "random"}}})  # an added model
    assert store.attrs["models"] == {"g": {"weights": "random"}, "e": {"weights": "random"}} and "latents" in store
    store.check_or_set_identity({"run": {"n": 800}, "models": {}}, overwrite=True)
    assert "latents" not in store and store.attrs["run"] == {"n": 800} and store.attrs["models"] == {}
    store.require("latents", (800, 2), (100, 2), "float32", ["image", "latent"])  # the new layout fits
    assert json.loads((tmp_path / "store.zarr" / "zarr.json").read_text())["attributes"]["run"] == {"n": 800}


def test_truncation_is_checked_and_set_per_run():
    with pytest.raises(ValueError, match=r"truncation=0\.5 was given but mini-gen has no truncation setting"):
        check_models(MineConfig(weights="random", truncation=0.5))
    cat = {"generator": "stylegan2.lsun-cat", "encoders": ("mini-resnet.sup",), "weights": "random"}
    with pytest.raises(ValueError, match=r"truncation=1\.5 is invalid for stylegan2\.lsun-cat: use a number in \(0, 1\]"):
        check_models(MineConfig(**cat, truncation=1.5))
    check_models(MineConfig(**cat, truncation="paper"))
    paper = model(MineConfig(**cat, truncation="paper"), "stylegan2.lsun-cat")
    assert paper.truncation == paper.paper_truncation == 1.0
    assert model(MineConfig(**cat, truncation=0.5), "stylegan2.lsun-cat").truncation == 0.5
    # the cached adapter goes back to its default for a run that sets none
    assert model(MineConfig(**cat), "stylegan2.lsun-cat").truncation == paper.default_truncation != 1.0
    assert MineConfig(**cat, truncation=0.5).run_identity()["truncation"] == 0.5  # part of the run's identity


def test_runs_written_before_image_runs_existed_are_still_this_configuration(tmp_path):
    """Stores and manifests of generator runs written before the images/anchor fields existed:
    the same configuration (no conflict, and a finished run is still finished)."""
    import json

    from rosetta_core.run.run import run_identity
    from rosetta_core.run.store import identity_conflicts

    config = MineConfig(weights="random", n=400)
    asked = run_identity(config)
    old = {"run": {k: v for k, v in asked["run"].items() if k not in ("images", "anchor")}, "models": asked["models"]}
    assert identity_conflicts(old, asked) == {}
    recorded = {k: v for k, v in config.identity().items() if k not in ("images", "anchor")}
    (tmp_path / "manifest.json").write_text(json.dumps({"complete": True, "config": recorded}))
    assert Run(tmp_path, config).finished() is not None
    assert Run(tmp_path, MineConfig(weights="random", n=800)).finished() is None
    # written before the random-init companion existed: it had none, so asking for one is more work
    del recorded["random_init"]
    (tmp_path / "manifest.json").write_text(json.dumps({"complete": True, "config": recorded}))
    assert Run(tmp_path, config).finished() is None
    assert Run(tmp_path, MineConfig(weights="random", n=400, random_init=False)).finished() is not None
