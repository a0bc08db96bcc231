"""Reading user images for inversion: conversions with notes, one clear error per bad file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rosetta_core.inversion.images import load_image

pytestmark = pytest.mark.unit


def test_rgb_png_is_read_exactly(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    img, notes = load_image(tmp_path / "a.png", 64)
    assert notes == [] and img.shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(img[0].numpy().transpose(1, 2, 0), arr)


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGBA", 4)])
def test_other_channel_counts_are_converted_with_a_note(tmp_path, mode, channels):
    Image.new(mode, (64, 64)).save(tmp_path / "x.png")
    img, notes = load_image(tmp_path / "x.png", 64)
    assert img.shape == (1, 3, 64, 64)
    assert notes == [f"converted from {mode} ({channels} channels) to RGB"]


def test_other_sizes_are_resized_with_a_note(tmp_path):
    Image.new("RGB", (100, 80), (200, 10, 10)).save(tmp_path / "big.png")
    img, notes = load_image(tmp_path / "big.png", 64)
    assert img.shape == (1, 3, 64, 64) and notes == ["resized from 100x80 to 64x64"]
    assert int(img[0, 0, 32, 32]) == 200


def test_bad_files_are_one_clear_error_each(tmp_path):
    with pytest.raises(ValueError, match="does not exist or is not a file"):
        load_image(tmp_path / "missing.png", 64)
    (tmp_path / "bad.png").write_bytes(b"definitely not an image")
    with pytest.raises(ValueError, match="'.*bad.png' is unreadable or corrupt .*give a PNG or JPEG"):
        load_image(tmp_path / "bad.png", 64)
    Image.new("RGB", (64, 64)).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="unreadable or corrupt"):
        load_image(tmp_path / "cut.png", 64)
    Image.new("RGB", (8, 40)).save(tmp_path / "tiny.png")
    with pytest.raises(ValueError, match="is 8x40 pixels; the smallest side must be >= 16"):
        load_image(tmp_path / "tiny.png", 64)
