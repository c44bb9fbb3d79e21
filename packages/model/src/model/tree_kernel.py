"""The compiled tree kernel of the ``model[fast]`` extra: numba walks each row through each
tree of a :class:`model.trees.CompiledTrees` and adds the trees' outputs in the NumPy walker's
order, so its raw outputs are the walker's bit for bit (and scikit-learn's to the same 1e-12).

Each tree is walked for a block of rows at a time, every row one level a step without a
branch (deep levels: only the rows not yet at a leaf), so the nodes a step reads stay in the
CPU's cache; the nodes are renumbered for it (:meth:`model.trees.CompiledTrees.kernel_tables`).
A serial and a parallel variant (blocks of rows on numba's threads) are separate functions.

Imported by :mod:`model.trees` only for a batch large enough to profit (never when numba is
missing): importing it imports numba (~0.5 s) and loads the kernel from numba's cache, or
compiles it (~1 s a variant). Before numba is imported it chooses the cache's folder
(:func:`cache_folder`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from model.trees import CompiledTrees

BLOCK_ROWS = 1024  # rows walked through one tree before the next: its nodes stay in cache
ALL_ROWS_LEVELS = 8  # levels walked for every row before only the rows not at a leaf
PARALLEL_MIN_ROWS = 4 * BLOCK_ROWS  # fewer rows are walked on one thread


class KernelCacheWarning(RuntimeWarning):
    """numba's cache folder is not writable: the kernel is compiled in each process."""


def _user_cache() -> Path:
    """The user's cache folder, as platformdirs would name it."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_folder() -> Path | None:
    """Where numba caches the kernel: ``NUMBA_CACHE_DIR`` when set, else ``model/numba`` in
    the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux). None, with one
    :class:`KernelCacheWarning`, when that folder cannot be made or written: the kernel then
    compiles in each process, and nothing is written anywhere (not next to the installed
    sources either)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    try:
        folder = Path(given) if given else _user_cache() / "model" / "numba"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (OSError, RuntimeError) as error:  # RuntimeError: Path.home() without a home
        warnings.warn(
            f"model[fast]: numba's cache folder is not writable ({error}); the tree kernel "
            "is compiled in this process (a second or two) and not cached. Set "
            "NUMBA_CACHE_DIR to a writable folder to cache it.",
            KernelCacheWarning,
            stacklevel=2,
        )
        return None
    return folder


CACHE = cache_folder()
if CACHE is not None:  # read by numba when imported, and by its compiler when it reloads
    os.environ["NUMBA_CACHE_DIR"] = str(CACHE)

import numba  # noqa: E402 - after its cache folder is chosen

if CACHE is not None:  # numba may have been imported before us
    numba.config.CACHE_DIR = str(CACHE)  # type: ignore[attr-defined]
_cache = CACHE is not None


@numba.njit(cache=_cache)
def _missing(X: np.ndarray, start: int, stop: int) -> bool:
    """Whether rows ``start:stop`` of ``X`` (features by rows) hold a missing value (NaN)."""
    for feature in range(X.shape[0]):
        for row in range(start, stop):
            if np.isnan(X[feature, row]):
                return True
    return False


@numba.njit(cache=_cache)
def _walk(  # noqa: PLR0917
    X: np.ndarray,
    start: int,
    at: np.ndarray,
    nodes: np.ndarray,
    root: int,
    depth: int,
    missing: bool,
) -> None:
    """Walk rows ``start:start + len(at)`` of ``X`` (features by rows) down one tree into
    ``at``: ``x > threshold`` goes right, a missing value (NaN) where its bit says (looked at
    only when the rows hold one: ``missing``), anything else (ties too) left. All rows step
    together, one level a step and without a branch (a leaf is its own left child, so rows
    that reached one stay): for the first :data:`ALL_ROWS_LEVELS` levels every row, then only
    the rows not yet at a leaf."""
    for row in range(len(at)):
        at[row] = root
    for _ in range(min(depth, ALL_ROWS_LEVELS)):
        for row in range(len(at)):
            node = nodes[at[row]]
            x = X[node.feature >> 1, start + row]
            right = np.int32(x > node.threshold)
            if missing:
                right |= np.int32(np.isnan(x)) & (node.feature & 1)
            at[row] = node.left + right
    if depth <= ALL_ROWS_LEVELS:
        return
    active = np.empty(len(at), dtype=np.int32)
    n_active = 0
    for row in range(len(at)):
        active[n_active] = row
        n_active += nodes[at[row]].left != at[row]
    while n_active:
        kept = 0
        for i in range(n_active):
            row = active[i]
            node = nodes[at[row]]
            x = X[node.feature >> 1, start + row]
            right = np.int32(x > node.threshold)
            if missing:
                right |= np.int32(np.isnan(x)) & (node.feature & 1)
            step = node.left + right
            at[row] = step
            active[kept] = row
            kept += nodes[step].left != step
        n_active = kept


