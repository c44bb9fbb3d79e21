"""Compiled tree ensembles (model.trees) against scikit-learn's own predictions, on random
rows, rows on split thresholds and rows with missing values; and malformed trees refused."""

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from model.training import split_edges
from model.trees import MAX_DEPTH, CompiledTrees, compile_trees

RNG = np.random.default_rng(0)
X = RNG.normal(size=(300, 6))
X[:, 4:] = X[:, 4:] > 0  # one-hot-like columns, as the preprocessing makes
X[::11, 1] = np.nan  # missing values at training time: the trees learn where they go
LABELS = {
    "binary": np.array(["no", "yes"])[(np.nan_to_num(X[:, 0]) > 0).astype(int)],
    "three": np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 2] > 1)],
    "values": X[:, 0] * 3 + X[:, 3] ** 2 * 1000,
}
MODELS = {
    "forest-binary": (RandomForestClassifier(n_estimators=40, random_state=0), "binary"),
    "forest-three": (RandomForestClassifier(n_estimators=40, random_state=0), "three"),
    "forest-values": (RandomForestRegressor(n_estimators=30, random_state=0), "values"),
    "boosting-binary": (HistGradientBoostingClassifier(max_iter=40, random_state=0), "binary"),
    "boosting-three": (HistGradientBoostingClassifier(max_iter=40, random_state=0), "three"),
    "boosting-values": (HistGradientBoostingRegressor(max_iter=40, random_state=0), "values"),
}


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[object, CompiledTrees]:
    estimator, labels = MODELS[request.param]
    estimator.fit(X, LABELS[labels])
    compiled = compile_trees(estimator)
    assert compiled is not None
    return estimator, CompiledTrees.from_dict(compiled.to_dict())  # as loaded from JSON


def rows_to_check(compiled: CompiledTrees) -> np.ndarray:
    fresh = RNG.normal(size=(500, 6))
    fresh[:, 4:] = fresh[:, 4:] > 0
    edges = split_edges(compiled, X[~np.isnan(X).any(axis=1)])
    missing = split_edges(compiled, X[~np.isnan(X).any(axis=1)], missing=True)
    return np.concatenate([fresh, edges, missing])


def test_predictions_are_scikit_learns(fitted: tuple[object, CompiledTrees]) -> None:
    estimator, compiled = fitted
    rows = rows_to_check(compiled)
    if hasattr(estimator, "classes_"):
        expected = estimator.predict_proba(rows)
        np.testing.assert_allclose(compiled.predict_proba(rows), expected, rtol=1e-12, atol=1e-12)
        assert compiled.predict(rows).tolist() == estimator.predict(rows).astype(str).tolist()
    else:
        np.testing.assert_allclose(
            compiled.predict(rows), estimator.predict(rows), rtol=1e-12, atol=1e-12
        )


def test_one_row_and_block_boundaries_predict_the_same(
    fitted: tuple[object, CompiledTrees], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row's prediction does not depend on its batch, nor on how it is cut in blocks."""
    _, compiled = fitted
    rows = rows_to_check(compiled)[:200]
    whole = compiled.predict(rows)
    one_by_one = np.concatenate([compiled.predict(rows[i : i + 1]) for i in range(len(rows))])
    assert whole.tolist() == one_by_one.tolist()
    monkeypatch.setattr("model.trees.BLOCK_CELLS", 7)
    assert compiled.predict(rows).tolist() == whole.tolist()
    assert compiled.predict(rows[:0]).shape == (0,)


def test_other_estimators_and_forms_do_not_compile() -> None:
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    assert compile_trees(LogisticRegression().fit(X[:, 4:], LABELS["binary"])) is None
    poisson = HistGradientBoostingRegressor(loss="poisson", max_iter=5)
    assert compile_trees(poisson.fit(np.nan_to_num(X), np.abs(LABELS["values"]))) is None
    two_outputs = RandomForestRegressor(n_estimators=3, random_state=0)
    values = np.column_stack([LABELS["values"], LABELS["values"]])
    assert compile_trees(two_outputs.fit(np.nan_to_num(X), values)) is None


def one_tree() -> dict:
    estimator = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, LABELS["three"])
    compiled = compile_trees(estimator)
    assert compiled is not None
    return compiled.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["nodes"]["left"].__setitem__(0, 10**9), "out of range"),
        (lambda raw: raw["nodes"]["feature"].__setitem__(0, 99), "out of range"),
        (lambda raw: raw["nodes"]["left"].__setitem__(1, 0), "not after its parent"),
        (lambda raw: raw["nodes"]["value"].pop(), "nodes.value: .* entries for"),
        (lambda raw: raw.__setitem__("roots", []), "no tree"),
        (lambda raw: raw.__setitem__("kind", "oblivious"), "unknown compiled tree kind"),
    ],
)
def test_malformed_trees_are_refused(change, message: str) -> None:
    raw = one_tree()
    change(raw)
    with pytest.raises(ValueError, match=message):
        CompiledTrees.from_dict(raw)


