"""Image datasets to mine: a folder, a glob, an fsspec URL prefix or a tar of images.

:func:`index_images` lists a source once, when a run starts: every file with an image suffix
(:data:`IMAGE_SUFFIXES`), in sorted order, each read in full, hashed and decoded. Files that
cannot be read or decoded are skipped with their reason; the rest are the run's images, image
``i`` being the ``i``-th readable name. The index's ``digest`` (SHA-256 over every listed file's
name and content, skipped ones included) enters the run's identity: a changed folder is another
configuration.

:func:`read_images` reads the images of one chunk by name (inside a task: the dataset is never
in memory whole) and :func:`to_rgb` brings any mode to 8-bit RGB: greyscale, palette, 16-bit,
CMYK; transparent pixels are composited over white. EXIF orientation is applied.

Names are relative to the source's root (a folder, the fixed part of a glob, a URL prefix, or
the tar's members), so a run's ``source`` coordinate reads like the dataset's own listing.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import io
import os
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "ImageIndex", "index_images", "read_images", "source_label", "to_rgb"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_GLOB_CHARS = "*?["
#: files read and decoded at once while indexing (decoders release the GIL)
_THREADS = 8


@dataclass(frozen=True)
class ImageIndex:
    """What :func:`index_images` found: ``files`` (readable images, sorted, relative to the
    source's root), ``skipped`` (``(name, reason)`` of files that failed), ``digest``."""

    source: str
    files: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    digest: str

    def summary(self) -> dict:
        return {"source": self.source, "images": len(self.files), "skipped": len(self.skipped), "digest": self.digest}


def _is_url(source: str) -> bool:
    return "://" in source


def _is_tar(source: str) -> bool:
    return source.lower().endswith(TAR_SUFFIXES)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not Path(name).name.startswith(".")


class _Source:
    """How to list and read one source: ``names()`` and ``read(name) -> bytes``."""

    def __init__(self, source: str) -> None:
        self.source = source
        if _is_tar(source):
            self.kind = "tar"
        elif any(c in source for c in _GLOB_CHARS):
            self.kind = "glob"
        elif _is_url(source):
            self.kind = "prefix"
        else:
            path = Path(source)
            if not path.exists():
                raise ValueError(f"images={source!r} does not exist; give a folder, a glob such as 'photos/*.jpg', "
                                 "an fsspec URL prefix such as s3://bucket/images/ or a .tar of images")
            if not path.is_dir():
                raise ValueError(f"images={source!r} is a file but not a tar archive; give a folder, a glob, "
                                 f"an fsspec URL prefix or a tar ({', '.join(TAR_SUFFIXES)})")
            self.kind = "folder"

    # -- listing -------------------------------------------------------------------------
    def names(self) -> list[str]:
        if self.kind == "tar":
            return sorted(m for m in _tar_members(self.source) if _is_image(m))
        if self.kind == "folder":
            root = Path(self.source)
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and _is_image(p.name))
        if self.kind == "glob":
            fs, pattern = self._fs(self.source)
            found = fs.glob(pattern) if _is_url(self.source) else globlib.glob(self.source, recursive=True)
            root = self.root()
            return sorted(_relative(str(p), root) for p in found if _is_image(str(p)) and fs.isfile(p))
        fs, path = self._fs(self.source)
        found = fs.find(path) if fs.isdir(path) else [p for p in fs.find(path.rsplit("/", 1)[0]) if p.startswith(path)]
        return sorted(_relative(p, self.root()) for p in found if _is_image(p))

    def root(self) -> str:
        """The fixed part names are relative to (a folder, a glob's leading directories, a URL prefix)."""
        if self.kind == "folder":
            return str(Path(self.source))
        if self.kind == "glob":
            parts = self.source.split("/")
            fixed = []
            for part in parts:
                if any(c in part for c in _GLOB_CHARS):
                    break
                fixed.append(part)
            root = "/".join(fixed) or "."
            return self._fs(root)[1] if _is_url(root) else root
        if self.kind == "prefix":
            fs, path = self._fs(self.source)
            return path if fs.isdir(path) else path.rsplit("/", 1)[0]
        return ""

    @staticmethod
    def _fs(url: str):
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        return fs, path

    # -- reading -------------------------------------------------------------------------
    def read(self, name: str) -> bytes:
        if self.kind == "tar":
            return _tar_read(self.source, name)
        root = self.root()
        if self.kind in ("folder", "glob") and not _is_url(self.source):
            return (Path(root) / name).read_bytes()
        fs, _ = self._fs(self.source)
        return fs.cat_file(f"{root}/{name}" if root else name)


