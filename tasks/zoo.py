"""Thin Prefect task that trains and judges one embedded model (rosetta_core does the work)."""

from __future__ import annotations

from prefect import task
from tqdm.auto import tqdm

from rosetta_core.zoo.embedded.catalogue import train_model


@task(name="train-embedded-model")
def train_embedded_model(name: str, out: str, steps: int | None = None, batch: int | None = None,
                         device: str = "cpu", workers: int = 0, small_gate: bool = False) -> dict:
    """Train ``name`` (resuming from ``out/<name>/ckpt.pt``), run its gate, export on a pass.
    Returns a JSON-able summary: model, steps, seconds, passed, failures, metrics, weights."""
    with tqdm(desc=name, unit="step", mininterval=5) as bar:
        def progress(step: int, total: int, losses: dict) -> None:
            bar.total = total
            bar.n = step
            bar.set_postfix(loss=f"{losses.get('loss', float('nan')):.4f}", refresh=False)
            bar.refresh() if step % 10 == 0 or step == total else None

        result = train_model(name, out, steps=steps, batch=batch, device=device, workers=workers,
                             small_gate=small_gate, progress=progress)
    gate = result["gate"]
    metrics = {k: v for k, v in gate.metrics.items() if isinstance(v, (int, float, str, bool))}
    return {"model": name, "steps": result["steps"], "resumed_from": result["resumed_from"],
            "seconds": result["seconds"], "passed": gate.passed, "failures": gate.failures,
            "metrics": metrics, "weights": None if result["weights"] is None else str(result["weights"])}
