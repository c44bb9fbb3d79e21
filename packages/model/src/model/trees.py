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

With the ``model[fast]`` extra (numba), large batches are walked by a compiled kernel over the
same arrays (:mod:`model.tree_kernel`, imported only then), which adds the trees' outputs in
the same order: its results are the NumPy walk's bit for bit.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.util import find_spec
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from features import json_numbers, json_texts

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

Kind = Literal["forest", "boosting"]
BLOCK_CELLS = 1 << 16  # trees x rows walked per step: the work arrays stay in the CPU's cache
MAX_DEPTH = 4096
# From this many tree walks (rows x trees) in one call, the compiled kernel predicts when numba
# is installed (model[fast]): importing and loading it once (~1 s) then pays for itself.
KERNEL_MIN_WALKS = 10_000_000


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed the way scikit-learn does."""
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def _expit(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow."""
    return np.asarray(np.exp(-np.logaddexp(0.0, -x)))


NODE = np.dtype([("threshold", np.float64), ("feature", np.int32), ("left", np.int32)])


class KernelTables(NamedTuple):
    """The trees as :mod:`model.tree_kernel` walks them (:meth:`CompiledTrees.kernel_tables`).

    Each tree's nodes are renumbered level by level, so that its top levels sit together and
    a node's children are neighbours: one 16-byte :data:`NODE` per node holds all a step
    reads. ``feature`` is twice the feature plus 1 where a missing value goes right; the
    right child is ``left + 1``; a leaf is its own left child, with an infinite threshold and
    missing values going left, so a row that reached it stays there. ``value`` holds the
    nodes' outputs in the new order: a forest's every output, boosting's one raw column its
    tree adds to (the others are never read). ``depth`` is each tree's number of levels."""

    nodes: np.ndarray  # (n_nodes,) NODE
    roots: np.ndarray  # (n_trees,) int32
    depth: np.ndarray  # (n_trees,) int32
    value: np.ndarray  # (n_nodes, n_outputs) forest, (n_nodes, 1) boosting; float64


