"""The HTML report on a tiny hand-made run: page structure, summary numbers, heatmaps."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rosetta_core import best_buddies, comoments
from rosetta_core.matching.dictionary import build_dictionary, pair_summary, validate_dictionary
from rosetta_core.report import depth_matrix, figures, render_report
from rosetta_core.run.run import Run
from rosetta_core.run.store import RunStore

pytestmark = pytest.mark.unit

GEN = "gen"
LAYERS = {
    GEN: [("g1", (4, 4, 4)), ("g2", (3, 8, 8))],
    "encA": [("a1", (5, 8, 8)), ("a2", (4, 4, 4))],
    "encB": [("b1", (3, 16, 16))],
}
SIDE = 32



def _write_table(store: RunStore, a: str, b: str | None, table: np.ndarray, null: bool = False) -> None:
    store.write_variables(Run.pair_group(a, b, null), {"correlation": (("unit_a", "unit_b"), table)})

def _blob(grid: tuple[int, int], centre: np.ndarray, width: float) -> np.ndarray:
    """A Gaussian bump ``(h, w)`` at ``centre`` (x, y in [0, 1]) on a grid of cell centres."""
    h, w = grid
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    return np.exp(-((xs[None] - centre[0]) ** 2 + (ys[:, None] - centre[1]) ** 2) / (2 * width**2))


def build_tiny_run(run: Path, n: int = 24, k: int = 2, images: str = "shapes", seed: int = 0) -> dict:
    """A run directory like a mining run's, made without models, in well under a second.

    Every layer's channel 0 follows a blob at ``centre1`` of each image and channel 1 a blob at
    ``centre2``; the other channels are noise. So channel 0 of every layer of every model is one
    concept, channel 1 another. ``images="gray"``: flat mid-gray images; ``"shapes"``: a disc and
    a square where the blobs are. Returns the dictionary content.
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.15, 0.85, size=(2, n, 2))
    acts = {}
    for model, layers in LAYERS.items():
        acts[model] = []
        for _, (units, h, w) in layers:
            x = np.maximum(rng.normal(0.0, 0.15, size=(n, units, h, w)), 0.0)
            for c in range(2):
                x[:, c] += np.stack([_blob((h, w), centres[c, i], 0.12) for i in range(n)])
            acts[model].append(x.astype(np.float32))
    if images == "gray":
        pix = np.full((n, 3, SIDE, SIDE), 128, dtype=np.uint8)
    else:
        yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
        base = np.stack([0.3 + 0.4 * xx, 0.35 + 0.3 * yy, 0.6 - 0.3 * xx], axis=0)[None] * np.ones((n, 1, 1, 1))
        for i in range(n):
            disc = (xx - centres[0, i, 0]) ** 2 + (yy - centres[0, i, 1]) ** 2 < 0.12**2
            square = (abs(xx - centres[1, i, 0]) < 0.1) & (abs(yy - centres[1, i, 1]) < 0.1)
            base[i][:, disc] = np.array([0.95, 0.85, 0.2])[:, None]
            base[i][:, square] = np.array([0.2, 0.7, 0.3])[:, None]
        pix = np.clip(base * 255, 0, 255).astype(np.uint8)

    store = RunStore(str(run / "store.zarr"), mode="w")
    store.require("images", pix.shape, (8, *pix.shape[1:]), "uint8", ["image", "rgb", "height", "width"])[...] = pix
    for model, layers in LAYERS.items():
        for (layer, shape), x in zip(layers, acts[model]):
            arr = store.require(Run.maps_key(model, layer), x.shape, (8, *shape), "float16", ["image", "unit", "y", "x"])
            arr[...] = x.astype(np.float16)
    stored = {m: [np.asarray(store.array(Run.maps_key(m, l))[...], dtype=np.float32) for l, _ in ls] for m, ls in LAYERS.items()}

    encoders = [m for m in LAYERS if m != GEN]
    tables, pairs, null = {}, {}, {}
    for enc in encoders:
        acc = comoments(stored[GEN], stored[enc])
        tables[enc] = acc.pearson()
        _write_table(store, GEN, enc, tables[enc])
        bb = best_buddies(tables[enc], k, k)
        pairs[Run.pair_name(GEN, enc)] = pair_summary(tables[enc], bb, *acc.constant_units())
    gg = comoments(stored[GEN], None)
    self_t = gg.pearson()
    _write_table(store, GEN, None, self_t)
    dead, _ = gg.constant_units()
    pairs[Run.pair_name(GEN)] = pair_summary(self_t, best_buddies(self_t, k, k, exclude_diagonal=True), dead, dead)
    perm = rng.permutation(n)
    shuffled = comoments(stored[GEN], [x[perm] for x in stored[encoders[0]]])
    null_t = shuffled.pearson()
    _write_table(store, GEN, encoders[0], null_t, null=True)
    null[Run.pair_name(GEN, encoders[0])] = pair_summary(null_t, best_buddies(null_t, k, k), *shuffled.constant_units())

    peaks = np.concatenate([x.max(axis=(2, 3)) for x in stored[GEN]], axis=1)
    top = np.argsort(-peaks, axis=0, kind="stable")[:6]
    config = {"generator": GEN, "encoders": encoders, "n": n, "k": k, "seed": seed, "center": "global", "weights": "synthetic"}
    content, _ = build_dictionary(
        config, LAYERS, GEN, tables, self_t, k, examples={u: top[:, u].tolist() for u in range(peaks.shape[1])}
    )
    content["pairs"], content["null"] = pairs, null
    validate_dictionary(content)
    (run / "dictionary.json").write_text(json.dumps(content))
    return content


