"""The report's concept checks (:mod:`rosetta_core.matching.concept_checks`): a mark on every
concept that fails the shuffled null or that random-init encoders match too, and the run's counts,
from the ``checks`` fields of ``dictionary.json``. A dictionary without them shows nothing."""

from __future__ import annotations

from html import escape
from typing import Any

from ._parts import _fmt

__all__ = ["concept_html", "summary_html"]


def concept_html(concept: dict[str, Any]) -> str:
    """The concept's marks under its heading: a warning per failed check, a plain line when it passes both."""
    checks = concept.get("checks") or {}
    null, random = checks.get("shuffled_null"), checks.get("random_init")
    if null is None and random is None:
        return ""
    parts = []
    if null is not None:
        weak = [f"{escape(m)} r {_fmt(v['r'], 2)} ≤ chance {_fmt(v['chance'], 2)}" for m, v in null["models"].items()
                if not v["beats"]]
        parts.append('<span class="warn" data-check="fails-null">fails the shuffled null ('
                     + "; ".join(weak) + ")</span>" if weak else '<span data-check="beats-null">beats the shuffled null</span>')
    if random is not None:
        hit = [f"{escape(m)} {v['matched']}/{v['of']}" for m, v in random["models"].items()]
        parts.append('<span class="warn" data-check="also-random">also matched by random-init encoders '
                     f"({', '.join(hit)} anchor units)</span>" if random["also_random"]
                     else f'<span data-check="learned">not matched at random init ({", ".join(hit)} anchor units)</span>')
    return f'<p class="r checks">{" · ".join(parts)}</p>'


def summary_html(content: dict[str, Any]) -> str:
    """The summary's counts of concepts that pass each check, with what each check means."""
    checks = content.get("checks")
    if not checks:
        return ""
    n = len(content["concepts"])
    null, random = checks["shuffled_null"], checks["random_init"]
    lines = []
    if null["checked"]:
        chance = ", ".join(f"{escape(m)} {_fmt(v, 2)}" for m, v in null["chance"].items() if v is not None)
        lines.append(
            f'<b data-stat="checks/beat_null">{null["beat"]}</b> of {n} concepts beat the shuffled nulls: for every '
            "model among its members, the concept's strongest link is above that model's chance level, the "
            f"{null['quantile']:.0%} quantile of the {content.get('anchor', 'anchor')} units' best correlations when "
            f"that model's images are shuffled (chance: {chance}).")
    if random["checked"]:
        lines.append(
            f'<b data-stat="checks/also_random">{random["also_random"]}</b> of {n} concepts are also matched at random '
            f"init: at least {random['share']:.0%} of their anchor units find best buddies in the random-init version "
            f"of one of their models (companion run <a href=\"../{escape(str(random['companion']))}/report/index.html\"><code>{escape(str(random['companion']))}/</code></a>, weights "
            f"<code>{escape(str(random['weights']))}</code>). Such a concept may come from architecture and layout "
            "rather than from what the encoders learned.")
    if not lines:
        return ""
    return ('<h3 style="margin-top:14px">Concept checks</h3><p class="note">' + "<br>".join(lines) + "</p>")
