from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import FeatureSpec
from features.testing import sample_frame
from model import Artifact, TrainConfig, load_artifact, save_result, train
from serving.batch import rejects_path, score_file
from serving.exceptions import TableError

from .conftest import ROOT


def dirty(penguins: pd.DataFrame) -> pd.DataFrame:
    frame = penguins.drop(columns=["species"]).copy()
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[4, "bill_length_mm"] = "abc"
    frame.loc[6, "sex"] = "other"
    frame.loc[8, "island"] = None
    frame.loc[10, "flipper_length_mm"] = 999.0
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_with_rejects(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / f"in{suffix}"
    frame = dirty(penguins)
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        text = frame["bill_length_mm"].map(lambda v: None if pd.isna(v) else str(v))
        frame.assign(bill_length_mm=text).to_parquet(source)  # a text column in Parquet
    output = tmp_path / f"out{suffix}"
    summary = score_file(artifact, source, output, chunk_rows=100)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    scored, rejected = read(output), read(rejects_path(output))
    assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (344, 340, 4)
    assert len(scored) + len(rejected) == 344
    assert sorted(rejected["row"]) == [4, 6, 8, 10]
    reasons = dict(zip(rejected["row"], rejected["reasons"], strict=True))
    assert reasons[4] == "bill_length_mm: wrong type: expected a number"
    assert reasons[6] == "sex: category not allowed (allowed: female, male)"
    assert reasons[8] == "island: null not allowed"
    assert reasons[10] == "flipper_length_mm: above maximum 260"
    assert scored.columns.tolist() == [
        "row",
        "prediction",
        "probability_Adelie",
        "probability_Chinstrap",
        "probability_Gentoo",
        "model_version",
    ]
    assert (scored["model_version"] == artifact.version).all()
    expected = artifact.predict(penguins.drop(index=[4, 6, 8, 10]).drop(columns=["species"]))
    assert scored["prediction"].tolist() == expected.predictions.tolist()
    np.testing.assert_allclose(scored["probability_Gentoo"], expected.probabilities["Gentoo"])
    assert "344 input rows = 340 scored + 4 rejected" in summary.line()


def test_parquet_missing_or_mistyped_columns(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """Missing spec columns reject every row (none is lost); a number where text is expected
    is rejected row by row, like in CSV."""
    source, output = tmp_path / "odd.parquet", tmp_path / "odd.out.parquet"
    penguins[["species"]].head(7).to_parquet(source)
    summary = score_file(artifact, source, output)
    assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (7, 0, 7)
    reasons = pd.read_parquet(rejects_path(output))["reasons"]
    assert reasons.str.contains("island: missing column").all()
    penguins.drop(columns=["species"]).head(7).assign(sex=list(range(7))).to_parquet(source)
    summary = score_file(artifact, source, output)
    assert (summary.scored_rows, summary.rejected_rows) == (0, 7)
    reasons = pd.read_parquet(rejects_path(output))["reasons"]
    assert (reasons == "sex: wrong type: expected a string").all()


def test_many_times_the_chunk_size(artifact: Artifact, tmp_path: Path) -> None:
    frame = sample_frame(artifact.spec, 25_000, seed=5, target=False)
    frame.loc[::1000, "bill_depth_mm"] = -5.0  # 25 invalid rows spread over the chunks
    source = tmp_path / "big.parquet"
    frame.to_parquet(source)
    output = tmp_path / "big_scored.parquet"
    summary = score_file(artifact, source, output, chunk_rows=1_000)
    scored = pq.read_table(output).to_pandas()
    assert (summary.scored_rows, summary.rejected_rows) == (24_975, 25)
    assert scored["row"].is_monotonic_increasing
    assert set(range(25_000)) == set(scored["row"]) | set(
        pd.read_parquet(rejects_path(output))["row"]
    )
    assert scored["prediction"].tolist() == artifact.predict(frame).predictions.tolist()


def test_id_column_is_carried(tmp_path: Path, penguins: pd.DataFrame) -> None:
    spec = FeatureSpec.from_toml(ROOT / "configs" / "penguins_species.features.toml")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        (ROOT / "configs" / "penguins_species.features.toml")
        .read_text()
        .replace('task = "classification"', 'task = "classification"\nid_column = "tag"')
    )
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml").model_copy(
        update={"spec": spec_file}
    )
    artifact = load_artifact(save_result(train(config), tmp_path / "with-id"))
    assert artifact.spec.id_column == "tag" != spec.id_column
    source = tmp_path / "tagged.csv"
    penguins.assign(tag=[f"P{i:03}" for i in range(len(penguins))]).to_csv(source, index=False)
    scored = pd.read_csv(score_file(artifact, source, tmp_path / "out.csv").output)
    assert scored.columns[0] == "tag"
    assert scored["tag"].iloc[-1] == "P343"


