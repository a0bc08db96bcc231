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
