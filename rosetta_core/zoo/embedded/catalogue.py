"""How each embedded model is trained and judged: one table used by ``rosetta zoo train`` and
``rosetta zoo evaluate`` (the bench scripts in ``bench/train_*.py`` add model cards on top).

:data:`SETUPS` maps a model name to its recipe factory with the settings of the shipped weights,
the module the recipe trains, and its quality gate. :func:`evaluate` returns a
:class:`GateReport`; :func:`export_weights` writes fp16 safetensors that
``rosetta_core.zoo.load(name, path)`` reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import WorldConfig
from ..registry import load

__all__ = ["GATES", "GateReport", "SETUPS", "SMALL_MARGIN", "Setup", "evaluate", "export_weights", "gate_classifier"]


@dataclass(frozen=True)
class Setup:
    """``make(steps, device, batch)`` builds the recipe (same seeds as the shipped run);
    ``adapter`` takes the recipe's adapter; ``steps``, ``batch`` are the shipped run's. The
    gate's thresholds are in :data:`GATES`. ``folder``: ``make`` also takes ``folder=``, the
    model's training folder (where a recipe keeps its cached training set)."""

    make: Callable[..., object]
    adapter: Callable[[object], object]
    steps: int
    batch: int
    folder: bool = False


@dataclass
class GateReport:
    model: str
    metrics: dict
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        state = "PASSED" if self.passed else "FAILED: " + "; ".join(self.failures)
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in self.metrics.items()
                 if not isinstance(v, dict)}
        return f"{self.model}: gate {state}  {shown}"


def _gen(steps: int, device: str = "cpu", batch: int = 128, lr: float = 1e-3):
    from .gen_recipes import GenRecipe

    torch.manual_seed(0)
    return GenRecipe(batch=batch, lr=lr, total_steps=steps, device=device)


def _sup(steps: int, device: str = "cpu", batch: int = 32):
    from .resnet_recipes import SupervisedRecipe

    torch.manual_seed(0)
    return SupervisedRecipe(steps=steps, batch=batch, seed=0, device=device)


def _ssl(steps: int, device: str = "cpu", batch: int = 256, folder: str | Path | None = None):
    from .ssl_recipes import SHIPPED, shipped_training_set

    if folder is None:
        raise ValueError("mini-resnet.ssl trains on a cached set of scenes: pass folder= (its training folder)")
    images = shipped_training_set(Path(folder) / "scene-cache")
    torch.manual_seed(0)
    return SHIPPED.recipe(images, steps, batch=batch, device=device)


def _mae(steps: int, device: str = "cpu", batch: int = 256):
    from .vit_recipes import MAERecipe

    return MAERecipe(total_steps=steps, batch_size=batch, device=device)


def _clip(steps: int, device: str = "cpu", batch: int = 128):
    from .clip_recipes import CLIPRecipe

    if device != "cpu":
        raise ValueError(f"device={device!r}: the mini-clip recipe trains on cpu only")
    return CLIPRecipe(total_steps=steps, batch_size=batch)


def _gen_adapter(recipe):
    from .mini_gen import MiniGenAdapter

    return MiniGenAdapter(recipe.module)


def _adapter(recipe):
    return recipe.adapter


SETUPS: dict[str, Setup] = {
    "mini-gen": Setup(_gen, _gen_adapter, 14693, 128),
    "mini-resnet.sup": Setup(_sup, _adapter, 4000, 32),
    "mini-resnet.ssl": Setup(_ssl, _adapter, 3000, 256, folder=True),
    "mini-vit.mae": Setup(_mae, _adapter, 11147, 256),
    "mini-clip.rn": Setup(_clip, _adapter, 550, 128),
}


def _known(name: str) -> Setup:
    if name not in SETUPS:
        raise ValueError(f"unknown embedded model {name!r}; trainable models: {', '.join(SETUPS)}")
    return SETUPS[name]


def gate_classifier():
    """``probs(uint8 images)`` of ``mini-resnet.sup`` over KINDS: the generator gate's judge."""
    from .mini_resnet import classify_kinds

    encoder = load("mini-resnet.sup")
    return lambda images: classify_kinds(encoder, images)


