"""Flow ``train-zoo``: retrain embedded models from their seeds, one task per model, resumable
from checkpoints, with the quality gates summarised at the end (``rosetta zoo train``)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from rosetta_core.zoo.embedded.catalogue import SETUPS
from tasks.zoo import train_embedded_model

#: the gate of mini-gen is judged by mini-resnet.sup, so the classifier trains first
ORDER = ("mini-resnet.sup", "mini-gen", "mini-resnet.ssl", "mini-vit.mae", "mini-clip.rn")


def _summary(rows: list[dict]) -> str:
    lines = ["| model | steps | minutes | gate | weights |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        gate = "passed" if r["passed"] else "FAILED: " + "; ".join(r["failures"])
        lines.append(f"| {r['model']} | {r['steps']} | {r['seconds'] / 60:.1f} | {gate} | {r['weights'] or '-'} |")
    return "\n".join(lines)


@flow(name="train-zoo", log_prints=True)
def train_zoo(models: list[str] | None = None, out: str = "zoo-train", steps: int | None = None,
              batch: int | None = None, device: str = "cpu", workers: int = 0,
              small_gate: bool = False) -> list[dict]:
    """Train ``models`` (default: all five) into ``out``; a model whose gate passes gets
    ``out/<name>.safetensors`` (use it with ``--weights NAME=PATH`` or copy it into
    ``rosetta_core/zoo/weights/``). Rerunning resumes each model from its checkpoint."""
    names = list(models or ORDER)
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        raise ValueError(f"unknown embedded model(s) {', '.join(unknown)}; trainable: {', '.join(SETUPS)}")
    names.sort(key=ORDER.index)
    rows = [train_embedded_model(n, out, steps, batch, device, workers, small_gate) for n in names]
    table = _summary(rows)
    print("quality gates:\n" + table)
    create_markdown_artifact(key="train-zoo-gates", markdown="# Embedded zoo training\n\n" + table,
                             description="gates of the trained embedded models")
    return rows
