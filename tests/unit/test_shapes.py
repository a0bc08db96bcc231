"""The procedural shape world: determinism, ground truth against pixels, styles, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rosetta_core.data import (
    COLOURS,
    KINDS,
    PALETTE,
    STYLES,
    Scenes,
    WorldConfig,
    code_dim,
    code_layout,
    render,
    render_batch,
    truth_masks,
)

pytestmark = pytest.mark.unit

ARRAYS = ("images", "object_masks", "kinds", "colours", "sizes", "centres", "rotations",
          "contour", "shadow", "background", "codes", "indices")


@pytest.fixture(scope="module")
def many() -> Scenes:
    """500 photo scenes, shared by the statistical tests."""
    return render_batch(11, range(500))


def _same(a: Scenes, b: Scenes) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    assert a.captions == b.captions


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour erosion of ``(..., h, w)`` masks; the image border counts as outside."""
    m = mask.copy()
    for _ in range(steps):
        e = m.copy()
        e[..., 1:, :] &= m[..., :-1, :]
        e[..., :-1, :] &= m[..., 1:, :]
        e[..., :, 1:] &= m[..., :, :-1]
        e[..., :, :-1] &= m[..., :, 1:]
        e[..., 0, :] = e[..., -1, :] = e[..., :, 0] = e[..., :, -1] = False
        m = e
    return m


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    m = mask.copy()
    for _ in range(steps):
        d = m.copy()
        d[..., 1:, :] |= m[..., :-1, :]
        d[..., :-1, :] |= m[..., 1:, :]
        d[..., :, 1:] |= m[..., :, :-1]
        d[..., :, :-1] |= m[..., :, 1:]
        m = d
    return m


def _label(s: Scenes) -> np.ndarray:
    """``(n, h, w)``: slot of the visible object, -1 for background."""
    lab = np.full(s.background.shape, -1)
    for j in range(s.object_masks.shape[1]):
        lab[s.object_masks[:, j]] = j
    return lab


# ----------------------------------------------------------------- shapes and determinism
def test_fields_have_documented_shapes_and_dtypes():
    s = render_batch(0, [3, 1, 4])
    n, k, h = 3, 3, 64
    assert s.images.shape == (n, 3, h, h) and s.images.dtype == np.uint8
    assert s.object_masks.shape == (n, k, h, h) and s.object_masks.dtype == bool
    assert s.kinds.shape == s.colours.shape == (n, k) and s.kinds.dtype.kind == "i"
    assert s.centres.shape == (n, k, 2) and s.sizes.shape == s.rotations.shape == (n, k)
    for name in ("contour", "shadow", "background"):
        assert getattr(s, name).shape == (n, h, h) and getattr(s, name).dtype == bool
    assert s.codes.shape == (n, code_dim()) == (n, 57) and s.codes.dtype == np.float32
    assert len(s) == n and len(s.captions) == n and s.indices.tolist() == [3, 1, 4]
    assert len(KINDS) >= 4 and len(COLOURS) >= 6 and set(PALETTE) == set(COLOURS)


@pytest.mark.parametrize("style", STYLES)
def test_same_inputs_give_identical_bytes(style):
    _same(render_batch(5, [0, 7, 2], style=style), render_batch(5, [0, 7, 2], style=style))


@pytest.mark.parametrize("style", STYLES)
def test_batch_equals_scenes_rendered_one_by_one(style):
    idx = [9, 0, 40, 3, 3]
    batch = render_batch(2, idx, style=style)
    for i, index in enumerate(idx):
        one = render(2, index, style=style)
        for name in ARRAYS:
            assert np.array_equal(getattr(batch, name)[i], getattr(one, name)[0],
                                  equal_nan=getattr(one, name).dtype.kind == "f"), name
        assert batch.captions[i] == one.captions[0]


def test_chunk_boundaries_do_not_change_scenes():
    big = render_batch(1, range(40))  # several internal chunks, a partial last one
    _same(big, dataclasses.replace(render_batch(1, range(40)), config=big.config))
    tail = render_batch(1, range(30, 40))
    assert np.array_equal(big.images[30:], tail.images)
    assert np.array_equal(big.object_masks[30:], tail.object_masks)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**40), index=st.integers(0, 2**40))
def test_any_scene_rebuilds_alone(seed, index):
    _same(render(seed, index), render_batch(seed, [index]))


