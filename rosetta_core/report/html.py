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

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..dictionary import validate_dictionary
from ..matching import best_buddies
from ..store import RunStore, pair_key
from . import figures

__all__ = ["EXAMPLES", "MAX_CONCEPTS", "NULL_TAG", "TILE", "depth_matrix", "render_report", "short_layer_names"]

#: concepts shown on the page (ordered by id); the rest are only in dictionary.json
MAX_CONCEPTS = 40
#: example images shown per concept
EXAMPLES = 6
#: longest side of a heatmap tile in pixels; larger images are scaled down to it
TILE = 128
#: suffix of the shuffled null's table keys (the same as ``rosetta_core.results.NULL_TAG``;
#: repeated here so that rendering a report does not import torch)
NULL_TAG = "__shuffled"

_TRUE_COLOR = (58, 110, 190)
_NULL_COLOR = (220, 90, 40)


# -- reading the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One row of a concept: the unit shown for ``model`` and every member unit of it."""

    model: str
    role: str  # "generator" or "encoder"
    unit: dict[str, Any]
    members: list[dict[str, Any]]


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}={value!r} must be an int")
    if value < lo or (hi is not None and value > hi):
        valid = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value} is out of range; valid: {valid}")
    return int(value)


def _load(run: Path) -> tuple[dict[str, Any], RunStore]:
    path = run / "dictionary.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run the mining flow up to the dictionary step first")
    content = json.loads(path.read_text(encoding="utf-8"))
    validate_dictionary(content)
    store_path = run / "store.zarr"
    if not store_path.exists():
        raise ValueError(f"{store_path} does not exist: {run} is not a mining run directory")
    store = RunStore(str(store_path), mode="r")
    if "images" not in store:
        raise ValueError(f"{store_path} has no 'images' array: the run's generate step has not run")
    return content, store


def _activation_key(model: str, layer: str) -> str:
    return f"activations/{model}/{layer}"  # the layout of rosetta_core.store (RunPlan.activation_key)


def _table(store: RunStore, key: str) -> np.ndarray | None:
    full = f"correlation/{key}"
    return np.asarray(store.array(full)[...], dtype=np.float32) if full in store else None


def _offsets(layers: list[dict[str, Any]]) -> np.ndarray:
    """First global unit index of every layer, and the total, ``(layers + 1,)``."""
    return np.cumsum([0] + [int(entry["units"]) for entry in layers])


def depth_matrix(bb: np.ndarray, gen_layers: list[dict[str, Any]], enc_layers: list[dict[str, Any]]) -> np.ndarray:
    """Best-buddy counts ``(generator layers, encoder layers)`` of pairs ``(P, 2)`` of global units."""
    bb = np.asarray(bb, dtype=np.int64).reshape(-1, 2)
    rows = np.searchsorted(_offsets(gen_layers), bb[:, 0], side="right") - 1
    cols = np.searchsorted(_offsets(enc_layers), bb[:, 1], side="right") - 1
    out = np.zeros((len(gen_layers), len(enc_layers)), dtype=np.int64)
    np.add.at(out, (rows, cols), 1)
    return out


def short_layer_names(names: list[str]) -> tuple[list[str], str]:
    """Layer names without the dotted prefix and suffix they all share, and the pattern.

    ``["blocks.0.mlp.act", "blocks.1.mlp.act"]`` -> ``(["0", "1"], "blocks.*.mlp.act")``;
    names with nothing in common (or a single name) come back unchanged with pattern ``""``.
    """
    parts = [n.split(".") for n in names]
    if len(parts) < 2:
        return list(names), ""
    shortest = min(len(p) for p in parts)
    pre = 0
    while pre < shortest - 1 and len({p[pre] for p in parts}) == 1:
        pre += 1
    post = 0
    while post < shortest - 1 - pre and len({p[len(p) - 1 - post] for p in parts}) == 1:
        post += 1
    if pre == 0 and post == 0:
        return list(names), ""
    short = [".".join(p[pre : len(p) - post]) for p in parts]
    if len(set(short)) != len(short):
        return list(names), ""
    pattern = ".".join(parts[0][:pre] + ["*"] + (parts[0][len(parts[0]) - post :] if post else []))
    return short, pattern


def _encoders(content: dict[str, Any]) -> list[str]:
    listed = [e for e in content["run"].get("encoders", []) if e in content["models"]]
    rest = [m for m in content["best_buddies"] if m not in listed]
    return listed + rest


