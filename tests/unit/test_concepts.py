"""Rosetta tuples (paper Eq. 4) and concept clustering against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rosetta_core.matching.concepts import Concept, RosettaTuples, cluster_concepts, rosetta_tuples
from rosetta_core.matching.buddies import best_buddies

pytestmark = pytest.mark.unit

G = 7


def _models(m, seed=0):
    """``m`` random (G, units) tables and their best buddies (k=3 leaves gaps and multiples)."""
    rng = np.random.default_rng(seed)
    tables = {f"d{i}": rng.standard_normal((G, 4 + i)) for i in range(m)}
    return tables, {name: best_buddies(t, 2, 3) for name, t in tables.items()}


def brute_tuples(bbs, order):
    sets = {m: {tuple(p) for p in bbs[m].tolist()} for m in order}
    sizes = [1 + max((k for _, k in sets[m]), default=0) for m in order]
    found = set()
    for j in range(G):
        for ks in itertools.product(*(range(n) for n in sizes)):
            if all((j, k) in sets[m] for m, k in zip(order, ks)):
                found.add((j, *ks))
    return found


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rosetta_tuples_match_brute_force(m, seed):
    tables, bbs = _models(m, seed)
    order = list(bbs)
    r = rosetta_tuples(bbs, tables)
    assert isinstance(r, RosettaTuples) and r.models == tuple(order)
    got = list(r.tuples())
    assert len(got) == len(set(got))
    assert set(got) == brute_tuples(bbs, order)
    # units: G units with a buddy in every model
    want_units = set.intersection(*(set(bbs[k][:, 0].tolist()) for k in order))
    assert r.units.tolist() == sorted(want_units)
    for name in order:
        assert len(r.partners[name]) == len(r.units) == len(r.correlations[name])
        for j, ks, cs in zip(r.units, r.partners[name], r.correlations[name]):
            assert ks.tolist() == sorted(k for jj, k in bbs[name].tolist() if jj == j)
            assert np.array_equal(cs, tables[name][j, ks])
    # tuples() is the product of partners, in model order
    want = [
        (int(j), *ks)
        for u, j in enumerate(r.units)
        for ks in itertools.product(*(r.partners[k][u].tolist() for k in order))
    ]
    assert got == want


def test_one_model_equals_best_buddies():
    tables, bbs = _models(1, seed=5)
    r = rosetta_tuples(bbs)
    assert r.correlations is None
    assert list(r.tuples()) == [tuple(p) for p in bbs["d0"].tolist()]


def test_model_order_sets_tuple_order():
    tables, bbs = _models(2, seed=3)
    fwd = set(rosetta_tuples(bbs).tuples())
    rev = set(rosetta_tuples({"d1": bbs["d1"], "d0": bbs["d0"]}).tuples())
    assert rev == {(j, b, a) for j, a, b in fwd}


def test_empty_inputs_give_empty_result():
    empty = np.empty((0, 2), dtype=np.int64)
    r = rosetta_tuples({"a": empty, "b": np.array([[0, 1]])}, None)
    assert r.units.shape == (0,) and list(r.tuples()) == [] and r.partners["b"] == ()
    assert cluster_concepts(r, empty) == []
    r = rosetta_tuples({"a": np.array([[0, 1]]), "b": np.array([[2, 1]])})
    assert len(r.units) == 0


@pytest.mark.parametrize(
    "call,needles",
    [
        (lambda: rosetta_tuples({}), ["no models"]),
        (lambda: rosetta_tuples({"a": np.zeros((3, 3), int)}), ["bb_by_model['a']", "(3, 3)"]),
        (lambda: rosetta_tuples({"a": np.array([[0, -1]])}), ["negative", "-1"]),
        (lambda: rosetta_tuples({"a": np.array([[0, 1]])}, {"b": np.ones((2, 2))}),
         ["corr_by_model", "['b']", "['a']"]),
        (lambda: rosetta_tuples({"a": np.array([[0, 5]])}, {"a": np.ones((2, 2))}),
         ["(0, 5)", "(2, 2)"]),
        (lambda: cluster_concepts(rosetta_tuples({"a": np.array([[0, 1]])}), np.zeros((2, 3), int)),
         ["self_bb", "(2, 3)"]),
    ],
)
def test_bad_input_raises_value_error(call, needles):
    with pytest.raises(ValueError) as err:
        call()
    for needle in needles:
        assert needle in str(err.value)


# ---------------------------------------------------------------- clustering
# Rosetta units: 1, 2, 3, 5, 7, 9, 11. Self buddies: 1-2-3 chain, 5-7, 4-9 (4 is not a
# Rosetta unit: ignored), 11-11 (self loop: ignored), 7-20 (20 not Rosetta).
BB_A = np.array([[1, 0], [2, 0], [3, 1], [5, 2], [7, 3], [9, 4], [11, 5], [4, 6]])
BB_B = np.array([[1, 2], [2, 2], [3, 0], [5, 1], [7, 1], [7, 0], [9, 3], [11, 4], [0, 1]])
SELF = np.array([[1, 2], [2, 1], [3, 2], [5, 7], [7, 5], [4, 9], [9, 4], [11, 11], [7, 20]])


def _tables():
    a = np.zeros((21, 7))
    b = np.zeros((21, 5))
    for (g, k), v in zip(BB_A.tolist(), [0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.5, 0.1]):
        a[g, k] = v
    for (g, k), v in zip(BB_B.tolist(), [0.5, 0.5, 0.5, 0.5, 0.2, 0.8, 0.1, 0.5, 0.3]):
        b[g, k] = v
    return {"a": a, "b": b}


def _summary(concepts):
    return [
        (c.id, c.g_units.tolist(), {k: v.tolist() for k, v in c.partners.items()},
         c.mean_correlation)
        for c in concepts
    ]


def test_cluster_concepts_hand_built():
    r = rosetta_tuples({"a": BB_A, "b": BB_B}, _tables())
    concepts = cluster_concepts(r, SELF)
    assert all(isinstance(c, Concept) for c in concepts)
    # means: {9}: (0.9+0.1)/2=0.5; {5,7}: (0.5+0.5+0.5+0.2+0.8)/5=0.5; {1,2,3}: 0.5;
    # {11}: (0.5+0.5)/2=0.5 -> all tie at 0.5: size desc, then smallest unit.
    assert _summary(concepts) == [
        (0, [1, 2, 3], {"a": [0, 1], "b": [0, 2]}, 0.5),
        (1, [5, 7], {"a": [2, 3], "b": [0, 1]}, 0.5),
        (2, [9], {"a": [4], "b": [3]}, 0.5),
        (3, [11], {"a": [5], "b": [4]}, 0.5),
    ]


def test_cluster_order_by_mean_then_size_then_unit():
    tables = _tables()
    tables["b"][9, 3] = 0.7  # {9}: 0.8, highest
    tables["a"][1, 0] = 0.2  # {1,2,3}: (0.2+0.5*5)/6 = 0.45, lowest
    concepts = cluster_concepts(rosetta_tuples({"a": BB_A, "b": BB_B}, tables), SELF)
    assert [c.g_units.tolist() for c in concepts] == [[9], [5, 7], [11], [1, 2, 3]]
    assert [c.id for c in concepts] == [0, 1, 2, 3]
    assert concepts[0].mean_correlation == pytest.approx(0.8)
    assert concepts[3].mean_correlation == pytest.approx(0.45)


def test_cluster_without_correlations_is_nan_and_ordered_by_size():
    concepts = cluster_concepts(rosetta_tuples({"a": BB_A, "b": BB_B}), SELF)
    assert all(math.isnan(c.mean_correlation) for c in concepts)
    assert [c.g_units.tolist() for c in concepts] == [[1, 2, 3], [5, 7], [9], [11]]


def test_no_self_buddies_gives_singletons():
    r = rosetta_tuples({"a": BB_A, "b": BB_B}, _tables())
    concepts = cluster_concepts(r, np.empty((0, 2), dtype=np.int64))
    assert sorted(c.g_units.tolist() for c in concepts) == [[u] for u in r.units.tolist()]


def test_ids_deterministic_under_permuted_inputs():
    rng = np.random.default_rng(0)
    tables = {f"d{i}": np.round(rng.standard_normal((G, 5)), 1) for i in range(3)}
    bbs = {k: best_buddies(t, 3, 4) for k, t in tables.items()}
    s = np.round(rng.standard_normal((G, G)), 1)
    self_bb = best_buddies(s + s.T, 2, 2, exclude_diagonal=True)
    base = _summary(cluster_concepts(rosetta_tuples(bbs, tables), self_bb))
    assert [c[0] for c in base] == list(range(len(base)))
    for trial in range(5):
        names = list(bbs)[::-1] if trial % 2 else list(bbs)
        perm_bbs = {k: bbs[k][rng.permutation(len(bbs[k]))] for k in names}
        perm_tables = {k: tables[k] for k in reversed(names)}
        perm_self = self_bb[rng.permutation(len(self_bb))][:, ::-1]
        got = _summary(cluster_concepts(rosetta_tuples(perm_bbs, perm_tables), perm_self))
        assert got == base