def test_different_seeds_and_indices_differ():
    a, b, c = render_batch(0, range(8)), render_batch(1, range(8)), render_batch(0, range(8, 16))
    for other in (b, c):
        assert all(not np.array_equal(x, y) for x, y in zip(a.images, other.images))
    assert len(set(a.captions + b.captions)) > 8


# ----------------------------------------------------------------- ground truth vs pixels
@pytest.mark.parametrize("style", STYLES)
def test_ground_truth_is_the_same_in_every_style(style):
    photo, other = render_batch(4, range(12)), render_batch(4, range(12), style=style)
    for name in ARRAYS[1:]:
        assert np.array_equal(getattr(photo, name), getattr(other, name), equal_nan=True), name
    assert photo.captions == other.captions


def test_masks_are_disjoint_and_background_is_their_complement(many):
    m = many.object_masks
    assert (m.sum(axis=1) <= 1).all()
    assert np.array_equal(many.background, ~m.any(axis=1))
    absent = many.kinds < 0
    assert not m[absent].any()
    assert np.array_equal(absent, many.colours < 0)
    assert np.isnan(many.sizes[absent]).all() and not np.isnan(many.sizes[~absent]).any()
    # present objects are (nearly always) visible, not hidden behind later ones
    area = m.sum(axis=(2, 3))[~absent]
    assert (area > 0).all() and (area >= 15).mean() > 0.97


def test_objects_lie_where_their_parameters_say(many):
    h = many.images.shape[-1]
    yy, xx = np.mgrid[0:h, 0:h] + 0.5
    n, k = many.kinds.shape
    for i in range(0, n, 7):
        for j in range(k):
            if many.kinds[i, j] < 0:
                continue
            cx, cy = many.centres[i, j]
            r = np.hypot(xx - cx, yy - cy)[many.object_masks[i, j]]
            assert r.max() <= 1.35 * many.sizes[i, j] + 1  # the largest extent of any kind
            assert 0 < cx < h and 0 < cy < h


def test_shadow_is_disjoint_from_objects_and_darkens_the_background(many):
    assert not (many.shadow & many.object_masks.any(axis=1)).any()
    assert many.shadow.any(axis=(1, 2)).mean() > 0.9
    lit = render_batch(11, range(0, 500, 5), WorldConfig(shadow=False))
    shadowed = many.images[::5].astype(int).sum(axis=1)[many.shadow[::5]]
    plain = lit.images.astype(int).sum(axis=1)[many.shadow[::5]]
    assert (shadowed < plain).mean() > 0.95
    assert not lit.shadow.any() and np.array_equal(lit.object_masks, many.object_masks[::5])


def test_contour_is_exactly_the_inner_boundary_of_the_masks(many):
    lab = _label(many)
    boundary = np.zeros_like(many.contour)
    dh, dv = lab[:, :, 1:] != lab[:, :, :-1], lab[:, 1:, :] != lab[:, :-1, :]
    boundary[:, :, 1:] |= dh
    boundary[:, :, :-1] |= dh
    boundary[:, 1:] |= dv
    boundary[:, :-1] |= dv
    assert np.array_equal(many.contour, boundary & (lab >= 0))
    assert not (many.contour & many.background).any()
    # every present object has a contour
    for j in range(many.kinds.shape[1]):
        present = many.kinds[:, j] >= 0
        assert (many.contour & many.object_masks[:, j]).any(axis=(1, 2))[present].all()


def test_object_pixels_have_the_object_colour(many):
    rgb = np.array([PALETTE[c] for c in COLOURS])
    unit = rgb / np.linalg.norm(rgb, axis=1, keepdims=True)
    inner = _erode(many.object_masks, 2)
    hits = total = 0
    for i, j in zip(*np.nonzero(inner.sum(axis=(2, 3)) >= 20)):
        mean = many.images[i][:, inner[i, j]].mean(axis=1)
        hits += int(np.argmax(unit @ (mean / np.linalg.norm(mean))) == many.colours[i, j])
        total += 1
    assert total > 300 and hits / total > 0.95


def test_kinds_colours_and_counts_have_reasonable_frequencies(many):
    kinds = many.kinds[many.kinds >= 0]
    colours = many.colours[many.colours >= 0]
    for values, names in ((kinds, KINDS), (colours, COLOURS)):
        share = np.bincount(values, minlength=len(names)) / len(values)
        assert (share > 0.5 / len(names)).all() and (share < 1.5 / len(names)).all()
    counts = np.bincount((many.kinds >= 0).sum(axis=1), minlength=4)
    assert counts[0] == 0 and (counts[1:] > 100).all()