@cache
def kernel() -> ModuleType | None:
    """:mod:`model.tree_kernel`, imported on first call; None without numba (the
    ``model[fast]`` extra), or with one that does not import (one warning): NumPy predicts."""
    if find_spec("numba") is None:
        return None
    try:
        from model import tree_kernel  # noqa: PLC0415 - numba only where it pays off
    except ImportError as error:  # for example a NumPy newer than numba supports
        msg = f"model[fast]: numba does not import ({error}); NumPy predicts the trees"
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return None
    return tree_kernel


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
        """Build from plain data, refusing with a ``ValueError`` naming the field anything
        but a set of finite trees (see :func:`_check_tables`), in time linear in its size."""
        kind = raw["kind"]
        if kind not in {"forest", "boosting"}:
            msg = f"kind: unknown compiled tree kind {kind!r}"
            raise ValueError(msg)
        nodes = raw["nodes"]
        left, right, feature, missing = (
            json_numbers(nodes[k], f"nodes.{k}", ndim=1, integers=True)
            for k in ("left", "right", "feature", "missing_left")
        )
        threshold = json_numbers(nodes["threshold"], "nodes.threshold", ndim=1, infinite=True)
        value = json_numbers(nodes["value"], "nodes.value", ndim=2)
        roots = json_numbers(raw["roots"], "roots", ndim=1, integers=True)
        n_features = int(json_numbers(raw["n_features"], "n_features", ndim=0, integers=True))
        classes = np.asarray(json_texts(raw.get("classes") or [], "classes"), dtype=object)
        output = json_numbers(
            raw.get("output") or [0] * len(roots), "output", ndim=1, integers=True
        )
        baseline = json_numbers(raw.get("baseline") or [], "baseline", ndim=1)
        arrays = {"right": right, "feature": feature, "threshold": threshold}
        arrays |= {"missing_left": missing, "value": value}
        for name, array in arrays.items():
            if len(array) != len(left):
                msg = f"nodes.{name}: {len(array)} entries for {len(left)} nodes"
                raise ValueError(msg)
        _check_outputs(kind, classes, value, output, baseline)
        leaf = _check_tables(left, right, roots, feature, n_features)
        if not np.isin(missing, (0, 1)).all():
            msg = "nodes.missing_left: expected 0 or 1"
            raise ValueError(msg)
        index = np.arange(len(left), dtype=np.intp)
        children = np.column_stack([np.where(leaf, index, left), np.where(leaf, index, right)])
        return cls(
            kind,
            n_features,
            np.where(leaf, 0, feature),
            np.where(leaf, np.inf, threshold),
            children,
            missing.astype(bool) | leaf,
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

    @cached_property
    def kernel_tables(self) -> KernelTables:
        """The trees as the compiled kernel walks them (:class:`KernelTables`), made on first
        use: every tree's nodes, level by level, in time linear in the nodes."""
        if len(self.feature) >= 2**31 or self.n_features >= 2**30:
            msg = "the trees are too large for the kernel's 32-bit node tables"
            raise ValueError(msg)
        n_trees = len(self.roots)
        leaf = self.children[:, 0] == np.arange(len(self.children))
        olds, trees, levels, positions = [], [], [], []
        frontier, tree, level = self.roots, np.arange(n_trees), 0
        while len(frontier):  # every node once (the tables are checked)
            olds.append(frontier)
            trees.append(tree)
            levels.append(np.full(len(frontier), level))
            positions.append(np.arange(len(frontier)))
            inner = ~leaf[frontier]
            frontier = self.children[frontier[inner]].ravel()  # left, right, left, right...
            tree, level = np.repeat(tree[inner], 2), level + 1
        # By tree, then level, then place in the level: siblings stay side by side.
        tree_of = np.concatenate(trees)
        order = np.lexsort((np.concatenate(positions), np.concatenate(levels), tree_of))
        old = np.concatenate(olds)[order]  # the old number of each new node
        new = np.empty(len(old), dtype=np.intp)
        new[old] = np.arange(len(old))
        nodes = np.empty(len(old), dtype=NODE)
        nodes["threshold"] = self.threshold[old]
        nodes["feature"] = 2 * self.feature[old] + ~self.missing_left[old]
        nodes["left"] = new[self.children[old, 0]]
        depth = np.zeros(n_trees, dtype=np.int32)
        np.maximum.at(depth, tree_of, np.concatenate(levels))
        if self.kind == "forest":
            value = self.value[old]
        else:
            value = self.value[old, self.output[tree_of[order]]][:, None]
        return KernelTables(nodes, new[self.roots].astype(np.int32), depth, value)

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
        step = max(1, BLOCK_CELLS // len(self.roots))
        return [self._leaves(X[start : start + step]) for start in range(0, len(X), step)]

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """Boosting's raw predictions ``(n_rows, n_outputs)``: the baseline, then each tree
        added to its column in training order; a forest's average of its trees' outputs.
        With numba, from :data:`KERNEL_MIN_WALKS` rows x trees (or once it is loaded), the
        compiled kernel computes the same numbers (:func:`kernel`)."""
        if X.shape[1] != self.n_features:
            msg = f"the trees take {self.n_features} features, not {X.shape[1]}"
            raise ValueError(msg)
        large = len(X) * len(self.roots) >= KERNEL_MIN_WALKS
        compiled = kernel() if large or "model.tree_kernel" in sys.modules else None
        return self._walk(X) if compiled is None else compiled.raw(self, X)

    def _walk(self, X: np.ndarray) -> np.ndarray:
        """:meth:`_raw` by NumPy, level by level for a block of rows at once."""
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


def _check_outputs(
    kind: str, classes: np.ndarray, value: np.ndarray, output: np.ndarray, baseline: np.ndarray
) -> None:
    """A leaf holds as many outputs as the model has: a forest's classifier one probability
    per class, boosting's one raw score per class beyond two, a regressor one value; each
    tree adds to one of them, and boosting starts from one baseline per output."""
    outputs = len(classes) or 1
    if kind == "boosting" and len(classes) == 2:  # binary: one raw score
        outputs = 1
    if value.shape[1] != outputs:
        msg = f"nodes.value: {value.shape[1]} outputs per node, where the model has {outputs}"
        raise ValueError(msg)
    if ((output < 0) | (output >= outputs)).any() or (kind == "forest" and output.any()):
        msg = "output: each tree's output column must be one of the outputs"
        raise ValueError(msg)
    if len(baseline) != (outputs if kind == "boosting" else 0):
        msg = "baseline: boosting needs one baseline per output, a forest none"
        raise ValueError(msg)


def _check_tables(
    left: np.ndarray,
    right: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    n_features: int,
) -> np.ndarray:
    """Refuse node tables that are not a forest of binary trees; return which nodes are
    leaves. A leaf's children are -1; an inner node's come after it in the table (as
    scikit-learn numbers them), so no walk can loop; and every node is reached exactly
    once, as a root or as one node's child, so every tree is a tree. Linear in the nodes."""
    n_nodes = len(left)
    leaf: np.ndarray = left == -1
    if not len(roots) or not n_nodes:
        msg = "roots: no tree"
        raise ValueError(msg)
    if ((right == -1) != leaf).any():
        msg = "nodes.right: a node with one child (a leaf's are both -1)"
        raise ValueError(msg)
    inner = np.flatnonzero(~leaf)
    for name, child in (("left", left), ("right", right)):
        if ((child[inner] <= inner) | (child[inner] >= n_nodes)).any():
            msg = f"nodes.{name}: a child out of range, or not after its parent"
            raise ValueError(msg)
    if ((roots < 0) | (roots >= n_nodes)).any():
        msg = "roots: a root out of range"
        raise ValueError(msg)
    reached = np.bincount(np.concatenate([roots, left[inner], right[inner]]), minlength=n_nodes)
    if (reached != 1).any():
        msg = f"nodes: node {int(np.flatnonzero(reached != 1)[0])} is reached "
        msg += f"{int(reached[reached != 1][0])} times; every node once, as a root or a child"
        raise ValueError(msg)
    if n_features < 1 or ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        msg = f"nodes.feature: a feature out of range (the trees take {n_features})"
        raise ValueError(msg)
    return leaf


def _depth(children: np.ndarray, roots: np.ndarray, leaf: np.ndarray) -> int:
    """Levels of the deepest tree, walking from the roots: each node once (the tables are
    checked, :func:`_check_tables`); refuses a tree deeper than :data:`MAX_DEPTH`."""
    frontier, depth = roots[~leaf[roots]], 0
    while len(frontier):
        depth += 1
        if depth > MAX_DEPTH:
            msg = f"nodes: a tree deeper than {MAX_DEPTH} levels"
            raise ValueError(msg)
        frontier = children[frontier].ravel()
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
        nodes["missing_left"].append(np.asarray(tree.missing_go_to_left, dtype=np.intp))
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
            nodes["missing_left"].append(table["missing_go_to_left"].astype(np.intp))
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
