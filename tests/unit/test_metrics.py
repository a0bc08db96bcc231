"""The measuring code of the inversion benchmarks against plain float64 loops: the foreground
plane, area, IoU, centroid, PSNR (SSIM's loop oracle: test_inversion_maths.py), and the success
criteria of edits and OOD inversion (rosetta_core.inversion.criteria), with hand-worked cases at
every boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rosetta_core.inversion import criteria as C
from rosetta_core.inversion.metrics import area, centroid, foreground, iou, psnr, ssim

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------------------------------------
# loop oracles


def _foreground_loop(image: np.ndarray, threshold: float, border: int) -> np.ndarray:
    """One image ``(c, h, w)``: a plane ``a + b*col + c*row`` per channel fitted by the normal
    equations to the frame's pixels (raw pixel coordinates), then a pixel per pixel comparison."""
    c, h, w = image.shape
    x = image.astype(np.float64) / 255
    rows, targets = [], []
    for i in range(h):
        for j in range(w):
            if i < border or i >= h - border or j < border or j >= w - border:
                rows.append([1.0, float(j), float(i)])
                targets.append(x[:, i, j])
    a, t = np.array(rows), np.array(targets)
    coef = np.linalg.solve(a.T @ a, a.T @ t)  # (3, c)
    out = np.zeros((h, w), dtype=bool)
    for i in range(h):
        for j in range(w):
            worst = 0.0
            for ch in range(c):
                plane = coef[0, ch] + coef[1, ch] * j + coef[2, ch] * i
                worst = max(worst, abs(x[ch, i, j] - plane))
            out[i, j] = worst > threshold
    return out


def _pixels(mask: np.ndarray) -> list[tuple[int, int]]:
    """(row, col) of the true pixels of one mask ``(h, w)``."""
    return [(i, j) for i in range(mask.shape[0]) for j in range(mask.shape[1]) if mask[i, j]]


def _iou_loop(a: np.ndarray, b: np.ndarray) -> float:
    inter = union = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            inter += bool(a[i, j] and b[i, j])
            union += bool(a[i, j] or b[i, j])
    return inter / union if union else 1.0


def _centroid_loop(mask: np.ndarray) -> tuple[float, float]:
    pts = _pixels(mask)
    if not pts:
        return math.nan, math.nan
    return sum(j for _, j in pts) / len(pts), sum(i for i, _ in pts) / len(pts)


def _shift_loop(src: np.ndarray, res: np.ndarray, dx: float, dy: float) -> tuple[bool, bool]:
    """(eligible, success) of one shift trial, as docs/success-criteria.md words it."""
    n_src, n_res = len(_pixels(src)), len(_pixels(res))
    if n_src < 20:
        return False, False
    if n_res == 0:
        return True, False
    (sx, sy), (rx, ry) = _centroid_loop(src), _centroid_loop(res)
    dist = math.hypot(dx, dy)
    along = ((rx - sx) * dx + (ry - sy) * dy) / dist
    across = abs((ry - sy) * dx - (rx - sx) * dy) / dist
    ok = 0.5 * dist <= along <= 1.5 * dist and across <= 0.5 * dist and abs(n_res - n_src) <= 0.25 * n_src
    return True, ok


def _zoom_loop(src: np.ndarray, res: np.ndarray, req: np.ndarray) -> tuple[bool, bool]:
    n_src, n_res, n_req = len(_pixels(src)), len(_pixels(res)), len(_pixels(req))
    if n_src < 20 or n_req / n_src < 1.5:
        return False, False
    r, g = n_req / n_src, n_res / n_src
    return True, 0.5 * (r - 1) <= g - 1 <= 1.5 * (r - 1)


def _remove_loop(src: np.ndarray, res: np.ndarray) -> tuple[bool, bool]:
    pts = _pixels(src)
    if len(pts) < 20:
        return False, False
    kept = sum(1 for i, j in pts if res[i, j])
    return True, kept <= 0.5 * len(pts)


