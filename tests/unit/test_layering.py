"""Layers point one way: flows -> tasks -> rosetta_core; the core never imports orchestration;
inside the core, the sub-packages point one way too (DESIGN §2): the engine at the bottom, then
matching, zoo and data, then run, inversion and report."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = ("prefect", "prefect_dask", "distributed", "dask.distributed", "flows", "tasks")
#: sub-package of rosetta_core -> the sub-packages it must not import (absolute or relative)
FORBIDDEN_BETWEEN_SUBPACKAGES = {
    "engine": ("run", "zoo", "report", "matching", "inversion", "data"),
    "matching": ("run", "zoo", "report", "inversion"),
    "zoo": ("run", "report", "inversion", "matching"),
    "data": ("run", "report", "inversion", "matching"),
    # provenance of result files: the standard library only, so any script or command may record it
    "evidence": ("engine", "run", "zoo", "report", "matching", "inversion", "data"),
}


def module_package(path: Path, root: Path = ROOT) -> str:
    """The dotted package a file's relative imports start from (``a/b/c.py`` -> ``a.b``;
    ``a/b/__init__.py`` -> ``a.b``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1])


def imported_modules(path: Path, package: str = "") -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in it (inside functions too).

    Relative imports are resolved against ``package`` (``from ..run import x`` in package
    ``rosetta_core.engine`` is ``rosetta_core.run``); ``from P import name`` also counts
    ``P.name``, which may be a sub-module (``from dask import distributed``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 >= len(parts):
                    raise ValueError(f"{path}: relative import beyond the top-level package {package!r}")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names if alias.name != "*")
    return names


def offenders(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``"<file> imports <module>"`` for every import of a ``forbidden`` module (or one below
    it) by a file under ``package``; one line per import (``P.name`` of ``from P import name``
    is not listed again when ``P`` is)."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        hits: list[str] = []
        for name in sorted(imported_modules(path, module_package(path, root))):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                if not any(name.startswith(hit + ".") for hit in hits):
                    hits.append(name)
        found += [f"{path.relative_to(root)} imports {name}" for name in hits]
    return found


def test_core_never_imports_orchestration():
    assert (ROOT / "rosetta_core").is_dir()
    assert offenders("rosetta_core", FORBIDDEN_IN_CORE) == []


def test_tasks_never_import_flows():
    assert offenders("tasks", ("flows",)) == []


@pytest.mark.parametrize("sub", sorted(FORBIDDEN_BETWEEN_SUBPACKAGES))
def test_core_subpackages_point_one_way(sub):
    assert (ROOT / "rosetta_core" / sub).is_dir()
    forbidden = tuple(f"rosetta_core.{other}" for other in FORBIDDEN_BETWEEN_SUBPACKAGES[sub])
    assert offenders(f"rosetta_core/{sub}", forbidden) == []


def test_the_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import numpy\nfrom dask.distributed import Client\nfrom dask import distributed\n")
    assert {"dask.distributed", "numpy"} <= imported_modules(bad)


def test_the_checker_resolves_relative_imports(tmp_path):
    engine = tmp_path / "rosetta_core" / "engine"
    engine.mkdir(parents=True)
    (engine / "__init__.py").write_text("from .comoments import CoMoments\n")
    bad = engine / "bad.py"
    bad.write_text(
        "from . import resize\nfrom .grid_sums import parallel\n\n"
        "def f():\n    from ..run.store import RunStore\n    from .. import zoo\n    return RunStore, zoo\n"
    )
    assert module_package(bad, tmp_path) == "rosetta_core.engine"
    assert module_package(engine / "__init__.py", tmp_path) == "rosetta_core.engine"
    assert imported_modules(bad, "rosetta_core.engine") >= {
        "rosetta_core.engine.resize", "rosetta_core.engine.grid_sums", "rosetta_core.run.store", "rosetta_core.zoo"}
    assert imported_modules(engine / "__init__.py", "rosetta_core.engine") >= {"rosetta_core.engine.comoments"}
    forbidden = tuple(f"rosetta_core.{other}" for other in FORBIDDEN_BETWEEN_SUBPACKAGES["engine"])
    assert offenders("rosetta_core/engine", forbidden, root=tmp_path) == [
        "rosetta_core/engine/bad.py imports rosetta_core.run.store",
        "rosetta_core/engine/bad.py imports rosetta_core.zoo",
    ]
    (engine / "bad.py").write_text("from ...outside import x\n")
    with pytest.raises(ValueError, match="beyond the top-level package"):
        offenders("rosetta_core/engine", forbidden, root=tmp_path)