# -- parsing the page ----------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[dict] = []
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.stats: dict[str, str] = {}
        self.articles: list[str] = []
        self._stat: str | None = None
        self._text: list[str] = []
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a)
        if tag == "article":
            self.articles.append(a.get("data-concept"))
        if "data-stat" in a and tag != "img":
            self._stat, self._text = a["data-stat"], []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag for void element {tag}")
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if self._stat is not None:
            self.stats[self._stat] = "".join(self._text).strip()
            self._stat = None

    def handle_data(self, data):
        if self._stat is not None:
            self._text.append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _copy(run: Path, tmp_path: Path) -> Path:
    """A copy of a run, so that re-rendering it leaves the shared fixture's page alone."""
    shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("report"))
    return tmp_path / "run"


def decode(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,"), src[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    content = build_tiny_run(run)
    return run, content, render_report(run)


# -- tests -----------------------------------------------------------------------------------------


def test_page_is_written_with_one_section_per_concept(tiny):
    run, content, path = tiny
    assert path == run / "report" / "index.html" and path.is_file()
    page = parse(path)
    assert content["concepts"], "the tiny run should yield concepts"
    assert page.articles == [str(c["id"]) for c in sorted(content["concepts"], key=lambda c: c["id"])]


def test_page_is_wellformed_and_self_contained(tiny):
    _, _, path = tiny
    text = path.read_text(encoding="utf-8")
    page = parse(path)
    assert page.doctype and page.doctype.lower() == "doctype html"
    assert not page.errors and not page.stack, (page.errors, page.stack)
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text), "a non-inline resource"
    assert "url(" not in text and "@import" not in text
    assert re.search(r'<html lang="en">', text) and '<meta charset="utf-8">' in text
    for img in page.imgs:
        assert img.get("alt"), img.get("src", "")[:60]


