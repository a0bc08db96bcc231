"""The HTML report of a mining run: ``render_report(run_dir)`` writes ``report/index.html``.

One self-contained page (inline CSS, images as PNG data URIs, no script) with the run's summary
and every concept's units shown as heatmaps over the same example images. See
:mod:`rosetta_core.report.html` for the page and :mod:`rosetta_core.report.figures` for the
pictures.
"""

from .html import EXAMPLES, MAX_CONCEPTS, TILE, depth_matrix, render_report

__all__ = ["EXAMPLES", "MAX_CONCEPTS", "TILE", "depth_matrix", "render_report"]