def test_no_rejects_file_when_all_valid(artifact: Artifact, tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    stale = rejects_path(output)
    stale.write_text("left from an earlier run")
    summary = score_file(artifact, ROOT / "data" / "penguins.csv", output)
    assert summary.rejects is None
    assert not stale.exists()


def test_header_only_input(artifact: Artifact, tmp_path: Path) -> None:
    source = tmp_path / "empty.csv"
    source.write_text(",".join(artifact.spec.feature_names) + "\n")
    summary = score_file(artifact, source, tmp_path / "out.csv")
    assert summary.input_rows == 0
    assert (tmp_path / "out.csv").read_text().startswith('"row"')


@pytest.mark.parametrize(
    ("source_name", "output_name", "message"),
    [
        ("missing.csv", "out.csv", "input file not found"),
        ("in.txt", "out.csv", "unsupported format '.txt'"),
        ("in.csv", "out.xlsx", "unsupported format '.xlsx'"),
        ("in.csv", "no/such/dir/out.csv", "output folder"),
        ("in.csv", "in.csv", "output file would overwrite the input"),
        ("broken.parquet", "out.csv", "cannot read as parquet"),
    ],
)
def test_clear_errors(
    artifact: Artifact,
    tmp_path: Path,
    penguins: pd.DataFrame,
    source_name: str,
    output_name: str,
    message: str,
) -> None:
    penguins.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "broken.parquet").write_text("not parquet at all")
    with pytest.raises(TableError, match=message):
        score_file(artifact, tmp_path / source_name, tmp_path / output_name)
    assert not (tmp_path / "out.csv").exists()


def test_failure_midway_leaves_no_output(
    artifact: Artifact, tmp_path: Path, penguins: pd.DataFrame
) -> None:
    """A file that breaks after some chunks were written leaves neither output nor temp files."""
    source = tmp_path / "in.parquet"
    pd.concat([penguins] * 30).to_parquet(source, row_group_size=500, compression="snappy")
    data = bytearray(source.read_bytes())
    middle = int(len(data) * 0.8)
    data[middle : middle + 2000] = bytes(2000)  # zero a later row group's pages, keep the footer
    source.write_bytes(bytes(data))
    output = tmp_path / "out.parquet"
    done: list[int] = []
    with pytest.raises(TableError, match="cannot read as parquet"):
        score_file(artifact, source, output, chunk_rows=200, progress=done.append)
    assert sum(done) > 0, "the failure should come after some chunks were written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_parquet_with_a_pandas_index(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """A stored pandas index (here reversed labels) must not be mistaken for row positions."""
    source = tmp_path / "indexed.parquet"
    penguins.drop(columns=["species"]).set_axis(penguins.index[::-1] * 7).to_parquet(source)
    output = tmp_path / "out.csv"
    score_file(artifact, source, output, chunk_rows=100)
    scored = pd.read_csv(output)
    assert scored["row"].tolist() == list(range(344))
    assert scored["prediction"].tolist() == artifact.predict(penguins).predictions.tolist()
