"""A real S3-compatible server for tests: moto in server mode on 127.0.0.1, in its own process.

Credentials and the endpoint reach every client (this process, Dask workers, `rosetta`
subprocesses) through the standard AWS environment variables, as they would on a cluster.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _close_clients() -> None:
    """Close the HTTP sessions of every cached S3 client, then drop them.

    Clients made for Zarr's async store are never closed by s3fs; left to the garbage
    collector, aiohttp logs "Unclosed client session" at a random later moment (once, inside
    pytest's own shutdown, through a logging handler whose stream was already closed).
    """
    import gc

    import s3fs
    from zarr.core.sync import _get_loop

    for fs in list(s3fs.S3FileSystem._cache.values()):
        client = getattr(fs, "_s3", None)
        if client is not None:
            s3fs.S3FileSystem.close_session(getattr(fs, "_loop", None) or _get_loop(), client)
            fs._s3 = None
    s3fs.S3FileSystem.clear_instance_cache()
    gc.collect()


@contextmanager
def moto_s3(bucket: str, timeout: float = 60) -> Iterator[dict[str, str]]:
    """Start a moto S3 server, create ``bucket``, set the AWS environment; yield that environment."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    old = {k: os.environ.get(k) for k in env}
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"moto server on {endpoint} did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        os.environ.update(env)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()  # cached clients would keep an old endpoint
        s3fs.S3FileSystem().mkdir(bucket)
        yield env
    finally:
        _close_clients()
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def s3_bucket(bucket: str) -> Iterator:
    """A moto S3 server with ``bucket``; yields an ``s3fs.S3FileSystem`` that reaches it."""
    with moto_s3(bucket):
        import s3fs

        yield s3fs.S3FileSystem()