def three_class_boosting() -> dict:
    estimator = HistGradientBoostingClassifier(max_iter=3, random_state=0)
    compiled = compile_trees(estimator.fit(X, LABELS["three"]))
    assert compiled is not None
    return compiled.to_dict()


def test_each_boosting_tree_writes_to_its_class_column() -> None:
    """One tree per class and iteration, in class order: tree i adds to raw column i % 3."""
    raw = three_class_boosting()
    assert len(raw["baseline"]) == 3
    assert raw["output"] == [0, 1, 2] * (len(raw["roots"]) // 3)


@pytest.mark.parametrize(
    ("column", "valid"), [(-2, False), (-1, False), (0, True), (2, True), (3, False), (4, False)]
)
def test_a_tree_output_column_must_be_one_of_the_outputs(column: int, valid: bool) -> None:
    """Three outputs: columns 0 to 2 (limit-1) are valid; -1 and 3 (the limit) are refused."""
    raw = three_class_boosting()
    raw["output"][0] = column
    if valid:
        assert CompiledTrees.from_dict(raw).output[0] == column
    else:
        with pytest.raises(
            ValueError, match="each tree's output column must be one of the outputs"
        ):
            CompiledTrees.from_dict(raw)


def small_forest(classes: list[str]) -> dict:
    """One tree, a root and two leaves, by hand: what each check below breaks."""
    outputs = len(classes) or 1
    return {
        "kind": "forest",
        "n_features": 2,
        "classes": classes,
        "roots": [0],
        "output": [0],
        "baseline": [],
        "nodes": {
            "feature": [1, -1, -1],
            "threshold": [0.5, 0.0, 0.0],
            "left": [1, -1, -1],
            "right": [2, -1, -1],
            "missing_left": [1, 0, 0],
            "value": [[0.0] * outputs, [1.0] + [0.0] * (outputs - 1), [0.0] * outputs],
        },
    }


def ring(n_nodes: int) -> dict:
    """The crafted table that once took a minute to refuse: node i's children are nodes 2i+1
    and 2i+2 around a ring, so a walk from the root soon visits every node at every level."""
    raw = small_forest([])
    raw["nodes"] = {
        "feature": [0] * n_nodes,
        "threshold": [0.0] * n_nodes,
        "left": [(2 * i + 1) % n_nodes for i in range(n_nodes)],
        "right": [(2 * i + 2) % n_nodes for i in range(n_nodes)],
        "missing_left": [1] * n_nodes,
        "value": [[0.0]] * n_nodes,
    }
    return raw


def shared(raw: dict) -> None:
    """Both children of the root are the same leaf (a graph, not a tree)."""
    raw["nodes"]["right"][0] = 1


def chain(raw: dict) -> None:
    """One tree deeper than MAX_DEPTH: each inner node's left child is a leaf."""
    depth = MAX_DEPTH + 1
    nodes = raw["nodes"]
    nodes["left"] = [i + 1 if i % 2 == 0 and i < 2 * depth else -1 for i in range(2 * depth + 1)]
    nodes["right"] = [i + 2 if i % 2 == 0 and i < 2 * depth else -1 for i in range(2 * depth + 1)]
    nodes["feature"] = [0 if left >= 0 else -1 for left in nodes["left"]]
    for name, fill in (("threshold", 0.0), ("missing_left", 0), ("value", [0.0])):
        nodes[name] = [fill] * len(nodes["left"])


def put(field: str, value: object) -> Callable[[dict], None]:
    """Set ``nodes.<name>[0]`` or a top-level ``<name>`` to ``value``."""

    def change(raw: dict) -> None:
        if field.startswith("nodes."):
            raw["nodes"][field.removeprefix("nodes.")][0] = value
        else:
            raw[field] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (put("nodes.threshold", float("nan")), r"nodes\.threshold: NaN"),
        (put("nodes.value", [float("nan")]), r"nodes\.value: NaN"),
        (put("nodes.value", [float("inf")]), r"nodes\.value: an infinity"),
        (put("nodes.value", [0.0] * 100_000), r"nodes\.value: expected a list of equal-length"),
        (put("nodes.feature", "1"), r"nodes\.feature: expected a list of integers, found text"),
        (put("nodes.left", 1.0), r"nodes\.left: expected a list of integers, found fractions"),
        (put("roots", [True]), r"roots: .* found true/false"),
        (put("nodes.left", None), r"nodes\.left: .* found null"),
        (put("nodes.missing_left", 2), r"nodes\.missing_left: expected 0 or 1"),
        (put("n_features", "2"), r"n_features: expected a number, found text"),
        (put("n_features", 0), r"nodes\.feature: a feature out of range"),
        (put("classes", [1, 2]), r"classes: expected a list of text"),
        (
            put("baseline", [0.0]),
            r"baseline: boosting needs one baseline per output, a forest none",
        ),
        (put("output", [1]), r"output: each tree's output column must be one of the outputs"),
        (put("nodes.right", -1), r"nodes\.right: a node with one child"),
        (shared, r"nodes: node 1 is reached 2 times"),
        (chain, f"nodes: a tree deeper than {MAX_DEPTH} levels"),
    ],
)
def test_each_field_is_checked_and_named(change: Callable[[dict], None], message: str) -> None:
    raw = small_forest([])
    CompiledTrees.from_dict(raw)  # sound as made
    change(raw)
    with pytest.raises(ValueError, match=message):
        CompiledTrees.from_dict(raw)