def _rows(concept: dict[str, Any], generator: str, encoders: list[str], tables: dict[str, np.ndarray]) -> list[_Row]:
    """Generator first, then each encoder; the unit shown is the best-correlated member."""

    def corr(u: dict[str, Any]) -> float:
        return -np.inf if u.get("correlation") is None else float(u["correlation"])

    reps = {}
    for enc in encoders:
        members = concept["members"].get(enc) or []
        if members:
            reps[enc] = max(members, key=corr)  # first of the highest

    def score(g: dict[str, Any]) -> float:
        vals = [float(tables[e][g["unit"], u["unit"]]) for e, u in reps.items() if e in tables]
        return float(np.mean(vals)) if vals else 0.0

    gens = concept["generator_units"]
    rows = [_Row(generator, "generator", max(gens, key=score), gens)] if gens else []
    rows += [_Row(e, "encoder", reps[e], concept["members"][e]) for e in encoders if e in reps]
    return rows


class _Maps:
    """Example images and the needed units' maps, read with one orthogonal read per layer."""

    def __init__(self, store: RunStore, images: Iterable[int], needs: dict[tuple[str, str], set[int]]):
        self.images = sorted({int(i) for i in images})
        self.pos = {img: i for i, img in enumerate(self.images)}
        self.maps: dict[tuple[str, str], tuple[np.ndarray, dict[int, int]]] = {}
        if not self.images:
            self.pixels = np.zeros((0, 3, 1, 1), dtype=np.uint8)
            return
        idx = np.asarray(self.images, dtype=np.int64)
        self.pixels = np.asarray(store.array("images").oindex[idx])
        for (model, layer), channels in sorted(needs.items()):
            chans = sorted(channels)
            data = store.array(_activation_key(model, layer)).oindex[idx, np.asarray(chans, dtype=np.int64)]
            self.maps[(model, layer)] = (np.asarray(data, dtype=np.float32), {c: i for i, c in enumerate(chans)})

    def unit(self, model: str, layer: str, channel: int, images: list[int]) -> np.ndarray:
        """``(len(images), h, w)`` maps of one unit on the given example images."""
        data, where = self.maps[(model, layer)]
        return data[[self.pos[i] for i in images], where[channel]]


# -- HTML pieces --------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _stat(key: str, value: Any, tag: str = "td", digits: int = 3, extra: str = "") -> str:
    return f'<{tag} data-stat="{escape(key)}"{extra}>{escape(_fmt(value, digits))}</{tag}>'


def _unit_name(model: str, unit: dict[str, Any]) -> str:
    return f"{model} / {unit['layer']} / ch {unit['channel']}"


_CSS = """
:root{--ink:#1d2430;--muted:#5b6472;--line:#d9dee6;--bg:#f5f6f8;--card:#fff;--accent:#6a2c91}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg)}
header,main,footer{max-width:1480px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:18px;margin:26px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:0 0 6px}
p{margin:6px 0;max-width:75em}
.meta,.note,.r{color:var(--muted)}
.note{font-size:12.5px}
code{font-size:12.5px;background:#eceef2;padding:0 3px;border-radius:3px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;margin:0}
.stat{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:7px 10px;margin:0}
.stat dt{color:var(--muted);font-size:12px}
.stat dd{margin:0;font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;background:var(--card);font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef0f4;font-weight:600}
th[scope=row],.left{text-align:left}
.panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(440px,100%),1fr));gap:12px}
.panels.small{grid-template-columns:repeat(auto-fill,minmax(min(330px,100%),1fr))}
.panel{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:0;overflow-x:auto;min-width:0}
.panel figcaption{font-weight:600;margin-bottom:6px}
.panel img{max-width:100%;height:auto}
.depth{font-size:12px}
.depth td{min-width:2.8em}
caption{caption-side:top;text-align:left;padding:0 0 4px}
.centring{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--accent);border-radius:6px;padding:8px 14px}
.warn{color:#a33}
nav.index{display:flex;flex-wrap:wrap;gap:4px;margin:6px 0 10px}
nav.index a{padding:1px 7px;border:1px solid var(--line);border-radius:10px;background:var(--card);color:var(--ink);text-decoration:none;font-size:12.5px}
.concepts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(640px,100%),1fr));gap:14px}
.concept{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;min-width:0}
.concept p{font-size:12.5px;margin:0 0 8px}
.rows{display:grid;grid-template-columns:11.5rem repeat(var(--k),minmax(40px,80px));gap:3px 4px;align-items:center}
.rows figure{margin:0}
.rows img{display:block;width:100%;height:auto;border-radius:2px}
.rows figcaption{font-size:11px;color:var(--muted);text-align:center}
.label{font-size:12px;line-height:1.25;padding-right:4px;overflow-wrap:anywhere}
.label b{display:block;font-size:12.5px}
.label.gen b{color:var(--accent)}
.empty{grid-column:2/-1;color:var(--muted);font-size:12px}
details{margin-top:8px;font-size:12px}
details table{font-size:12px;margin-top:4px}
.legend{display:flex;align-items:center;gap:8px;font-size:12.5px;color:var(--muted);margin:4px 0 10px}
.legend img{border:1px solid var(--line)}
footer{color:var(--muted);font-size:12px;padding-bottom:24px;margin-top:20px}
"""


