"""Re-scoring an artifact on labelled data, predicted as serving predicts: for a compiled
artifact this needs NumPy only (no scikit-learn), so ``model evaluate`` starts fast."""

from __future__ import annotations

import numpy as np

from features import FeatureSpec, ValidationReport, ValidRows, validate
from model.exceptions import DataError
from model.metrics import evaluate
from model.predictor import Artifact


def labels(spec: FeatureSpec, valid: ValidRows) -> np.ndarray:
    """The target column of validated rows: class names (text, as the target's kind names
    them) for classification, numbers otherwise."""
    y = valid.columns[spec.target.name]
    return np.asarray(spec.target.class_names(y) if spec.task == "classification" else y)


def evaluate_artifact(
    artifact: Artifact, data: object
) -> tuple[dict[str, float], ValidationReport]:
    """Metrics of an artifact on labelled data (records, an Arrow table as
    :func:`features.read_table` reads a file, or a frame), validated by the spec and predicted
    as serving predicts (the compiled form when the artifact has one); invalid rows are left
    out and reported. Rows the model gives no finite prediction for are a :class:`DataError`
    naming them: metrics without them would look better than the model is."""
    spec = artifact.spec
    result = validate(spec, data, target=True)
    if not len(result.valid):
        msg = f"no valid rows to evaluate:\n{result.report.summary()}"
        raise DataError(msg)
    predicted = artifact.predict(result.valid)
    if len(predicted.refused):
        shown = ", ".join(map(str, predicted.refused[:10].tolist()))
        more = f" and {len(predicted.refused) - 10} more" if len(predicted.refused) > 10 else ""
        msg = f"row(s) {shown}{more}: {predicted.reason}; no metrics without them"
        raise DataError(msg)
    return evaluate(spec.task, labels(spec, result.valid), predicted.labels), result.report
