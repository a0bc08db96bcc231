"""The report's ground-truth parts: each concept's label and the run's alignment summary, from
the ``ground_truth`` fields of ``dictionary.json`` (:mod:`rosetta_core.run.ground_truth`). A run
without those fields (the paper's models, image folders) shows nothing here."""

from __future__ import annotations

from html import escape
from typing import Any

from ._parts import _fmt, _stat

__all__ = ["concept_html", "summary_html"]


def concept_html(concept: dict[str, Any]) -> str:
    """One line under a concept's heading: its label, IoU, whether aligned, the runner-up and
    each model's own label; empty without a label."""
    gt = concept.get("ground_truth")
    if not gt:
        return ""
    cid = int(concept["id"])
    second = gt.get("runner_up") or {}
    verdict = "aligned" if gt.get("aligned") else "not aligned"
    models = " · ".join(f"{escape(m)}: {escape(v['factor'])} {_fmt(v['iou'])}" for m, v in (gt.get("models") or {}).items())
    return (
        f'<p class="r truth" data-truth="{escape(gt["factor"])}">ground truth: <b>{escape(gt["factor"])}</b> '
        f'IoU <span data-stat="concept/{cid}/ground_truth/iou">{_fmt(gt["iou"])}</span> ({verdict})'
        + (f" · runner-up {escape(second['factor'])} {_fmt(second['iou'])}" if second else "")
        + (f"<br>each model's units alone: {models}" if models else "")
        + "</p>"
    )


def summary_html(content: dict[str, Any]) -> str:
    """The summary's ground-truth part: share aligned against the layer-matched random groups,
    the definition, and one row per factor; empty without ground truth."""
    s = content.get("ground_truth")
    if not s:
        return ""
    diff = s.get("difference") or {}
    ci = diff.get("ci95") or [None, None]
    rows = "".join(
        f'<tr><th scope="row" class="left">{escape(f)}</th>{_stat(f"ground_truth/{f}/concepts", v["concepts"])}'
        f'{_stat(f"ground_truth/{f}/labelled", v["labelled"])}{_stat(f"ground_truth/{f}/random", v.get("random_baseline"), digits=2)}'
        f'{_stat(f"ground_truth/{f}/coverage", v.get("coverage"))}{_stat(f"ground_truth/{f}/ceiling", v.get("ceiling"))}</tr>'
        for f, v in s["per_factor"].items()
    )
    return (
        '<h3 style="margin-top:14px">Ground truth</h3>'
        f'<p class="note">Concepts aligned with a factor of the world (Network Dissection IoU of the concept\'s units at '
        f'their top {100 * (1 - s["quantile"]):.3g}% of pixels, mean over each model\'s units, then over models; '
        f'aligned when at least {_fmt(s["threshold"])}): <b data-stat="ground_truth/aligned">{_fmt(s["aligned"])}</b> '
        f'of {s["concepts"]} concepts, against <b data-stat="ground_truth/random_baseline">{_fmt(s["random_baseline"])}</b> '
        "for groups of random units in no concept from the same layers in the same numbers"
        + (f" (difference {_fmt(diff.get('value'))}, paired bootstrap 95% interval {_fmt(ci[0])} to {_fmt(ci[1])})"
           if diff else "")
        + f'. Truth: {escape(str(s.get("source", "")))}; mean pixel error of the images against their scenes '
        f'{_fmt(s.get("image_error"), 2)} of 255. A factor covering far more pixels than the units\' top pixels '
        "cannot reach a high IoU (ceiling).</p>"
        '<table><thead><tr><th scope="col" class="left">factor</th><th scope="col">concepts aligned</th>'
        '<th scope="col">concepts labelled</th><th scope="col">random groups aligned (expected)</th>'
        '<th scope="col">pixel coverage</th><th scope="col">IoU ceiling</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