def _outcome_of(pairs: list[tuple[bool, bool]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _rect(h: int, w: int, top: int, left: int, rows: int, cols: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[max(top, 0) : max(top + rows, 0), max(left, 0) : max(left + cols, 0)] = True
    return m


# ---------------------------------------------------------------------------------------------
# foreground


def _scenes(rng, n: int, h: int, w: int, noise: float) -> np.ndarray:
    """Gradient backgrounds (random plane per channel) + uniform noise + random rectangles, some
    touching the frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((n, 3, h, w))
    for k in range(n):
        for ch in range(3):
            a, bx, by = rng.uniform(40, 200), rng.uniform(-4, 4), rng.uniform(-4, 4)
            out[k, ch] = a + bx * xx + by * yy + rng.uniform(-noise, noise, size=(h, w))
        for _ in range(rng.integers(1, 4)):
            top, left = rng.integers(-2, h - 2), rng.integers(-2, w - 2)
            rows, cols = rng.integers(2, 8), rng.integers(2, 8)
            m = _rect(h, w, top, left, rows, cols)
            out[k][:, m] = rng.uniform(0, 255, size=3)[:, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("threshold,border,noise", [(0.12, 3, 30.0), (0.05, 1, 12.0), (0.2, 5, 50.0)])
def test_foreground_against_loops(threshold, border, noise):
    """Noisy gradient backgrounds put many pixels near the threshold, so a plane fitted to other
    pixels, another channel reduction or coordinate mix-up changes the mask."""
    rng = np.random.default_rng(int(threshold * 1000) + border)
    images = _scenes(rng, 4, 18, 23, noise)
    got = foreground(images, threshold=threshold, border=border)
    assert got.shape == (4, 18, 23) and got.dtype == np.bool_
    for k in range(4):
        want = _foreground_loop(images[k], threshold, border)
        np.testing.assert_array_equal(got[k], want)
        # the test can fail: both classes occur, and background pixels close to the threshold do
        assert 0 < want.sum() < want.size


def test_foreground_of_a_pure_gradient_is_empty_and_an_object_on_it_is_exact():
    """A plane background (steep in y, shallow in x) is fitted exactly: no foreground; an object
    on it is exactly its pixels. A constant or x-only fit would mark the steep rows."""
    h, w = 16, 12
    yy, xx = np.mgrid[0:h, 0:w]
    plane = 20 + 12 * yy + 2 * xx  # 20 .. 222: far beyond the threshold from any constant
    image = np.repeat(plane[None], 3, axis=0)[None].astype(np.uint8)
    assert not foreground(image).any()
    obj = _rect(h, w, 6, 4, 3, 4)
    image[0, 1][obj] = (image[0, 1][obj].astype(int) + 80) % 256  # one channel only, by 80 levels
    np.testing.assert_array_equal(foreground(image)[0], obj)
    # the largest difference over the channels counts, not their mean (80 / 3 levels < 0.12)
    image[0, 1][obj] = image[0, 1][obj] - 80 + 31  # now 31 levels: above 0.12 * 255 = 30.6
    np.testing.assert_array_equal(foreground(image)[0], obj)
    image[0, 1][obj] = image[0, 1][obj] - 31 + 30  # 30 levels: below
    assert not foreground(image).any()


def test_foreground_threshold_is_strict():
    """A difference exactly equal to the threshold is background (zero background: the fitted
    plane is exactly 0, so the difference is exactly v / 255)."""
    image = np.zeros((1, 3, 9, 9), dtype=np.uint8)
    image[0, 2, 4, 4] = 30
    image[0, 0, 4, 5] = 31
    got = foreground(image, threshold=30 / 255)[0]
    assert not got[4, 4] and got[4, 5] and got.sum() == 1


def test_foreground_fits_the_frame_not_the_object():
    """A large object covering most of the inside must not pull the plane: the fit uses only the
    ``border``-wide frame."""
    image = np.full((1, 3, 12, 12), 100, dtype=np.uint8)
    image[0, :, 2:10, 2:10] = 250  # inside the 2-wide frame; the 3-wide frame holds some of it
    np.testing.assert_array_equal(foreground(image, border=2)[0], _rect(12, 12, 2, 2, 8, 8))
    assert not np.array_equal(foreground(image, border=3)[0], _rect(12, 12, 2, 2, 8, 8))


def test_foreground_input_errors():
    with pytest.raises(ValueError, match=r"foreground takes images \(n, c, H, W\); got shape \(3, 8, 8\)"):
        foreground(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="border=4 must be an integer >= 1 that leaves an inside"):
        foreground(np.zeros((1, 3, 8, 8)), border=4)
    with pytest.raises(ValueError, match="border=0 must be"):
        foreground(np.zeros((1, 3, 8, 8)), border=0)
    with pytest.raises(ValueError, match="threshold=-0.1 must be >= 0"):
        foreground(np.zeros((1, 3, 8, 8)), threshold=-0.1)


# ---------------------------------------------------------------------------------------------
# area, IoU, centroid


def _random_masks(rng, n: int, h: int, w: int) -> np.ndarray:
    density = rng.uniform(0.05, 0.6, size=(n, 1, 1))
    return rng.random((n, h, w)) < density


def test_iou_area_and_centroid_against_loops():
    rng = np.random.default_rng(7)
    a, b = _random_masks(rng, 12, 7, 11), _random_masks(rng, 12, 7, 11)
    a[3] = False  # one empty against a non-empty one
    a[5], b[5] = False, False  # both empty
    got_iou, got_c = iou(a, b), centroid(a)
    for k in range(12):
        assert got_iou[k] == _iou_loop(a[k], b[k])
        assert area(a)[k] == len(_pixels(a[k]))
        want = _centroid_loop(a[k])
        if k in (3, 5):
            assert np.isnan(got_c[k]).all()
        else:
            np.testing.assert_allclose(got_c[k], want, rtol=1e-15)
    assert got_iou[3] == 0.0 and got_iou[5] == 1.0
    np.testing.assert_array_equal(iou(a, b), iou(b, a))
    assert area(a).dtype == np.int64


def test_iou_by_hand():
    """a = 1100, b = 0110: intersection 1, union 3 (not 1/|a| = 1/2, nor 1/(|a|+|b|) = 1/4)."""
    a = np.array([[[1, 1, 0, 0]]], dtype=bool)
    b = np.array([[[0, 1, 1, 0]]], dtype=bool)
    assert iou(a, b)[0] == pytest.approx(1 / 3, abs=1e-15)
    assert iou(a, a)[0] == 1.0
    assert iou(a, ~a)[0] == 0.0
    assert iou(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool))[0] == 1.0  # both empty: they agree


def test_centroid_by_hand():
    """(x, y) = (column, row): one pixel at row 1, column 3 of a 4x6 mask is (3, 1)."""
    m = np.zeros((2, 4, 6), dtype=bool)
    m[0, 1, 3] = True
    m[1, 0, 0] = m[1, 2, 5] = True
    np.testing.assert_array_equal(centroid(m), [[3.0, 1.0], [2.5, 1.0]])
    assert np.isnan(centroid(np.zeros((1, 4, 6), dtype=bool))).all()


def test_mask_input_errors():
    with pytest.raises(ValueError, match=r"iou's first mask must be boolean masks \(n, H, W\); got dtype float64"):
        iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool))
    with pytest.raises(ValueError, match=r"iou compares masks of one shape; got \(1, 2, 2\) and \(1, 2, 3\)"):
        iou(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 3), bool))
    with pytest.raises(ValueError, match=r"centroid's mask must be boolean masks \(n, H, W\); got dtype bool, shape \(2, 2\)"):
        centroid(np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="area's mask must be boolean masks"):
        area(np.zeros((1, 2, 2), np.uint8))


# ---------------------------------------------------------------------------------------------
# PSNR, SSIM


def test_psnr_by_hand_and_per_image():
    """Peak 255, mean over channels and pixels of each image alone: 0 dB for black against white,
    20 log10(255) for a difference of one level everywhere, inf for identical images."""
    a = np.zeros((3, 3, 12, 12), dtype=np.uint8)
    b = a.copy()
    b[0] = 255
    b[1] = 1
    got = psnr(a, b)
    assert got[0] == pytest.approx(0.0, abs=1e-12)
    assert got[1] == pytest.approx(20 * math.log10(255), rel=1e-14)
    assert got[2] == math.inf
    c = a[:1].copy()
    c[0, 1, :6] = 2  # a difference of 2 on a quarter... of one channel's half: mse = 4 * 72 / 432
    assert psnr(a[:1], c)[0] == pytest.approx(10 * math.log10(255**2 / (4 * 72 / 432)), rel=1e-14)


def test_ssim_is_per_image_and_one_for_identical_images():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(3, 3, 13, 15), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 60, size=a.shape), 0, 255).astype(np.uint8)
    b[1] = a[1]
    got = ssim(a, b)
    assert got[1] == pytest.approx(1.0, abs=1e-12)
    for k in range(3):
        assert got[k] == pytest.approx(ssim(a[k : k + 1], b[k : k + 1])[0], abs=1e-14)
    assert got[0] < 0.99 and got[2] < 0.99


def test_psnr_and_ssim_input_errors():
    with pytest.raises(ValueError, match=r"psnr compares two image batches of one shape \(n, c, H, W\); got \(1, 3, 12, 12\) and \(1, 3, 12, 11\)"):
        psnr(np.zeros((1, 3, 12, 12)), np.zeros((1, 3, 12, 11)))
    with pytest.raises(ValueError, match=r"ssim needs images of at least 11x11 pixels \(its window\); got \(10, 12\)"):
        ssim(np.zeros((1, 3, 10, 12)), np.zeros((1, 3, 10, 12)))


# ---------------------------------------------------------------------------------------------
# success criteria: random trials against the loops


def _shift_trials(rng, n: int, h: int = 24, w: int = 40):
    """Sources: rectangles of 3-8 rows and columns (some under 20 px); results: the rectangle
    moved by a random amount around the request, resized, sometimes empty."""
    src, res = np.zeros((n, h, w), bool), np.zeros((n, h, w), bool)
    dx, dy = rng.choice([-12.0, -8.0, 8.0, 12.0], size=n), rng.choice([0.0, 0.0, 4.0, -6.0], size=n)
    for k in range(n):
        rows, cols = rng.integers(3, 9), rng.integers(3, 9)
        top, left = rng.integers(6, h - 14), rng.integers(12, w - 20)
        src[k] = _rect(h, w, top, left, rows, cols)
        if rng.random() < 0.05:
            continue  # an empty result
        f = rng.uniform(-0.2, 1.8)
        mx, my = round(f * dx[k] + rng.normal(0, 2)), round(f * dy[k] + rng.normal(0, 3))
        res[k] = _rect(h, w, top + my, left + mx, rows + rng.integers(-1, 3), cols + rng.integers(-1, 2))
    return src, res, dx, dy


def test_shift_outcome_against_loops():
    rng = np.random.default_rng(11)
    src, res, dx, dy = _shift_trials(rng, 400)
    got = C.shift_outcome(src, res, dx, dy)
    eligible, success = _outcome_of([_shift_loop(src[k], res[k], dx[k], dy[k]) for k in range(len(src))])
    np.testing.assert_array_equal(got.eligible, eligible)
    np.testing.assert_array_equal(got.success, success)
    assert got.trials == eligible.sum() and got.rate == pytest.approx(success.sum() / eligible.sum(), abs=1e-15)
    # each clause decides some trials on its own, so dropping or loosening any one is caught
    move, d = centroid(res) - centroid(src), np.hypot(dx, dy)
    along = (move[:, 0] * dx + move[:, 1] * dy) / d
    across = np.abs(move[:, 1] * dx - move[:, 0] * dy) / d
    grow = np.abs(area(res) - area(src)) / np.maximum(area(src), 1)
    ok_along, ok_across, ok_area = (along >= d / 2) & (along <= 1.5 * d), across <= d / 2, grow <= 0.25
    for only in (~ok_along & ok_across & ok_area, ok_along & ~ok_across & ok_area, ok_along & ok_across & ~ok_area):
        assert (only & eligible).sum() >= 3
    assert 0.2 < got.rate < 0.8 and (eligible & ~np.isfinite(along)).any() and (~eligible).any()


def test_zoom_and_remove_outcomes_against_loops():
    rng = np.random.default_rng(5)
    n, h, w = 300, 20, 20
    src, res, req = (_random_masks(rng, n, h, w) for _ in range(3))
    # sizes spread around the thresholds: sources of 0-60 px, requests and results of 0-4x that
    for k in range(n):
        s = rng.integers(0, 60)
        src[k] = (rng.random((h, w)) < s / (h * w))
        req[k] = rng.random((h, w)) < min(1.0, rng.uniform(0.5, 5) * src[k].sum() / (h * w))
        res[k] = rng.random((h, w)) < min(1.0, rng.uniform(0.5, 5) * src[k].sum() / (h * w))
        if rng.random() < 0.5:  # removals that keep some share of the object
            res[k] = src[k] & (rng.random((h, w)) < rng.uniform(0, 1))
    zoom = C.zoom_outcome(src, res, req)
    eligible, success = _outcome_of([_zoom_loop(src[k], res[k], req[k]) for k in range(n)])
    np.testing.assert_array_equal(zoom.eligible, eligible)
    np.testing.assert_array_equal(zoom.success, success)
    assert 0.1 < zoom.rate < 0.9 and 20 < zoom.trials < n
    removed = C.remove_outcome(src, res)
    eligible, success = _outcome_of([_remove_loop(src[k], res[k]) for k in range(n)])
    np.testing.assert_array_equal(removed.eligible, eligible)
    np.testing.assert_array_equal(removed.success, success)
    assert 0.1 < removed.rate < 0.9
    layout = C.layout_outcome(src, res)
    np.testing.assert_array_equal(layout.success, [_iou_loop(src[k], res[k]) >= 0.5 for k in range(n)])
    assert layout.trials == n and 0 < layout.rate < 1


# ---------------------------------------------------------------------------------------------
# success criteria: hand-worked boundaries


def _one(m: np.ndarray) -> np.ndarray:
    return m[None]


def test_shift_boundaries_by_hand():
    """Source: 4 rows x 5 columns (20 px) at rows 10-13, columns 4-8 of a 32x48 mask; request 16
    px right. Inclusive bounds: a move of 8 and 24 px succeeds, 7 and 25 do not; 8 px of drift
    down succeeds, 9 does not; 25 px (+25%) succeeds, 26 does not; a move the wrong way fails."""
    h, w = 32, 48
    src = _rect(h, w, 10, 4, 4, 5)

    def ok(res, dx=16.0, dy=0.0):
        out = C.shift_outcome(_one(src), _one(res), dx, dy)
        assert out.eligible[0]
        return bool(out.success[0])

    assert ok(_rect(h, w, 10, 20, 4, 5))
    assert ok(_rect(h, w, 10, 12, 4, 5)) and not ok(_rect(h, w, 10, 11, 4, 5))
    assert ok(_rect(h, w, 10, 28, 4, 5)) and not ok(_rect(h, w, 10, 29, 4, 5))
    assert ok(_rect(h, w, 18, 20, 4, 5)) and not ok(_rect(h, w, 19, 20, 4, 5))
    assert not ok(_rect(h, w, 10, 20, 4, 5), dx=-16.0)  # asked left, moved right
    assert ok(_rect(h, w, 18, 4, 4, 5), dx=0.0, dy=8.0)  # a request down, along y
    assert not ok(_rect(h, w, 10, 12, 4, 5), dx=0.0, dy=8.0)  # moved x by 8 when y was asked
    five = _rect(h, w, 10, 20, 5, 5)  # 25 px, centroid (22, 12): along 16, across 0.5
    assert ok(five)
    six = five.copy()
    six[12, 19] = True  # 26 px, centroid moves 1/26 px left: only the area decides
    assert not ok(six)
    assert not ok(np.zeros((h, w), bool))  # an empty result fails, and still counts
    small = _rect(h, w, 10, 4, 4, 5)
    small[10, 4] = False  # 19 px: not a trial
    out = C.shift_outcome(_one(small), _one(_rect(h, w, 10, 20, 4, 5)), 16.0)
    assert not out.eligible[0] and not out.success[0] and out.trials == 0 and math.isnan(out.rate)


def test_zoom_boundaries_by_hand():
    """Source 20 px. Request 80 px (r = 4, extra 3): results of 50 and 110 px succeed (extra
    1.5 = half of 3, 4.5 = 1.5 x 3), 49 and 111 fail. A request of 29 px (x1.45) is not a trial,
    30 px (x1.5) is."""
    h, w = 20, 20

    def pixels(k):
        m = np.zeros(h * w, bool)
        m[:k] = True
        return m.reshape(h, w)

    src = pixels(20)

    def outcome(res, req):
        out = C.zoom_outcome(_one(src), _one(pixels(res)), _one(pixels(req)))
        return bool(out.eligible[0]), bool(out.success[0])

    assert outcome(50, 80) == (True, True) and outcome(49, 80) == (True, False)
    assert outcome(110, 80) == (True, True) and outcome(111, 80) == (True, False)
    assert outcome(20, 80) == (True, False)  # no growth
    assert outcome(25, 29) == (False, False) and outcome(25, 30) == (True, True)


def test_remove_boundaries_by_hand():
    """Source 20 px: 10 of them still foreground succeeds, 11 fails (a removal of one pixel is not
    a success); new foreground elsewhere does not count against it."""
    src = _rect(16, 16, 2, 2, 4, 5)
    pts = _pixels(src)

    def kept(k, extra=False):
        res = np.zeros_like(src)
        for i, j in pts[:k]:
            res[i, j] = True
        if extra:
            res[10:15, 10:15] = True
        return bool(C.remove_outcome(_one(src), _one(res)).success[0])

    assert kept(0) and kept(10) and not kept(11) and not kept(19) and not kept(20)
    assert kept(10, extra=True)


def test_layout_boundary_by_hand():
    truth = np.zeros((1, 4, 4), bool)
    truth[0, 0, :4] = True
    half = np.zeros_like(truth)
    half[0, 0, :2] = True  # IoU 2/4
    assert C.layout_outcome(truth, half).success[0]
    half[0, 3, 3] = True  # IoU 2/5
    assert not C.layout_outcome(truth, half).success[0]


def test_outcome_record_and_parameter_errors():
    src = np.zeros((2, 8, 8), bool)
    src[:, :5, :4] = True
    out = C.remove_outcome(src, np.zeros_like(src))
    assert out.record("remove") == {"success_rate": 1.0, "successes": 2, "success_trials": 2,
                                    "criterion": C.CRITERIA["remove"]}
    assert "at most 50% of the source's foreground" in C.CRITERIA["remove"]
    with pytest.raises(ValueError, match=r"shift_outcome needs a requested move \(dx, dy\) of nonzero, finite length"):
        C.shift_outcome(src, src, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"along=\(1.5, 0.5\) must be \(low, high\) with 0 <= low <= high"):
        C.shift_outcome(src, src, 1.0, along=(1.5, 0.5))
    with pytest.raises(ValueError, match=r"shift_outcome compares masks of one shape; got source \(2, 8, 8\) and result \(1, 8, 8\)"):
        C.shift_outcome(src, src[:1], 1.0)
    with pytest.raises(ValueError, match="remove_outcome's result masks must be boolean masks"):
        C.remove_outcome(src, src.astype(float))
    with pytest.raises(ValueError, match=r"keep=1.0 must be in \[0, 1\)"):
        C.remove_outcome(src, src, keep=1.0)
    with pytest.raises(ValueError, match="min_request=1.0 must be > 1"):
        C.zoom_outcome(src, src, src, min_request=1.0)
    with pytest.raises(ValueError, match=r"threshold=0 must be in \(0, 1\]"):
        C.layout_outcome(src, src, threshold=0)
    with pytest.raises(ValueError, match="min_area=0 must be >= 1"):
        C.measurable(src, min_area=0)
