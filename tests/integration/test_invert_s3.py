"""`rosetta invert | edit | visualize --run s3://...` against a real S3 server (moto) on 127.0.0.1.

A tiny run (random weights, 24 images, one encoder) is mined in this process straight to S3;
the three commands run through the real command-line entry point (``invert`` through its flow
under a real Prefect API) and must leave their outputs under the run's URL, nothing on the
local disk, and ``metrics.json`` with numbers for one image.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from invert_support import mine_in_process, scene_pngs
from PIL import Image
from s3_server import s3_bucket

from rosetta_core.run import MineConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "rosetta-invert"
TINY = MineConfig(encoders=("mini-resnet.sup",), n=24, k=3, chunk_size=12, weights="random", dtype="float32",
                  center="global")
FILES = ("result.png", "strip.png", "latent.npy", "metrics.json")


@pytest.fixture(scope="module")
def s3():
    with s3_bucket(BUCKET) as fs:
        yield fs


@pytest.fixture(scope="module")
def run_url(s3):
    url = f"s3://{BUCKET}/runs/tiny"
    mine_in_process(url, TINY, null=False)
    return url


def _outputs(s3, prefix: str) -> dict:
    """The job folder's files on S3 (each must exist); returns its metrics.json."""
    s3.invalidate_cache()
    for name in FILES:
        assert s3.exists(f"{prefix}/{name}"), f"{prefix}/{name} is missing"
    assert Image.open(io.BytesIO(s3.cat_file(f"{prefix}/result.png"))).format == "PNG"
    assert s3.info(f"{prefix}/result.png")["ContentType"] == "image/png"
    latents = np.load(io.BytesIO(s3.cat_file(f"{prefix}/latent.npy")))
    assert latents.dtype == np.float32 and latents.ndim == 2
    return json.loads(s3.cat_file(f"{prefix}/metrics.json"))


def test_invert_edit_and_visualize_write_their_outputs_under_the_run_url(prefect_api, s3, run_url, tmp_path_factory,
                                                                          monkeypatch, capsys):
    from flows.cli import main

    images = scene_pngs(tmp_path_factory.mktemp("images"), 2)
    remote = f"{run_url}/inputs/scene1.png"  # an image at a URL works too
    s3.pipe_file(remote[len("s3://"):], open(images[1], "rb").read())
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)  # a URL mistaken for a local path would show up here as ./s3:
    prefix = run_url[len("s3://"):]

    assert main(["invert", "--run", run_url, images[0], remote, "--steps", "2"]) == 0, capsys.readouterr()
    assert "inverted 2, skipped 0 (already done), failed 0" in capsys.readouterr().out
    for name in ("scene0", "scene1"):
        metrics = _outputs(s3, f"{prefix}/inversions/{name}")
        assert metrics["steps"] == 2 and metrics["pairs"] > 0
        assert all(isinstance(metrics[k], float) for k in ("psnr", "ssim", "final_l_act")), metrics
    assert json.loads(s3.cat_file(f"{prefix}/inversions/scene1/metrics.json"))["settings"]["image"] == remote
    assert main(["invert", "--run", run_url, images[0], "--steps", "2"]) == 0  # done: read back from S3, skipped
    assert "inverted 0, skipped 1 (already done)" in capsys.readouterr().out

    assert main(["edit", "--run", run_url, "--edit", "shift", "--index", "1", "--steps", "2"]) == 0
    assert f"wrote {run_url}/edits/edit-shift-1/" in capsys.readouterr().out
    edited = _outputs(s3, f"{prefix}/edits/edit-shift-1")
    assert edited["edit"] == "shift" and isinstance(edited["psnr"], float) and isinstance(edited["final_l_act"], float)

    concept = json.loads(s3.cat_file(f"{prefix}/dictionary.json"))["concepts"][0]["id"]
    assert main(["visualize", "--run", run_url, "--concept", str(concept), "--steps", "2", "--starts", "2"]) == 0
    shown = _outputs(s3, f"{prefix}/visualizations/concept-{concept}")
    assert shown["starts"] == 2 and len(shown["final_l_act"]) == 2  # a batch of starts keeps lists
    assert all(v is None or isinstance(v, float) for v in shown["final_l_act"])

    assert list(cwd.iterdir()) == []  # nothing went to the local disk


def test_a_bad_config_on_s3_is_one_line(prefect_api, s3, run_url, capsys):
    from flows.cli import main

    rc = main(["visualize", "--run", run_url, "--concept", "0", "--encoders", "mini-vit.mae", "--steps", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--encoders ['mini-vit.mae'] were not mined in {run_url}; valid: mini-resnet.sup" in err
    assert "Traceback" not in err
