"""Image sources of `rosetta mine --images`: listing (folder, glob, fsspec prefix, tar), the
content digest, corrupt files, mode conversion and each encoder's own transform."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from PIL import Image

from rosetta_core.data.image_source import index_images, read_images, source_label, to_rgb


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    root = tmp_path / "photos"
    _png(root / "b.png", rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    _png(root / "a" / "c.jpg", rng.integers(0, 256, (17, 9, 3), dtype=np.uint8))
    _png(root / "d.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))  # greyscale
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"editor swap file")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
    whole = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(whole, format="PNG")
    (root / "truncated.png").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    return root


def test_a_folder_lists_its_images_sorted_and_skips_unreadable_files_with_their_reason(folder):
    index = index_images(str(folder))
    assert index.files == ("a/c.jpg", "b.png", "d.png")
    assert [name for name, _ in index.skipped] == ["broken.png", "truncated.png"]
    assert all(reason for _, reason in index.skipped)
    images = read_images(str(folder), index.files)
    assert [im.shape for im in images] == [(17, 9, 3), (30, 50, 3), (12, 12, 3)]
    assert all(im.dtype == np.uint8 for im in images)


def test_glob_tar_and_fsspec_prefix_read_the_same_pixels(folder, tmp_path):
    expected = dict(zip(index_images(str(folder)).files, read_images(str(folder), index_images(str(folder)).files)))
    pngs = index_images(str(folder / "*.png"))
    assert pngs.files == ("b.png", "d.png")

    archive = tmp_path / "photos.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname="photos")
    in_tar = index_images(str(archive))
    assert in_tar.files == tuple(f"photos/{name}" for name in expected)
    for name, image in zip(in_tar.files, read_images(str(archive), in_tar.files)):
        np.testing.assert_array_equal(image, expected[name.removeprefix("photos/")])

    memory = fsspec.filesystem("memory")
    for name in [*expected, "broken.png"]:
        memory.pipe(f"/bucket/data/{name}", (folder / name).read_bytes())
    remote = index_images("memory://bucket/data")
    assert remote.files == tuple(expected)
    assert [n for n, _ in remote.skipped] == ["broken.png"]
    for name, image in zip(remote.files, read_images("memory://bucket/data", remote.files)):
        np.testing.assert_array_equal(image, expected[name])


def test_the_digest_changes_with_any_file_and_not_with_a_relisting(folder):
    first = index_images(str(folder)).digest
    assert index_images(str(folder)).digest == first
    (folder / "d.png").write_bytes((folder / "b.png").read_bytes())  # same name, other content
    changed = index_images(str(folder)).digest
    assert changed != first
    (folder / "broken.png").write_bytes(b"still broken, differently")  # skipped files count too
    assert index_images(str(folder)).digest != changed
    _png(folder / "e.png", np.zeros((4, 4, 3), np.uint8))
    assert len(index_images(str(folder)).files) == 4


@pytest.mark.parametrize("make, why", [
    (lambda root: root.mkdir(), "holds no image files"),
    (lambda root: None, "does not exist"),
    (lambda root: root.write_text("x"), "not a tar archive"),
])
def test_a_source_with_nothing_to_mine_is_one_clear_error(tmp_path, make, why):
    root = tmp_path / "source"
    make(root)
    with pytest.raises(ValueError, match=why) as err:
        index_images(str(root))
    assert str(root) in str(err.value)


def test_every_image_mode_becomes_8_bit_rgb():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: kept
    rgba[0, 1] = (200, 100, 50, 0)  # transparent: white
    rgba[1, 0] = (0, 0, 0, 128)  # half: a blend towards white
    out = to_rgb(Image.fromarray(rgba))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert all(abs(int(v) - 127) <= 1 for v in out[1, 0])  # 255 * (1 - 128/255)

    grey = np.array([[0, 255], [10, 77]], np.uint8)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(grey)), np.repeat(grey[..., None], 3, axis=2))

    palette = Image.fromarray(grey).convert("P")
    np.testing.assert_array_equal(to_rgb(palette), np.asarray(palette.convert("RGB")))

    deep = np.array([[0, 65535], [257 * 10, 257 * 77]], np.uint16)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(deep))[..., 0], grey)

    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # pure red in CMYK
    assert to_rgb(cmyk)[0, 0].tolist() == [255, 0, 0]


def test_each_encoder_brings_any_image_to_its_own_input():
    from rosetta_core.zoo import load

    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, 24:66] = 255  # white around the centre square, black at the sides: the centre crop is all white
    for name in ("mini-resnet.sup", "mini-vit.mae", "mini-clip.rn"):
        encoder = load(name, "random")
        x = encoder.image_transform()(wide)
        assert x.dtype.is_floating_point is False and tuple(x.shape) == (3, 64, 64)
        assert int(x.min()) == 255  # only the centre square is left
        assert set(encoder.activations(x[None]).keys()) == set(encoder.select_layers())


def test_the_paper_encoders_take_their_library_transforms():
    from rosetta_core.zoo import load

    rgb = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    steps = {}
    for name in ("resnet50.tv_in1k", "RN50.openai"):
        transform = load(name, "random").image_transform()
        assert tuple(transform(rgb).shape) == (3, 224, 224)
        steps[name] = [type(s).__name__ for s in transform.steps][:2]
        resize = transform.steps[0]
        steps[name].append(resize.size)
    assert steps["resnet50.tv_in1k"] == ["Resize", "CenterCrop", 256]  # timm: 224 / crop_pct 0.875
    assert steps["RN50.openai"] == ["Resize", "CenterCrop", 224]  # open_clip: resize to the input side


def test_source_labels_name_the_default_run_folder():
    assert source_label("s3://bucket/x/cats.tar.gz") == "cats"
    assert source_label("photos/*.jpg") == "photos"
    assert source_label("/data/my photos/") == "my-photos"


def test_an_encoder_of_ones_own_mines_files_when_it_says_its_input_size():
    from rosetta_core.zoo import EncoderAdapter, LayerInfo

    class Own(EncoderAdapter):  # the adapter contract, as examples/plugin's tiny-cnn follows it
        name, arch, weights, input_size = "own", "none", "random", 64

        def layers(self):
            return [LayerInfo("x", 3, (64, 64))]

        def preprocess(self, images):
            return images.float()

        def activations(self, images, layers=None):
            return {"x": self.preprocess(images)}

    x = Own().image_transform()(np.zeros((10, 30, 3), np.uint8))
    assert tuple(x.shape) == (3, 64, 64) and x.dtype == torch.uint8

    class Sizeless(Own):
        name, input_size = "sizeless", None

    with pytest.raises(ValueError, match="encoder sizeless cannot mine image files.*input_size"):
        Sizeless().image_transform()
