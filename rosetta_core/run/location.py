"""Where a run lives: a local directory, or an fsspec URL such as ``s3://bucket/runs/x``.

Every file of a run other than the Zarr store (``dictionary.json``, ``manifest.json``,
``report/index.html``, the ``.lock``) is read and written through these helpers, so a run on
an object store works like one on disk. Local paths keep their exact behaviour: writes go to a
temporary file that is renamed into place. On an object store one PUT is already atomic.

Credentials and endpoints for URLs are not parameters: they come from the environment the
same way on every machine of a cluster, e.g. ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` (an S3-compatible server), or fsspec's ``FSSPEC_S3_<ARG>`` variables.
Passing only the URL string between tasks keeps task inputs small and identical on all workers.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["exists", "is_url", "join", "read_bytes", "read_text", "remove", "check_writable", "view_url", "write_bytes",
           "write_text", "create_new"]


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` locations (``file://`` included), False for plain paths."""
    return "://" in str(location)


def join(location: str | os.PathLike, *parts: str) -> str:
    """``location/part/...`` for both URLs (always ``/``) and local paths."""
    if is_url(location):
        return "/".join([str(location).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(location, *parts))


def _fs(location: str):
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(location)
    except (ImportError, ValueError) as err:
        raise ValueError(
            f"cannot open {location!r}: {err}. URLs need the fsspec backend for their scheme "
            "(s3:// needs s3fs: pip install 'rosetta-neurons[s3]')"
        ) from None


def exists(location: str | os.PathLike) -> bool:
    if not is_url(location):
        return Path(location).exists()
    fs, path = _fs(str(location))
    return fs.exists(path)


def read_bytes(location: str | os.PathLike) -> bytes:
    """The content of a file; ``FileNotFoundError`` when it is missing."""
    if not is_url(location):
        return Path(location).read_bytes()
    fs, path = _fs(str(location))
    return fs.cat_file(path)


def read_text(location: str | os.PathLike) -> str:
    """The text of a file; ``FileNotFoundError`` when it is missing."""
    if not is_url(location):
        return Path(location).read_text(encoding="utf-8")
    return read_bytes(location).decode("utf-8")


def write_bytes(location: str | os.PathLike, data: bytes, content_type: str | None = None) -> None:
    """Replace a file's content in one step: readers see the old file or the new one.

    ``content_type`` is stored as the object's ``Content-Type`` on S3, so a browser shows
    ``report/index.html`` as a page (or a PNG as an image) rather than downloading it.
    """
    if not is_url(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return
    fs, path = _fs(str(location))
    extra = {"ContentType": content_type} if content_type and _is_s3(fs) else {}
    _parents(fs, path)
    fs.pipe_file(path, data, **extra)


def write_text(location: str | os.PathLike, text: str, content_type: str | None = None) -> None:
    """:func:`write_bytes` of ``text`` encoded as UTF-8."""
    write_bytes(location, text.encode("utf-8"), content_type)


def create_new(location: str | os.PathLike, text: str) -> bool:
    """Create a file only if it does not exist yet; False when it already exists.

    Locally ``O_CREAT | O_EXCL``; on S3 a conditional PUT (``If-None-Match: *``), which AWS S3,
    MinIO and moto honour. The content is read back afterwards, so a store that ignores the
    condition is caught unless two writers race within one round trip.
    """
    if not is_url(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True
    fs, path = _fs(str(location))
    _parents(fs, path)
    try:
        fs.pipe_file(path, text.encode("utf-8"), mode="create")
    except FileExistsError:
        return False
    fs.invalidate_cache(path)
    return fs.cat_file(path).decode("utf-8") == text


def remove(location: str | os.PathLike) -> None:
    """Delete a file; a missing one is not an error."""
    if not is_url(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = _fs(str(location))
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass


def check_writable(location: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``location`` unless a file can be created in it."""
    probe = join(location, f".write-test-{uuid.uuid4().hex}")
    try:
        if not is_url(location):
            Path(location).mkdir(parents=True, exist_ok=True)
        write_text(probe, "")
        remove(probe)
    except Exception as err:  # noqa: BLE001 - any failure of the probe means "not writable"
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ValueError(f"--out {str(location)!r} is not writable ({reason}); choose another location") from None


def view_url(location: str | os.PathLike, expires: int = 7 * 24 * 3600) -> str | None:
    """An ``https://`` address a browser can open for a file on S3 (pre-signed, valid for
    ``expires`` seconds), a ``file://`` URI for a local file, or None when neither applies."""
    if not is_url(location):
        return Path(location).resolve().as_uri()
    fs, path = _fs(str(location))
    if not _is_s3(fs):
        return None
    try:
        return fs.url(path, expires=expires)
    except Exception:  # no credentials to sign with, or a backend without signing
        return None


def _protocols(fs) -> set[str]:
    return set(fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


def _is_s3(fs) -> bool:
    return bool({"s3", "s3a"} & _protocols(fs))


def _parents(fs, path: str) -> None:
    """Create parent directories where they exist (``file://``); never on object stores,
    where ``makedirs`` would create a missing *bucket* instead of failing."""
    if not _OBJECT_STORES & _protocols(fs):
        fs.makedirs(fs._parent(path), exist_ok=True)


_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"}
