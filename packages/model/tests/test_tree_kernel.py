"""The compiled tree kernel of the model[fast] extra (model/tree_kernel.py): bit for bit the
NumPy walker's results, and so scikit-learn's as the walker gives them, for forests and
boosting, classifiers (two and more classes) and regressors, shallow and deep trees, on
training rows, rows on split thresholds, missing values, and artifacts' edge records (nulls,
unseen categories); numba's cache folder; and that numba is imported only for batches that
profit. Tests that need numba skip without it (``tox -e model-test``; ``tox -e model-fast``
installs the extra and runs them); the others run in both."""

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from features import edge_records, validate
from model import TrainResult, load_artifact
from model.training import split_edges
from model.trees import CompiledTrees, KernelTables, compile_trees

HAS_NUMBA = find_spec("numba") is not None
needs_numba = pytest.mark.skipif(
    not HAS_NUMBA, reason="numba is not installed (the model[fast] extra: tox -e model-fast)"
)


def test_the_extra_s_env_runs_the_kernel_tests() -> None:
    """In tox's model-fast env (the extra installed) none of the tests below may skip."""
    if os.environ.get("TOX_ENV_NAME", "").endswith("-fast"):
        assert HAS_NUMBA


RNG = np.random.default_rng(7)
X = RNG.normal(size=(400, 6))
X[:, 4:] = X[:, 4:] > 0  # one-hot-like columns, as the preprocessing makes
X[:, 3] = np.round(X[:, 3], 1)  # repeated values: rows sit exactly on thresholds
X[::11, 1] = np.nan  # missing values at training time: the trees learn where they go
LABELS = {
    "binary": np.array(["no", "yes"])[(np.nan_to_num(X[:, 0]) > 0).astype(int)],
    "three": np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 2] > 1)],
    "many": np.array(list("abcdefghij"))[np.digitize(X[:, 0] + X[:, 2], np.linspace(-2, 2, 9))],
    "values": X[:, 0] * 3 + X[:, 3] ** 2 * 1000 - np.nan_to_num(X[:, 1]) * 50,
}
MODELS = {
    "forest-binary": (RandomForestClassifier(n_estimators=30, random_state=0), "binary"),
    "forest-three": (RandomForestClassifier(n_estimators=30, random_state=0), "three"),
    "forest-many-deep": (RandomForestClassifier(n_estimators=12, random_state=0), "many"),
    "forest-values-deep": (RandomForestRegressor(n_estimators=12, random_state=0), "values"),
    "boosting-binary": (HistGradientBoostingClassifier(max_iter=30, random_state=0), "binary"),
    "boosting-three": (HistGradientBoostingClassifier(max_iter=30, random_state=0), "three"),
    "boosting-values": (HistGradientBoostingRegressor(max_iter=30, random_state=0), "values"),
    "boosting-many-deep": (
        HistGradientBoostingClassifier(
            max_iter=8, max_leaf_nodes=None, max_depth=None, min_samples_leaf=2, random_state=0
        ),
        "many",
    ),
}


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[object, CompiledTrees]:
    estimator, labels = MODELS[request.param]
    estimator.fit(X, LABELS[labels])
    compiled = compile_trees(estimator)
    assert compiled is not None
    if request.param.endswith("-deep"):  # deeper than the levels walked for every row
        assert compiled.depth > 12
    return estimator, CompiledTrees.from_dict(compiled.to_dict())  # as loaded from JSON


def rows_to_check(compiled: CompiledTrees, *, infinities: bool = True) -> np.ndarray:
    """Training rows, fresh rows, rows on, just above and just below split thresholds, rows
    with a missing value in each column, and infinities (which scikit-learn refuses)."""
    fresh = RNG.normal(size=(300, 6))
    fresh[:, 4:] = fresh[:, 4:] > 0
    complete = X[~np.isnan(X).any(axis=1)]
    edges = split_edges(compiled, complete)
    missing = split_edges(compiled, complete, missing=True)
    infinite = np.array(complete[:12])
    infinite[np.arange(12), np.arange(12) % 6] = np.where(np.arange(12) < 6, np.inf, -np.inf)
    return np.concatenate([X, fresh, edges, missing, *([infinite] if infinities else [])])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to the bit (-0.0 is not 0.0), shapes and dtypes too."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def table_leaves(tables: KernelTables, rows: np.ndarray) -> np.ndarray:
    """The walk the kernel does, by NumPy over its tables: the leaf (new number) each tree
    sends each row to, ``(n_trees, n_rows)``."""
    at = np.repeat(tables.roots[:, None].astype(np.intp), len(rows), axis=1)
    for _ in range(int(tables.depth.max(initial=0))):
        node = tables.nodes[at]
        x = rows[np.arange(len(rows)), node["feature"] >> 1]
        right = (x > node["threshold"]) | (np.isnan(x) & (node["feature"] & 1).astype(bool))
        at = node["left"] + right
    return at


