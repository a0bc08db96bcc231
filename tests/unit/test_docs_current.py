"""The numbers in docs/ are generated from bench/results/ (DESIGN §7): the pages are current,
and the check notices a result file that changed, a number edited by hand, a marker that
points nowhere and a number kept without a result file."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


@pytest.fixture
def copy(tmp_path):
    """A copy of docs/ and bench/results/ to break."""
    docs, results = tmp_path / "docs", tmp_path / "results"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("*.png", "*.py", "__pycache__"))
    shutil.copytree(ROOT / "bench" / "results", results)
    return docs, results


#: the pages that report measured numbers: each must be generated (hold markers)
PAGES_WITH_NUMBERS = {"performance.md", "centring.md", "embedded-zoo.md", "zoo-science.md", "inversion-results.md",
                      "ood-inversion.md", "edits.md"}


def test_generated_pages_are_current():
    problems = gen.check()
    assert problems == [], "\n".join(problems)
    assert PAGES_WITH_NUMBERS <= {p.name for p in gen.pages()}


def test_a_changed_result_file_makes_its_page_stale(copy):
    docs, results = copy
    path = results / "correlation-n8.json"
    data = json.loads(path.read_text())
    data["speedup_best"] += 7.0
    path.write_text(json.dumps(data))
    problems = gen.check(docs, results)
    assert len(problems) == 1 and problems[0].startswith("performance.md is not current")
    assert gen.write(docs, results) == [docs / "performance.md"]
    assert gen.check(docs, results) == []


def test_a_value_edited_by_hand_is_noticed(copy):
    docs, results = copy
    page = docs / "v.md"
    page.write_text("Ours was <!-- value correlation-n8 {speedup_best:.0f}x -->?<!-- /value --> faster.\n"
                    "## Sources\n<!-- generated: sources -->\n<!-- /generated -->\n")
    assert gen.write(docs, results) == [page]
    speedup = json.loads((results / "correlation-n8.json").read_text())["speedup_best"]
    assert f"-->{speedup:.0f}x<!--" in page.read_text() and "`bench/results/correlation-n8.json`: commit" in page.read_text()
    assert gen.check(docs, results) == []
    page.write_text(page.read_text().replace(f"-->{speedup:.0f}x<!--", "-->1234x<!--"))
    problems = gen.check(docs, results)
    assert len(problems) == 1 and problems[0].startswith("v.md is not current") and "1234x" in problems[0]


def test_markers_that_point_nowhere_fail(copy, tmp_path):
    docs, results = copy
    (docs / "x.md").write_text("<!-- value no-such-file {a:.1f} -->1.0<!-- /value -->\n")
    (docs / "y.md").write_text("<!-- value correlation-n8 {no_such_field:.1f} -->1.0<!-- /value -->\n")
    (docs / "z.md").write_text("<!-- generated: no-such-block -->\n<!-- /generated -->\n")
    problems = "\n".join(gen.check(docs, results))
    assert "x.md: no result file" in problems and "y.md: value correlation-n8 {no_such_field}" in problems
    assert "z.md: unknown block 'no-such-block'" in problems


def test_a_number_without_a_result_file_is_not_excused(copy):
    docs, results = copy
    (docs / "w.md").write_text("It took 12 s (no result file yet).\n")
    assert gen.check(docs, results) == ["w.md: says 'no result file yet': give the number a result file or remove it"]


def test_sources_say_when_the_commit_was_not_recorded():
    legacy = {"args": {"run": "/tmp/r", "device": "cpu", "threads": "2", "ood_seed": "None"}, "seconds": 12.3}
    line = gen.provenance("invert-x", legacy)
    assert line.startswith("commit not recorded; command not recorded (its arguments: run /tmp/r, device cpu, threads 2)")
    assert "ood_seed" not in line and "seeds not recorded" in line and "12 s" in line
    record = {"provenance": {"commit": "a" * 40, "dirty": True, "changed_files": ["x.py"], "command": "python bench/x.py",
                             "seeds": {"images": 0}, "machine": {"cpu": "AMD EPYC", "usable_threads": 2, "gpu": None},
                             "started_utc": "2026-12-05T00:00:00+00:00", "wall_seconds": 3.0}}
    assert gen.provenance("x", record) == ("commit `aaaaaaaaaa` with uncommitted changes to 1 tracked file; "
                                           "`python bench/x.py`; seeds: images 0; AMD EPYC, 2 threads; 3 s wall; 2026-12-05")
