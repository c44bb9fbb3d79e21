"""Only finite numbers are predicted (issue 26): a feature without bounds lets a huge value
overflow a linear model (an infinite value, NaN probabilities); those rows are refused, by
position and with a reason, never returned as inf or NaN, and without a NumPy warning. Tree
models stay finite whatever the input. Without a compiled form, a row scikit-learn's estimator
does not take is refused too, not the whole batch."""

import dataclasses
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


def test_the_scikit_learn_path_refuses_the_rows_its_estimator_does_not_take(
    made: Callable[..., Artifact],
) -> None:
    """Without a compiled form, scikit-learn raised for a whole batch holding one value it does
    not take (an infinity once standardised): that row alone is refused, each refused row with
    its own reason, in input order."""
    for task, normal in (("classification", 0.19), ("regression", 0.19)):
        artifact = dataclasses.replace(made(task, scale=1000.0), compiled=None)
        assert not artifact.numpy_only
        # 1e306 m stays finite once standardised, then overflows the linear model.
        flippers = [HUGE, normal, 1e306, -HUGE, normal]
        predicted = artifact.predict(validate(artifact.spec, records(artifact, flippers)).valid)
        overflows = [2] if task == "regression" else []
        assert predicted.rows.tolist() == sorted({1, 2, 4} - set(overflows))
        assert predicted.refused.tolist() == sorted([0, 3, *overflows])
        reasons = dict(zip(predicted.refused.tolist(), predicted.reasons.tolist(), strict=True))
        assert "beyond the range the model's estimator takes" in reasons[0]
        assert reasons[3] == reasons[0]
        if overflows:
            assert "prediction is not a finite number" in reasons[2]
            assert "; " in predicted.reason  # both reasons, once each
        values = predicted.labels if predicted.probabilities is None else predicted.probabilities
        assert np.isfinite(values.astype(float)).all()
        alone = artifact.predict(validate(artifact.spec, records(artifact, [normal])).valid)
        assert predicted.labels[0] == alone.labels[0]
        everything_refused = artifact.predict(
            validate(artifact.spec, records(artifact, [HUGE])).valid
        )
        assert everything_refused.refused.tolist() == [0]
        assert not len(everything_refused.rows)


@pytest.mark.parametrize(
    ("estimator", "refused"),
    [
        (RandomForest(kind="random_forest", n_estimators=5), [0, 1]),
        (HistGradientBoosting(kind="hist_gradient_boosting", max_iter=5), []),
    ],
    ids=["random_forest", "hist_gradient_boosting"],
)
def test_scikit_learn_trees_refuse_only_what_they_cannot_compare(
    made: Callable[..., Artifact], estimator: Estimator, refused: list[int]
) -> None:
    """scikit-learn's forests compare in float32: a value beyond its range (1.7e308, finite once
    standardised) is refused on that path; histogram gradient boosting takes any number."""
    artifact = dataclasses.replace(made("regression", estimator), compiled=None)
    valid = validate(artifact.spec, records(artifact, [HUGE, -HUGE, 190])).valid
    predicted = artifact.predict(valid)
    assert predicted.refused.tolist() == refused
    assert predicted.rows.tolist() == sorted({0, 1, 2} - set(refused))
    assert np.isfinite(predicted.labels).all()
