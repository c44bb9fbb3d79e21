"""One input contract at every door: a table of awkward cells gives the same valid/invalid
partition, the same reasons and the same predictions whether it arrives as JSON records (in
process and over HTTP), a pandas frame of text, a CSV file or a Parquet file of text (read for
training and evaluation, and by the batch scorer). Real files, a real server, real commands."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import read_table, validate
from model import TrainConfig, load_artifact, save_result, train
from serving.testing import ServerProcess

from .conftest import ROOT

SPEC = """
name = "doors"
task = "regression"
ignored_columns = ["note"]
[target]
name = "body_mass_g"
kind = "numeric"
nullable = false
[[features]]
name = "species"
kind = "categorical"
categories = ["Adelie", "Chinstrap", "Gentoo"]
nullable = false
[[features]]
name = "bill_length_mm"
kind = "numeric"
min = 20.0
max = 80.0
[[features]]
name = "flipper_length_mm"
kind = "numeric"
min = 150.0
max = 260.0
nullable = false
[[features]]
name = "year"
kind = "integer_categorical"
categories = [2007, 2008, 2009]
[[features]]
name = "tagged"
kind = "boolean"
"""

# (column, cell, valid?) - each row is a valid base row with one cell replaced.
AWKWARD = [
    ("bill_length_mm", " 39.5 ", False),  # whitespace
    ("bill_length_mm", "39.5", True),
    ("flipper_length_mm", "1,810", False),  # thousands separator
    ("flipper_length_mm", "1.81e2", True),  # exponent
    ("flipper_length_mm", "181", True),  # an integer in a float column
    ("bill_length_mm", "-0", False),  # -0 is a number (below the minimum)
    ("bill_length_mm", "NaN", False),
    ("bill_length_mm", "inf", False),
    ("bill_length_mm", "", True),  # empty: null (nullable)
    ("bill_length_mm", "NA", True),  # NA: null too
    ("flipper_length_mm", "", False),  # null, not nullable
    ("bill_length_mm", "\uff13\uff19.\uff15", False),  # full-width digits
    ("species", "adelie", False),  # case
    ("species", "Adelie ", False),  # trailing space
    ("species", "\u0410delie", False),  # Cyrillic A
    ("species", "NA", False),  # null, not nullable
    ("tagged", "TRUE", True),  # booleans as text, any case
    ("tagged", "false", True),
    ("tagged", "yes", False),
    ("tagged", "1", False),
    ("year", "2008", True),
    ("year", "2008.0", True),  # a float column's whole number
    ("year", "2008.5", False),  # a float in an integer column
    ("year", "2010", False),  # not a category
    ("year", "", True),
    ("note", "anything at all", True),  # an ignored column is never read
]


def base_row(index: int) -> dict[str, str]:
    return {
        "species": ["Adelie", "Chinstrap", "Gentoo"][index % 3],
        "bill_length_mm": str(35 + index % 20),
        "flipper_length_mm": str(180 + index % 40),
        "year": str(2007 + index % 3),
        "tagged": "true" if index % 2 else "False",
        "note": "",
        "body_mass_g": str(3000 + 37 * (index % 50)),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("doors")
    (folder / "doors.features.toml").write_text(SPEC, encoding="utf-8")
    rows = [base_row(i) for i in range(120)]
    write_csv(folder / "train.csv", rows)
    (folder / "train.toml").write_text(
        'name = "doors"\nspec = "doors.features.toml"\ndata = "train.csv"\n'
        '[estimator]\nkind = "linear"\n',
        encoding="utf-8",
    )
    result = train(TrainConfig.from_toml(folder / "train.toml"))
    return save_result(result, folder / "artifact")


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def awkward_rows() -> list[dict[str, str]]:
    rows = []
    for index, (column, cell, _) in enumerate(AWKWARD):
        row = base_row(index)
        row[column] = cell
        rows.append(row)
    return rows


def expected_invalid() -> list[int]:
    return [i for i, (_, _, ok) in enumerate(AWKWARD) if not ok]


def partition(result) -> tuple[list[int], list[tuple[int, str, str]]]:
    return result.valid.rows.tolist(), list(result.report)


def test_every_in_process_door_agrees_and_is_right(trained: Path, tmp_path: Path) -> None:
    spec = load_artifact(trained).spec
    rows = awkward_rows()
    features = [{k: v for k, v in row.items() if k != "body_mass_g"} for row in rows]
    write_csv(tmp_path / "awkward.csv", features)
    pq.write_table(pa.Table.from_pylist(features), tmp_path / "awkward.parquet")
    doors = {
        "records": validate(spec, features),
        "frame": validate(spec, pd.DataFrame(features, dtype="string")),
        "object frame": validate(spec, pd.DataFrame(features, dtype=object)),
        "csv": validate(spec, read_table(tmp_path / "awkward.csv", spec)),
        "parquet": validate(spec, read_table(tmp_path / "awkward.parquet", spec)),
    }
    reference = doors["records"]
    assert sorted(set(range(len(rows))) - set(reference.valid.rows)) == expected_invalid()
    for name, result in doors.items():
        assert partition(result) == partition(reference), name
        pd.testing.assert_frame_equal(result.valid.frame(), reference.valid.frame(), obj=name)
    # typed values, spot-checked: exponent, integer text, whole-number float text, booleans
    frame = reference.valid.frame()
    assert frame.loc[3, "flipper_length_mm"] == 181.0
    assert frame.loc[21, "year"] == "2008"
    assert frame.loc[16, "tagged"] == 1.0
    assert np.isnan(frame.loc[9, "bill_length_mm"])
    reasons = {(row, column): reason for row, column, reason in reference.report}
    assert reasons[(0, "bill_length_mm")] == "wrong type: expected a number"
    assert reasons[(22, "year")] == "wrong type: expected a whole number"
    assert reasons[(10, "flipper_length_mm")] == "null not allowed"


def test_http_batch_and_evaluate_agree_with_the_validator(trained: Path, tmp_path: Path) -> None:
    artifact = load_artifact(trained)
    rows = awkward_rows()
    features = [{k: v for k, v in row.items() if k != "body_mass_g"} for row in rows]
    reference = validate(artifact.spec, features)
    expected = artifact.predict(reference.valid).labels
    reasons = {}
    for row, column, reason in reference.report:
        reasons.setdefault(row, []).append(f"{column}: {reason}")

    with ServerProcess(["--artifact", str(trained)], log=tmp_path / "server.log") as server:
        served: dict[int, float] = {}
        for index, record in enumerate(features):
            status, body = server.request("/v1/predict", {"records": [record]})
            if status == 200:
                served[index] = body["predictions"][0]["prediction"]
            else:
                assert status == 422, body
                got = [f"{d['field']}: {d['message']}" for d in body["detail"]]
                assert got == reasons[index], index
    assert sorted(served) == reference.valid.rows.tolist()
    np.testing.assert_array_equal(list(served.values()), expected)

    for suffix in (".csv", ".parquet"):
        source = tmp_path / f"awkward{suffix}"
        if suffix == ".csv":
            write_csv(source, rows)
        else:
            pq.write_table(pa.Table.from_pylist(rows), source)
        output = tmp_path / f"scores{suffix}"
        command = [sys.executable, "-m", "serving.cli", "score", str(source), str(output)]
        command += ["--artifact", str(trained), "--max-reject-share", "1"]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
        scored = pd.read_csv(output) if suffix == ".csv" else pd.read_parquet(output)
        assert scored["row"].tolist() == reference.valid.rows.tolist()
        np.testing.assert_array_equal(scored["prediction"].to_numpy(), expected)
        reject_file = output.with_name(f"scores.rejects{suffix}")
        if suffix == ".csv":  # every cell exactly as it was, in the input's column order
            with reject_file.open(newline="", encoding="utf-8") as handle:
                rejected = list(csv.DictReader(handle))
        else:
            rejected = pq.read_table(reject_file).to_pylist()
        assert [int(r["row"]) for r in rejected] == expected_invalid()
        assert [r["reasons"] for r in rejected] == [
            "; ".join(reasons[i]) for i in expected_invalid()
        ]
        for record in rejected:
            original = rows[int(record["row"])]
            assert list(record)[2:] == list(original)
            assert {k: record[k] for k in original} == original

    evaluated = subprocess.run(
        [sys.executable, "-m", "model.cli", "evaluate", str(trained), "--data", str(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    n_bad = len(expected_invalid())
    assert f"{len(rows) - n_bad} rows scored, {n_bad} rejected" in evaluated.stdout


def test_integer_categories_are_integers_in_json_and_digits_in_text(trained: Path) -> None:
    artifact = load_artifact(trained)
    base = {k: v for k, v in base_row(0).items() if k not in {"body_mass_g", "note"}}
    records = [
        {**base, "year": 2008},
        {**base, "year": 2008.0},
        {**base, "year": "2008"},
        {**base, "year": 2008.5},
        {**base, "year": True},
        {**base, "year": 2011},
    ]
    result = validate(artifact.spec, records)
    assert result.valid.rows.tolist() == [0, 1, 2]
    assert [r for _, _, r in result.report] == [
        "wrong type: expected a whole number",
        "wrong type: expected a whole number",
        "category not allowed (allowed: 2007, 2008, 2009)",
    ]
    predictions = artifact.predict(result.valid).labels
    assert predictions[0] == predictions[1] == predictions[2]
    schema = json.dumps(artifact.spec.model_dump(mode="json"))
    assert '"categories": [2007, 2008, 2009]' in schema
