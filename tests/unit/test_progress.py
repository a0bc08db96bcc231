"""The terminal side of a flow run: where to watch it, and the progress lines."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from flows import progress

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_display():
    saved = progress._shown
    yield
    progress._shown = saved


def test_the_flow_runs_ui_address_is_printed_from_the_command_line_only(restore_display, capsys):
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    run = SimpleNamespace(id=uuid.uuid4())
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api", PREFECT_UI_URL: "http://127.0.0.1:4200"}):
        progress._shown = None  # a deployment's run: nobody at a terminal
        progress.announce_ui(None, run, None)
        assert capsys.readouterr().err == ""
        progress.show(False)  # the CLI, output not a terminal: still worth a line
        progress.announce_ui(None, run, None)
        assert capsys.readouterr().err.strip() == f"Prefect UI: http://127.0.0.1:4200/runs/flow-run/{run.id}"
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        progress.announce_ui(None, run, None)  # a temporary server: no UI to point at
        assert capsys.readouterr().err == ""


def test_stages_count_tasks_only_when_shown(restore_display, capsys):
    progress.show(False)
    assert list(progress.each(range(3), "extract", 3)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    progress.show(True)
    assert list(progress.each(range(3), "extract", 3)) == [0, 1, 2]
    assert "extract    3/3 tasks" in capsys.readouterr().err


def test_the_summary_shows_the_ground_truth_share_only_when_the_run_has_one():
    from flows.mine import summary_lines

    summary = {"best_buddies": {"g__e": 3}, "mean_best_buddy_correlation": {"g__e": 0.5}, "null": {},
               "rosetta_units": 3, "concepts": 2}
    assert not any("ground truth" in line for line in summary_lines("r", "r/report/index.html", summary))
    truth = {"aligned": 0.47, "threshold": 0.04, "random_baseline": 0.09}
    lines = summary_lines("r", "r/report/index.html", summary | {"ground_truth": truth})
    assert "  ground truth: 47% of concepts aligned (IoU >= 0.04), layer-matched random groups 9%" in lines
