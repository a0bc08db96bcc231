"""A fixed training set of rendered scenes, made once and memory-mapped: ``uint8 (n, 3, 64, 64)``.

CPU training of the embedded encoders spent most of a step rendering scenes on the fly. A
recipe that trains on a fixed set renders it once into ``folder`` and reads batches from the
memory map afterwards (50,000 scenes of 64x64 are 614 MB on disk; only the pages a batch
touches are read).

Files (``key`` = a digest of what was rendered: world seed, count, world settings, style):

- ``scenes-<key>.npy``: the images, written under a temporary name and renamed when complete;
- ``scenes-<key>.json``: ``n``, ``seed``, the world, the style, the file's size and sha256,
  written last: a set without it (a killed render), whose size or digest differs (a torn or
  corrupt file) or that does not load as ``uint8 (n, 3, 64, 64)`` is rendered again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ...data import WorldConfig, render_batch

__all__ = ["SceneCache", "cached_scenes"]


def _sha256(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class SceneCache:
    """Where and what: scenes ``0 .. n - 1`` of world ``seed`` with ``config`` in ``style``."""

    folder: Path
    n: int
    seed: int
    config: WorldConfig
    style: str = "photo"

    def describe(self) -> dict:
        world = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.config).items()}
        return {"n": self.n, "seed": self.seed, "style": self.style, "world": world}

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def images_path(self) -> Path:
        return Path(self.folder) / f"scenes-{self.key}.npy"

    @property
    def meta_path(self) -> Path:
        return Path(self.folder) / f"scenes-{self.key}.json"

    def problem(self, verify: bool = True) -> str | None:
        """Why the files on disk are not a complete copy of this set (None: they are)."""
        if not self.meta_path.is_file() or not self.images_path.is_file():
            return "missing"
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError) as err:
            return f"unreadable record ({err})"
        if meta.get("set") != self.describe():
            return "record of another set"
        if self.images_path.stat().st_size != meta.get("bytes"):
            return f"size {self.images_path.stat().st_size} != recorded {meta.get('bytes')}"
        try:
            images = np.load(self.images_path, mmap_mode="r")
        except (OSError, ValueError) as err:
            return f"unreadable images ({err})"
        if images.dtype != np.uint8 or images.shape != (self.n, 3, self.config.image_size, self.config.image_size):
            return f"images are {images.dtype} {images.shape}"
        if verify and _sha256(self.images_path) != meta.get("sha256"):
            return "digest differs from the record"
        return None

    def render(self, chunk: int = 1000, progress=None) -> None:
        """Render the set into a temporary file, then rename it and write the record last."""
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        self.meta_path.unlink(missing_ok=True)
        tmp = self.images_path.with_name(self.images_path.stem + ".tmp.npy")
        side = self.config.image_size
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(self.n, 3, side, side))
        for start in range(0, self.n, chunk):
            stop = min(self.n, start + chunk)
            out[start:stop] = render_batch(self.seed, range(start, stop), self.config, self.style).images
            if progress is not None:
                progress(stop, self.n)
        out.flush()
        del out
        os.replace(tmp, self.images_path)
        record = {"set": self.describe(), "bytes": self.images_path.stat().st_size,
                  "sha256": _sha256(self.images_path)}
        tmp_meta = self.meta_path.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(record, indent=1))
        os.replace(tmp_meta, self.meta_path)

    def open(self, verify: bool = True, progress=None) -> np.ndarray:
        """The images as a read-only memory map ``uint8 (n, 3, 64, 64)``, rendered first when
        the files are missing, incomplete or corrupt (``verify``: also compare the digest)."""
        if self.problem(verify) is not None:
            self.render(progress=progress)
        return np.load(self.images_path, mmap_mode="r")


def cached_scenes(folder: str | Path, n: int, seed: int, config: WorldConfig | None = None,
                  style: str = "photo", verify: bool = True, progress=None) -> np.ndarray:
    """Scenes ``0 .. n - 1`` of world ``seed`` (``config``, default ``WorldConfig.simple()``) as a
    memory-mapped ``uint8 (n, 3, 64, 64)``, rendered into ``folder`` once (see :class:`SceneCache`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} is invalid: expected a positive number of scenes")
    cache = SceneCache(Path(folder), n, int(seed), config or WorldConfig.simple(), style)
    return cache.open(verify=verify, progress=progress)
