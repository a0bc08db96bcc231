"""A mining run whose --out is an s3:// URL, against a real S3 server (moto) on 127.0.0.1.

The flow runs under a real Prefect API and reduces on a Dask LocalCluster of 2 worker
processes that read the store from S3 themselves. The run must give exactly the tables of the
same run on a local disk, keep nothing on the local disk, hand out its lock to one holder only,
and skip everything when run again.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time

import numpy as np
import pytest
import zarr
from s3_server import s3_bucket

from invert_support import mine_in_process
from rosetta_core.matching.dictionary import validate_dictionary
from rosetta_core.run import MineConfig, Run, location, plan_run
from rosetta_core.run.extraction import prepare_store
from rosetta_core.run.lock import RunLocked, run_lock

pytestmark = pytest.mark.integration

BUCKET = "rosetta-test"
ENCODERS = ["mini-resnet.sup", "mini-vit.mae"]
SMALL = {"encoders": ENCODERS, "n": 24, "k": 3, "chunk_size": 8, "weights": "random", "center": "position"}


@pytest.fixture(scope="module")
def s3():
    with s3_bucket(BUCKET) as fs:
        yield fs


def _local_run(run_dir) -> Run:
    """The same run computed on a local disk by the core steps (no Prefect, no S3)."""
    return mine_in_process(run_dir, MineConfig(**SMALL))[0]


def _logs(flow_run_id, wanted: str, timeout: float = 30) -> str:
    """The flow run's log messages once one contains ``wanted`` (logs arrive asynchronously).

    Read from the Prefect API rather than captured from stderr: a capture fixture would leave
    Prefect's console handler writing to a closed stream in later tests."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> str:
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return "\n".join(log.message for log in logs)

    deadline = time.time() + timeout
    while True:
        text = asyncio.run(read())
        if wanted in text or time.time() > deadline:
            return text
        time.sleep(1)


@pytest.mark.slow
def test_mine_flow_on_s3_matches_local_and_reruns_as_noop(prefect_api, s3, tmp_path, monkeypatch):
    from flows.mine import mine

    monkeypatch.chdir(tmp_path)  # a URL mistaken for a local path would show up here as ./s3:
    url = f"s3://{BUCKET}/runs/flow"
    state = mine(MineConfig(**SMALL), url, return_state=True)
    assert state.is_completed(), state
    assert list(tmp_path.iterdir()) == []

    manifest = json.loads(s3.cat_file(f"{BUCKET}/runs/flow/manifest.json"))
    dictionary = validate_dictionary(json.loads(s3.cat_file(f"{BUCKET}/runs/flow/dictionary.json")))
    assert manifest["complete"] and manifest["summary"]["concepts"] == len(dictionary.concepts)
    report = f"{BUCKET}/runs/flow/report/index.html"
    assert s3.info(report)["ContentType"].startswith("text/html")
    assert b"Rosetta Neurons: flow" in s3.cat_file(report)
    assert not s3.exists(f"{BUCKET}/runs/flow/.lock")
    wanted = f"report: {url}/report/index.html (open in a browser"
    printed = _logs(state.state_details.flow_run_id, wanted)  # print() is logged (log_prints)
    assert wanted in printed
    assert "Retry" not in printed  # no task had to retry (e.g. racing to create an array)

    import xarray as xr

    ds = xr.open_zarr(f"{url}/store.zarr")
    assert ds.sizes["image"] == 24 and ds["images"].dtype == np.uint8
    group = zarr.open_group(f"{url}/store.zarr", mode="r")
    local = _local_run(tmp_path / "local")
    for key in ["latents", "images", *(k for name in local.plan.layers for k in local.model_keys(name))]:
        np.testing.assert_array_equal(group[key][...], local.store.array(key)[...], err_msg=key)  # bit for bit
    remote = {name: np.asarray(pair["correlation"][...]) for name, pair in group["pairs"].groups()}
    tables = {name: np.asarray(pair["correlation"][...]) for name, pair in local.store.group["pairs"].groups()}
    assert set(remote) == set(tables) and len(tables) == 5  # 2 pairs, G-G and a shuffled null per encoder
    for name, table in tables.items():  # reduced in Dask workers vs here: BLAS threading differs
        np.testing.assert_allclose(remote[name], table, rtol=0, atol=1e-6, err_msg=name)

    written = s3.info(f"{BUCKET}/runs/flow/manifest.json")["LastModified"]
    again = mine(MineConfig(**SMALL), url + "/", return_state=True)  # a trailing slash is the same run
    assert again.is_completed()
    assert "already complete" in _logs(again.state_details.flow_run_id, "already complete")
    s3.invalidate_cache()
    assert s3.info(f"{BUCKET}/runs/flow/manifest.json")["LastModified"] == written