@numba.njit(cache=_cache)
def _forest_block(  # noqa: PLR0917
    X: np.ndarray,
    start: int,
    stop: int,
    nodes: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
    out: np.ndarray,
) -> None:
    """Rows ``start:stop`` of a forest: each output the sum of the trees' leaf values in tree
    order, from the first tree's value (from 0.0, -0.0 would become 0.0), divided by the
    number of trees, as :meth:`model.trees.CompiledTrees._walk` computes it."""
    at = np.empty(stop - start, dtype=np.int32)
    missing = _missing(X, start, stop)
    for tree in range(len(roots)):
        _walk(X, start, at, nodes, roots[tree], depth[tree], missing)
        if tree == 0:
            for row in range(len(at)):
                for k in range(value.shape[1]):
                    out[start + row, k] = value[at[row], k]
        else:
            for row in range(len(at)):
                for k in range(value.shape[1]):
                    out[start + row, k] += value[at[row], k]
    for row in range(start, stop):
        for k in range(value.shape[1]):
            out[row, k] /= len(roots)


@numba.njit(cache=_cache)
def _boosting_block(  # noqa: PLR0917
    X: np.ndarray,
    start: int,
    stop: int,
    nodes: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
    output: np.ndarray,
    baseline: np.ndarray,
    out: np.ndarray,
) -> None:
    """Rows ``start:stop`` of boosting: each raw column its baseline, then the leaf value of
    each tree adding to it, in training order."""
    at = np.empty(stop - start, dtype=np.int32)
    for row in range(start, stop):
        for k in range(len(baseline)):
            out[row, k] = baseline[k]
    missing = _missing(X, start, stop)
    for tree in range(len(roots)):
        _walk(X, start, at, nodes, roots[tree], depth[tree], missing)
        column = output[tree]
        for row in range(len(at)):
            out[start + row, column] += value[at[row], 0]


# The serial and parallel variants are separate functions: they never share a cache entry.


@numba.njit(cache=_cache)
def _forest_serial(  # noqa: PLR0917
    X: np.ndarray,
    nodes: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
    out: np.ndarray,
    block: int,
) -> None:
    for start in range(0, X.shape[1], block):
        stop = min(start + block, X.shape[1])
        _forest_block(X, start, stop, nodes, roots, depth, value, out)


@numba.njit(cache=_cache, parallel=True)
def _forest_parallel(  # noqa: PLR0917
    X: np.ndarray,
    nodes: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
    out: np.ndarray,
    block: int,
) -> None:
    for index in numba.prange((X.shape[1] + block - 1) // block):
        start = index * block
        stop = min(start + block, X.shape[1])
        _forest_block(X, start, stop, nodes, roots, depth, value, out)


@numba.njit(cache=_cache)
def _boosting_serial(  # noqa: PLR0917
    X: np.ndarray,
    nodes: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
    output: np.ndarray,
    baseline: np.ndarray,
    out: np.ndarray,
    block: int,
) -> None:
    for start in range(0, X.shape[1], block):
        stop = min(start + block, X.shape[1])
        _boosting_block(X, start, stop, nodes, roots, depth, value, output, baseline, out)


@numba.njit(cache=_cache, parallel=True)
def _boosting_parallel(  # noqa: PLR0917
    X: np.ndarray,
    nodes: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
    output: np.ndarray,
    baseline: np.ndarray,
    out: np.ndarray,
    block: int,
) -> None:
    for index in numba.prange((X.shape[1] + block - 1) // block):
        start = index * block
        stop = min(start + block, X.shape[1])
        _boosting_block(X, start, stop, nodes, roots, depth, value, output, baseline, out)


_parallel_lock = threading.Lock()  # numba's workqueue layer refuses concurrent launches


def _numba_threads() -> int:
    """``NUMBA_NUM_THREADS``: the most threads numba's pool runs."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def default_threads() -> int:
    """The threads a large batch is walked on: numba's (``NUMBA_NUM_THREADS``, by default the
    CPUs this process may run on), at most ``OMP_NUM_THREADS`` when that is set, as for
    scikit-learn's own OpenMP loops (tox's envs and Dask's workers set it to 1)."""
    threads = _numba_threads()
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        threads = min(threads, int(limit))
    return max(1, threads)


def raw(trees: CompiledTrees, X: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """What :meth:`model.trees.CompiledTrees._walk` returns, bit for bit: boosting's raw
    predictions, a forest's averaged outputs, ``(n_rows, n_outputs)``. On ``threads`` of
    numba's (by default :func:`default_threads` from :data:`PARALLEL_MIN_ROWS` rows, else
    one) the parallel variant walks blocks of rows side by side; while one caller runs it,
    another runs the serial one."""
    if threads is None:
        threads = default_threads() if len(X) >= PARALLEL_MIN_ROWS else 1
    threads = min(threads, _numba_threads())
    tables = trees.kernel_tables
    # Features by rows (no copy of the column-major matrix the preprocessing makes); a forest
    # compares float32 inputs, as scikit-learn's trees do.
    dtype = np.float32 if trees.kind == "forest" else np.float64
    columns = np.ascontiguousarray(np.asarray(X, dtype=dtype).T)
    out = np.empty((len(X), trees.value.shape[1]))
    parallel = threads > 1 and _parallel_lock.acquire(blocking=False)
    try:
        if parallel:
            numba.set_num_threads(threads)
        args = (columns, tables.nodes, tables.roots, tables.depth, tables.value)
        if trees.kind == "forest":
            (_forest_parallel if parallel else _forest_serial)(*args, out, BLOCK_ROWS)
        else:
            walk = _boosting_parallel if parallel else _boosting_serial
            walk(*args, trees.output, trees.baseline, out, BLOCK_ROWS)
    finally:
        if parallel:
            _parallel_lock.release()
    return out