def _relative(path: str, root: str) -> str:
    path, root = path.replace(os.sep, "/"), root.replace(os.sep, "/").rstrip("/")
    if root in ("", "."):
        return path
    return path[len(root) + 1:] if path.startswith(root + "/") else path


@lru_cache(maxsize=4)
def _tar_fs(source: str):
    """An fsspec view of a tar archive (local or at a URL), indexed once per process."""
    import fsspec

    compression = {"gz": "gzip", "tgz": "gzip", "bz2": "bz2", "xz": "lzma"}.get(source.lower().rsplit(".", 1)[-1])
    protocol, path = fsspec.core.split_protocol(source)
    try:
        return fsspec.filesystem("tar", fo=path, target_protocol=protocol or "file", compression=compression)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"images={source!r} is not a readable tar archive: {err}") from None


def _tar_members(source: str) -> list[str]:
    if not _is_url(source) and not Path(source).is_file():
        raise ValueError(f"images={source!r} does not exist; give an existing tar archive, a folder, a glob or a URL prefix")
    fs = _tar_fs(source)
    return [p for p in fs.find("") if fs.isfile(p)]


_TAR_LOCK = threading.Lock()


def _tar_read(source: str, name: str) -> bytes:
    with _TAR_LOCK:  # members are read from one shared file object: one seek-and-read at a time
        return _tar_fs(source).cat_file(name)


def to_rgb(image) -> np.ndarray:
    """A PIL image of any mode -> ``(h, w, 3)`` uint8: EXIF orientation applied, greyscale and
    palette expanded, 16-bit and float scaled to 8 bits, transparency composited over white."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "RGBA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return to_rgb(image)


def _check(source: _Source, name: str) -> tuple[str, str | None]:
    """``(content hash, None)`` for a readable image, ``(hash or "", reason)`` otherwise."""
    try:
        data = source.read(name)
    except Exception as err:  # any filesystem error: the file is listed as skipped
        return "", f"unreadable: {type(err).__name__}: {err}"
    digest = hashlib.sha256(data).hexdigest()
    from PIL import UnidentifiedImageError

    try:
        rgb = _decode(data)
    except UnidentifiedImageError:
        return digest, "not an image in a format Pillow reads"
    except Exception as err:  # PIL raises many types for corrupt or truncated files
        return digest, f"not a decodable image: {type(err).__name__}: {err}"
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        return digest, "empty image (0 pixels)"
    return digest, None


def index_images(source: str, progress: Callable[[int, int], None] | None = None) -> ImageIndex:
    """List, hash and decode-check every image of ``source`` (a folder, a glob, an fsspec URL
    prefix or a tar). A source with no image files at all is a ValueError; so is a source that
    does not exist. ``progress(done, total)`` is called as files are checked."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"images={source!r} is empty; give a folder, a glob, an fsspec URL prefix or a tar of images")
    src = _Source(source)
    names = src.names()
    if not names:
        raise ValueError(f"images={source!r} holds no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
    total = hashlib.sha256()
    files, skipped = [], []
    with ThreadPoolExecutor(_THREADS) as pool:
        for i, (name, (digest, reason)) in enumerate(zip(names, pool.map(lambda n: _check(src, n), names))):
            total.update(f"{name}\0{digest}\n".encode())
            if reason is None:
                files.append(name)
            else:
                skipped.append((name, reason))
            if progress is not None:
                progress(i + 1, len(names))
    return ImageIndex(source, tuple(files), tuple(skipped), total.hexdigest())


def read_images(source: str, names: list[str] | tuple[str, ...]) -> list[np.ndarray]:
    """The named images of ``source`` as ``(h, w, 3)`` uint8 arrays (:func:`to_rgb`)."""
    src = _Source(source)
    out = []
    for name in names:
        try:
            out.append(_decode(src.read(name)))
        except Exception as err:
            raise ValueError(f"image {name!r} of {source} can no longer be read ({type(err).__name__}: {err}); "
                             "it changed after the run started: rerun `rosetta mine` to index the source again") from None
    return out


def source_label(source: str) -> str:
    """A short name for a source (its last path part without suffix): the default run folder."""
    base = source.rstrip("/").split("?")[0]
    for suffix in TAR_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    parts = [p for p in base.replace("\\", "/").split("/") if p and not any(c in p for c in _GLOB_CHARS)]
    label = parts[-1] if parts else "images"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label) or "images"
