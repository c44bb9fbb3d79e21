"""Batch scoring as properties: on generated files whose bad rows fall anywhere, the chunk size
changes nothing, and each row is scored or rejected, with its reasons, as the spec's rules say:
an oracle written here in plain Python from the spec judges each cell as the file holds it (CSV
text, typed Parquet columns). The split is also the per-record validator's (the HTTP door's
record model): the same rules at every door."""

import csv
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import CategoricalColumn, Column, FeatureSpec, NumericColumn, record_model
from features.testing import sample_frame
from model import Artifact
from serving.batch import rejects_path, score_file

TEXT = ["Dream", "Biscoe", "Torgersen", "female", "male", "Male", "new site", "=1+1", "abc"]


def cells(spec: FeatureSpec, name: str, *, text_in_numbers: bool) -> st.SearchStrategy[Any]:
    """Valid values of a column, and the invalid ones a file can hold: out of range, infinite,
    unknown category, null where not nullable, text in a number column (CSV only)."""
    column = next(c for c in spec.features if c.name == name)
    options: list[st.SearchStrategy[Any]] = [st.none()]
    if column.kind == "numeric":
        low, high = column.min or -1e6, column.max or 1e6
        options += [
            st.floats(low, high),
            st.floats(low, high),
            st.floats(high, high * 10, exclude_min=True),
            st.floats(-1e6, low, exclude_max=True),
            st.just(float("inf")),
        ]
        if text_in_numbers:
            options.append(st.sampled_from(["abc", "3,750", "1e400"]))
    else:
        options += [st.sampled_from(column.categories), st.sampled_from(TEXT)]
    return st.one_of(options)


@st.composite
def tables(draw: st.DrawFn, spec: FeatureSpec, *, csv: bool) -> pd.DataFrame:
    n_rows = draw(st.integers(1, 40))
    rows = [
        {c: draw(cells(spec, c, text_in_numbers=csv)) for c in spec.feature_names}
        for _ in range(n_rows)
    ]
    return pd.DataFrame(rows, columns=spec.feature_names).astype(object)


# --- the oracle: what the spec says of each cell of a file, in plain Python ------------------

NULL_TEXTS = ("", "NA", "N/A", "null", "NULL")  # texts meaning "no value"
DIGITS = set("0123456789")


def plain_number(text: str) -> float | None:
    """The value of a plain-number text (ASCII digits, one optional sign, point and exponent),
    else None (``3,750``, ``abc``, ``inf``, ``NaN``)."""
    mantissa, has_exponent, exponent = text.replace("E", "e").partition("e")
    mantissa = mantissa[1:] if mantissa[:1] in {"+", "-"} else mantissa
    exponent = exponent[1:] if exponent[:1] in {"+", "-"} else exponent
    digits = mantissa.replace(".", "", 1)
    if not digits or not set(digits) <= DIGITS:
        return None
    if has_exponent and (not exponent or not set(exponent) <= DIGITS):
        return None
    return float(text)  # beyond float range: an infinity


