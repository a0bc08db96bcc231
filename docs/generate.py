"""Generate every measured number in docs/ from the result files in bench/results/.

A page holds prose written by hand and numbers written by this script, between markers:

- a block (a table, a list, a paragraph of figures), rendered by the function of that name in
  :data:`BLOCKS`, with the words after the name as its arguments (usually result files)::

      <!-- generated: NAME [ARG ...] -->
      ...
      <!-- /generated -->

- one value inside a sentence, from one result file (its name without ``.json``); the
  template is Python format syntax whose fields are expressions over the file's JSON (``r`` is
  the whole file; its top-level keys are names too; dict keys read as attributes)::

      <!-- value invert-cpu-shipped-edits50-nobox {edits.shift.within_25pct_rate:.0%} -->98%<!-- /value -->

- ``<!-- generated: sources -->``: the provenance of every result file the page uses (commit
  and dirty tree, command, seeds, machine, wall time), or what is missing ("commit not
  recorded" for the files written before result files recorded it).

Usage::

    python docs/generate.py            # rewrite the pages in place
    python docs/generate.py --check    # exit 1 with a diff if a page is not current

The check also fails on a marker whose file or field does not exist and, on any page, on the
words "no result file yet" (a number without a file is removed from the page, not kept with an
excuse).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
RESULTS = DOCS.parent / "bench" / "results"

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+)(?P<args>(?: [\w.+-]+)*) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)
VALUE = re.compile(r"(<!-- value (?P<file>[\w.+-]+) (?P<template>.*?) -->)(?P<text>.*?)(<!-- /value -->)")
FORBIDDEN = ("no result file yet",)


class StaleDocs(Exception):
    """A marker that cannot be filled: an unknown block or file, a missing field."""


class AttrDict(dict):
    """A JSON object whose keys also read as attributes (``r.edits.shift.median_px``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no field {key!r}; fields: {', '.join(self)}") from None


class Results:
    """The result files of ``folder``, read on first use; records which files a page used."""

    def __init__(self, folder: Path = RESULTS):
        self.folder = Path(folder)
        self._cache: dict[str, AttrDict] = {}
        self.used: list[str] = []

    def __call__(self, name: str) -> AttrDict:
        if name not in self._cache:
            path = self.folder / f"{name}.json"
            if not path.is_file():
                known = ", ".join(sorted(p.stem for p in self.folder.glob("*.json")))
                raise StaleDocs(f"no result file {path}; known: {known}")
            self._cache[name] = json.loads(path.read_text(), object_hook=AttrDict)
        if name not in self.used:
            self.used.append(name)
        return self._cache[name]


# ---------------------------------------------------------------------------------------------
# provenance


def _when(p: dict) -> str:
    return p["started_utc"][:10] if p.get("started_utc") else "date not recorded"


def _machine(m: dict) -> str:
    if m.get("gpu"):
        return f"GPU {m['gpu']}"
    threads = m.get("usable_threads") or m.get("cpu_threads") or m.get("cores")
    load = m.get("load_average")
    load_text = f", load {load[0]:.1f}" if load else ""
    return f"{m.get('cpu') or 'CPU model not recorded'}, {threads} threads{load_text}"


def provenance(name: str, data: dict) -> str:
    """One line: where the numbers of result file ``name`` come from, or what it does not say."""
    p = data.get("provenance")
    if p:
        if p.get("commit"):
            dirty = p.get("dirty")
            changed = p.get("changed_files") or []
            commit = f"commit `{p['commit'][:10]}`" + (
                f" with uncommitted changes to {len(changed)} tracked file{'s' * (len(changed) != 1)}" if dirty else "")
        else:
            commit = "commit not recorded (not run from a git checkout)"
        seeds = ", ".join(f"{k} {v}" for k, v in p.get("seeds", {}).items()) or "none drawn"
        return (f"{commit}; `{p['command']}`; seeds: {seeds}; {_machine(p.get('machine', {}))}; "
                f"{p['wall_seconds']:,.0f} s wall; {_when(p)}")
    # files written before result files recorded their provenance
    if "commits" in data and "command" in data:  # bench/mine.py --against, before the shared record
        this = str(data["commits"].get("this", ""))
        commit = f"commit `{this[:10]}`" + (" with uncommitted changes" if this.endswith("+changes") else "")
        walls = sum(r.get("wall", 0) for r in data.get("runs", []))
        return (f"{commit} (baseline `{str(data['commits'].get('baseline', ''))[:10]}`); `{data['command']}`; "
                f"seeds not recorded; {_machine(data.get('machine', {}))}; {walls:,.0f} s of runs")
    parts = ["commit not recorded", "command not recorded"]
    if "what" in data:
        parts[1] += " (the file describes its runs in its field `what`)"
    args = data.get("args")
    if args:
        shown = {k: v for k, v in args.items() if v not in (None, "None")}
        parts[1] += " (its arguments: " + ", ".join(f"{k} {v}" for k, v in shown.items()) + ")"
    parts.append("seeds not recorded")
    parts.append("machine not recorded" + (f" (device {args['device']}, {args.get('threads')} threads)" if args and "device" in args else ""))
    if "seconds" in data:
        parts.append(f"{data['seconds']:,.0f} s (field `seconds`)")
    return "; ".join(parts)


def sources(results: Results, names: list[str]) -> str:
    if not names:
        return "This page uses no result file.\n"
    lines = [f"- `bench/results/{name}.json`: {provenance(name, results(name))}" for name in names]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# values inside sentences


def pick(items: list, **fields):
    """The one element of ``items`` whose fields equal ``fields`` (``pick(rows, style="cartoon",
    spec="prior:1").mean``)."""
    found = [x for x in items if all(x.get(k) == v for k, v in fields.items())]
    if len(found) != 1:
        raise StaleDocs(f"pick({fields}): {len(found)} elements match, not 1")
    return found[0]


def split_template(template: str) -> list[tuple[str, str | None, str]]:
    """``[(literal, expression or None, format spec)]`` of a template: text with ``{expression}``
    or ``{expression:spec}`` fields. Unlike ``str.format``, braces, colons and quotes inside an
    expression's strings, brackets and parentheses belong to the expression, so
    ``{pick(rows, spec="zero:3").mean:.2f}`` is one field."""
    out, literal, i = [], [], 0
    while i < len(template):
        ch = template[i]
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        depth, quote, j, colon = 0, None, i + 1, None
        while j < len(template):
            c = template[j]
            if quote:
                quote = None if c == quote else quote
            elif c in "'\"":
                quote = c
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == ":" and depth == 0:
                colon = j
            j += 1
        if j == len(template):
            raise StaleDocs(f"template {template!r}: a field opened at {i} is not closed")
        end = colon if colon is not None else j
        out.append(("".join(literal), template[i + 1 : end].strip(), template[end + 1 : j] if colon is not None else ""))
        literal, i = [], j + 1
    out.append(("".join(literal), None, ""))
    return out


def fill_value(results: Results, name: str, template: str) -> str:
    if "|" in template:
        raise StaleDocs(f"value {name} {template!r}: a template may not hold '|' (it would split a table cell)")
    data = results(name)
    names = {k: v for k, v in data.items() if k.isidentifier()}
    space = {"__builtins__": {}, "r": data, "min": min, "max": max, "abs": abs, "len": len, "sum": sum,
             "round": round, "sorted": sorted, "format": format, "str": str, "math": math, "pick": pick, **names}
    out = []
    for literal, field, spec in split_template(template):
        out.append(literal)
        if field is None:
            continue
        try:
            value = eval(field, space)  # noqa: S307 - our own pages, our own result files
        except Exception as err:  # noqa: BLE001
            raise StaleDocs(f"value {name} {{{field}}}: {type(err).__name__}: {err}") from None
        out.append(format(value, spec))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# blocks: name -> function(results) -> markdown

BLOCKS: dict[str, Callable[..., str]] = {}


def block(fn: Callable[..., str]) -> Callable[..., str]:
    BLOCKS[fn.__name__.replace("_", "-")] = fn
    return fn


#: bench/mine.py's targets for the default run (n = 1600): wall seconds and peak bytes
MINE_TARGET_SECONDS, MINE_TARGET_BYTES = 300.0, 3 * 1024**3


def _gib(value: float) -> str:
    return f"{value / 1024**3:.2f}"


def _si(value: float, unit: str = "B") -> str:
    for prefix in ("", "k", "M", "G", "T", "P"):
        if abs(value) < 1000 or prefix == "P":
            return f"{value:.1f} {prefix}{unit}" if prefix else f"{value:.0f} {unit}"
        value /= 1000
    return ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@block
def correlation(results: Results) -> str:
    r = results("correlation-n8")
    gen = ", ".join(f"{u}@{s}" for u, s in r.generator_layers)
    enc = ", ".join(f"{u}@{s}" for u, s in r.encoder_layers)
    ours, theirs = r.ours, r.published
    rates = ", ".join(f"{x:.1f}" for x in ours.matmul_gflops)
    return f"""n = {r.n} images; generator layers {gen} (units@side) against encoder layers {enc}: {r.units[0]:,} x {r.units[1]:,} unit pairs.

| method | seconds | extra peak memory |
| --- | --- | --- |
| (a) the published per-batch scheme, batch 2 (one call) | {theirs.seconds:.1f} | {theirs.extra_peak_mib / 1024:.1f} GiB |
| (b) ours, exact (best of {r.repeats} calls; slowest) | {ours.seconds:.2f} ({max(ours.all_seconds):.2f}) | {ours.extra_peak_mib / 1024:.1f} GiB |

- Speed-up (a)/(b): **{r.speedup_best:.0f}x** with our best call, {r.speedup_slowest:.0f}x with our slowest (target >= 20x).
- Our work: {r.gflop.total:.1f} GFLOP ({r.gflop.cross:.1f} G cross-moment matmuls, {r.gflop.projections:.1f} G projections, {r.gflop.squared_sums:.2f} G squared sums), done at {r.achieved_gflops:.1f} GFLOP/s: **{r.fraction_of_matmul:.0%} of the float32 matmul rate** measured in the same process (the best of {rates} GFLOP/s, measured before each call of ours and after the last; target >= 50%).
- Largest difference between the two tables: {r.max_abs_difference:.3f} (the published per-batch average is not Eq. 2).
"""


@block
def mine_n256(results: Results) -> str:
    r = results("mine-n256")
    rows = r.runs
    stages = list(rows[0].stages)
    head = ["n", "wall s", *[f"{s} s" for s in stages], "extraction img/s", "peak PSS GiB", "peak RSS summed GiB",
            "largest process GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [str(row.n), f"{row.wall:.1f}", *[f"{row.stages[s]:.1f}" for s in stages], f"{row.images_per_s:.1f}",
                 _gib(row.tree_pss), _gib(row.tree_rss), _gib(row.single_rss)]
        lines.append("| " + " | ".join(cells) + " |")
    roles = "; ".join(f"{role} {_gib(v)} GiB" for role, v in sorted(rows[-1].by_role.items()))
    return ("\n".join(lines) + f"\n\nUsed: {rows[0].used}. Peak RSS per process, the largest of each kind: {roles}. "
            "Wall time includes Prefect's temporary server start and the local cluster's start.\n")


@block
def mine_ab(results: Results) -> str:
    r = results("mine-run-architecture-ab")
    ns = sorted({run.n for run in r.runs})
    lines = ["| n | before (s) | after (s) | after / before | statistics before / after (s) | generate before / after (s) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for n in ns:
        best = {who: min((x for x in r.runs if x.n == n and x.code == who), key=lambda x: x.wall)
                for who in ("baseline", "this")}
        b, t = best["baseline"], best["this"]
        lines.append(f"| {n} | {b.wall:.1f} | {t.wall:.1f} | {t.wall / b.wall:.2f} | "
                     f"{b.stages.statistics:.1f} / {t.stages.statistics:.1f} | {b.stages.generate:.1f} / {t.stages.generate:.1f} |")
    big = max(ns)
    t = min((x for x in r.runs if x.n == big and x.code == "this"), key=lambda x: x.wall)
    lines += ["", f"Targets for the default run (n = {big}, the \"after\" code): wall time {t.wall:.1f} s against "
              f"{MINE_TARGET_SECONDS:.0f} s ({'met' if t.wall <= MINE_TARGET_SECONDS else 'missed'}); peak memory "
              f"{_gib(t.tree_pss)} GiB PSS summed over the process tree against {_gib(MINE_TARGET_BYTES)} GiB "
              f"({'met' if t.tree_pss <= MINE_TARGET_BYTES else 'missed'})."]
    return "\n".join(lines) + "\n"


@block
def mine_activations(results: Results, name: str) -> str:
    """``bench/mine.py --activations keep none``: each choice's runs, the best one's stages, the
    store on disk and the peak memory, and the ratios of none to keep."""
    r = results(name)
    lines = ["| n | --activations | wall s (each run) | stages of the fastest run, s | store on disk | peak PSS GiB |",
             "| --- | --- | --- | --- | --- | --- |"]
    ratios = []
    for n in sorted({run.n for run in r.runs}):
        best = {}
        for choice in r.activations:
            rows = [x for x in r.runs if x.n == n and x.activations == choice]
            best[choice] = b = min(rows, key=lambda x: x.wall)
            stages = ", ".join(f"{k} {v:.1f}" for k, v in b.stages.items())
            lines.append(f"| {n} | {choice} | {', '.join(f'{x.wall:.1f}' for x in rows)} | {stages} | "
                         f"{_si(b.store_bytes)} | {_gib(max(x.tree_pss for x in rows))} |")
        if {"keep", "none"} <= set(best):
            ratios.append(f"n = {n}: none / keep wall time {best['none'].wall / best['keep'].wall:.2f} (fastest runs), "
                          f"store {best['none'].store_bytes / best['keep'].store_bytes:.2f}")
    return "\n".join(lines) + "\n\n" + "; ".join(ratios) + f". Used: {r.runs[0].used}.\n"


@block
def plan_biggan(results: Results) -> str:
    r = results("plan-biggan-paper")
    gen = r.setup.generator
    gg = max(r.pairs, key=lambda p: p.task_bytes)
    return f"""Setup: `{gen}` against {', '.join(f'`{e}`' for e in r.setup.encoders)}, all layers, n = {r.setup.n}, {r.setup.dtype}.

| quantity | value |
| --- | --- |
| store | {_si(r.store_bytes)} ({gen}'s activations alone: {_si(r.activation_bytes[gen])}) |
| statistics | {_si(r.total_flops, 'FLOP')} |
| peak memory of one Dask task ({r.threads} threads; the {gg.a} x {gg.b} pair) | {_si(r.peak_task_bytes)} |
| time here (float32 matmul measured at {r.machine_flop_rate / 1e9:.1f} GFLOP/s) | {_duration(r.seconds_here)} |
| time on an {r.gpu} at its float32 peak | {_duration(r.seconds_gpu)} |
"""


@block
def memory_budget(results: Results, plan: str, uncut: str, mine: str) -> str:
    """``--memory-limit``: the paper's set-up cut into blocks (``rosetta plan --json``), against
    the same plan with no pair cut, and the embedded default's worker processes under a limit
    (``bench/mine.py --memory-limit``)."""
    p, u, m = results(plan), results(uncut), results(mine)
    shown = [q for q in p.pairs if "(shuffled null)" not in q.b]
    lines = ["| pair | blocks of units | largest chunk task | largest merge task | table task |", "| --- | --- | --- | --- | --- |"]
    for q in shown:
        lines.append(f"| {q.a} x {q.b} | {len(q.blocks)} | {_si(q.chunk_task_bytes)} | {_si(q.merge_task_bytes)} | "
                     f"{_si(q.table_task_bytes)} |")
    run = m.runs[0]
    rss = ", ".join(f"{v / 1024**3:.2f}" for v in run.worker_rss)
    return (f"Paper set-up (`{p.setup.generator}` against {len(p.setup.encoders)} encoders, n = {p.setup.n}, "
            f"{p.setup.dtype}) at `--memory-limit {p.memory_limit_given}`: tasks of at most {_si(p.budget)}; the "
            f"shuffled nulls are cut as their pairs.\n\n" + "\n".join(lines) +
            f"\n\nPeak memory of one Dask task: {_si(p.peak_task_bytes)} (`bench/results/{plan}.json`); with no "
            f"pair cut, the same planner gives {_si(u.peak_task_bytes)} (`bench/results/{uncut}.json`).\n\n"
            f"Embedded default at `--memory-limit {m.memory_limit}` (n = {run.n}, `bench/results/{mine}.json`): "
            f"peak RSS of each statistics worker process {rss} GiB (the limit is {run.memory_limit / 1024**3:.2f} GiB: "
            f"{'all under it' if run.workers_under_limit else 'NOT all under it'}); the whole run "
            f"{_duration(run.wall)} wall.\n")


@block
def table1(results: Results, name: str) -> str:
    """A Table 1 analogue (``bench/invert.py --parts table1``): one row per objective."""
    r = results(name)
    rows = r.table1
    best_psnr = max(row.psnr for row in rows.values())
    best_ssim = max(row.ssim for row in rows.values())
    lines = ["| objective | matched pairs | PSNR | SSIM | vs reconstruction only (PSNR, SSIM) |", "| --- | --- | --- | --- | --- |"]
    for label, row in rows.items():
        psnr, ssim = f"{row.psnr:.2f}", f"{row.ssim:.3f}"
        psnr = f"**{psnr}**" if row.psnr == best_psnr and len(rows) > 1 else psnr
        ssim = f"**{ssim}**" if row.ssim == best_ssim and len(rows) > 1 else ssim
        ratio = "1" if label == "reconstruction only" else f"x{row.psnr_ratio:.3f}, x{row.ssim_ratio:.3f}"
        lines.append(f"| {label} | {row.pairs} | {psnr} | {ssim} | {ratio} |")
    a = r.args
    best = max(rows, key=lambda k: rows[k].psnr)
    return ("\n".join(lines) + f"\n\n{a.n} held-out scenes, {a.steps} steps, beta {a.beta}, device {a.device}; "
            f"best PSNR: {best}; `bench/results/{name}.json`.\n")


def _ci_text(ci: dict, spec: str) -> str:
    return f"{ci['diff']:+{spec}} [{ci['ci_lo']:+{spec}}, {ci['ci_hi']:+{spec}}]"


@block
def table1_test(results: Results, name: str) -> str:
    """Table 1 on test scenes from per-scene records: each guided row's difference from
    reconstruction only over the same scenes, with its paired bootstrap 95% interval."""
    r = results(name)
    rows = r.table1
    head = ("| objective | matched pairs | scenes | PSNR | SSIM | PSNR - reconstruction only [95% CI] | "
            "SSIM - reconstruction only [95% CI] |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, row in rows.items():
        if label == "reconstruction only":
            diffs = "(baseline) | (baseline)"
        else:
            diffs = f"{_ci_text(row.psnr_diff_ci, '.2f')} dB | {_ci_text(row.ssim_diff_ci, '.4f')}"
        lines.append(f"| {label} | {row.pairs} | {row.scenes} | {row.psnr:.2f} | {row.ssim:.3f} | {diffs} |")
    a = r.args
    return ("\n".join(lines) + f"\n\nTest scenes 0-{rows['reconstruction only'].scenes - 1} of world seed "
            f"{a.scene_seed}, {a.steps} steps, beta {a.beta}, device {a.device}; paired bootstrap over scenes "
            f"(10,000 resamples); `bench/results/{name}.json`.\n")


@block
def ood_test(results: Results, name: str) -> str:
    """OOD layout on test scenes: guided vs pixel baseline per style, the mean gain with its
    paired bootstrap 95% interval, the layout rates, and whether the claim's criterion holds
    (docs/success-criteria.md: gain >= 0.1 and its interval above 0)."""
    r = results(name)
    o = r.ood
    head = ("| style | scenes | guided layout IoU | pixel baseline | gain [95% CI] | layout recovered: guided | "
            "pixel | guidance beats the baseline? |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for style in ("sketch", "cartoon"):
        if style not in o:
            continue
        x = o[style]
        met = x.gain >= 0.1 and x.gain_ci.ci_lo > 0
        lines.append(f"| {style} | {x.scenes} | {x.guided_iou:.3f} | {x.pixel_iou:.3f} | {_ci_text(x.gain_ci, '.3f')} | "
                     f"{x.guided_layout_rate:.0%} | {x.pixel_layout_rate:.0%} | {'**yes**' if met else '**no**'} |")
    some = next(o[s] for s in ("sketch", "cartoon") if s in o)
    return ("\n".join(lines) + f"\n\nTest scenes 0-{o.scenes - 1} of world seed {o.seed}, {r.args.steps} steps; guided: "
            f"`act {some.act}`, `reg_center {some.reg_center}`, alpha {some.alpha:g} (the defaults of `rosetta invert`); "
            f"layout recovered: {some.layout_criterion}; `bench/results/{name}.json`.\n")


@block
def edits_test(results: Results, name: str) -> str:
    """Edit success rates on test trials under docs/success-criteria.md (met: >= 80% over >= 50 trials)."""
    r = results(name)
    lines = ["| edit | fit, hold, box | trials | successes | success rate | met (>= 80%, >= 50 trials)? | criterion |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind, row in r.edits.items():
        met = row.success_trials >= 50 and row.success_rate >= 0.8
        lines.append(f"| {kind} | {row.fit}, {row.hold:g}, {'on' if row.box else 'off'} | {row.success_trials} | "
                     f"{row.successes} | {row.success_rate:.0%} | {'**yes**' if met else '**no**'} | {row.criterion} |")
    a = r.args
    return ("\n".join(lines) + f"\n\nTrials: mini-gen images `sample_latents({a.edit_seed}, i)`, i = {a.edits_first}-"
            f"{int(a.edits_first) + int(a.edits) - 1} (in no run); a trial counts when its source has a measurable "
            f"foreground; {a.steps} steps; `bench/results/{name}.json`.\n")


@block
def inversion_speed(results: Results, name: str) -> str:
    """Seconds per 500 steps of one image (``bench/invert.py --parts speed``)."""
    sp = results(name).speed
    return f"""| objective | seconds per 500 steps |
| --- | --- |
| guided (Eq. 5), direct form: full forward, gather + resize + product per pair each step | {sp.ood_direct_s_per_500:.1f} |
| guided (Eq. 5), as shipped | **{sp.ood_s_per_500:.1f}** ({sp.speedup:.1f}x faster; target 60 s) |
| in-distribution (Eq. 7: pixel + perceptual + guidance), as shipped | {sp.rec_s_per_500:.1f} |

One image, {sp.pairs:,} matched pairs, {sp.threads} threads, device {sp.device}, measured over {sp.steps} steps;
`bench/results/{name}.json`.
"""


@block
def ood_reg_validation(results: Results, name: str) -> str:
    """Layout IoU per style and L_reg setting (rows of ``style``, ``spec``, ``mean``)."""
    rows = results(name).rows
    specs = [("zero:3", "raw, alpha 3"), ("prior:1", "prior, alpha 1"), ("prior:2", "prior, alpha 2")]
    lines = ["| style | " + " | ".join(label for _, label in specs) + " | pixel baseline (prior-centred norm) |",
             "| --- |" + " --- |" * (len(specs) + 1)]
    for style in dict.fromkeys(r.style for r in rows):
        values = [pick(rows, style=style, spec=spec).mean for spec, _ in specs]
        cells = [f"**{v:.3f}**" if v == max(values) else f"{v:.3f}" for v in values]
        lines.append(f"| {style} | " + " | ".join(cells) + f" | {pick(rows, style=style, spec='pixel:0').mean:.3f} |")
    return "\n".join(lines) + f"\n\nMean layout IoU over the scenes; `bench/results/{name}.json`.\n"


def _zoo_totals(enc: dict, case: str, layers: list[str] | None = None) -> tuple[int, float]:
    rows = [p for p in enc["pairs"] if layers is None or p["enc_layer"] in layers]
    count = sum(p[case]["best_buddies"] for p in rows)
    mean = sum(p[case]["best_buddies"] * p[case]["mean_r"] for p in rows if p[case]["best_buddies"]) / count if count else float("nan")
    return count, mean


@block
def zoo_totals(results: Results) -> str:
    r = results("zoo-science")
    lines = ["| encoder | trained | random init | shuffled | deepest two encoder layers: trained | random init |",
             "| --- | --- | --- | --- | --- | --- |"]
    skipped = []
    for name, enc in r.encoders.items():
        if not enc.shipped:
            skipped.append(f"`{name}`")
            continue
        cells = [f"{c}, {m:.2f}" for c, m in (_zoo_totals(enc, case) for case in ("trained", "random", "shuffled"))]
        deep = enc.enc_layers[-2:]
        cells += [f"{c}, {m:.2f}" for c, m in (_zoo_totals(enc, case, deep) for case in ("trained", "random"))]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + (f"\n\nSkipped (no shipped weights): {', '.join(skipped)}.\n" if skipped else "\n")
    verdicts = []
    for name, enc in r.encoders.items():
        if enc.shipped:
            (tc, tm), (rc, rm) = (_zoo_totals(enc, case, enc.enc_layers[-2:]) for case in ("trained", "random"))
            verdicts.append(f"`{name}`: best buddies {'higher' if tc > rc else 'not higher'}, "
                            f"mean r {'higher' if tm > rm else 'not higher'}")
    text += ("\nTrained against random init in the two deepest encoder layers: " + "; ".join(verdicts) + ".\n")
    return (f"Best buddies and their mean correlation (weighted by count), summed over all (generator layer, "
            f"encoder layer) pairs of [zoo-science.md](zoo-science.md); n = {r.n}, K = {r.k}, {r.center}-centred.\n\n" + text)


@block
def zoo_null(results: Results) -> str:
    r = results("zoo-science")
    shipped = {n: e for n, e in r.encoders.items() if e.shipped}
    null = [_zoo_totals(e, "shuffled")[1] for e in shipped.values()]
    real = [_zoo_totals(e, "trained")[1] for e in shipped.values()]
    return (f"On the shipped embedded zoo (n = {r.n}, K = {r.k}, {r.center}-centred), the shuffled null's best buddies "
            f"have a mean r of {min(null):.2f}-{max(null):.2f} across the {len(shipped)} encoders, against "
            f"{min(real):.2f}-{max(real):.2f} for the trained pairs (totals of the tables in [zoo-science.md](zoo-science.md)).\n")


@block
def zoo_science(results: Results) -> str:
    r = results("zoo-science")
    lines = [f"n = {r.n} samples of `mini-gen`, K = {r.k}, {r.center}-centred correlation.", ""]
    for name, enc in r.encoders.items():
        lines += [f"## {name}", ""]
        if not enc.shipped:
            lines += ["Not shipped (its recipe has not passed its gate): skipped.", ""]
            continue
        lines += ["| gen layer | enc layer | trained BB | mean r | random-init BB | mean r | shuffled BB | mean r |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in enc.pairs:
            cells = []
            for case in ("trained", "random", "shuffled"):
                c, m = p[case]["best_buddies"], p[case]["mean_r"]
                cells += [str(c), "-" if m is None else f"{m:.2f}"]
            lines.append(f"| {p.gen_layer} | {p.enc_layer} | " + " | ".join(cells) + " |")
        lines += ["", f"The {len(enc.strongest)} strongest trained pairs and the generator unit's best ground-truth match:", ""]
        for s in enc.strongest:
            lines.append(f"- G unit {s.gen_unit} ({s.gen_layer}) <-> {name} unit {s.enc_unit}: r={s.r:.2f}; "
                         f"concept {s.concept} (r={s.concept_r:.2f})")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# pages


def render_page(text: str, results: Results) -> str:
    """The page ``text`` with every value and block filled (sources last, from the files used)."""
    results.used = []

    def value(m: re.Match) -> str:
        return m.group(1) + fill_value(results, m.group("file"), m.group("template")) + m.group(5)

    text = VALUE.sub(value, text)

    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name == "sources":
            return m.group(0)
        if name not in BLOCKS:
            raise StaleDocs(f"unknown block {name!r}; known: {', '.join(sorted(BLOCKS))}, sources")
        args = m.group("args").split()
        try:
            body = BLOCKS[name](results, *args)
        except TypeError as err:
            raise StaleDocs(f"block {name} {' '.join(args)}: {err}") from None
        except (KeyError, AttributeError) as err:
            raise StaleDocs(f"block {name} {' '.join(args)}: a field is missing: {err}") from None
        return m.group(1) + body.rstrip("\n") + "\n" + m.group(5)

    text = BLOCK.sub(fill, text)
    used = list(results.used)
    return BLOCK.sub(lambda m: m.group(1) + sources(results, used) + m.group(5) if m.group("name") == "sources" else m.group(0), text)


def pages(docs: Path = DOCS) -> list[Path]:
    """The pages with markers (the others hold no generated numbers)."""
    return [p for p in sorted(docs.glob("*.md")) if "<!-- generated:" in p.read_text() or "<!-- value " in p.read_text()]


def check(docs: Path = DOCS, results_dir: Path = RESULTS) -> list[str]:
    """Problems, one string each: a page that regenerating would change (with its diff), a
    marker that cannot be filled, a forbidden phrase. Empty when the pages are current."""
    problems = []
    generated = pages(docs)
    for page in sorted(Path(docs).glob("*.md")):
        text = page.read_text()
        for phrase in FORBIDDEN:
            if phrase in text.lower():
                problems.append(f"{page.name}: says {phrase!r}: give the number a result file or remove it")
        if page not in generated:
            continue
        try:
            new = render_page(text, Results(results_dir))
        except StaleDocs as err:
            problems.append(f"{page.name}: {err}")
            continue
        if new != text:
            diff = "".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True), f"{page.name} (on disk)",
                                                f"{page.name} (generated)"))
            problems.append(f"{page.name} is not current: run python docs/generate.py\n{diff}")
    return problems


def write(docs: Path = DOCS, results_dir: Path = RESULTS) -> list[Path]:
    """Regenerate the pages in place; returns the pages that changed."""
    changed = []
    for page in pages(docs):
        text = page.read_text()
        new = render_page(text, Results(results_dir))
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 with a diff if a page is not current")
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.check:
        problems = check(args.docs, args.results)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(pages(args.docs))} generated pages: " + ("current" if not problems else f"{len(problems)} problems"))
        return 1 if problems else 0
    try:
        changed = write(args.docs, args.results)
    except StaleDocs as err:
        print(f"docs/generate.py: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(f"wrote {p}" for p in changed) or "every generated page was current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
