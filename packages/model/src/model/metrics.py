"""Evaluation metrics per task, in NumPy (the same definitions as scikit-learn's, which
cross-validation uses by name): re-scoring a compiled artifact needs no scikit-learn."""

from __future__ import annotations

import numpy as np

CLASSIFICATION_SCORING = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1_macro": "f1_macro",
}
REGRESSION_SCORING = {
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


def scoring(task: str) -> dict[str, str]:
    """scikit-learn scorer names for cross-validation."""
    return CLASSIFICATION_SCORING if task == "classification" else REGRESSION_SCORING


def evaluate(task: str, y_true: object, y_pred: object) -> dict[str, float]:
    """Holdout metrics for ``task``; higher is better except ``rmse`` and ``mae``."""
    if task == "classification":
        return _classification(np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str))
    truth, predicted = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    error = truth - predicted
    residual = float(np.sum(error**2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    r2 = 1.0 - residual / total if total else (1.0 if residual == 0.0 else 0.0)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": r2,
    }


def _classification(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    labels = np.union1d(truth, predicted)
    hits = np.array([np.sum((truth == c) & (predicted == c)) for c in labels], dtype=float)
    actual = np.array([np.sum(truth == c) for c in labels], dtype=float)
    guessed = np.array([np.sum(predicted == c) for c in labels], dtype=float)
    present = actual > 0  # a class only predicted has no recall (scikit-learn leaves it out)
    denominator = actual + guessed
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    return {
        "accuracy": float(np.mean(truth == predicted)),
        "balanced_accuracy": float(np.mean(hits[present] / actual[present])),
        "f1_macro": float(np.mean(f1)),
    }