def numeric_refusal(column: NumericColumn, value: object) -> str | None:
    """Numbers and plain-number text within the bounds (inclusive); an infinity is refused by
    the bound on its side, else as not finite."""
    number = None
    if isinstance(value, str):
        number = plain_number(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None:
        return "wrong type: expected a number"
    if column.min is not None and number < column.min:
        return f"below minimum {column.min:g}"
    if column.max is not None and number > column.max:
        return f"above maximum {column.max:g}"
    return None if math.isfinite(number) else "not finite"


def category_refusal(column: CategoricalColumn, value: object) -> str | None:
    """Text among the categories, compared exactly; any text if unknown ones are allowed."""
    if not isinstance(value, str):
        return "wrong type: expected a string"
    if column.allow_unknown or value in column.categories:
        return None
    return f"category not allowed (allowed: {', '.join(column.categories)})"


def refusal(column: Column, value: object) -> str | None:
    """Why the spec refuses a cell, or None: a null (None or a null text) only if nullable,
    else the column kind's rule (the penguins spec has numeric and categorical columns)."""
    if value is None or (isinstance(value, str) and value in NULL_TEXTS):
        return None if column.nullable else "null not allowed"
    if isinstance(column, NumericColumn):
        return numeric_refusal(column, value)
    assert isinstance(column, CategoricalColumn), column.kind
    return category_refusal(column, value)


def file_cells(source: Path) -> list[dict[str, Any]]:
    """The file's cells: a CSV file's texts (read by the csv module), Parquet's typed values."""
    if source.suffix == ".csv":
        with source.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    return pq.read_table(source).to_pylist()


def expected_rejects(spec: FeatureSpec, source: Path) -> list[tuple[int, str]]:
    """``(row, reasons)`` of each row the spec refuses: its refused cells as ``column:
    reason``, in spec order, joined by ``; ``."""
    rejects = []
    for index, row in enumerate(file_cells(source)):
        reasons = [(c.name, refusal(c, row[c.name])) for c in spec.features]
        found = [f"{name}: {reason}" for name, reason in reasons if reason]
        if found:
            rejects.append((index, "; ".join(found)))
    return rejects


def record_model_invalid(spec: FeatureSpec, frame: pd.DataFrame) -> list[int]:
    """Rows the per-record validator (one JSON record at a time) refuses."""
    model = record_model(spec)
    invalid = []
    for index, row in enumerate(frame.to_dict(orient="records")):
        record = {k: None if pd.isna(v) else v for k, v in row.items()}  # every key, null
        try:
            model.model_validate(record)
        except ValidationError:
            invalid.append(index)
    return invalid


def score_every_way(artifact: Artifact, source: Path, n_rows: int) -> list[tuple[Any, Any]]:
    """Outputs and rejects for chunk sizes 1, 7, 100 and larger than the file."""
    results = []
    for chunk_rows in (1, 7, 100, n_rows + 1):
        output = source.with_name(f"out-{chunk_rows}{source.suffix}")
        summary = score_file(artifact, source, output, chunk_rows=chunk_rows)
        assert summary.scored_rows + summary.rejected_rows == n_rows
        rejects = rejects_path(output)
        if source.suffix == ".csv":
            results.append(
                (output.read_bytes(), rejects.read_bytes() if rejects.exists() else None)
            )
        else:
            results.append(
                (pq.read_table(output), pq.read_table(rejects) if rejects.exists() else None)
            )
    return results


def read_rows(path: Path, columns: list[str]) -> list[tuple[Any, ...]]:
    """The given columns of an output or rejects file, as tuples (none if it is absent)."""
    if not path.exists():
        return []
    table = pq.read_table(path) if path.suffix == ".parquet" else pd.read_csv(path)
    frame = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    return list(frame[columns].itertuples(index=False, name=None))


def check_against_the_oracle(spec: FeatureSpec, source: Path, output: Path, n_rows: int) -> None:
    """The rejects are the oracle's, with its reasons; every other row is scored."""
    expected = expected_rejects(spec, source)
    assert read_rows(rejects_path(output), ["row", "reasons"]) == expected
    refused = {row for row, _ in expected}
    scored = [row for (row,) in read_rows(output, ["row"])]
    assert scored == [row for row in range(n_rows) if row not in refused]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunk_size_changes_nothing_and_rejects_match_the_oracle(
    artifact: Artifact, suffix: str
) -> None:
    @given(frame=tables(artifact.spec, csv=suffix == ".csv"), categorical=st.booleans())
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(frame: pd.DataFrame, categorical: bool) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / f"in{suffix}"
            if suffix == ".csv":
                frame.to_csv(source, index=False)
            else:
                typed = frame.copy()
                for column in artifact.spec.features:
                    if column.kind == "numeric":
                        typed[column.name] = pd.to_numeric(typed[column.name]).astype("float64")
                    elif categorical:  # as pandas writes categoricals: Arrow dictionaries
                        typed[column.name] = typed[column.name].astype("category")
                typed.to_parquet(source)
            results = score_every_way(artifact, source, len(frame))
            assert all(result == results[0] for result in results[1:])
            output = source.with_name(f"out-1{suffix}")
            check_against_the_oracle(artifact.spec, source, output, len(frame))
            rejected = [row for (row,) in read_rows(rejects_path(output), ["row"])]
            assert rejected == record_model_invalid(artifact.spec, frame)

    check()


@pytest.mark.parametrize("seed", [2, 5])
def test_many_chunks_with_nulls_among_rejects(
    artifact: Artifact, tmp_path: Path, seed: int
) -> None:
    """The seeds that crashed the scorer: a reject whose column is all null fixed its type."""
    frame = sample_frame(artifact.spec, 5_000, seed=seed, target=False)
    frame.loc[::97, "bill_depth_mm"] = -5.0
    source = tmp_path / "big.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out.csv"
    summary = score_file(artifact, source, output, chunk_rows=1_000)
    assert summary.rejected_rows == len(expected_rejects(artifact.spec, source)) > 0
    check_against_the_oracle(artifact.spec, source, output, len(frame))