def test_a_ring_of_nodes_is_refused_at_once() -> None:
    """Refused for what it is (a child before its parent), without walking it: the checks
    are linear in the table, where walking this ring level by level took a minute."""
    with pytest.raises(ValueError, match=r"nodes\.left: a child out of range, or not after"):
        CompiledTrees.from_dict(ring(100_000))


@pytest.mark.parametrize(
    ("classes", "outputs"), [([], 100_000), (["a", "b", "c"], 100_000), (["a", "b", "c"], 2)]
)
def test_leaves_hold_as_many_outputs_as_the_model_has(classes: list[str], outputs: int) -> None:
    """A 100,000-output leaf once loaded (and each prediction grew gigabytes)."""
    raw = small_forest(classes)
    raw["nodes"]["value"] = [[0.0] * outputs] * 3
    with pytest.raises(ValueError, match=rf"nodes\.value: {outputs} outputs per node, where"):
        CompiledTrees.from_dict(raw)


def test_boosting_has_one_output_for_two_classes() -> None:
    raw = small_forest(["no", "yes"])
    raw |= {"kind": "boosting", "baseline": [0.0, 0.0]}
    with pytest.raises(
        ValueError, match=r"nodes\.value: 2 outputs per node, where the model has 1"
    ):
        CompiledTrees.from_dict(raw)
    raw["nodes"]["value"] = [[0.0], [1.0], [0.0]]
    with pytest.raises(ValueError, match="baseline: boosting needs one baseline per output"):
        CompiledTrees.from_dict(raw)
    raw["baseline"] = [0.5]
    assert CompiledTrees.from_dict(raw).predict_proba(np.zeros((1, 2))).shape == (1, 2)
