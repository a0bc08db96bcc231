"""The concept dictionary of a run: matching, Rosetta tuples, concepts, and its JSON schema.

``dictionary.json`` (schema ``rosetta-dictionary/1``) lists every concept with its member
units per model (global index, layer, channel, correlation with the generator unit) and the
example images where the concept is most active, plus per-pair best-buddy statistics and the
shuffled null.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from .concepts import cluster_concepts, rosetta_tuples
from .buddies import best_buddies, self_best_buddies

__all__ = ["SCHEMA", "Dictionary", "build_dictionary", "pair_summary", "validate_dictionary"]

SCHEMA = "rosetta-dictionary/1"


class Unit(BaseModel):
    unit: int = Field(ge=0, description="row/column index in the model's correlation tables")
    layer: str
    channel: int = Field(ge=0)
    correlation: float | None = None


class ConceptEntry(BaseModel):
    id: int = Field(ge=0)
    mean_correlation: float
    generator_units: list[Unit]
    members: dict[str, list[Unit]]
    examples: list[int]


class PairStats(BaseModel):
    best_buddies: int = Field(ge=0)
    mean_correlation: float | None
    constant_units_a: int = Field(ge=0)
    constant_units_b: int = Field(ge=0)


class Dictionary(BaseModel):
    schema_: str = Field(alias="schema")
    run: dict[str, Any]
    models: dict[str, list[dict[str, Any]]]
    pairs: dict[str, PairStats]
    null: dict[str, PairStats]
    rosetta_units: int = Field(ge=0)
    concepts: list[ConceptEntry]
    best_buddies: dict[str, list[list[int]]] = Field(description="encoder -> (generator unit, encoder unit) pairs")


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
    generator: str,
    tables: dict[str, np.ndarray],
    self_table: np.ndarray,
    k: int,
    examples: dict[int, list[int]] | None = None,
) -> tuple[dict, list]:
    """Best buddies per encoder, Rosetta tuples over all of them, concepts by G-G clustering.

    ``tables``: encoder -> correlation table ``(G units, encoder units)``; ``self_table``:
    ``(G, G)``. ``examples``: generator unit -> example image indices (optional).
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
            layer, channel = where[generator](g)
            gens.append({"unit": g, "layer": layer, "channel": channel})
        shown = sorted({i for g in g_units for i in (examples or {}).get(g, [])})
        entries.append(
            {
                "id": concept.id,
                "mean_correlation": float(concept.mean_correlation),
                "generator_units": gens,
                "members": members,
                "examples": shown[:8],
            }
        )
    models = {
        name: [{"layer": l, "units": s[0], "grid": [s[1], s[2]]} for l, s in ls] for name, ls in layers.items()
    }
    content = {
        "schema": SCHEMA,
        "run": run,
        "models": models,
        "rosetta_units": int(len(tuples.units)),
        "concepts": entries,
        "best_buddies": {m: v.tolist() for m, v in bb.items()},
    }
    return content, concepts