def test_summary_numbers_equal_the_dictionary(tiny):
    _, content, path = tiny
    stats = parse(path).stats
    assert int(stats["concepts"]) == len(content["concepts"])
    assert int(stats["rosetta_units"]) == content["rosetta_units"]
    for group in ("pairs", "null"):
        for key, summary in content[group].items():
            assert content[group], group
            for field in ("best_buddies", "constant_units_a", "constant_units_b") if group == "pairs" else ("best_buddies",):
                assert int(stats[f"{group}/{key}/{field}"]) == summary[field], (group, key, field)
            assert float(stats[f"{group}/{key}/mean_correlation"]) == pytest.approx(summary["mean_correlation"], abs=5e-4)
    # the null histogram recomputes the shuffled table's best buddies: same count as the run's
    for key, summary in content["null"].items():
        assert int(stats[f"hist/{key}/null_count"]) == summary["best_buddies"]
    # best buddies by layer depth add up to the pair's best buddies and match a recount
    for enc, bb in content["best_buddies"].items():
        assert int(stats[f"hist/{GEN}__{enc}/count"]) == len(bb)
        total = 0
        for gl, _ in LAYERS[GEN]:
            for el, _ in LAYERS[enc]:
                total += int(stats[f"depth/{enc}/{gl}/{el}"])
        assert total == len(bb) == content["pairs"][f"{GEN}__{enc}"]["best_buddies"]


def test_depth_matrix_counts_pairs_by_layer():
    gen = [{"layer": "x", "units": 2}, {"layer": "y", "units": 3}]
    enc = [{"layer": "p", "units": 1}, {"layer": "q", "units": 4}]
    bb = np.array([[0, 0], [1, 1], [2, 4], [4, 0], [4, 2], [3, 3]])
    np.testing.assert_array_equal(depth_matrix(bb, gen, enc), [[1, 1], [1, 3]])
    assert depth_matrix(np.zeros((0, 2)), gen, enc).sum() == 0


def test_images_decode_at_the_expected_size(tiny):
    run, content, path = tiny
    page = parse(path)
    heat = [i for i in page.imgs if "data-model" in i]
    n_rows = 1 + len(content["run"]["encoders"])
    assert len(heat) == sum(n_rows * min(6, len(c["examples"])) for c in content["concepts"])
    for img in page.imgs:
        pixels = decode(img["src"])  # plots are drawn at 2x for sharp text
        scale = pixels.shape[0] // int(img["height"])
        assert scale >= 1 and pixels.shape[:2] == (scale * int(img["height"]), scale * int(img["width"]))
    for img in heat:
        assert decode(img["src"]).shape == (SIDE, SIDE, 3)


def test_smaller_tile_scales_the_images_down(tiny, tmp_path):
    run = _copy(tiny[0], tmp_path)
    small = parse(render_report(run, tile=16))
    assert all(decode(i["src"]).shape == (16, 16, 3) for i in small.imgs if "data-model" in i)


def test_heatmap_peaks_where_the_unit_map_peaks(tmp_path):
    content = build_tiny_run(tmp_path, images="gray", seed=3)
    page = parse(render_report(tmp_path))
    store = RunStore(str(tmp_path / "store.zarr"), mode="r")
    tiles = [i for i in page.imgs if "data-model" in i]
    assert tiles
    by_row: dict[tuple, list[dict]] = {}
    for img in tiles:
        by_row.setdefault((img["data-model"], img["data-layer"], img["data-channel"]), []).append(img)
    checked = 0
    for (model, layer, channel), imgs in by_row.items():
        arr = store.array(Run.maps_key(model, layer))
        maps = {int(i["data-image"]): np.asarray(arr[int(i["data-image"]), int(channel)], dtype=np.float32) for i in imgs}
        # the image where this unit fires most is drawn with the top of the colour scale
        best = max(maps, key=lambda i: maps[i].max())
        tile = decode(next(i["src"] for i in imgs if int(i["data-image"]) == best)).astype(int)
        h, w = maps[best].shape
        r, c = np.unravel_index(np.argmax(maps[best]), (h, w))
        y, x = np.unravel_index(np.argmax(tile.sum(axis=2)), tile.shape[:2])
        assert r * SIDE // h <= y < (r + 1) * SIDE // h and c * SIDE // w <= x < (c + 1) * SIDE // w, (model, layer, channel)
        # and a tile is hottest, on a flat gray image, exactly where the map is (colour map order)
        assert tile[y, x].sum() > tile.sum(axis=2).mean() + 150
        checked += 1
    assert checked == len(by_row) >= 1 + len(content["run"]["encoders"])