def test_truth_masks_split_object_pixels_by_kind_and_colour(many):
    kind, colour = truth_masks(many)
    assert kind.shape == (500, len(KINDS), 64, 64) and colour.shape == (500, len(COLOURS), 64, 64)
    objects = many.object_masks.any(axis=1)
    assert np.array_equal(kind.any(axis=1), objects) and np.array_equal(colour.any(axis=1), objects)
    for i in range(0, 500, 25):
        for j in np.nonzero(many.kinds[i] >= 0)[0]:
            m = many.object_masks[i, j]
            assert kind[i, many.kinds[i, j]][m].all() and colour[i, many.colours[i, j]][m].all()


# ----------------------------------------------------------------- code and captions
def test_scene_code_matches_the_scene(many):
    lay = code_layout(3)
    c = many.codes
    assert sum(s.stop - s.start for s in lay.values()) == c.shape[1]
    for j in range(3):
        present = many.kinds[:, j] >= 0
        assert np.array_equal(c[:, lay[f"object{j}.present"]][:, 0] == 1, present)
        onehot = c[:, lay[f"object{j}.kind"]]
        assert np.array_equal(onehot.argmax(1)[present], many.kinds[present, j])
        assert np.allclose(onehot.sum(1), present)
        xy = (c[:, lay[f"object{j}.centre"]] + 1) * 32
        assert np.allclose(xy[present], many.centres[present, j], atol=1e-3)
        assert np.allclose(c[present, lay[f"object{j}.size"]][:, 0] * 64, many.sizes[present, j],
                           atol=1e-3)
        cs = c[:, lay[f"object{j}.rotation"]]
        ang = np.radians(many.rotations[present, j])
        assert np.allclose(cs[present], np.stack([np.cos(ang), np.sin(ang)], 1), atol=1e-4)
        slot = slice(lay[f"object{j}.present"].start, lay[f"object{j}.rotation"].stop)
        assert not c[~present, slot].any()
    assert np.allclose(np.linalg.norm(c[:, lay["light"]], axis=1), 1, atol=1e-5)
    assert np.allclose(c[:, lay["texture"]].sum(1), 1)
    assert code_dim(WorldConfig(max_objects=5)) == render(0, 0, WorldConfig(max_objects=5)).codes.shape[1]


def test_captions_name_every_object(many):
    for i, text in enumerate(many.captions[:200]):
        present = np.nonzero(many.kinds[i] >= 0)[0]
        assert text.count(" a ") + text.startswith("a ") == len(present), text
        for j in present:
            assert f"{COLOURS[many.colours[i, j]]} {KINDS[many.kinds[i, j]]}" in text, text
    singles = [t for i, t in enumerate(many.captions) if (many.kinds[i] >= 0).sum() == 1]
    assert all(t.startswith("a ") and len(t.split()) == 4 for t in singles)
    pairs = [t for i, t in enumerate(many.captions) if (many.kinds[i] >= 0).sum() == 2]
    assert all(any(r in t for r in ("left of", "right of", "above", "below")) for t in pairs)


def test_caption_relation_follows_positions():
    cfg = WorldConfig(min_objects=2, max_objects=2)
    s = render_batch(3, range(60), cfg)
    for i, text in enumerate(s.captions):
        (ax, ay), (bx, by) = s.centres[i]
        if abs(ax - bx) > abs(ay - by) + 1:
            assert ("left of" if ax < bx else "right of") in text, text
        elif abs(ay - by) > abs(ax - bx) + 1:
            assert ("above" if ay < by else "below") in text, text


# ----------------------------------------------------------------- styles
def test_sketch_is_white_with_dark_lines_on_the_contours():
    s = render_batch(8, range(40), style="sketch")
    grey = s.images.astype(int).mean(axis=1)
    assert (s.images[:, 0] == s.images[:, 1]).all() and (s.images[:, 1] == s.images[:, 2]).all()
    assert (grey >= 240).mean() > 0.8
    dark_near = _dilate(grey < 128, 1)
    assert dark_near[s.contour].mean() > 0.95
    far = ~_dilate(s.contour, 3) & s.background
    assert (grey[far] >= 250).mean() > 0.99


