from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from features import validate
from model import ConfigError, DataError, TrainConfig, TrainResult, train
from model.estimators import HistGradientBoosting, RandomForest
from model.training import compile_checked
from model.trees import CompiledTrees


def test_species_classification(species_result: TrainResult) -> None:
    assert species_result.metrics["balanced_accuracy"] >= 0.95
    assert species_result.cv_metrics["accuracy"]["mean"] >= 0.95
    assert species_result.n_train + species_result.n_test == 344
    assert list(species_result.pipeline.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    assert species_result.data_fingerprint["rows"] == 344
    assert len(str(species_result.data_fingerprint["sha256"])) == 64


def test_body_mass_regression(body_mass_config: TrainConfig) -> None:
    result = train(body_mass_config)
    assert result.report.n_invalid == 2  # the two birds with no body mass, reported not dropped
    assert result.n_train + result.n_test == 342
    assert result.metrics["rmse"] < 400
    assert result.metrics["r2"] > 0.75
    assert body_mass_config.gate.failures(result.metrics) == []


def test_same_config_same_model(species_config: TrainConfig, penguins: pd.DataFrame) -> None:
    first, second = train(species_config), train(species_config)
    assert first.metrics == second.metrics
    assert first.cv_metrics == second.cv_metrics
    X = penguins.drop(columns=["species", "year"])
    np.testing.assert_array_equal(first.pipeline.predict_proba(X), second.pipeline.predict_proba(X))


def test_different_seed_different_split(species_config: TrainConfig) -> None:
    reseeded = species_config.model_copy(update={"seed": 7})
    assert train(reseeded).cv_metrics != train(species_config).cv_metrics


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForest(kind="random_forest", n_estimators=20),
        HistGradientBoosting(kind="hist_gradient_boosting", max_iter=20),
    ],
)
def test_every_estimator_trains(species_config: TrainConfig, estimator) -> None:
    result = train(species_config.model_copy(update={"estimator": estimator}))
    assert result.metrics["accuracy"] > 0.9
    assert result.compiled is not None
    assert isinstance(result.compiled.estimator, CompiledTrees)
    assert result.inference.startswith("NumPy (inference.json, checked against scikit-learn on")


class Tempered(LogisticRegression):
    """Probabilities that its coefficients do not give: what a NumPy form cannot reproduce."""

    def predict_proba(self, X):
        proba = super().predict_proba(X) ** 1.1
        return proba / proba.sum(axis=1, keepdims=True)


def test_a_disagreeing_numpy_form_is_not_shipped(
    species_config: TrainConfig, species_result: TrainResult, penguins: pd.DataFrame
) -> None:
    assert species_result.compiled is not None
    assert species_result.inference.startswith("NumPy (inference.json")
    spec = species_result.spec
    valid = validate(spec, penguins).valid
    X = valid.frame()[spec.feature_names]
    y = penguins.loc[X.index, "species"]
    pipeline = Pipeline([*species_result.pipeline.steps[:-1], ("estimator", Tempered())])
    compiled, inference = compile_checked(pipeline.fit(X, y), spec, valid)
    assert compiled is None
    assert "warning: the NumPy form differed from it by up to" in inference


def test_parquet_input(species_config: TrainConfig, penguins: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "penguins.parquet"
    penguins.to_parquet(path)
    from_parquet = train(species_config.model_copy(update={"data": path}))
    assert from_parquet.metrics == train(species_config).metrics


def test_too_many_invalid_rows_stops(
    species_config: TrainConfig, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    penguins.loc[:39, "sex"] = "unknown"
    path = tmp_path / "dirty.csv"
    penguins.to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        train(species_config.model_copy(update={"data": path}))
    message = str(caught.value)
    assert "40 of 344 rows are invalid (11.6% > max_invalid_share 5.0%)" in message
    assert "sex: category not allowed (allowed: female, male) (40 rows)" in message


def test_invalid_rows_under_the_limit_are_reported(
    species_config: TrainConfig, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    penguins.loc[:4, "bill_length_mm"] = 500.0
    path = tmp_path / "few.csv"
    penguins.to_csv(path, index=False)
    result = train(species_config.model_copy(update={"data": path}))
    assert result.report.n_invalid == 5
    assert result.n_train + result.n_test == 339


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "data file .*missing.csv not found"),
        ("table.json", "{}", "unsupported format '.json'"),
        ("broken.parquet", "not parquet", "cannot read as parquet"),
    ],
)
def test_unreadable_data(
    species_config: TrainConfig, tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    expected = ConfigError if content is None else DataError  # a missing file: before training
    with pytest.raises(expected, match=message):
        train(species_config.model_copy(update={"data": path}))


def test_a_boolean_target_names_its_classes_and_needs_a_value(tmp_path: Path) -> None:
    """Class names come from the target's kind (``false``/``true``, not ``0.0``/``1.0``), and a
    row whose target is null is rejected for training even if the spec calls it nullable."""
    penguins = pd.read_csv(Path(__file__).parents[3] / "data" / "penguins.csv").dropna()
    table = pd.DataFrame(
        {
            "flipper_length_mm": penguins["flipper_length_mm"],
            "heavy": np.where(penguins["body_mass_g"] > 4200, "TRUE", "false"),
        }
    )
    table.loc[table.index[0], "heavy"] = ""  # no target value
    table.to_csv(tmp_path / "heavy.csv", index=False)
    (tmp_path / "heavy.features.toml").write_text(
        'name = "heavy"\ntask = "classification"\n'
        '[target]\nname = "heavy"\nkind = "boolean"\n'  # nullable by default
        '[[features]]\nname = "flipper_length_mm"\nkind = "numeric"\n'
    )
    (tmp_path / "heavy.toml").write_text(
        'name = "heavy"\nspec = "heavy.features.toml"\ndata = "heavy.csv"\n'
        '[estimator]\nkind = "linear"\n'
    )
    result = train(TrainConfig.from_toml(tmp_path / "heavy.toml"))
    assert list(result.pipeline.classes_) == ["false", "true"]
    assert list(result.report) == [(0, "heavy", "null not allowed")]
    assert result.metrics["accuracy"] > 0.7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_are_scikit_learns(seed: int) -> None:
    """The NumPy metrics (what `model evaluate` prints) equal scikit-learn's definitions,
    classes only predicted or only true included."""
    from sklearn import metrics  # noqa: PLC0415

    from model.metrics import evaluate  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    truth = rng.choice(["a", "b", "c"], 60)
    guess = rng.choice(["a", "b", "d"], 60)
    got = evaluate("classification", truth, guess)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(truth, guess))
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = metrics.balanced_accuracy_score(truth, guess)
    assert got["balanced_accuracy"] == pytest.approx(balanced)
    assert got["f1_macro"] == pytest.approx(metrics.f1_score(truth, guess, average="macro"))
    y, p = rng.normal(size=50), rng.normal(size=50)
    values = evaluate("regression", y, p)
    assert values["rmse"] == pytest.approx(metrics.root_mean_squared_error(y, p))
    assert values["mae"] == pytest.approx(metrics.mean_absolute_error(y, p))
    assert values["r2"] == pytest.approx(metrics.r2_score(y, p))
    assert evaluate("regression", np.ones(3), np.ones(3))["r2"] == 1.0
