"""Plugins: models registered by other packages, found through the entry-point group
rosetta_neurons.models (fake installed distributions: a .dist-info folder on sys.path) or named
with --plugin; their errors are one line naming the plugin and its entry point."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from flows.cli import _commands, build_parser, main
from rosetta_core.zoo import get_spec, list_models, registry
from rosetta_core.zoo import plugins as pl
from rosetta_core.zoo.registry import DuplicateModel, origin_of

pytestmark = pytest.mark.unit

GROUP = "rosetta_neurons.models"

#: a plugin module registering one encoder ``name`` (a layer table, so listing builds nothing)
MODULE = """
from rosetta_core.zoo import LayerInfo, ModelSpec, register
{before}
register(ModelSpec({name!r}, "encoder", "conv", "a plugin test model", build=lambda: None,
                   layers=lambda: [LayerInfo("conv", 4, (8, 8))]))
{after}
"""


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """The registry and the plugin loader as they were, before and after; ``tmp_path`` on sys.path."""
    list_models()  # built-in models in, before the snapshot
    models, origins, loaded = dict(registry._REGISTRY), dict(registry._ORIGINS), set(pl._LOADED)
    modules = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(pl, "_ENTRY_POINTS_DONE", False)
    yield tmp_path
    registry._REGISTRY.clear()
    registry._REGISTRY.update(models)
    registry._ORIGINS.clear()
    registry._ORIGINS.update(origins)
    pl._LOADED.clear()
    pl._LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def module(folder, name: str, model: str, before: str = "", after: str = "") -> None:
    (folder / f"{name}.py").write_text(MODULE.format(name=model, before=before, after=after))


def distribution(folder, dist: str, entry_points: dict[str, str]) -> None:
    """An installed distribution ``dist`` declaring ``entry_points`` (name -> value) in our group."""
    info = folder / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")
    importlib.invalidate_caches()


def test_an_installed_plugin_registers_when_the_registry_first_needs_its_models(clean, monkeypatch):
    module(clean, "plug_good", "plug-enc")
    (clean / "plug_fn.py").write_text(
        "from rosetta_core.zoo import LayerInfo, ModelSpec, register\n\n"
        "def register_all():\n"
        "    register(ModelSpec('plug-fn-enc', 'encoder', 'conv', 'test', build=lambda: None,\n"
        "                       layers=lambda: [LayerInfo('conv', 4, (8, 8))]))\n")
    distribution(clean, "plug-dist", {"good": "plug_good", "fn": "plug_fn:register_all"})
    scans = []
    real = pl._entry_points
    monkeypatch.setattr(pl, "_entry_points", lambda: scans.append(1) or real())
    assert get_spec("plug-enc").kind == "encoder"  # loaded by the first lookup
    assert get_spec("plug-fn-enc").kind == "encoder"  # "module:function": the function registers
    assert "plug-enc" in {s.name for s in list_models()}
    assert len(scans) == 1  # once per process
    assert origin_of("plug-enc") == f"plugin 'plug-dist' (entry point 'good' of {GROUP})"


def test_a_plugin_that_fails_to_import_is_one_line_naming_it_and_changes_nothing(clean):
    module(clean, "plug_bad", "plug-half", after="raise RuntimeError('boom\\nsecond line')")
    distribution(clean, "bad-dist", {"bad": "plug_bad"})
    for _ in range(2):  # tried again when needed again: the same error, not a registry without it
        with pytest.raises(pl.PluginError) as err:
            list_models()
        assert str(err.value) == (f"plugin 'bad-dist' (entry point 'bad' of {GROUP}) failed to import: "
                                  "RuntimeError: boom second line")
    assert "plug-half" not in registry._REGISTRY  # what it registered before failing is undone


def test_a_model_two_plugins_register_names_both(clean):
    module(clean, "plug_one", "same-enc")
    module(clean, "plug_two", "same-enc")
    distribution(clean, "one-dist", {"one": "plug_one"})
    distribution(clean, "two-dist", {"two": "plug_two"})
    with pytest.raises(DuplicateModel) as err:
        list_models()
    said = str(err.value)
    assert "\n" not in said and "'same-enc'" in said
    assert f"plugin 'one-dist' (entry point 'one' of {GROUP})" in said
    assert f"plugin 'two-dist' (entry point 'two' of {GROUP})" in said


def test_a_plugin_may_not_take_a_built_in_name(clean):
    module(clean, "plug_clash", "mini-gen")
    with pytest.raises(DuplicateModel, match="'mini-gen' is already registered by module "
                       r"rosetta_core.zoo.embedded.mini_gen; plugin 'plug_clash' \(--plugin plug_clash\)"):
        pl.load_plugins(["plug_clash"])
    assert get_spec("mini-gen").kind == "generator"


def test_named_plugins_load_once_and_unknown_ones_are_one_line(clean):
    module(clean, "plug_named", "named-enc")
    assert pl.load_plugins(["plug_named"]) == ["plug_named"]
    assert pl.load_plugins(["plug_named"]) == ["plug_named"]  # no second registration
    assert origin_of("named-enc") == "plugin 'plug_named' (--plugin plug_named)"
    with pytest.raises(pl.PluginError, match=r"^--plugin nope_mod\.x: no module named 'nope_mod\.x'; .*PYTHONPATH"):
        pl.load_plugins(["nope_mod.x"])
    with pytest.raises(pl.PluginError, match=r"^plugins json\.nope: no module named"):
        pl.load_plugins(["json.nope"], option="plugins")
    module(clean, "plug_dep", "dep-enc", before="import missing_dependency_xyz")
    with pytest.raises(pl.PluginError, match=r"^plugin 'plug_dep' \(--plugin plug_dep\) failed to import: "
                       r"ModuleNotFoundError: No module named 'missing_dependency_xyz'$"):
        pl.load_plugins(["plug_dep"])


def test_every_command_takes_plugin_and_reports_a_bad_one_in_one_line(clean, capsys):
    leaves = _commands(build_parser())
    assert {p.prog for p in leaves} >= {"rosetta mine", "rosetta plan", "rosetta zoo list", "rosetta invert",
                                        "rosetta data render"}
    assert all(any("--plugin" in a.option_strings for a in p._actions) for p in leaves)
    assert main(["zoo", "list", "--plugin", "nope_mod"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rosetta zoo: error: --plugin nope_mod: no module named 'nope_mod'; give a module path "
                   "importable in every process that runs the tasks (an installed package, or its folder on PYTHONPATH)"]
    module(clean, "plug_cli", "cli-enc")
    assert main(["zoo", "list", "--json", "--plugin", "plug_cli"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["cli-enc"]["layers"] == [{"name": "conv", "units": 4, "grid": [8, 8]}]
    args = build_parser().parse_args(["mine", "--plugin", "a.b", "--plugin", "c"])
    assert args.plugin == ["a.b", "c"]


def test_the_flows_take_plugins():
    from flows.invert import invert_batch, invert_image
    from flows.mine import mine

    for flow in (mine, invert_image, invert_batch):
        assert flow.parameters.properties["plugins"]["default"] == []


def test_the_plugin_example_is_small_and_declares_its_entry_point():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[2] / "examples" / "plugin"
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["entry-points"][GROUP] == {"tiny": "rosetta_tiny_models"}
    code = [l for l in (root / "rosetta_tiny_models.py").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert len(code) <= 60  # its models are mined in tests/integration/test_plugin_mine.py
