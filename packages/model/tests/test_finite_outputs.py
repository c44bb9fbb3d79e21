"""Only finite numbers are predicted (issue 26): a feature without bounds lets a huge value
overflow a linear model (an infinite value, NaN probabilities); those rows are refused, by
position and with a reason, never returned as inf or NaN, and without a NumPy warning. Tree
models stay finite whatever the input."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import validate
from model import (
    Artifact,
    DataError,
    HistGradientBoosting,
    RandomForest,
    TrainConfig,
    load_artifact,
    save_result,
    train,
)
from model.evaluation import evaluate_artifact

from .conftest import CONFIGS, ROOT

Estimator = RandomForest | HistGradientBoosting | None
HUGE = 1.7e308
"""Below the largest float: a valid number for a feature without bounds."""


def unbounded_artifact(
    folder: Path, task: str, estimator: Estimator = None, *, millimetres_per_unit: float = 1.0
) -> Artifact:
    """The penguins model of ``task`` with ``flipper_length_mm`` left without bounds, trained
    on that column divided by ``millimetres_per_unit`` (a column of small spread overflows
    once standardised)."""
    name = "penguins_species" if task == "classification" else "penguins_body_mass"
    spec_text = (CONFIGS / f"{name}.features.toml").read_text(encoding="utf-8")
    bounds = "min = 150.0\nmax = 260.0\n"
    assert bounds in spec_text
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.features.toml"
    spec.write_text(spec_text.replace(bounds, ""), encoding="utf-8")
    data = pd.read_csv(ROOT / "data" / "penguins.csv")
    data["flipper_length_mm"] /= millimetres_per_unit
    data.to_csv(folder / "data.csv", index=False)
    config = TrainConfig.from_toml(CONFIGS / f"{name}.toml")
    update: dict[str, object] = {"spec": spec, "data": folder / "data.csv"}
    if estimator is not None:
        update["estimator"] = estimator
    return load_artifact(save_result(train(config.model_copy(update=update)), folder / "model"))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Artifact]:
    done: dict[tuple[str, str, float], Artifact] = {}

    def get(task: str, estimator: Estimator = None, scale: float = 1.0) -> Artifact:
        key = (task, type(estimator).__name__, scale)
        if key not in done:
            folder = tmp_path_factory.mktemp("unbounded")
            done[key] = unbounded_artifact(folder, task, estimator, millimetres_per_unit=scale)
        return done[key]

    return get


def records(artifact: Artifact, flippers: list[float]) -> list[dict[str, object]]:
    base: dict[str, object] = {
        "species": "Adelie",
        "island": "Dream",
        "bill_length_mm": 46.5,
        "bill_depth_mm": 17.9,
        "body_mass_g": 4000,
        "sex": "female",
    }
    names = artifact.spec.feature_names
    return [
        {k: v for k, v in base.items() if k in names} | {"flipper_length_mm": f} for f in flippers
    ]


def test_a_regression_that_overflows_refuses_those_rows(made: Callable[..., Artifact]) -> None:
    artifact = made("regression")
    valid = validate(artifact.spec, records(artifact, [190, HUGE, 200, -HUGE])).valid
    predicted = artifact.predict(valid)  # pytest turns any NumPy warning into an error
    assert predicted.rows.tolist() == [0, 2]
    assert len(predicted.labels) == 2
    assert np.isfinite(predicted.labels).all()
    assert predicted.refused.tolist() == [1, 3]
    assert "prediction is not a finite number" in predicted.reason


def test_nan_class_probabilities_refuse_those_rows(made: Callable[..., Artifact]) -> None:
    artifact = made("classification", scale=1000.0)  # metres: standardised, 1.7e308 is inf
    valid = validate(artifact.spec, records(artifact, [HUGE, 0.19, -HUGE])).valid
    predicted = artifact.predict(valid)
    assert predicted.rows.tolist() == [1]
    assert predicted.probabilities is not None
    assert predicted.probabilities.shape == (1, 3)
    assert np.isfinite(predicted.probabilities).all()
    assert predicted.labels.tolist() == [
        artifact.predict(validate(artifact.spec, records(artifact, [0.19])).valid).labels[0]
    ]
    assert predicted.refused.tolist() == [0, 2]
    assert "class probabilities are not finite numbers" in predicted.reason


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize(
    "estimator",
    [
        RandomForest(kind="random_forest", n_estimators=5),
        HistGradientBoosting(kind="hist_gradient_boosting", max_iter=5),
    ],
    ids=["random_forest", "hist_gradient_boosting"],
)
def test_tree_models_predict_huge_values_finitely_and_quietly(
    made: Callable[..., Artifact], task: str, estimator: Estimator
) -> None:
    """Trees compare, they do not multiply: any valid number lands in a leaf (their float32
    cast of 1.7e308 overflowed with a RuntimeWarning, an error under pytest)."""
    artifact = made(task, estimator)
    assert artifact.numpy_only
    predicted = artifact.predict(validate(artifact.spec, records(artifact, [HUGE, -HUGE])).valid)
    assert predicted.rows.tolist() == [0, 1]
    assert not len(predicted.refused)
    assert np.isfinite(
        predicted.labels if predicted.probabilities is None else predicted.probabilities
    ).all()


def test_evaluate_names_the_rows_without_a_finite_prediction(
    made: Callable[..., Artifact],
) -> None:
    artifact = made("regression")
    rows = records(artifact, [190, 200, HUGE])
    for row in rows:
        row["body_mass_g"] = 4000
    with pytest.raises(DataError, match=r"row\(s\) 2: the model's prediction is not a finite"):
        evaluate_artifact(artifact, rows)
