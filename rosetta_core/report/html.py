"""``report/index.html``: a run's concept dictionary as one self-contained page (DESIGN §4).

The page opens from disk with no server: CSS is inline, every picture is a base64 PNG data
URI, and there is no script. It holds

- a summary: counts (concepts, Rosetta units, best buddies and constant units per model pair,
  the shuffled null), best buddies by layer depth (generator layer x encoder layer) for every
  encoder, histograms of best-buddy correlations against the shuffled null, and what the run's
  centring means;
- one section per concept (by id, at most ``max_concepts``): one row per model, generator
  first, with the unit's activation map upsampled bilinearly and laid over the *same* example
  images (paper Figs. 2-3), the unit's name (model / layer / channel) and its correlation.

Only the example images' rows of the needed layers are read from the store, one read per layer.
"""

from __future__ import annotations

import os
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..matching.buddies import best_buddies
from ..run import location
from ..run.run import Run
from . import figures
from . import checks as concept_checks
from . import ground_truth as truth

__all__ = ["EXAMPLES", "MAX_CONCEPTS", "TILE", "depth_matrix", "render_report", "short_layer_names"]

#: concepts shown on the page (ordered by id); the rest are only in dictionary.json
MAX_CONCEPTS = 40
#: example images shown per concept
EXAMPLES = 6
#: longest side of a heatmap tile in pixels; larger images are scaled down to it
TILE = 128

_TRUE_COLOR = (58, 110, 190)
_NULL_COLOR = (220, 90, 40)


from ._parts import (
    _centring_html,
    _Row,
    _check_int,
    _load,
    depth_matrix,
    short_layer_names,
    _encoders,
    _rows,
    _Maps,
    _fmt,
    _stat,
    _unit_name,
    _CSS,
)