def _centring_html(center: str, true_mean: float | None, null_mean: float | None, null_pair: str | None) -> str:
    if center == "position":
        used = (
            "<strong>position</strong> centring: at every position the unit's mean over all "
            "images is subtracted from its map before the Pearson correlation, so only how a unit "
            "varies <em>across images</em> at a place counts."
        )
    else:
        used = (
            "<strong>global</strong> centring (paper Eq. 1): one mean per unit, over all images "
            "and positions, is subtracted before the Pearson correlation."
        )
    out = [
        '<div class="centring" id="centring">',
        f"<p>This run used {used}</p>",
        "<p>Why position centring exists: with global centring, units that share only a layout "
        "prior (both fire near the image centre, or along the borders) still correlate when "
        "nothing in the images links them: even when one model's image order is shuffled, so "
        "that its maps belong to other images, such units come out as best buddies. Subtracting "
        "each position's mean over images removes that shared layout. Measured on this "
        "project's models, the shuffled null's best-buddy correlations fell from 0.61-0.65 "
        "(global) to at most 0.08 (position), while true matches kept 0.6-0.8.</p>",
    ]
    if null_mean is not None and null_pair is not None:
        sentence = (
            f"In this run the shuffled null of <code>{escape(null_pair)}</code> has a mean "
            f"best-buddy correlation of <span data-stat=\"centring/null_mean\">{null_mean:.3f}</span>"
        )
        if true_mean is not None:
            sentence += f", against {true_mean:.3f} for the true best buddies of that pair"
        sentence += "."
        if null_mean > 0.3:
            sentence += (
                ' <span class="warn">That is high: some best buddies of this run may share only '
                "a layout prior; a run with position centring separates them.</span>"
            )
        out.append(f"<p>{sentence}</p>")
    out.append("</div>")
    return "\n".join(out)


