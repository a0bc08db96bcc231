"""A real temporary Prefect API for the integration tests (one per test session)."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="session")
def prefect_api():
    home = tempfile.mkdtemp(prefix="prefect-home-")
    settings = {
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": f"{home}/results",
    }
    old = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
