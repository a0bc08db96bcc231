"""Reading a run for its report, and the page's small formatting helpers and style sheet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..matching.dictionary import validate_dictionary
from ..run.run import Run

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


def _load(where: Path | str) -> tuple[Run, dict[str, Any]]:
    run = Run.open(where)
    content = run.dictionary
    validate_dictionary(content)
    if "images" not in run.store:
        raise ValueError(f"{run.store_path} has no 'images' array: the run's generate step has not run")
    return run, content


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

    gens = concept["anchor_units"]
    rows = [_Row(generator, "generator", max(gens, key=score), gens)] if gens else []
    rows += [_Row(e, "encoder", reps[e], concept["members"][e]) for e in encoders if e in reps]
    return rows


class _Maps:
    """Example images and the needed units' maps, read with one orthogonal read per layer; a
    run that keeps no activations computes them again instead, each model once on the example
    images only (:func:`rosetta_core.run.maps.model_maps`)."""

    def __init__(self, run: Run, images: Iterable[int], needs: dict[tuple[str, str], set[int]]):
        self.images = sorted({int(i) for i in images})
        self.pos = {img: i for i, img in enumerate(self.images)}
        self.maps: dict[tuple[str, str], tuple[np.ndarray, dict[int, int]]] = {}
        if not self.images:
            self.pixels = np.zeros((0, 3, 1, 1), dtype=np.uint8)
            return
        idx = np.asarray(self.images, dtype=np.int64)
        self.pixels = np.asarray(run.store.array("images").oindex[idx])
        if not run.keeps_maps:
            self._compute(run, idx, needs)
            return
        for (model, layer), channels in sorted(needs.items()):
            chans = sorted(channels)
            data = run.store.array(run.maps_key(model, layer)).oindex[idx, np.asarray(chans, dtype=np.int64)]
            self.maps[(model, layer)] = (np.asarray(data, dtype=np.float32), {c: i for i, c in enumerate(chans)})

    def _compute(self, run: Run, idx: np.ndarray, needs: dict[tuple[str, str], set[int]]) -> None:
        from ..run.maps import model_maps  # runs the models (torch): only for a run without stored maps

        for model in sorted({m for m, _ in needs}):
            layers = sorted(layer for m, layer in needs if m == model)
            got = model_maps(run, model, idx, layers)
            for layer in layers:
                chans = sorted(needs[(model, layer)])
                self.maps[(model, layer)] = (got.pop(layer)[:, chans], {c: i for i, c in enumerate(chans)})

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
.rows figure{min-width:0;overflow:hidden}
.rows figcaption .file{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
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
        "each position's mean over images removes that shared layout (measurements on the "
        "embedded zoo: docs/centring.md of the project).</p>",
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
