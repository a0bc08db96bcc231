"""Layers point one way: flows -> tasks -> rosetta_core; the core never imports orchestration."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = ("prefect", "prefect_dask", "distributed", "dask.distributed", "flows", "tasks")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_core_never_imports_orchestration():
    assert (ROOT / "rosetta_core").is_dir()
    assert offenders("rosetta_core", FORBIDDEN_IN_CORE) == []


def test_tasks_never_import_flows():
    assert offenders("tasks", ("flows",)) == []


def test_the_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import numpy\nfrom dask.distributed import Client\n")
    assert "dask.distributed" in imported_modules(bad)
