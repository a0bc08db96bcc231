"""`rosetta zoo list` from the specs alone: every spec's layer table is what its built model
reports, and listing builds no model (and imports none of the model libraries)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from flows.cli_zoo import NOT_BUILT, zoo_list
from rosetta_core.zoo import EncoderAdapter, LayerInfo, ModelSpec, get_spec, list_models, load, register
from rosetta_core.zoo.registry import _REGISTRY

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: libraries that only building a paper or embedded model needs (seconds to import on 2 cores)
MODEL_LIBRARIES = ("timm", "open_clip", "pytorch_pretrained_biggan", "torchvision")


def _package_models() -> list[str]:
    """Names of the models the package registers (tests register models of their own too)."""
    def module(build) -> str:
        return getattr(getattr(build, "func", build), "__module__", "")

    return [s.name for s in list_models() if module(s.build).startswith("rosetta_core.zoo.")]


PACKAGE_MODELS = _package_models()


def _listed(capsys, as_json: bool):
    capsys.readouterr()
    assert zoo_list(argparse.Namespace(json=as_json)) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_the_package_registers_the_paper_and_embedded_models():
    assert {"mini-gen", "mini-resnet.sup", "mini-clip.rn", "biggan-deep-256", "stylegan2.lsun-cat",
            "resnet50.tv_in1k", "vit_base_patch16_224.dino", "RN50.openai", "stylegan3.pickle"} <= set(PACKAGE_MODELS)


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_declared_layer_table_is_what_the_built_model_reports(name):
    spec = get_spec(name)
    assert spec.layers is not None, f"{name} declares no layer table: `rosetta zoo list` would build it"
    try:
        declared = spec.layers()
    except ValueError as err:  # network pickles: no architecture before a pickle is loaded
        with pytest.raises(ValueError) as built:
            load(name, "random")
        assert str(built.value) == str(err)
        return
    assert all(isinstance(layer, LayerInfo) for layer in declared)
    assert load(name, "random").layers() == declared


@pytest.mark.parametrize("name", [n for n in PACKAGE_MODELS if get_spec(n).has_weights])
def test_shipped_hash_is_the_hash_of_the_loaded_model(name):
    assert get_spec(name).shipped_hash() == load(name).weights_hash


def test_listing_builds_no_model(monkeypatch, capsys):
    built = []

    def recording(spec):
        def build():
            built.append(spec.name)
            return spec.build()

        return dataclasses.replace(spec, build=build)

    for name in PACKAGE_MODELS:
        monkeypatch.setitem(_REGISTRY, name, recording(_REGISTRY[name]))
    rows = {row["name"]: row for row in _listed(capsys, as_json=True)}
    assert built == []
    for name in PACKAGE_MODELS:
        spec, row = get_spec(name), rows[name]
        try:
            layers = spec.layers()
        except ValueError as err:
            assert row["weights"] == f"not loaded: {err}" and row["weights_hash"] is None and row["layers"] == []
            continue
        assert row["layers"] == [{"name": l.name, "units": l.units, "grid": list(l.grid)} for l in layers]
        assert row["total_units"] == sum(l.units for l in layers) > 0
        assert row["weights_hash"] == (spec.shipped_hash() if spec.has_weights else NOT_BUILT)
    text = _listed(capsys, as_json=False)
    assert built == []
    assert "mini-gen  [generator]" in text
    assert "    layers: block1 256@4x4, block2 128@8x8, block3 64@16x16, block4 48@32x32, block5 64@64x64\n" in text
    assert f"(hash {get_spec('mini-gen').shipped_hash()})" in text
    assert "    total units: 3840\n" in text


class _Plugin(EncoderAdapter):
    """A model registered without a layer table."""

    name, arch = "test-zoo-list-plugin", "conv-relu"

    def __init__(self):
        self.module, self.weights = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()), "random"

    def layers(self):
        return [LayerInfo("relu", 2, (6, 6))]

    def preprocess(self, images):
        return images.float() / 255

    def activations(self, images, layers=None):
        raise NotImplementedError


def test_a_model_without_a_layer_table_is_built_to_list_it(capsys):
    register(ModelSpec(_Plugin.name, "encoder", _Plugin.arch, "a test model", build=_Plugin))
    try:
        rows = {row["name"]: row for row in _listed(capsys, as_json=True)}
        random_hash = load(_Plugin.name, "random").weights_hash
    finally:
        _REGISTRY.pop(_Plugin.name, None)
    row = rows[_Plugin.name]
    assert row["layers"] == [{"name": "relu", "units": 2, "grid": [6, 6]}] and row["total_units"] == 2
    assert row["weights"] == "random init (no weights file yet)" and row["weights_hash"] == random_hash


def test_the_listing_command_constructs_no_module_and_imports_no_model_library():
    """The real command in a fresh interpreter: no ``nn.Module`` is made while it runs."""
    code = f"""
import contextlib, io, json, sys
from torch import nn
from flows.cli import main
made = []
init = nn.Module.__init__
def counting(self, *args, **kwargs):
    made.append(type(self).__name__)
    init(self, *args, **kwargs)
nn.Module.__init__ = counting
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["zoo", "list", "--json"])
nn.Module.__init__ = init
print(json.dumps({{"code": code, "rows": len(json.loads(out.getvalue())), "made": made,
                  "imported": sorted(m for m in {MODEL_LIBRARIES!r} if m in sys.modules)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and result["rows"] >= len(PACKAGE_MODELS)
    assert result["made"] == [], f"listing constructed modules: {result['made']}"
    assert result["imported"] == [], f"listing imported {result['imported']}, which only building a model needs"
