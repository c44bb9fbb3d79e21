"""Tree ensembles as plain arrays, predicted by NumPy with scikit-learn's arithmetic.

A random forest or a histogram-gradient-boosting model compiles (:func:`compile_trees`, at
training time) to one table of nodes for all its trees: each node's feature, threshold,
children, where a missing value goes, and a leaf's output. Predicting walks every tree of a
block of rows at once, one level per step (a leaf is its own child, so rows that reached one
stay there), then adds the trees' outputs in scikit-learn's order: a forest averages its
trees' class probabilities (or values); boosting starts from its baseline and adds each
iteration's trees to their raw column, then applies the logistic or the softmax. Training
checks the result against scikit-learn before it ships it (:func:`model.training
.compile_checked`), so the arrays, stored in ``inference.json``, are the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

Kind = Literal["forest", "boosting"]
BLOCK_CELLS = 1 << 16  # trees x rows walked per step: the work arrays stay in the CPU's cache
MAX_DEPTH = 4096


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed the way scikit-learn does."""
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def _expit(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow."""
    return np.asarray(np.exp(-np.logaddexp(0.0, -x)))


@dataclass(frozen=True, repr=False)
class CompiledTrees:
    """A fitted tree ensemble as arrays (see the module docstring); node arrays are indexed by
    a node's position in the concatenation of all trees."""

    kind: Kind
    n_features: int
    feature: np.ndarray  # (n_nodes,) intp; a leaf: 0
    threshold: np.ndarray  # (n_nodes,) float64: <= goes left; a leaf: +inf
    children: np.ndarray  # (n_nodes, 2) intp: left, right; a leaf: itself twice
    missing_left: np.ndarray  # (n_nodes,) bool: where a missing value (NaN) goes
    value: np.ndarray  # (n_nodes, n_outputs) float64: a leaf's output
    roots: np.ndarray  # (n_trees,) intp
    output: np.ndarray  # (n_trees,) intp: the raw column a boosting tree adds to
    baseline: np.ndarray  # (n_outputs,) boosting's starting raw prediction
    classes: np.ndarray  # class labels, empty for regression
    depth: int  # levels of the deepest tree

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompiledTrees:
        """Build from plain data, refusing anything that is not a set of finite trees."""
        kind = raw["kind"]
        if kind not in {"forest", "boosting"}:
            msg = f"unknown compiled tree kind {kind!r}"
            raise ValueError(msg)
        nodes = raw["nodes"]
        left = np.asarray(nodes["left"], dtype=np.intp)
        right = np.asarray(nodes["right"], dtype=np.intp)
        n_nodes = len(left)
        leaf = left < 0
        index = np.arange(n_nodes, dtype=np.intp)
        children = np.column_stack([np.where(leaf, index, left), np.where(leaf, index, right)])
        feature = np.asarray(nodes["feature"], dtype=np.intp)
        threshold = np.asarray(nodes["threshold"], dtype=np.float64)
        missing_left = np.asarray(nodes["missing_left"], dtype=bool)
        value = np.atleast_2d(np.asarray(nodes["value"], dtype=np.float64))
        roots = np.asarray(raw["roots"], dtype=np.intp)
        n_features = int(raw["n_features"])
        arrays = (right, feature, threshold, missing_left, value)
        if any(len(a) != n_nodes for a in arrays) or not len(roots):
            msg = "compiled trees: node arrays of different lengths, or no tree"
            raise ValueError(msg)
        inner = ~leaf
        if (
            (children < 0).any()
            or (children >= n_nodes).any()
            or (roots < 0).any()
            or (roots >= n_nodes).any()
            or (feature[inner] < 0).any()
            or (feature[inner] >= n_features).any()
        ):
            msg = "compiled trees: a child, root or feature index out of range"
            raise ValueError(msg)
        classes = np.asarray(raw.get("classes") or [], dtype=object)
        outputs = value.shape[1]
        output = np.asarray(raw.get("output") or np.zeros(len(roots)), dtype=np.intp)
        baseline = np.asarray(raw.get("baseline") or [], dtype=np.float64)
        if len(output) != len(roots) or (output < 0).any() or (output >= outputs).any():
            msg = "compiled trees: each tree's output column must be one of the outputs"
            raise ValueError(msg)
        if kind == "boosting" and len(baseline) != outputs:
            msg = "compiled trees: boosting needs one baseline per output"
            raise ValueError(msg)
        if kind == "forest" and len(classes) not in {0, outputs}:
            msg = "compiled trees: a forest's leaves hold one probability per class"
            raise ValueError(msg)
        feature = np.where(leaf, 0, feature)
        threshold = np.where(leaf, np.inf, threshold)
        return cls(
            kind,
            n_features,
            feature,
            threshold,
            children,
            missing_left | leaf,
            value,
            roots,
            output,
            baseline,
            classes,
            _depth(children, roots, leaf),
        )

    def __repr__(self) -> str:
        return (
            f"CompiledTrees({self.kind}, {len(self.roots)} trees, {len(self.feature)} nodes, "
            f"depth {self.depth}, {self.n_features} features)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (floats round-trip exactly); a leaf's children are -1."""
        leaf = self.children[:, 0] == np.arange(len(self.children))
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "classes": self.classes.tolist(),
            "roots": self.roots.tolist(),
            "output": self.output.tolist(),
            "baseline": self.baseline.tolist(),
            "nodes": {
                "feature": np.where(leaf, -1, self.feature).tolist(),
                "threshold": np.where(leaf, 0.0, self.threshold).tolist(),
                "left": np.where(leaf, -1, self.children[:, 0]).tolist(),
                "right": np.where(leaf, -1, self.children[:, 1]).tolist(),
                "missing_left": self.missing_left.astype(int).tolist(),
                "value": self.value.tolist(),
            },
        }

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each tree sends each row to, shape ``(n_trees, n_rows)``."""
        n_rows = len(X)
        # A column-major matrix read by flat index: feature * n_rows + row (no copy).
        flat = np.asarray(X, order="F").ravel(order="F")
        rows = np.arange(n_rows, dtype=np.intp)
        node = np.repeat(self.roots[:, None], n_rows, axis=1)
        missing = bool(np.isnan(flat).any())
        children = self.children.ravel()
        for _ in range(self.depth):
            x = flat[self.feature[node] * n_rows + rows]
            right = x > self.threshold[node]
            if missing:
                right |= np.isnan(x) & ~self.missing_left[node]
            node = children[2 * node + right]
        return node

    def _blocks(self, X: np.ndarray) -> list[np.ndarray]:
        if self.kind == "forest":  # scikit-learn's trees compare inputs as float32
            X = X.astype(np.float32).astype(np.float64)
        if X.shape[1] != self.n_features:
            msg = f"the trees take {self.n_features} features, not {X.shape[1]}"
            raise ValueError(msg)
        step = max(1, BLOCK_CELLS // len(self.roots))
        return [self._leaves(X[start : start + step]) for start in range(0, len(X), step)]

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """Boosting's raw predictions ``(n_rows, n_outputs)``: the baseline, then each tree
        added to its column in training order; a forest's average of its trees' outputs."""
        parts = []
        for leaves in self._blocks(X):
            outputs = self.value[leaves]  # (n_trees, rows, n_outputs)
            if self.kind == "forest":
                parts.append(_in_order(outputs) / len(self.roots))
                continue
            raw = np.empty((leaves.shape[1], len(self.baseline)))
            for column, start in enumerate(self.baseline):
                mine = outputs[self.output == column, :, column]
                first = np.full((1, leaves.shape[1]), start)
                raw[:, column] = _in_order(np.concatenate([first, mine]))
            parts.append(raw)
        return np.concatenate(parts) if parts else np.zeros((0, self.value.shape[1]))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, columns ordered like :attr:`classes`."""
        if not len(self.classes):
            msg = "predict_proba needs a classifier"
            raise TypeError(msg)
        raw = self._raw(X)
        if self.kind == "forest":
            return raw
        if raw.shape[1] > 1:
            return _softmax(raw)
        positive = _expit(raw[:, 0])
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values (regression) or class labels (the most probable class)."""
        if len(self.classes):
            return np.asarray(self.classes[self.predict_proba(X).argmax(axis=1)])
        return self._raw(X)[:, 0]


def _in_order(terms: np.ndarray) -> np.ndarray:
    """The sum over the first axis, added one term after the other as scikit-learn does (a
    plain ``sum`` may add pairwise, in an order that depends on the batch's shape)."""
    return np.asarray(np.cumsum(terms, axis=0)[-1])


def _depth(children: np.ndarray, roots: np.ndarray, leaf: np.ndarray) -> int:
    """Levels of the deepest tree, walking from the roots; refuses cycles and runaways."""
    frontier, depth = roots[~leaf[roots]], 0
    while len(frontier):
        depth += 1
        if depth > MAX_DEPTH:
            msg = f"compiled trees: deeper than {MAX_DEPTH} levels, or a cycle"
            raise ValueError(msg)
        frontier = np.unique(children[frontier])  # a node reached twice is walked once
        frontier = frontier[~leaf[frontier]]
    return depth


def compile_trees(estimator: BaseEstimator) -> CompiledTrees | None:
    """The arrays of a fitted random forest or histogram gradient boosting (classifier or
    regressor), or None for another estimator or a form this module does not cover
    (several outputs, categorical splits, another loss)."""
    from sklearn.ensemble import (  # noqa: PLC0415 - training time only
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    if isinstance(estimator, RandomForestClassifier | RandomForestRegressor):
        return _forest(estimator)
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return _boosting(estimator)
    return None


def _forest(forest: Any) -> CompiledTrees | None:  # noqa: ANN401 - scikit-learn has no types
    if getattr(forest, "n_outputs_", 1) != 1:
        return None
    classes = [str(c) for c in getattr(forest, "classes_", [])]
    nodes: dict[str, list[Any]] = {k: [] for k in ("feature", "threshold", "left", "right")}
    nodes |= {"missing_left": [], "value": []}
    roots, offset = [], 0
    for tree in (estimator.tree_ for estimator in forest.estimators_):
        leaf = tree.children_left < 0
        roots.append(offset)
        nodes["feature"].append(np.where(leaf, -1, tree.feature))
        nodes["threshold"].append(np.where(leaf, 0.0, tree.threshold))
        nodes["left"].append(np.where(leaf, -1, tree.children_left + offset))
        nodes["right"].append(np.where(leaf, -1, tree.children_right + offset))
        nodes["missing_left"].append(np.asarray(tree.missing_go_to_left, dtype=bool))
        value = tree.value[:, 0, : len(classes) or 1]
        if classes:  # what DecisionTreeClassifier.predict_proba does to a leaf's value
            normalizer = value.sum(axis=1)[:, np.newaxis]
            normalizer[normalizer == 0.0] = 1.0
            value = value / normalizer
        nodes["value"].append(value)
        offset += tree.node_count
    return CompiledTrees.from_dict(
        {
            "kind": "forest",
            "n_features": int(forest.n_features_in_),
            "classes": classes,
            "roots": roots,
            "nodes": {k: np.concatenate(v).tolist() for k, v in nodes.items()},
        }
    )


def _boosting(model: Any) -> CompiledTrees | None:  # noqa: ANN401 - scikit-learn has no types
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if getattr(model, "loss", "") not in {"log_loss", "squared_error"}:
        return None
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).ravel()
    nodes: dict[str, list[Any]] = {k: [] for k in ("feature", "threshold", "left", "right")}
    nodes |= {"missing_left": [], "value": []}
    roots, output, offset = [], [], 0
    for iteration in model._predictors:  # scikit-learn keeps the fitted trees here
        for column, predictor in enumerate(iteration):
            table = predictor.nodes
            if table["is_categorical"].any():
                return None
            leaf = table["is_leaf"].astype(bool)
            roots.append(offset)
            output.append(column)
            nodes["feature"].append(np.where(leaf, -1, table["feature_idx"]))
            nodes["threshold"].append(np.where(leaf, 0.0, table["num_threshold"]))
            nodes["left"].append(np.where(leaf, -1, table["left"].astype(np.int64) + offset))
            nodes["right"].append(np.where(leaf, -1, table["right"].astype(np.int64) + offset))
            nodes["missing_left"].append(table["missing_go_to_left"].astype(bool))
            value = np.zeros((len(table), len(baseline)))
            value[:, column] = table["value"]
            nodes["value"].append(value)
            offset += len(table)
    return CompiledTrees.from_dict(
        {
            "kind": "boosting",
            "n_features": int(model.n_features_in_),
            "classes": classes,
            "roots": roots,
            "output": output,
            "baseline": baseline.tolist(),
            "nodes": {k: np.concatenate(v).tolist() for k, v in nodes.items()},
        }
    )