def test_a_second_run_on_a_locked_url_fails_fast_and_leaves_the_lock(prefect_api, s3):
    from flows.mine import mine

    url = f"s3://{BUCKET}/runs/locked"
    with run_lock(url) as lock:
        held = s3.cat_file(lock)
        state = mine(MineConfig(**SMALL), url, return_state=True)
        assert state.is_failed()
        with pytest.raises(RunLocked, match=rf"in use by another mining run \(pid {os.getpid()} on host"):
            state.result()
        assert s3.cat_file(lock) == held  # the holder's lock is untouched
        assert not s3.exists(f"{BUCKET}/runs/locked/store.zarr/zarr.json")  # and nothing was started
    assert not s3.exists(lock)


def test_exactly_one_of_many_racing_lockers_wins_on_s3(s3):
    url = f"s3://{BUCKET}/runs/race"
    barrier, wins = threading.Barrier(6), []

    def contend(i: int) -> None:
        barrier.wait()
        wins.append(location.create_new(f"{url}/.lock", json.dumps({"contender": i})))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    location.remove(f"{url}/.lock")


def test_s3_lock_of_a_dead_process_on_this_host_is_taken_over_but_not_another_hosts(s3):
    url = f"s3://{BUCKET}/runs/stale"
    dead = {"pid": 2**22 + 12345, "host": socket.gethostname()}
    s3.pipe_file(f"{BUCKET}/runs/stale/.lock", json.dumps(dead).encode())
    with run_lock(url) as lock:
        assert json.loads(s3.cat_file(lock))["pid"] == os.getpid()
    other = {"pid": 1, "host": "some-other-host"}
    s3.pipe_file(f"{BUCKET}/runs/stale/.lock", json.dumps(other).encode())
    with pytest.raises(RunLocked, match=rf"pid 1 on host some-other-host.*delete {url}/.lock"):
        with run_lock(url):
            pass
    assert json.loads(s3.cat_file(f"{BUCKET}/runs/stale/.lock")) == other


def test_cli_refuses_an_unwritable_s3_url_with_one_line(s3, capsys):
    from flows.cli import main

    rc = main(["mine", "--weights", "random", "--n", "24", "--out", "s3://no-such-bucket-here/runs/x"])
    err = capsys.readouterr().err
    assert rc == 2 and "--out 's3://no-such-bucket-here/runs/x' is not writable" in err
    assert "Traceback" not in err


def test_cli_refuses_a_different_configuration_on_s3(s3, capsys):
    from flows.cli import main

    url = f"s3://{BUCKET}/runs/config"
    config = MineConfig(**SMALL)
    prepare_store(Run(url, config), plan_run(config))
    args = ["mine", "--weights", "random", "--encoders", ",".join(ENCODERS), "--k", "3", "--chunk-size", "8",
            "--center", "position", "--out", url]
    rc = main([*args, "--n", "32"])
    err = capsys.readouterr().err
    assert rc == 2 and "different configuration (n: stored 24, asked 32)" in err