class _Page:
    def __init__(self, run: Run, content: dict[str, Any], max_concepts: int, examples: int, tile: int):
        self.run, self.content = run, content
        self.max_concepts, self.examples, self.tile = max_concepts, examples, tile
        cfg = content["run"]
        # the anchor: the generator, or an image run's anchor encoder; the other models are "encoders"
        self.generator: str = content.get("anchor") or cfg.get("generator") or next(iter(content["models"]))
        self.word = "generator" if cfg.get("generator") else "anchor"
        self.files = run.sources() if cfg.get("images") else None
        self.encoders = [m for m in _encoders(content) if m != self.generator]
        self.n = cfg.get("n") if cfg.get("n") is not None else run.plan.n  # an image run: every readable file
        self.k = int(cfg.get("k", 5))
        self.tables = {e: t for e in self.encoders if (t := run.table(self.generator, e)) is not None}
        self._image_uris: dict[int, str] = {}

    # -- summary --------------------------------------------------------------------------
    def _cards(self) -> str:
        c, models = self.content, self.content["models"]
        cfg = c["run"]
        cards = [
            ("concepts", "concepts", len(c["concepts"])),
            ("rosetta_units", f"Rosetta units ({self.word})", c["rosetta_units"]),
            ("generator_units", f"{self.word} units", int(sum(l["units"] for l in models.get(self.generator, [])))),
            ("encoders", "encoders", len(self.encoders)),
            ("n", "images", self.n),
            ("k", "K (best buddies)", cfg.get("k")),
            ("center", "centring", cfg.get("center")),
        ]
        items = "".join(
            f'<dl class="stat"><dt>{escape(label)}</dt>{_stat(key, value, "dd")}</dl>' for key, label, value in cards
        )
        return f'<div class="cards">{items}</div>'

    def _pairs_table(self) -> str:
        pairs, null = self.content["pairs"], self.content["null"]
        head = (
            "<tr><th scope=\"col\" class=\"left\">pair (A ↔ B)</th><th scope=\"col\">best buddies</th>"
            "<th scope=\"col\">mean r</th><th scope=\"col\">constant units A</th><th scope=\"col\">constant units B</th>"
            "<th scope=\"col\">null best buddies</th><th scope=\"col\">null mean r</th></tr>"
        )
        body = []
        for key, s in pairs.items():
            a, _, b = key.partition("__")
            n = null.get(key)
            cells = [
                f'<th scope="row">{escape(a)} ↔ {escape(b)}</th>',
                _stat(f"pairs/{key}/best_buddies", s["best_buddies"]),
                _stat(f"pairs/{key}/mean_correlation", s["mean_correlation"]),
                _stat(f"pairs/{key}/constant_units_a", s["constant_units_a"]),
                _stat(f"pairs/{key}/constant_units_b", s["constant_units_b"]),
                _stat(f"null/{key}/best_buddies", n["best_buddies"]) if n else "<td>–</td>",
                _stat(f"null/{key}/mean_correlation", n["mean_correlation"]) if n else "<td>–</td>",
            ]
            body.append("<tr>" + "".join(cells) + "</tr>")
        for key, n in null.items():
            if key not in pairs:
                a, _, b = key.partition("__")
                body.append(
                    f'<tr><th scope="row">{escape(a)} ↔ {escape(b)}</th><td>–</td><td>–</td><td>–</td><td>–</td>'
                    + _stat(f"null/{key}/best_buddies", n["best_buddies"])
                    + _stat(f"null/{key}/mean_correlation", n["mean_correlation"])
                    + "</tr>"
                )
        return (
            '<table class="pairs"><caption class="note">Best buddies: mutual top-K matches of the '
            "correlation table (constant units are never matched); the null pair is the same pair "
            "with one model's image order shuffled.</caption>"
            f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
        )

    def _depth_tables(self) -> str:
        models = self.content["models"]
        gen_layers = models.get(self.generator, [])
        gen_short, gen_pattern = short_layer_names([l["layer"] for l in gen_layers])
        parts = []
        for enc in self.encoders:
            if enc not in self.content["best_buddies"] or enc not in models:
                continue
            enc_layers = models[enc]
            enc_short, enc_pattern = short_layer_names([l["layer"] for l in enc_layers])
            counts = depth_matrix(np.asarray(self.content["best_buddies"][enc]), gen_layers, enc_layers)
            top = max(int(counts.max()) if counts.size else 0, 1)
            head = "".join(
                f'<th scope="col" title="{escape(l["layer"])}">{escape(short)}</th>' for l, short in zip(enc_layers, enc_short)
            )
            rows = []
            for i, (gl, short) in enumerate(zip(gen_layers, gen_short)):
                cells = []
                for j, el in enumerate(enc_layers):
                    v = int(counts[i, j])
                    alpha = v / top
                    color = "#fff" if alpha > 0.55 else "inherit"
                    style = f' style="background:rgba(106,44,145,{alpha:.2f});color:{color}"'
                    cells.append(_stat(f"depth/{enc}/{gl['layer']}/{el['layer']}", v, extra=style))
                rows.append(f'<tr><th scope="row" title="{escape(gl["layer"])}">{escape(short)}</th>{"".join(cells)}</tr>')
            names = [f"rows {escape(gen_pattern)}" if gen_pattern else "", f"columns {escape(enc_pattern)}" if enc_pattern else ""]
            names = "; ".join(n for n in names if n)
            parts.append(
                f'<figure class="panel"><figcaption>{escape(self.generator)} (rows) × {escape(enc)} (columns): '
                f'{int(counts.sum())} best buddies</figcaption>'
                f'<table class="depth"><thead><tr><th scope="col" class="left">layer</th>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>"
                + (f'<p class="note">Layer names: {names}.</p>' if names else "")
                + "</figure>"
            )
        return f'<div class="panels small">{"".join(parts)}</div>'

    def _histograms(self) -> tuple[str, float | None, float | None, str | None]:
        parts, null_stats = [], (None, None, None)
        for enc in self.encoders:
            table = self.tables.get(enc)
            if table is None:
                continue
            key = self.run.pair_name(self.generator, enc)
            bb = np.asarray(self.content["best_buddies"].get(enc, []), dtype=np.int64).reshape(-1, 2)
            true = table[bb[:, 0], bb[:, 1]] if len(bb) else np.zeros(0, dtype=np.float32)
            series = [figures.Series("best buddies", true, _TRUE_COLOR, filled=True)]
            null_table = self.run.table(self.generator, enc, null=True)
            note = "no shuffled null was computed for this pair"
            if null_table is not None:
                k_a, k_b = min(self.k, null_table.shape[1]), min(self.k, null_table.shape[0])
                nb = best_buddies(null_table, k_a, k_b)
                null = null_table[nb[:, 0], nb[:, 1]] if len(nb) else np.zeros(0, dtype=np.float32)
                series.append(figures.Series("shuffled null", null, _NULL_COLOR, filled=False))
                note = (
                    f"null: best buddies of <code>{escape(self.run.correlation_key(self.generator, enc, null=True))}</code> (K={self.k}), "
                    f"<span data-stat=\"hist/{escape(key)}/null_count\">{len(null)}</span> pairs"
                )
                if null_stats[0] is None:
                    null_stats = (
                        float(true.mean()) if len(true) else None,
                        float(null.mean()) if len(null) else None,
                        key,
                    )
            values = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
            lo = min(-0.25, float(np.floor(values.min() * 4) / 4)) if values.size else -0.25
            png = figures.histogram_png(series, lo=lo, hi=1.0, bins=int(round((1.0 - lo) / 0.05)))
            alt = (
                f"Histogram of the correlations of the {len(true)} best buddies of {self.generator} and {enc}"
                + (f" against {len(series[1].values)} best buddies of the shuffled null" if len(series) > 1 else "")
            )
            parts.append(
                f'<figure class="panel"><figcaption>{escape(self.generator)} ↔ {escape(enc)}</figcaption>'
                f'<img src="{figures.data_uri(png)}" width="420" height="220" alt="{escape(alt)}">'
                f'<p class="note"><span data-stat="hist/{escape(key)}/count">{len(true)}</span> best buddies; {note}.</p>'
                "</figure>"
            )
        return f'<div class="panels">{"".join(parts)}</div>', *null_stats

    # -- concepts -------------------------------------------------------------------------
    def _image_name(self, image: int) -> str:
        return f"Generated image {image}" if self.files is None else f"Image {image} ({self.files[image]})"

    def _caption(self, image: int) -> str:
        if self.files is None:
            return f"#{image}"
        name = self.files[image]
        short = name.rsplit("/", 1)[-1]
        short = short if len(short) <= 14 else "…" + short[-13:]  # the end tells files apart (scene_00012.png)
        return f'#{image} <span class="file" title="{escape(name)}">{escape(short)}</span>'

    def _image_uri(self, maps: _Maps, tiles: np.ndarray, image: int) -> str:
        if image not in self._image_uris:
            self._image_uris[image] = figures.data_uri(figures.png_bytes(tiles[maps.pos[image]]))
        return self._image_uris[image]

    def _concept(self, concept: dict[str, Any], rows: list[_Row], maps: _Maps, tiles: np.ndarray) -> str:
        cid = int(concept["id"])
        shown = [int(i) for i in concept["examples"][: self.examples]]
        gens = concept["anchor_units"]
        head = (
            f'<h3>Concept {cid}</h3><p class="r">mean correlation <span data-stat="concept/{cid}/mean_correlation">'
            f'{concept["mean_correlation"]:.3f}</span> · {len(gens)} {self.word} unit{"s" if len(gens) != 1 else ""} · '
            f"{sum(len(v) for v in concept['members'].values())} encoder units · "
            + (f"images {', '.join(str(i) for i in shown)}" if shown else "no example images recorded")
            + "</p>"
        )
        source = "generated by the generator" if self.files is None else "from the dataset"
        cells: list = [f'<div class="label"><b>example images</b>{source}</div>']
        pending: list[np.ndarray] = []  # heatmap tiles, encoded together on a few threads
        height, width = tiles.shape[-2:] if len(tiles) else (1, 1)
        for img in shown:
            cells.append(
                f'<figure><img src="{self._image_uri(maps, tiles, img)}" width="{width}" height="{height}" '
                f'alt="{self._image_name(img)}" data-image="{img}"><figcaption>{self._caption(img)}</figcaption></figure>'
            )
        if not shown:
            cells.append('<div class="empty">no example images</div>')
        for row in rows:
            u = row.unit
            more = len(row.members) - 1
            corr = (
                f'<span class="r">r = {u["correlation"]:.3f}</span>'
                if row.role == "encoder" and u.get("correlation") is not None
                else f'<span class="r">{self.word} unit</span>'
            )
            extra = f'<br><span class="r">+{more} more unit{"s" if more != 1 else ""}</span>' if more > 0 else ""
            cells.append(
                f'<div class="label{" gen" if row.role == "generator" else ""}"><b>{escape(row.model)}</b>'
                f'{escape(u["layer"])} / ch {int(u["channel"])}<br>{corr}{extra}</div>'
            )
            if not shown:
                cells.append('<div class="empty">–</div>')
                continue
            raw = maps.unit(row.model, u["layer"], int(u["channel"]), shown)
            heat, lo, hi = figures.normalize(raw)
            up = figures.upsample(heat, (height, width))
            over = figures.overlay(tiles[[maps.pos[img] for img in shown]], up)
            for j, img in enumerate(shown):
                alt = f"Activation of {_unit_name(row.model, u)} over {self._image_name(img).lower()}"
                pending.append(over[j])
                cells.append(
                    (
                        len(pending) - 1,
                        f'" width="{width}" height="{height}" '
                        f'alt="{escape(alt)}" title="{escape(alt)}; scale {lo:.3g} to {hi:.3g}" '
                        f'data-model="{escape(row.model)}" data-layer="{escape(u["layer"])}" '
                        f'data-channel="{int(u["channel"])}" data-image="{img}">',
                    )
                )
        pngs = figures.png_many(pending)
        cells = [c if isinstance(c, str) else f'<img src="{figures.data_uri(pngs[c[0]])}{c[1]}' for c in cells]
        members = []
        for row in rows:
            for m in row.members:
                mark = " (shown)" if m is row.unit else ""
                members.append(
                    f'<tr><td class="left">{escape(row.model)}{mark}</td><td class="left">{escape(m["layer"])}</td>'
                    f'<td>{int(m["channel"])}</td><td>{int(m["unit"])}</td><td>{_fmt(m.get("correlation"))}</td></tr>'
                )
        details = (
            f"<details><summary>All {len(members)} member units</summary><table><thead><tr>"
            '<th scope="col" class="left">model</th><th scope="col" class="left">layer</th><th scope="col">channel</th>'
            '<th scope="col">unit</th><th scope="col">r</th></tr></thead>'
            f"<tbody>{''.join(members)}</tbody></table></details>"
        )
        return (
            f'<article class="concept" id="concept-{cid}" data-concept="{cid}">{head}{truth.concept_html(concept)}{concept_checks.concept_html(concept)}'
            f'<div class="rows" style="--k:{max(len(shown), 1)}">{"".join(cells)}</div>{details}</article>'
        )

    def _concepts(self) -> str:
        concepts = sorted(self.content["concepts"], key=lambda c: int(c["id"]))
        shown = concepts[: self.max_concepts]
        plans = [(c, _rows(c, self.generator, self.encoders, self.tables)) for c in shown]
        needs: dict[tuple[str, str], set[int]] = defaultdict(set)
        images: set[int] = set()
        for c, rows in plans:
            images.update(int(i) for i in c["examples"][: self.examples])
            for row in rows:
                needs[(row.model, row.unit["layer"])].add(int(row.unit["channel"]))
        maps = _Maps(self.run, images, needs)
        tiles = figures.tile_images(maps.pixels, self.tile) if len(maps.images) else maps.pixels
        note = ""
        if len(concepts) > len(shown):
            note = (
                f'<p class="note" data-stat="concepts_hidden">Showing the first {len(shown)} of '
                f"{len(concepts)} concepts (by id); all of them are in <code>dictionary.json</code>.</p>"
            )
        index = "".join(f'<a href="#concept-{int(c["id"])}">{int(c["id"])}</a>' for c in shown)
        colorbar = figures.data_uri(figures.colorbar_png())
        legend = (
            '<div class="legend"><span>unit\'s lowest value on the images shown</span>'
            f'<img src="{colorbar}" width="240" height="14" alt="Colour scale from dark purple (low) to yellow (high)">'
            "<span>highest</span></div>"
        )
        body = "".join(self._concept(c, rows, maps, tiles) for c, rows in plans)
        if not concepts:
            body = f'<p class="note">This run has no concepts: no {self.word} unit had a best buddy in every other model.</p>'
        return (
            '<section id="concepts"><h2>Concepts</h2>'
            f"<p>Each concept is a cluster of {self.word} units that are best buddies of each other, "
            "together with their best buddies in every other model (paper Eq. 3-4). One row per model, "
            f"{self.word} first: the unit shown is the member best correlated with the {self.word} "
            f"(r = its highest Pearson correlation with one of the concept's {self.word} units); every row shows "
            f"the same example images, those where the concept's {self.word} units fire most. "
            "Heatmaps: the unit's activation map upsampled bilinearly to the image and scaled "
            "jointly over the examples shown, laid over the dimmed image.</p>"
            f"{legend}{note}<nav class=\"index\" aria-label=\"Concepts\">{index}</nav>"
            f'<div class="concepts">{body}</div></section>'
        )

    # -- page -----------------------------------------------------------------------------
    def html(self) -> str:
        cfg = self.content["run"]
        hist, true_mean, null_mean, null_pair = self._histograms()
        concepts = self._concepts()
        title = f"Rosetta Neurons: {self.run.name}"
        meta = (
            (f"images <code>{escape(str(cfg.get('images')))}</code> · " if self.files is not None else "")
            + f"{self.word} <code>{escape(self.generator)}</code> · {'encoders' if self.files is None else 'other encoders'} "
            + ", ".join(f"<code>{escape(e)}</code>" for e in self.encoders)
            + f" · n = {self.n} images · K = {self.k} · centring {escape(str(cfg.get('center')))}"
            + f" · weights {escape(str(cfg.get('weights', '?')))} · seed {escape(str(cfg.get('seed', '?')))}"
        )
        summary = (
            '<section id="summary"><h2>Summary</h2>'
            f"{self._cards()}<h3 style=\"margin-top:14px\">Model pairs</h3>{self._pairs_table()}"
            f"<h3 style=\"margin-top:14px\">Centring</h3>{_centring_html(str(cfg.get('center')), true_mean, null_mean, null_pair)}"
            "<h3 style=\"margin-top:14px\">Best buddies by layer depth</h3>"
            f'<p class="note">Count of best-buddy pairs per {self.word} layer (rows, shallow to deep) and '
            "layer of the other model (columns, shallow to deep).</p>"
            f"{self._depth_tables()}"
            "<h3 style=\"margin-top:14px\">Best-buddy correlations against the shuffled null</h3>"
            '<p class="note">Filled bars: Pearson correlation of every best-buddy pair. Orange outline: '
            "best buddies of the same pair after one model's image order was shuffled (what chance "
            "and shared layout alone give).</p>"
            f"{hist}{truth.summary_html(self.content)}{concept_checks.summary_html(self.content)}</section>"
        )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{escape(title)}</h1><p class=\"meta\">{meta}</p></header>\n"
            f"<main>\n{summary}\n{concepts}\n</main>\n"
            f"<footer>Schema {escape(str(self.content.get('schema')))} · code version "
            f"{escape(str(cfg.get('code_version', '?')))} · written from <code>dictionary.json</code> and "
            "<code>store.zarr</code> of this run.</footer>\n</body>\n</html>\n"
        )


def render_report(
    run_dir: str | os.PathLike,
    max_concepts: int = MAX_CONCEPTS,
    examples: int = EXAMPLES,
    tile: int = TILE,
) -> Path | str:
    """Write ``<run_dir>/report/index.html`` from the run's dictionary and store; return its path
    (a URL when ``run_dir`` is one: the page is uploaded there, see :func:`location.view_url`).

    ``max_concepts``: concepts shown (by id); ``examples``: example images per concept (the
    dictionary keeps up to 8); ``tile``: longest side of a heatmap in pixels (images larger
    than this are scaled down). The page is self-contained: it opens from disk.
    """
    max_concepts = _check_int("max_concepts", max_concepts, 1)
    examples = _check_int("examples", examples, 1, 8)
    tile = _check_int("tile", tile, 16, 1024)
    run, content = _load(run_dir)
    page = _Page(run, content, max_concepts, examples, tile).html()
    out = run.report_path
    location.write_text(out, page, content_type="text/html; charset=utf-8")
    return out if location.is_url(out) else Path(out)