def test_concept_cap_and_note(tiny, tmp_path):
    content = tiny[1]
    run = _copy(tiny[0], tmp_path)
    assert len(content["concepts"]) >= 2, "the tiny run should have two concepts"
    page = parse(render_report(run, max_concepts=1))
    assert page.articles == [str(min(c["id"] for c in content["concepts"]))]
    assert "concepts_hidden" in page.stats


def test_figures_upsample_normalize_overlay():
    m = np.zeros((4, 4), dtype=np.float32)
    m[1, 2] = 1.0
    up = figures.upsample(m, (32, 32))
    y, x = np.unravel_index(np.argmax(up), up.shape)
    assert 8 <= y < 16 and 16 <= x < 24
    np.testing.assert_allclose(figures.upsample(np.full((3, 5), 2.0), (7, 9)), 2.0, atol=1e-6)
    scaled, lo, hi = figures.normalize(np.stack([m, 2 * m]))
    assert (lo, hi) == (0.0, 2.0) and scaled.max() == 1.0 and scaled[0].max() == 0.5
    assert figures.normalize(np.ones((2, 3, 3)))[0].max() == 0.0
    # colour map luminance rises from 0 to 1, so hotter means brighter
    lum = figures.colormap(np.linspace(0, 1, 50)).astype(float) @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(lum) > 0)
    gray = np.full((3, 32, 32), 128, dtype=np.uint8)
    out = figures.overlay(gray, figures.upsample(m, (32, 32)))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="heat has shape"):
        figures.overlay(gray, np.zeros((8, 8)))
    hist = figures.histogram_png([figures.Series("a", np.array([0.1, 0.5]), (0, 0, 255))], size=(200, 100), scale=1)
    assert Image.open(io.BytesIO(hist)).size == (200, 100)


def test_bad_arguments_and_missing_run(tmp_path, tiny):
    run, _, _ = tiny
    with pytest.raises(ValueError, match="is not a mining run: it has no store.zarr"):
        render_report(tmp_path)
    (tmp_path / "dictionary.json").unlink(missing_ok=True)
    shutil.copytree(run / "store.zarr", tmp_path / "store.zarr")
    with pytest.raises(ValueError, match="dictionary.json does not exist"):
        render_report(tmp_path)
    with pytest.raises(ValueError, match="max_concepts=0"):
        render_report(run, max_concepts=0)
    with pytest.raises(TypeError, match="examples"):
        render_report(run, examples=2.5)


def test_short_layer_names_drop_the_shared_dotted_parts():
    from rosetta_core.report.html import short_layer_names

    assert short_layer_names(["blocks.0.mlp.act", "blocks.1.mlp.act"]) == (["0", "1"], "blocks.*.mlp.act")
    assert short_layer_names(["visual.layer1", "visual.layer2"]) == (["layer1", "layer2"], "visual.*")
    assert short_layer_names(["layer1", "layer2"]) == (["layer1", "layer2"], "")
    assert short_layer_names(["block1"]) == (["block1"], "")


def test_a_run_without_concepts_still_gets_a_page(tiny, tmp_path):
    run = _copy(tiny[0], tmp_path)
    content = json.loads((run / "dictionary.json").read_text())
    content["concepts"], content["rosetta_units"] = [], 0
    (run / "dictionary.json").write_text(json.dumps(content))
    page = parse(render_report(run))
    assert page.articles == [] and page.stats["concepts"] == "0"
    assert not page.errors and not page.stack