class _Page:
    def __init__(self, run: Path, content: dict[str, Any], store: RunStore, max_concepts: int, examples: int, tile: int):
        self.run, self.content, self.store = run, content, store
        self.max_concepts, self.examples, self.tile = max_concepts, examples, tile
        cfg = content["run"]
        self.generator: str = cfg.get("generator") or next(iter(content["models"]))
        self.encoders = _encoders(content)
        self.k = int(cfg.get("k", 5))
        self.tables = {e: t for e in self.encoders if (t := _table(store, pair_key(self.generator, e))) is not None}
        self._image_uris: dict[int, str] = {}

    # -- summary --------------------------------------------------------------------------
    def _cards(self) -> str:
        c, models = self.content, self.content["models"]
        cfg = c["run"]
        cards = [
            ("concepts", "concepts", len(c["concepts"])),
            ("rosetta_units", "Rosetta units (generator)", c["rosetta_units"]),
            ("generator_units", "generator units", int(sum(l["units"] for l in models.get(self.generator, [])))),
            ("encoders", "encoders", len(self.encoders)),
            ("n", "images", cfg.get("n")),
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
            key = pair_key(self.generator, enc)
            bb = np.asarray(self.content["best_buddies"].get(enc, []), dtype=np.int64).reshape(-1, 2)
            true = table[bb[:, 0], bb[:, 1]] if len(bb) else np.zeros(0, dtype=np.float32)
            series = [figures.Series("best buddies", true, _TRUE_COLOR, filled=True)]
            null_table = _table(self.store, key + NULL_TAG)
            note = "no shuffled null was computed for this pair"
            if null_table is not None:
                k_a, k_b = min(self.k, null_table.shape[1]), min(self.k, null_table.shape[0])
                nb = best_buddies(null_table, k_a, k_b)
                null = null_table[nb[:, 0], nb[:, 1]] if len(nb) else np.zeros(0, dtype=np.float32)
                series.append(figures.Series("shuffled null", null, _NULL_COLOR, filled=False))
                note = (
                    f"null: best buddies of <code>correlation/{escape(key + NULL_TAG)}</code> (K={self.k}), "
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
    def _image_uri(self, maps: _Maps, tiles: np.ndarray, image: int) -> str:
        if image not in self._image_uris:
            self._image_uris[image] = figures.data_uri(figures.png_bytes(tiles[maps.pos[image]]))
        return self._image_uris[image]

    def _concept(self, concept: dict[str, Any], rows: list[_Row], maps: _Maps, tiles: np.ndarray) -> str:
        cid = int(concept["id"])
        shown = [int(i) for i in concept["examples"][: self.examples]]
        gens = concept["generator_units"]
        head = (
            f'<h3>Concept {cid}</h3><p class="r">mean correlation <span data-stat="concept/{cid}/mean_correlation">'
            f'{concept["mean_correlation"]:.3f}</span> · {len(gens)} generator unit{"s" if len(gens) != 1 else ""} · '
            f"{sum(len(v) for v in concept['members'].values())} encoder units · "
            + (f"images {', '.join(str(i) for i in shown)}" if shown else "no example images recorded")
            + "</p>"
        )
        cells: list = ['<div class="label"><b>example images</b>generated by the generator</div>']
        pending: list[np.ndarray] = []  # heatmap tiles, encoded together on a few threads
        height, width = tiles.shape[-2:] if len(tiles) else (1, 1)
        for img in shown:
            cells.append(
                f'<figure><img src="{self._image_uri(maps, tiles, img)}" width="{width}" height="{height}" '
                f'alt="Generated image {img}" data-image="{img}"><figcaption>#{img}</figcaption></figure>'
            )
        if not shown:
            cells.append('<div class="empty">no example images</div>')
        for row in rows:
            u = row.unit
            more = len(row.members) - 1
            corr = (
                f'<span class="r">r = {u["correlation"]:.3f}</span>'
                if row.role == "encoder" and u.get("correlation") is not None
                else '<span class="r">generator unit</span>'
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
                alt = f"Activation of {_unit_name(row.model, u)} over generated image {img}"
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
            f'<article class="concept" id="concept-{cid}" data-concept="{cid}">{head}'
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
        maps = _Maps(self.store, images, needs)
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
            body = '<p class="note">This run has no concepts: no generator unit had a best buddy in every encoder.</p>'
        return (
            '<section id="concepts"><h2>Concepts</h2>'
            "<p>Each concept is a cluster of generator units that are best buddies of each other, "
            "together with their best buddies in every encoder (paper Eq. 3-4). One row per model, "
            "generator first: the unit shown is the member best correlated with the generator "
            "(r = its highest Pearson correlation with one of the concept's generator units); every row shows "
            "the same example images, those where the concept's generator units fire most. "
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
        title = f"Rosetta Neurons: {self.run.resolve().name}"
        meta = (
            f"generator <code>{escape(self.generator)}</code> · encoders "
            + ", ".join(f"<code>{escape(e)}</code>" for e in self.encoders)
            + f" · n = {escape(str(cfg.get('n')))} images · K = {self.k} · centring {escape(str(cfg.get('center')))}"
            + f" · weights {escape(str(cfg.get('weights', '?')))} · seed {escape(str(cfg.get('seed', '?')))}"
        )
        summary = (
            '<section id="summary"><h2>Summary</h2>'
            f"{self._cards()}<h3 style=\"margin-top:14px\">Model pairs</h3>{self._pairs_table()}"
            f"<h3 style=\"margin-top:14px\">Centring</h3>{_centring_html(str(cfg.get('center')), true_mean, null_mean, null_pair)}"
            "<h3 style=\"margin-top:14px\">Best buddies by layer depth</h3>"
            '<p class="note">Count of best-buddy pairs per generator layer (rows, shallow to deep) and '
            "encoder layer (columns, shallow to deep).</p>"
            f"{self._depth_tables()}"
            "<h3 style=\"margin-top:14px\">Best-buddy correlations against the shuffled null</h3>"
            '<p class="note">Filled bars: Pearson correlation of every best-buddy pair. Orange outline: '
            "best buddies of the same pair after one model's image order was shuffled (what chance "
            "and shared layout alone give).</p>"
            f"{hist}</section>"
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
) -> Path:
    """Write ``<run_dir>/report/index.html`` from the run's dictionary and store; return its path.

    ``max_concepts``: concepts shown (by id); ``examples``: example images per concept (the
    dictionary keeps up to 8); ``tile``: longest side of a heatmap in pixels (images larger
    than this are scaled down). The page is self-contained: it opens from disk.
    """
    max_concepts = _check_int("max_concepts", max_concepts, 1)
    examples = _check_int("examples", examples, 1, 8)
    tile = _check_int("tile", tile, 16, 1024)
    run = Path(run_dir)
    content, store = _load(run)
    page = _Page(run, content, store, max_concepts, examples, tile).html()
    out = run / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