def test_kernel_tables_are_the_same_trees(fitted: tuple[object, CompiledTrees]) -> None:
    """Renumbered for the kernel, each tree sends each row to a leaf with the same output:
    checked with NumPy, so it runs without numba too."""
    _, compiled = fitted
    tables = compiled.kernel_tables
    rows = rows_to_check(compiled)
    if compiled.kind == "forest":
        rows = rows.astype(np.float32).astype(np.float64)
    old = compiled._leaves(rows)
    new = table_leaves(tables, rows)
    if compiled.kind == "forest":
        assert same_bits(tables.value[new], compiled.value[old])
    else:
        column = compiled.output[:, None]
        assert same_bits(tables.value[new, 0], compiled.value[old, column])
    nodes = tables.nodes
    leaf = nodes["left"] == np.arange(len(nodes))
    assert (nodes["threshold"][leaf] == np.inf).all()
    assert not (nodes["feature"][leaf] & 1).any()  # a missing value stays at a leaf too
    assert (nodes["left"][~leaf] > np.flatnonzero(~leaf)).all()  # children after parents
    assert tables.depth.max() == compiled.depth


@pytest.fixture
def tree_kernel() -> object:
    """The kernel module (numba imported), for the tests that need it."""
    if not HAS_NUMBA:
        pytest.skip("numba is not installed (the model[fast] extra: tox -e model-fast)")
    from model import tree_kernel  # noqa: PLC0415 - imports numba

    return tree_kernel


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", [None, 7])
def test_the_kernel_is_the_walker_bit_for_bit(
    fitted: tuple[object, CompiledTrees],
    tree_kernel,
    threads: int,
    block: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Serial and parallel, whatever the blocks of rows: the walker's raw outputs to the bit
    (-0.0, the order of the additions)."""
    _, compiled = fitted
    if block is not None:
        monkeypatch.setattr(tree_kernel, "BLOCK_ROWS", block)
    rows = rows_to_check(compiled)
    assert same_bits(tree_kernel.raw(compiled, rows, threads=threads), compiled._walk(rows))
    one_by_one = [tree_kernel.raw(compiled, rows[i : i + 1]) for i in range(0, len(rows), 97)]
    assert same_bits(np.concatenate(one_by_one), compiled._walk(rows[::97]))
    assert tree_kernel.raw(compiled, rows[:0]).shape == (0, compiled.value.shape[1])


def numpy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Predict as without the extra: no kernel."""
    monkeypatch.setattr("model.trees.kernel", lambda: None)


def test_predictions_by_the_kernel_are_the_walkers_and_scikit_learns(
    fitted: tuple[object, CompiledTrees], tree_kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through predict/predict_proba (the kernel from the first row): the walker's numbers,
    and scikit-learn's labels, probabilities and values as the walker gives them."""
    estimator, compiled = fitted
    rows = rows_to_check(compiled, infinities=False)
    with monkeypatch.context() as numpy:
        numpy_only(numpy)
        walked = compiled.predict(rows)
        walked_proba = compiled.predict_proba(rows) if len(compiled.classes) else None
    monkeypatch.setattr("model.trees.KERNEL_MIN_WALKS", 0)
    assert compiled.predict(rows).tolist() == walked.tolist()
    if walked_proba is None:
        assert same_bits(compiled.predict(rows), walked)
        np.testing.assert_allclose(walked, estimator.predict(rows), rtol=1e-12, atol=1e-12)
        return
    proba = compiled.predict_proba(rows)
    assert np.array_equal(proba, walked_proba)
    assert same_bits(proba, walked_proba)
    np.testing.assert_allclose(proba, estimator.predict_proba(rows), rtol=1e-12, atol=1e-12)
    assert walked.tolist() == estimator.predict(rows).astype(str).tolist()


def hand_forest(leaves: list[float], threshold: float) -> CompiledTrees:
    """Two regression trees, one split each on feature 0 at ``threshold`` (a missing value
    goes right), leaves as given: what -0.0 and ties need."""
    return CompiledTrees.from_dict(
        {
            "kind": "forest",
            "n_features": 1,
            "classes": [],
            "roots": [0, 3],
            "nodes": {
                "feature": [0, -1, -1, 0, -1, -1],
                "threshold": [threshold, 0.0, 0.0, threshold, 0.0, 0.0],
                "left": [1, -1, -1, 4, -1, -1],
                "right": [2, -1, -1, 5, -1, -1],
                "missing_left": [0, 0, 0, 0, 0, 0],
                "value": [[0.0], [leaves[0]], [leaves[1]], [0.0], [leaves[2]], [leaves[3]]],
            },
        }
    )


def test_negative_zero_ties_and_missing_values(tree_kernel) -> None:
    """A sum of -0.0 leaves stays -0.0 (it starts from the first tree's value, not 0.0); a
    value equal to the threshold goes left; NaN goes where the node says (right here)."""
    trees = hand_forest([-0.0, 1.5, -0.0, -1.5], 0.25)
    rows = np.array([[0.25], [np.nextafter(0.25, 1.0)], [np.nan], [-np.inf], [np.inf]])
    raw = tree_kernel.raw(trees, rows)
    assert same_bits(raw, trees._walk(rows))
    assert raw[0, 0] == 0.0  # tie: both trees' left leaf, -0.0
    assert np.signbit(raw[0, 0])
    assert raw[1:3, 0].tolist() == [0.0, 0.0]  # (1.5 + -1.5) / 2, for above and for NaN
    # float32 inputs as scikit-learn's forests compare them: 0.1 is not its float32
    trees = hand_forest([1.0, 2.0, 1.0, 2.0], float(np.float32(0.1)))
    rows = np.array([[0.1], [np.float32(0.1)], [np.nextafter(np.float32(0.1), np.float32(1))]])
    assert tree_kernel.raw(trees, rows)[:, 0].tolist() == [1.0, 1.0, 2.0]
    assert same_bits(tree_kernel.raw(trees, rows), trees._walk(rows))


@pytest.mark.parametrize("kind", ["random_forest", "hist_gradient_boosting"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_artifacts_predict_the_same_with_the_kernel(
    trained: Callable[[str, str], tuple[TrainResult, Path]],
    penguins: pd.DataFrame,
    kind: str,
    task: str,
    tree_kernel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trained artifact on its training data and its spec's edge records (each nullable
    feature null, each open category unseen): the same labels and numbers with and without
    the kernel, and the skops pipeline's labels and numbers within 1e-12."""
    result, folder = trained(kind, task)
    artifact = load_artifact(folder)
    spec = artifact.spec
    rows = pd.concat([penguins, pd.DataFrame(edge_records(spec))], ignore_index=True)
    valid = validate(spec, rows).valid
    with monkeypatch.context() as numpy:
        numpy_only(numpy)
        walked = artifact.predict(valid)
    monkeypatch.setattr("model.trees.KERNEL_MIN_WALKS", 0)
    predicted = artifact.predict(valid)
    assert predicted.labels.tolist() == walked.labels.tolist()
    assert predicted.rows.tolist() == walked.rows.tolist()
    frame = valid.frame()[spec.feature_names]
    if task == "classification":
        assert predicted.probabilities is not None
        assert walked.probabilities is not None
        assert same_bits(predicted.probabilities, walked.probabilities)
        expected = result.pipeline.predict_proba(frame)
        np.testing.assert_allclose(predicted.probabilities, expected, rtol=1e-12, atol=1e-12)
        assert predicted.labels.tolist() == result.pipeline.predict(frame).astype(str).tolist()
    else:
        assert same_bits(np.asarray(predicted.labels), np.asarray(walked.labels))
        expected = result.pipeline.predict(frame)
        np.testing.assert_allclose(predicted.labels, expected, rtol=1e-12, atol=1e-12)


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter of this environment; fails the test if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done


PREDICT = """
    import sys
    import pandas as pd
    from features import validate
    from model import load_artifact
    import model.trees

    artifact = load_artifact({folder!r})
    frame = pd.read_csv({data!r})
    artifact.predict(validate(artifact.spec, frame.head(10)).valid)
    loaded = lambda: (sys.modules.get("numba") is not None, "model.tree_kernel" in sys.modules)
    print("after 10 rows:", *loaded())
    trees = artifact.compiled.estimator
    rows = model.trees.KERNEL_MIN_WALKS // len(trees.roots) + 1
    large = validate(artifact.spec, frame.sample(rows, replace=True, random_state=0)).valid
    predicted = artifact.predict(large).probabilities
    print("after a large batch:", *loaded())
    matrix = artifact.compiled.preprocessor.transform(large.columns)
    model.trees.kernel = lambda: None
    print("walker:", predicted.tobytes() == trees.predict_proba(matrix).tobytes())
"""


@pytest.fixture(scope="module")
def forest_folder(trained: Callable[[str, str], tuple[TrainResult, Path]]) -> Path:
    return trained("random_forest", "classification")[1]


def predict_in_a_fresh_process(
    folder: Path, workspace: Path, env: dict[str, str] | None = None, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    code = PREDICT.format(folder=str(folder), data=str(workspace / "data/penguins.csv"))
    return run_python(prelude + textwrap.dedent(code), env)


def test_a_small_batch_never_imports_numba(forest_folder: Path, workspace: Path) -> None:
    """10 rows are walked by NumPy, numba installed or not; a large batch imports the kernel
    when numba is installed, and its numbers are the walker's."""
    done = predict_in_a_fresh_process(forest_folder, workspace)
    assert "after 10 rows: False False" in done.stdout
    assert f"after a large batch: {HAS_NUMBA} {HAS_NUMBA}" in done.stdout
    assert "walker: True" in done.stdout


def test_without_numba_or_with_a_broken_one_numpy_predicts(
    forest_folder: Path, workspace: Path, tmp_path: Path
) -> None:
    """As if the extra were not installed: no warning, NumPy. A numba that does not import
    (a NumPy newer than it supports): one warning, then NumPy."""
    absent = predict_in_a_fresh_process(
        forest_folder, workspace, prelude="import sys; sys.modules['numba'] = None\n"
    )
    assert "after a large batch: False False" in absent.stdout
    assert "walker: True" in absent.stdout
    assert "Warning" not in absent.stderr
    broken = tmp_path / "broken"
    (broken / "numba").mkdir(parents=True)
    (broken / "numba" / "__init__.py").write_text("raise ImportError('Numba needs NumPy 2.5')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(broken), os.environ.get("PYTHONPATH", "")])}
    done = predict_in_a_fresh_process(forest_folder, workspace, env)
    assert "after a large batch: False False" in done.stdout
    assert "walker: True" in done.stdout
    assert done.stderr.count("RuntimeWarning: model[fast]: numba does not import") == 1
    assert "Numba needs NumPy 2.5" in done.stderr


KERNEL_RUN = """
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from model.trees import compile_trees
    from model import tree_kernel

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for model in (RandomForestClassifier(n_estimators=3), HistGradientBoostingClassifier()):
        trees = compile_trees(model.fit(X, y))
        for threads in (1, 2, 1):
            assert tree_kernel.raw(trees, X, threads=threads).tobytes() == trees._walk(X).tobytes()
    print("cache:", tree_kernel.CACHE)
"""


def kernel_env(**env: str) -> dict[str, str]:
    """A fresh process's environment with numba's cache chosen by ``env`` alone, and two
    threads for the parallel variant whatever the machine."""
    base = {k: v for k, v in os.environ.items() if k not in {"NUMBA_CACHE_DIR", "XDG_CACHE_HOME"}}
    return {**base, "NUMBA_NUM_THREADS": "2", **env}


def run_kernel(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KERNEL_RUN)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done


@needs_numba
def test_the_cache_goes_to_the_user_cache_folder(tmp_path: Path) -> None:
    """Without NUMBA_CACHE_DIR: model/numba in the user's cache folder, one entry per variant
    (serial and parallel never share one); a second process loads them, compiles nothing."""
    env = kernel_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = run_kernel(env)
    folder = tmp_path / "cache" / "model" / "numba"
    assert f"cache: {folder}" in done.stdout
    assert "Warning" not in done.stderr
    index = sorted(p.name.split("-")[0] for p in folder.rglob("*.nbi"))
    for variant in ("_forest_serial", "_forest_parallel", "_boosting_serial", "_boosting_parallel"):
        assert index.count(f"tree_kernel.{variant}") == 1
    written = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    run_kernel(env)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == written
    numba_dir = tmp_path / "numba-dir"
    done = run_kernel(kernel_env(NUMBA_CACHE_DIR=str(numba_dir)))
    assert f"cache: {numba_dir}" in done.stdout
    assert any(numba_dir.rglob("*.nbi"))


@needs_numba
@pytest.mark.parametrize("where", ["NUMBA_CACHE_DIR", "HOME"])
def test_an_unwritable_cache_folder_warns_once_and_predicts(where: str, tmp_path: Path) -> None:
    """numba's cache folder (given, or in a home folder) cannot be made: the kernel still
    predicts, compiled in the process, with one warning; nothing is cached anywhere. (A path
    under a regular file: not even root can make it.)"""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = kernel_env(**{where: str(blocker / "cache")})
    done = run_kernel(env)
    assert "cache: None" in done.stdout
    assert done.stderr.count("KernelCacheWarning") == 1, done.stderr
    assert "not writable" in done.stderr
