"""Per-image inversion jobs as deployment runs: a real Prefect server and a process worker on
localhost (CPU), the `invert` entry of deployments/prefect.yaml, a batch of 3 images."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from invert_support import scene_pngs, tiny_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TRIGGER = """
import json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from flows.invert import InvertSettings, invert_batch
run, out, images = sys.argv[1], sys.argv[2], sys.argv[3:]
summary = invert_batch(run, images, out, InvertSettings(steps=2, device="cpu"), deployment="invert-image/invert",
                       pool="gpu", poll=1.0)
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["invert"])))
print("RESULT " + json.dumps({"summary": summary, "states": [r.state.type.value for r in runs]}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue


def _prefect(*args: str, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), *args], env=env, capture_output=True, text=True, timeout=180, **kw)


def _trigger(env, run_dir, out, images) -> dict:
    proc = subprocess.run([sys.executable, "-c", TRIGGER, str(run_dir), str(out), *images], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[-1][len("RESULT "):])


def test_invert_batch_runs_three_deployment_runs_on_a_process_worker(tmp_path):
    run_dir = tiny_run(tmp_path / "run")
    images = scene_pngs(tmp_path / "images", 3)
    out = tmp_path / "out"
    port = _free_port()
    home = tmp_path / "prefect-home"
    env = os.environ | {
        "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"), "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1", "OMP_NUM_THREADS": "1", "ROSETTA_PROJECT_DIR": str(ROOT),
    }
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait_healthy(env["PREFECT_API_URL"], server)
        for args in (("work-pool", "create", "gpu", "--type", "process"), ("work-pool", "set-concurrency-limit", "gpu", "2")):
            done = _prefect(*args, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
        deployed = _prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", "invert",
                            env=env, cwd=ROOT)
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "gpu"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        first = _trigger(env, run_dir, out, images)
        assert sorted(first["summary"]["done"]) == sorted(images), first
        assert first["summary"]["failed"] == {} and first["summary"]["skipped"] == []
        assert first["states"] == ["COMPLETED"] * 3
        for image in images:
            folder = out / Path(image).stem
            metrics = json.loads((folder / "metrics.json").read_text())
            assert metrics["steps"] == 2 and metrics["pairs"] > 0
            assert (folder / "result.png").stat().st_size > 0 and (folder / "latent.npy").is_file()

        again = _trigger(env, run_dir, out, images)  # every image is done: no new runs
        assert sorted(again["summary"]["skipped"]) == sorted(images) and again["summary"]["done"] == []
        assert len(again["states"]) == 3
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)
