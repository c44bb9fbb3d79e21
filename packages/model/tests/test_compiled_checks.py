"""The numbers of inference.json are checked when loaded: every field of the compiled
preprocessing and of a linear model (the trees' are in test_trees.py), each refusal one line
naming the file and the field."""

import copy as copying
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model import ArtifactError, CompiledPipeline, load_artifact
from model.manifest import INFERENCE_FILE, MANIFEST_FILE, sha256_file

Raw = dict[str, Any]
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def raw(saved: Path) -> Raw:
    """The species artifact's inference.json: branches 0 (island) and 5 (sex) one-hot,
    1-4 numbers, 6 the ratio; a three-class logistic model on 11 features."""
    return json.loads((saved / INFERENCE_FILE).read_text())


def branch(index: int, key: str, value: object) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        raw["preprocessor"]["branches"][index][key] = value

    return change


def scale(index: int, key: str, value: object) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        raw["preprocessor"]["branches"][index]["scale"][key] = [value]

    return change


def estimator(key: str, value: object) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        raw["estimator"][key] = value

    return change


def coef(row: int, column: int, value: object) -> Callable[[Raw], None]:
    def change(raw: Raw) -> None:
        raw["estimator"]["coef"][row][column] = value

    return change


def drop_last_feature(raw: Raw) -> None:
    """Coefficients one feature narrower than the preprocessing makes."""
    raw["estimator"]["coef"] = [row[:-1] for row in raw["estimator"]["coef"]]


CHANGES = {
    "fill NaN": (branch(1, "fill", NAN), r"preprocessor\.branches\[1\]\.fill: NaN"),
    "fill text": (branch(1, "fill", "44.7"), r"branches\[1\]\.fill: expected a number, found text"),
    "fill infinite": (branch(1, "fill", INF), r"branches\[1\]\.fill: an infinity"),
    "clip NaN": (branch(1, "low", NAN), r"branches\[1\]\.low: NaN"),
    "clip crossed": (branch(1, "low", 99.0), r"branches\[1\]\.low: 99\.0 is above high"),
    "scale NaN": (scale(2, "subtract", NAN), r"branches\[2\]\.scale\.subtract: NaN"),
    "scale zero": (scale(2, "divide", 0.0), r"branches\[2\]\.scale\.divide: a zero divisor"),
    "scale text": (scale(3, "multiply", "1"), r"branches\[3\]\.scale\.multiply: expected a list"),
    "scale width": (
        lambda raw: raw["preprocessor"]["branches"][2]["scale"].__setitem__("add", [0.0, 0.0]),
        r"branches\[2\]\.scale\.add: 2 numbers for 1 column\(s\)",
    ),
    "ratio fill width": (
        branch(6, "fill", [1.0, 2.0]),
        r"branches\[6\]\.fill: 2 numbers for 1 ratio\(s\)",
    ),
    "ratio eps": (branch(6, "eps", None), r"branches\[6\]\.eps: expected a number, found null"),
    "ratio pair": (branch(6, "pairs", [["bill_length_mm"]]), r"branches\[6\]\.pairs: expected"),
    "categories": (branch(0, "categories", [1, 2]), r"branches\[0\]\.categories: expected a list"),
    "category fill": (branch(5, "fill", 0), r"branches\[5\]\.fill: expected text"),
    "width": (
        lambda raw: raw["preprocessor"].__setitem__("n_features_out", 12),
        r"preprocessor\.n_features_out: 12, but the branches make 11",
    ),
    "unknown column": (
        branch(1, "column", "wingspan"),
        r"branches\[1\]: reads 'wingspan', not a number feature of the spec",
    ),
    "category as number": (
        branch(1, "column", "island"),
        r"branches\[1\]: reads 'island', not a number feature of the spec",
    ),
    "coef NaN": (coef(0, 3, NAN), r"estimator\.coef: NaN where a number belongs"),
    "coef infinite": (coef(2, 0, -INF), r"estimator\.coef: an infinity"),
    "coef text": (coef(1, 1, "0.5"), r"estimator\.coef: expected a list of equal-length lists"),
    "coef ragged": (coef(1, 1, [0.5]), r"estimator\.coef: expected a list of equal-length lists"),
    "intercept NaN": (estimator("intercept", [0.0, NAN, 0.0]), r"estimator\.intercept: NaN"),
    "class count": (
        estimator("intercept", [0.0, 0.0]),
        r"estimator\.coef: 3 row\(s\) of 11 and 2 intercept\(s\), where 3 of each belong",
    ),
    "feature width": (
        drop_last_feature,
        r"estimator: takes 10 features, the preprocessing makes 11",
    ),
    "classes": (estimator("classes", ["Adelie", 2, "Gentoo"]), r"estimator\.classes: expected"),
}


@pytest.mark.parametrize(("change", "message"), CHANGES.values(), ids=CHANGES.keys())
def test_each_field_is_checked_and_named(
    raw: Raw, saved: Path, change: Callable[[Raw], None], message: str
) -> None:
    changed = copying.deepcopy(raw)
    change(changed)
    with pytest.raises(ValueError, match=message):
        CompiledPipeline.from_dict(changed).check_inputs(load_artifact(saved).spec)


def test_a_refusal_at_load_is_one_line_naming_the_file_and_field(copy: Path, raw: Raw) -> None:
    """NaN coefficients once loaded, passed the self-check and served NaN probabilities."""
    changed = copying.deepcopy(raw)
    coef(0, 0, NAN)(changed)
    (copy / INFERENCE_FILE).write_text(json.dumps(changed))
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["files"][INFERENCE_FILE] = sha256_file(copy / INFERENCE_FILE)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as refused:
        load_artifact(copy)
    assert str(refused.value) == (
        f"{copy / INFERENCE_FILE}: malformed compiled model: estimator.coef: NaN where a number "
        "belongs"
    )