#: gate thresholds per model: metric -> lowest passing value (full held-out sets)
GATES: dict[str, dict[str, float]] = {
    "mini-gen": {"confident": 0.85, "min_kind_fraction": 0.10, "agreement": 0.80},
    "mini-resnet.sup": {"kind_set_accuracy": 0.95, "colour_set_accuracy": 0.95},
    "mini-resnet.ssl": {"kind_label_accuracy": 0.80},
    "mini-vit.mae": {"probe_accuracy": 0.80},
    "mini-clip.rn": {"zero_shot_single": 0.80},
}
#: with ``small=True`` each threshold is lowered by this much: about 3 standard errors of an
#: accuracy near the gate on the ~200-scene sets (the full gate uses 1,000-3,000 scenes)
SMALL_MARGIN = 0.05


def _metrics(name: str, adapter, small: bool) -> dict:
    simple = WorldConfig.simple()
    if name == "mini-gen":
        from .gen_recipes import evaluate_gen

        return evaluate_gen(adapter, gate_classifier(), n=200 if small else 1000)
    if name == "mini-resnet.sup":
        from .mini_resnet import evaluate_sup

        return evaluate_sup(adapter, n=200 if small else 1000)
    if name == "mini-resnet.ssl":
        from .mini_resnet import evaluate_ssl

        return evaluate_ssl(adapter, n=200 if small else 1000, n_train=1500 if small else 3000, config=simple)
    if name == "mini-vit.mae":
        from .vit_recipes import evaluate_mae

        return evaluate_mae(adapter, 1500 if small else 3000, 300 if small else 1000, config=simple)
    from .clip_recipes import evaluate_clip

    return evaluate_clip(adapter, n_test=600 if small else 3000, config=simple)


def evaluate(name: str, adapter=None, *, small: bool = False) -> GateReport:
    """The quality gate of embedded model ``name`` (the loaded trained weights unless
    ``adapter`` is given) on held-out scenes. ``small``: about 5x fewer scenes and every
    threshold lowered by :data:`SMALL_MARGIN` (a quick check for tests, not the gate)."""
    _known(name)
    if adapter is None:
        adapter = load(name)
    module = getattr(adapter, "module", None)
    if module is not None:
        module.cpu().eval()
    metrics = _metrics(name, adapter, small)
    margin = SMALL_MARGIN if small else 0.0
    failures = [f"{key}={metrics.get(key, float('nan')):.3f} < {low - margin:.3f}"
                for key, low in GATES[name].items()
                if not metrics.get(key, float("-inf")) >= low - margin]
    return GateReport(name, metrics, failures)


def export_weights(name: str, adapter, path: str | Path) -> Path:
    """Write the adapter's module as fp16 safetensors at ``path`` (loadable with
    ``load(name, path)``); returns the path."""
    from safetensors.torch import save_file

    _known(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in adapter.module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"name": name, "dtype": "float16 (load as float32)"})
    tmp.replace(path)
    return path


def train_model(name: str, out: str | Path, *, steps: int | None = None, batch: int | None = None,
                device: str = "cpu", workers: int = 0, small_gate: bool = False,
                progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Train embedded model ``name`` from its seeds, resuming from ``out/<name>/ckpt.pt``; then
    judge it with its gate and, when it passes, write ``out/<name>.safetensors``.

    Returns ``{"model", "steps", "resumed_from", "seconds", "gate": GateReport, "weights":
    path or None}``. A finished checkpoint is not trained again (the gate still runs).
    """
    from ..training import train

    setup = _known(name)
    steps = setup.steps if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    batch = setup.batch if batch is None else int(batch)
    if batch < 2:
        raise ValueError(f"batch={batch} must be >= 2")
    out = Path(out)
    recipe = setup.make(steps, device, batch, folder=out / name) if setup.folder else setup.make(steps, device, batch)
    result = train(recipe, steps, out / name / "ckpt.pt", every=max(1, min(100, steps // 10)),
                   progress=progress, workers=workers)
    adapter = setup.adapter(recipe)
    report = evaluate(name, adapter, small=small_gate)
    weights = export_weights(name, adapter, out / f"{name}.safetensors") if report.passed else None
    return {"model": name, "steps": steps, "resumed_from": result.resumed_from,
            "seconds": result.history[-1]["seconds"] if result.history else 0.0,
            "gate": report, "weights": weights}
