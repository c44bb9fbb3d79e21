"""Evaluation metrics per task."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics

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


def evaluate(task: str, y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    """Holdout metrics for ``task``; higher is better except ``rmse`` and ``mae``."""
    if task == "classification":
        return {
            "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
            "f1_macro": float(metrics.f1_score(y_true, y_pred, average="macro")),
        }
    return {
        "rmse": float(metrics.root_mean_squared_error(y_true, y_pred)),
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "r2": float(metrics.r2_score(y_true, y_pred)),
    }
