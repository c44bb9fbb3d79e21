import copy
from pathlib import Path

import pytest

from features import FeatureSpec, SpecError

BASE = {
    "name": "demo",
    "task": "classification",
    "target": {"name": "label", "kind": "categorical", "categories": ["a", "b"]},
    "features": [
        {"name": "x", "kind": "numeric", "min": 0, "max": 10},
        {"name": "y", "kind": "numeric"},
        {"name": "colour", "kind": "categorical", "categories": ["red", "blue"]},
        {"name": "flag", "kind": "boolean"},
    ],
}


def variant(**changes: object) -> dict[str, object]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def test_demo_specs_load(spec: FeatureSpec, regression_spec: FeatureSpec) -> None:
    assert spec.task == "classification"
    assert spec.target.name == "species"
    assert "bill_length_mm" in spec.feature_names
    assert spec.ratios[0].name == "bill_length_mm_per_bill_depth_mm"
    assert regression_spec.task == "regression"
    assert regression_spec.target.kind == "numeric"
    assert spec.ignored_columns == regression_spec.ignored_columns == ["year"]


def test_base_is_valid() -> None:
    spec = FeatureSpec.from_dict(BASE)
    assert spec.feature_names == ["x", "y", "colour", "flag"]
    assert spec.unknown_fields == "error"
    assert spec.ignored_columns == []
    assert spec.known_columns == {"x", "y", "colour", "flag", "label"}


def test_known_columns_include_id_and_ignored_columns() -> None:
    spec = FeatureSpec.from_dict(variant(id_column="tag", ignored_columns=["year", "note"]))
    assert spec.known_columns == {"x", "y", "colour", "flag", "label", "tag", "year", "note"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            variant(features=[{"name": "x", "kind": "text"}]),
            "features.0: Input tag 'text' found using 'kind' does not match",
        ),
        (
            variant(features=[{"name": "x", "kind": "numeric"}, {"name": "x", "kind": "boolean"}]),
            "duplicate feature column(s): x",
        ),
        (
            variant(features=[{"name": "label", "kind": "boolean"}]),
            "target column 'label' is also listed as a feature",
        ),
        (
            variant(features=[{"name": "x", "kind": "numeric", "min": 5, "max": 1}]),
            "features.0.numeric: Value error, bounds reversed: min 5.0 is greater than max 1.0",
        ),
        (
            variant(features=[{"name": "x", "kind": "numeric", "impute": "constant"}]),
            "impute = 'constant' needs a fill_value",
        ),
        (
            variant(features=[{"name": "x", "kind": "numeric", "clip_quantiles": [0.9, 0.1]}]),
            "clip_quantiles must satisfy 0 <= low < high <= 1",
        ),
        (
            variant(features=[{"name": "c", "kind": "categorical", "categories": ["a", "a"]}]),
            "categories repeat a value",
        ),
        (
            variant(features=[{"name": "c", "kind": "categorical", "categories": []}]),
            "features.0.categorical.categories: List should have at least 1 item",
        ),
        (
            variant(features=[{"name": "x", "kind": "numeric", "maximum": 3}]),
            "features.0.numeric.maximum: Extra inputs are not permitted",
        ),
        (variant(features=[]), "features: List should have at least 1 item"),
        (
            variant(features=[{"name": "bad name", "kind": "numeric"}]),
            "features.0.numeric.name: String should match pattern",
        ),
        (variant(task="ranking"), "task: Input should be 'classification' or 'regression'"),
        (
            variant(task="regression"),
            "a regression target must be numeric, 'label' is categorical",
        ),
        (
            variant(target={"name": "label", "kind": "numeric"}),
            "a classification target must be categorical or boolean",
        ),
        (
            variant(ratios=[{"numerator": "x", "denominator": "colour"}]),
            "ratio 'x_per_colour' uses 'colour', which is not a numeric feature",
        ),
        (variant(id_column="x"), "id_column 'x' is also a feature or the target"),
        (
            variant(ignored_columns=["label"]),
            "ignored_columns ['label'] are also features, the target or the id column",
        ),
        (
            variant(unknown_fields="warn"),
            "unknown_fields: Input should be 'error' or 'ignore'",
        ),
        (
            variant(features=[{"name": "g", "kind": "integer_categorical", "categories": ["a"]}]),
            "features.0.integer_categorical.categories.0: Input should be a valid integer",
        ),
        (
            variant(features=[{"name": "c", "kind": "categorical", "categories": ["a", "NA"]}]),
            "categories ['NA'] are texts that mean null",
        ),
    ],
)
def test_bad_spec_names_the_problem(data: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        FeatureSpec.from_dict(data, source="demo.toml")
    text = str(caught.value)
    assert text.startswith("demo.toml: invalid feature spec:")
    assert message in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.toml: feature spec not found"):
        FeatureSpec.from_toml(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.toml: not valid TOML"):
        FeatureSpec.from_toml(path)


def test_round_trip_through_json(spec: FeatureSpec) -> None:
    assert FeatureSpec.from_dict(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize("bound", ["nan", "inf", "-inf"])
def test_bounds_must_be_finite(bound: str) -> None:
    column = {"name": "x", "kind": "numeric", "min": float(bound)}
    spec = {"name": "s", "task": "regression", "target": {"name": "y", "kind": "numeric"}}
    with pytest.raises(
        SpecError, match=r"features\.0\.numeric\.min: Input should be a finite number"
    ):
        FeatureSpec.from_dict({**spec, "features": [column]})
