import numpy as np
import pandas as pd

from features import FeatureSpec, build_preprocessor, validate


def test_penguins_preprocessing(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    valid = validate(spec, penguins).valid.frame()
    out = build_preprocessor(spec).fit_transform(valid)
    assert out.columns.tolist() == [
        "island_Biscoe",
        "island_Dream",
        "island_Torgersen",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex_female",
        "sex_male",
        "sex_unknown",
        "bill_length_mm_per_bill_depth_mm",
    ]
    assert not out.isna().any().any(), "imputation must fill every null"
    assert len(out) == len(valid)
    # nulls in 'sex' became their own category
    assert out["sex_unknown"].sum() == valid["sex"].isna().sum() > 0
    np.testing.assert_allclose(out["bill_length_mm"].mean(), 0.0, atol=1e-9)


def test_unseen_category_does_not_fail(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    pre = build_preprocessor(spec).fit(validate(spec, penguins).valid.frame())
    new = penguins.head(2).assign(island=["Anvers", "Dream"])
    out = pre.transform(validate(spec, new).valid.frame())
    assert out.loc[0, ["island_Biscoe", "island_Dream", "island_Torgersen"]].sum() == 0
    assert out.loc[1, "island_Dream"] == 1


def test_clipping_tames_outliers(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    pre = build_preprocessor(spec).fit(validate(spec, penguins).valid.frame())
    extreme = validate(spec, penguins.head(2).assign(bill_length_mm=[79.0, 21.0])).valid.frame()
    typical = validate(spec, penguins).valid.frame()
    scaled = pre.transform(extreme)["bill_length_mm"]
    assert scaled.abs().max() <= pre.transform(typical)["bill_length_mm"].abs().max() + 1e-9


def test_boolean_and_ordinal() -> None:
    spec = FeatureSpec.from_dict(
        {
            "name": "mix",
            "task": "regression",
            "target": {"name": "y", "kind": "numeric"},
            "features": [
                {"name": "flag", "kind": "boolean"},
                {
                    "name": "size",
                    "kind": "categorical",
                    "categories": ["S", "M", "L"],
                    "encode": "ordinal",
                },
                {
                    "name": "v",
                    "kind": "numeric",
                    "impute": "constant",
                    "fill_value": -1,
                    "scale": "none",
                },
            ],
        }
    )
    frame = pd.DataFrame(
        {"flag": [True, None, True], "size": ["L", "S", None], "v": [2.0, None, 3.0]}, dtype=object
    )
    out = build_preprocessor(spec).fit_transform(validate(spec, frame).valid.frame())
    assert out.columns.tolist() == ["flag", "size", "v"]
    assert out["flag"].tolist() == [1.0, 1.0, 1.0]
    # the null takes the most frequent value (a tie goes to the first sorted, "L"); S<M<L order
    assert out["size"].tolist() == [2.0, 0.0, 2.0]
    assert out["v"].tolist() == [2.0, -1.0, 3.0]