def test_cartoon_objects_have_few_flat_colours():
    s = render_batch(8, range(40), style="cartoon")
    inner = _erode(s.object_masks, 3)
    # Two tones fill each object's inside; a few anti-aliased outline pixels can reach into
    # concave corners (the signed distance of a union underestimates the depth there).
    checked, covered, total = 0, 0, 0
    for i, j in zip(*np.nonzero(inner.sum(axis=(2, 3)) >= 20)):
        pixels = s.images[i][:, inner[i, j]].T
        _, counts = np.unique(pixels, axis=0, return_counts=True)
        top2 = np.sort(counts)[-2:].sum()
        assert top2 >= 0.9 * len(pixels)
        covered, total, checked = covered + top2, total + len(pixels), checked + 1
    assert checked > 30 and covered / total > 0.98
    # the outline is dark
    assert s.images.astype(int).sum(axis=1)[s.contour].mean() < 150
    # flat background: few colours outside objects and shadows
    # flat background: one colour outside objects and shadows, except where the mitred
    # outlines of sharp corners reach further out than a few pixels
    bg = s.background & ~s.shadow & ~_dilate(~s.background, 4)
    for i in range(20):
        _, counts = np.unique(s.images[i][:, bg[i]].T, axis=0, return_counts=True)
        assert counts.max() >= 0.99 * counts.sum()


def test_photo_has_texture_shading_and_many_colours():
    s = render_batch(8, range(20))
    assert all(len(np.unique(im.reshape(3, -1).T, axis=0)) > 500 for im in s.images)
    assert not np.array_equal(render_batch(8, range(20), style="cartoon").images, s.images)


# ----------------------------------------------------------------- configuration
def test_simple_preset_is_easier_but_keeps_the_spec():
    cfg = WorldConfig.simple()
    assert cfg.max_objects == 2 and cfg.rotation == (0.0, 0.0) and cfg.image_size == 64
    assert len(cfg.kinds) >= 4 and len(cfg.colours) >= 6
    s = render_batch(0, range(100), cfg)
    present = s.kinds >= 0
    assert s.object_masks.shape[1] == 2 and (present.sum(1) >= 1).all()
    assert np.all(s.rotations[present] == 0)
    assert set(np.unique(s.kinds[present])) <= {KINDS.index(k) for k in cfg.kinds}
    assert s.sizes[present].min() >= 0.16 * 64 - 1e-3
    assert WorldConfig.simple(max_objects=1).max_objects == 1


def test_other_image_sizes_and_subsets_work():
    cfg = WorldConfig(image_size=32, kinds=("circle", "square", "star", "cross"), max_objects=1)
    s = render_batch(0, range(30), cfg, style="cartoon")
    assert s.images.shape == (30, 3, 32, 32) and s.object_masks.shape == (30, 1, 32, 32)
    assert KINDS.index("triangle") not in s.kinds
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_objects = 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_objects=0), "max_objects=0"),
        (dict(max_objects=9), "max_objects=9"),
        (dict(min_objects=3, max_objects=2), "min_objects=3"),
        (dict(kinds=("circle", "square", "star")), "kinds=.*at least 4"),
        (dict(kinds=("circle", "square", "star", "hexagon")), "hexagon"),
        (dict(kinds=("circle", "circle", "square", "star", "cross")), "distinct"),
        (dict(colours=("red", "green", "blue", "cyan", "white")), "colours=.*at least 6"),
        (dict(size=(0.2, 0.1)), r"size=\(0.2, 0.1\)"),
        (dict(size=(0.1, 0.9)), "size="),
        (dict(rotation=(10, -10)), "rotation="),
        (dict(image_size=8), "image_size=8"),
        (dict(shading=2.0), "shading=2.0"),
        (dict(textures=()), "textures="),
        (dict(textures=("plain", "marble")), "marble"),
        (dict(shadow="yes"), "shadow='yes'"),
    ],
)
def test_invalid_configs_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WorldConfig(**kwargs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: render_batch(0, [1], style="painting"), "style='painting'.*photo"),
        (lambda: render_batch(0, []), "non-empty"),
        (lambda: render_batch(0, [3, -2]), "index -2"),
        (lambda: render_batch(0, [[1, 2]]), "1-d"),
        (lambda: render_batch(0, [1.5]), "integers"),
        (lambda: render_batch(0, 5), "indices=5"),
        (lambda: render_batch(-1, [0]), "seed=-1"),
        (lambda: render(0, -3), "index -3"),
        (lambda: render(0, 1.0), "index=1.0"),
        (lambda: code_layout(0), "max_objects=0"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_types_raise_type_errors():
    with pytest.raises(TypeError, match="WorldConfig"):
        render_batch(0, [0], config={"max_objects": 2})
    with pytest.raises(TypeError, match="Scenes"):
        truth_masks(np.zeros((1, 3, 64, 64)))
