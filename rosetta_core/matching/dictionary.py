"""The concept dictionary of a run: matching, Rosetta tuples, concepts, and its JSON schema.

``dictionary.json`` (schema ``rosetta-dictionary/2``) names the run's ``anchor`` (the generator,
or an image run's anchor encoder) and lists every concept with its anchor units, its member
units per other model (global index, layer, channel, correlation with the anchor unit) and the
example images where the concept is most active (with their files for an image run), plus
per-pair best-buddy statistics and the shuffled null. Schema 1 (``generator_units``, no
``anchor``) is read as schema 2 (:func:`upgrade_dictionary`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from .concepts import cluster_concepts, rosetta_tuples
from .buddies import best_buddies, self_best_buddies

__all__ = ["SCHEMA", "Dictionary", "build_dictionary", "pair_summary", "upgrade_dictionary", "validate_dictionary"]

SCHEMA = "rosetta-dictionary/2"


class Unit(BaseModel):
    unit: int = Field(ge=0, description="row/column index in the model's correlation tables")
    layer: str
    channel: int = Field(ge=0)
    correlation: float | None = None


class FactorScore(BaseModel):
    factor: str
    iou: float = Field(ge=0, le=1)


class GroundTruth(FactorScore):
    """A concept's ground-truth label (``rosetta_core.run.ground_truth``): the best factor, the
    runner-up, whether it is aligned (IoU at or above the run's threshold) and each model's own."""

    runner_up: FactorScore | None = None
    aligned: bool
    models: dict[str, FactorScore] = {}


class NullModelCheck(BaseModel):
    r: float
    chance: float
    beats: bool


class NullCheck(BaseModel):
    """Whether each link of the concept beats the shuffled null's chance level (:mod:`.concept_checks`)."""

    beats: bool
    models: dict[str, NullModelCheck]


class RandomInitModelCheck(BaseModel):
    matched: int = Field(ge=0)
    of: int = Field(ge=1)


class RandomInitCheck(BaseModel):
    """How many of the concept's anchor units random-init models match (:mod:`.concept_checks`)."""

    also_random: bool
    models: dict[str, RandomInitModelCheck]


class ConceptChecks(BaseModel):
    shuffled_null: NullCheck | None = None
    random_init: RandomInitCheck | None = None


class ConceptEntry(BaseModel):
    id: int = Field(ge=0)
    mean_correlation: float
    anchor_units: list[Unit]
    members: dict[str, list[Unit]]
    examples: list[int]
    example_files: list[str] | None = Field(default=None, description="an image run's files of the examples")
    ground_truth: GroundTruth | None = Field(default=None, description="runs whose images have ground truth (mini-gen)")
    checks: ConceptChecks | None = Field(default=None, description="shuffled-null and random-init checks (None: not run)")


class PairStats(BaseModel):
    best_buddies: int = Field(ge=0)
    mean_correlation: float | None
    constant_units_a: int = Field(ge=0)
    constant_units_b: int = Field(ge=0)


class Dictionary(BaseModel):
    schema_: str = Field(alias="schema")
    run: dict[str, Any]
    anchor: str
    models: dict[str, list[dict[str, Any]]]
    pairs: dict[str, PairStats]
    null: dict[str, PairStats]
    rosetta_units: int = Field(ge=0)
    concepts: list[ConceptEntry]
    best_buddies: dict[str, list[list[int]]] = Field(description="model -> (anchor unit, model unit) pairs")
    ground_truth: dict[str, Any] | None = Field(default=None, description="the run's ground-truth summary (mini-gen runs)")
    checks: dict[str, Any] | None = Field(default=None, description="the concept checks' settings and counts")


def upgrade_dictionary(data: dict) -> dict:
    """Dictionary content of schema 1 (a generator run before anchors) as schema 2; schema 2 as is."""
    if data.get("schema") != "rosetta-dictionary/1":
        return data
    out = dict(data, schema=SCHEMA, anchor=(data.get("run") or {}).get("generator") or next(iter(data["models"])))
    out["concepts"] = [{("anchor_units" if k == "generator_units" else k): v for k, v in c.items()} for c in data["concepts"]]
    return out


def validate_dictionary(data: dict) -> Dictionary:
    """Parse ``dictionary.json`` content; raises ``pydantic.ValidationError`` when invalid."""
    parsed = Dictionary.model_validate(data)
    if parsed.schema_ != SCHEMA:
        raise ValueError(f"dictionary schema {parsed.schema_!r} is not supported; expected {SCHEMA!r}")
    return parsed


def pair_summary(table: np.ndarray, pairs: np.ndarray, dead_a: np.ndarray, dead_b: np.ndarray) -> dict:
    corr = table[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.empty(0)
    return {
        "best_buddies": int(len(pairs)),
        "mean_correlation": float(corr.mean()) if len(corr) else None,
        "constant_units_a": int(dead_a.sum()),
        "constant_units_b": int(dead_b.sum()),
    }


def _locate(layers: list[tuple[str, tuple[int, int, int]]]):
    names = [name for name, _ in layers]
    offsets = np.cumsum([0] + [shape[0] for _, shape in layers])

    def locate(unit: int) -> tuple[str, int]:
        i = int(np.searchsorted(offsets, unit, side="right") - 1)
        return names[i], int(unit - offsets[i])

    return locate


def build_dictionary(
    run: dict[str, Any],
    layers: dict[str, list[tuple[str, tuple[int, int, int]]]],
    anchor: str,
    tables: dict[str, np.ndarray],
    self_table: np.ndarray,
    k: int,
    examples: dict[int, list[int]] | None = None,
    files: list[str] | None = None,
) -> tuple[dict, list]:
    """Best buddies per model, Rosetta tuples over all of them, concepts by clustering the
    anchor's self best buddies (the paper's G-G clustering when the anchor is the generator).

    ``tables``: model -> correlation table ``(anchor units, model units)``; ``self_table``:
    ``(anchor, anchor)``. ``examples``: anchor unit -> example image indices (optional);
    ``files``: an image run's file name per image (the examples' files are listed too).
    Returns ``(dictionary content without pairs/null, concepts)``.
    """
    bb = {m: best_buddies(t, min(k, t.shape[1]), min(k, t.shape[0])) for m, t in tables.items()}
    tuples = rosetta_tuples(bb, tables)
    concepts = cluster_concepts(tuples, self_best_buddies(self_table, min(k, self_table.shape[0])))
    where = {name: _locate(ls) for name, ls in layers.items()}
    entries = []
    for concept in concepts:
        g_units = [int(u) for u in concept.g_units]
        members = {}
        for m in tables:
            rows = []
            for k_unit in concept.partners[m].tolist():
                layer, channel = where[m](k_unit)
                corr = float(max(tables[m][g, k_unit] for g in g_units))
                rows.append({"unit": int(k_unit), "layer": layer, "channel": channel, "correlation": corr})
            members[m] = rows
        gens = []
        for g in g_units:
            layer, channel = where[anchor](g)
            gens.append({"unit": g, "layer": layer, "channel": channel})
        shown = sorted({i for g in g_units for i in (examples or {}).get(g, [])})
        entry = {
            "id": concept.id,
            "mean_correlation": float(concept.mean_correlation),
            "anchor_units": gens,
            "members": members,
            "examples": shown[:8],
        }
        if files is not None:
            entry["example_files"] = [files[i] for i in shown[:8]]
        entries.append(entry)
    models = {
        name: [{"layer": l, "units": s[0], "grid": [s[1], s[2]]} for l, s in ls] for name, ls in layers.items()
    }
    content = {
        "schema": SCHEMA,
        "run": run,
        "anchor": anchor,
        "models": models,
        "rosetta_units": int(len(tuples.units)),
        "concepts": entries,
        "best_buddies": {m: v.tolist() for m, v in bb.items()},
    }
    return content, concepts
