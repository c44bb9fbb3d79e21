"""Batch scoring as properties: on generated files whose bad rows fall anywhere, the chunk size
changes nothing, and the valid/invalid split is the per-record validator's (the HTTP door's
record model): the same rules at every door, whether the values come as CSV text, typed
Parquet columns or JSON values."""

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import FeatureSpec, record_model
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


def reference_invalid(spec: FeatureSpec, frame: pd.DataFrame) -> list[int]:
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


def rejected_rows(rejects: Path) -> list[int]:
    if not rejects.exists():
        return []
    read = pd.read_csv if rejects.suffix == ".csv" else pd.read_parquet
    return read(rejects)["row"].astype(int).tolist()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunk_size_changes_nothing_and_rejects_match_the_record_validator(
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
            expected = reference_invalid(artifact.spec, frame)
            assert rejected_rows(rejects_path(source.with_name(f"out-1{suffix}"))) == expected

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
    invalid = reference_invalid(artifact.spec, frame.astype(object).where(frame.notna(), None))
    assert summary.rejected_rows == len(invalid) > 0
    assert rejected_rows(rejects_path(output)) == invalid
