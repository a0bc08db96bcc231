"""A real Prefect server on localhost with the project's deployments, and process workers, for
the deployment tests (no mocks: the same `prefect` commands a user runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s3_server import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 150) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """TERM, then INT, then KILL (a worker once ignored TERM and kept picking up runs)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue


def prefect(*args: str, env: dict, **kw) -> subprocess.CompletedProcess:
    """Run the `prefect` command line with ``env``; raises with its output when it fails."""
    done = subprocess.run([str(BIN / "prefect"), *args], env=env, capture_output=True, text=True, timeout=180, cwd=ROOT, **kw)
    if done.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


@contextmanager
def prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A Prefect server on a free port with its database under ``home``; yields the environment
    that points clients, `prefect deploy` and workers at it."""
    port = free_port()
    env = os.environ | {
        "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"), "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1", "OMP_NUM_THREADS": "1", "ROSETTA_PROJECT_DIR": str(ROOT),
    }
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(env["PREFECT_API_URL"], server)
        yield env
    finally:
        stop(server)


@contextmanager
def worker(pool: str, env: dict) -> Iterator[subprocess.Popen]:
    """A process worker on ``pool`` (created if missing), stopped afterwards."""
    prefect("work-pool", "create", pool, "--type", "process", "--overwrite", env=env)
    proc = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop(proc)


def deploy(name: str, env: dict) -> None:
    """Deploy ``name`` from deployments/prefect.yaml as written."""
    prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", name, env=env)


def run_script(env: dict, script: str, *args: str, timeout: float = 700) -> dict:
    """Run a Python ``script`` against the server in ``env`` (a client, as a user would from a
    shell) and return the JSON it prints after ``RESULT ``."""
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return json.loads(line[-1][len("RESULT "):])


def deployment_entry(name: str) -> dict:
    """The entry of deployment ``name`` in deployments/prefect.yaml, as written."""
    import yaml

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    return next(d for d in spec["deployments"] if d["name"] == name)
