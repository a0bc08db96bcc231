"""Helpers for running the `rosetta` command line as a subprocess."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def prefect_env(home: str) -> dict[str, str]:
    """The environment of a `rosetta` subprocess: its own temporary Prefect server and home."""
    env = os.environ | {
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
    }
    env.pop("PREFECT_API_URL", None)
    return env


def rosetta_command() -> list[str]:
    exe = shutil.which("rosetta", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "flows.cli"]
