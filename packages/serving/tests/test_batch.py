import csv
import dataclasses
import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features import FeatureSpec, InputError, iter_tables, validate
from features.testing import sample_frame
from model import Artifact, TrainConfig, load_artifact, save_result, train
from serving.batch import BatchSummary, rejects_path, score_file
from serving.exceptions import TableError
from serving.tabular import AtomicWriter

from .conftest import ROOT, predicted

TEXT_VIEW = getattr(pa, "string_view", pa.large_string)  # string views came in pyarrow 16


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
    assert rejected.columns.tolist() == ["row", "reasons", *frame.columns]
    assert (scored["model_version"] == artifact.version).all()
    expected = predicted(artifact, penguins.drop(index=[4, 6, 8, 10]))
    assert scored["prediction"].tolist() == expected.labels.tolist()
    np.testing.assert_allclose(scored["probability_Gentoo"], expected.probabilities[:, 2])
    assert "344 input rows = 340 scored + 4 rejected" in summary.line()


def test_parquet_missing_or_mistyped_columns(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """A missing spec column refuses the whole file before anything is written; a number
    where text is expected is rejected row by row, like in CSV."""
    source, output = tmp_path / "odd.parquet", tmp_path / "odd.out.parquet"
    penguins.drop(columns=["island"]).head(7).to_parquet(source)
    with pytest.raises(InputError, match="column 'island': column missing") as refused:
        score_file(artifact, source, output)
    assert refused.value.problems == [(None, "island", "column missing")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.parquet"]
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
    expected = artifact.predict(validate(artifact.spec, frame).valid)
    assert scored["row"].tolist() == expected.rows.tolist()
    assert scored["prediction"].tolist() == expected.labels.tolist()


def test_outputs_do_not_depend_on_the_chunk_size(artifact: Artifact, tmp_path: Path) -> None:
    frame = sample_frame(artifact.spec, 1_000, seed=9, target=False)
    frame.loc[::37, "flipper_length_mm"] = 999.0
    frame.loc[::53, "sex"] = "other"
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    written = []
    for chunk_rows in (1, 64, 999, 5_000):
        output = tmp_path / f"out{chunk_rows}.csv"
        score_file(artifact, source, output, chunk_rows=chunk_rows)
        written.append((output.read_bytes(), rejects_path(output).read_bytes()))
    assert all(files == written[0] for files in written[1:])
    assert written[0][1].count(b"\n") == 1 + len(set(range(0, 1000, 37)) | set(range(0, 1000, 53)))


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
    assert scored.columns.tolist()[:3] == ["row", "tag", "prediction"]
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
    ("source_name", "output_name", "error", "message"),
    [
        ("missing.csv", "out.csv", TableError, "input file not found"),
        ("in.txt", "out.csv", InputError, "unsupported format '.txt'"),  # read by features
        ("in.csv", "out.xlsx", TableError, "unsupported format '.xlsx'"),
        ("in.csv", "no/such/dir/out.csv", TableError, "output folder"),
        ("in.csv", "in.csv", TableError, "output file would overwrite the input"),
    ],
)
def test_clear_errors(
    artifact: Artifact,
    tmp_path: Path,
    penguins: pd.DataFrame,
    source_name: str,
    output_name: str,
    error: type[Exception],
    message: str,
) -> None:
    penguins.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(error, match=message):
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
    with pytest.raises(InputError, match="cannot read as parquet"):
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
    assert scored["prediction"].tolist() == predicted(artifact, penguins).labels.tolist()


def test_a_file_that_is_not_parquet(artifact: Artifact, tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_text("not parquet at all")
    with pytest.raises(InputError, match="cannot read as parquet"):
        score_file(artifact, tmp_path / "broken.parquet", tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.parquet"]


# --- regressions of the reliability issue -------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reject_after_clean_chunks(artifact: Artifact, tmp_path: Path, suffix: str) -> None:
    """Rejects that first appear after clean chunks (and a column that is null in the first
    rejects, text in later ones) are written, whatever the first chunk held."""
    frame = sample_frame(artifact.spec, 301, seed=3, target=False, null_share=0.0)
    frame.loc[150, "bill_depth_mm"] = -1.0  # first reject: sex is null here
    frame.loc[150, "sex"] = None
    frame.loc[300, "sex"] = "Male"  # last row, an unknown category as text
    source = tmp_path / f"in{suffix}"
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source)
    output = tmp_path / f"out{suffix}"
    summary = score_file(artifact, source, output, chunk_rows=100)
    assert (summary.scored_rows, summary.rejected_rows) == (299, 2)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    rejected = (
        read(rejects_path(output), dtype=str) if suffix == ".csv" else read(rejects_path(output))
    )
    assert rejected["row"].astype(int).tolist() == [150, 300]
    assert rejected["sex"].tolist()[1] == "Male"
    assert pd.isna(rejected["sex"].tolist()[0])


def test_rejects_hold_the_input_text(artifact: Artifact, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
        "Dream,39.10,18.7,181,3750,male\n"
        "Dream,39.10,18.7,181,3750,unknown\n"
    )
    score_file(artifact, source, tmp_path / "out.csv")
    line = rejects_path(tmp_path / "out.csv").read_text().splitlines()[1]
    assert line == '1,"sex: category not allowed (allowed: female, male)","Dream","39.10",' + (
        '"18.7","181","3750","unknown"'
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rejects_keep_every_input_column_as_read(
    artifact: Artifact, tmp_path: Path, suffix: str
) -> None:
    """``row``, ``reasons``, then every input column in the input's order, each cell's text as
    it was: "181" not "181.0", an empty cell empty, "NA" as "NA"."""
    source = tmp_path / "in.csv"
    source.write_text(
        "sex,year,body_mass_g,flipper_length_mm,bill_depth_mm,bill_length_mm,island\n"
        "male,2007,3750,181,18.7,39.10,Dream\n"
        ",,3750,181,,39.1,Dream\n"
        "male,2008,NA,181,18.7,39.1,=1+1\n"
        "unknown,2009,3750,181,18.7,1e1,Dream\n"
    )
    output = tmp_path / f"out{suffix}"
    summary = score_file(artifact, source, output)
    assert (summary.scored_rows, summary.rejected_rows) == (3, 1)
    if suffix == ".csv":
        lines = rejects_path(output).read_text().splitlines()
        assert lines == [
            '"row","reasons","sex","year","body_mass_g","flipper_length_mm","bill_depth_mm",'
            '"bill_length_mm","island"',
            '3,"bill_length_mm: below minimum 20; sex: category not allowed (allowed: female, '
            'male)","unknown","2009","3750","181","18.7","1e1","Dream"',  # spec order
        ]
    with_empty = tmp_path / "in2.csv"
    with_empty.write_text(
        "sex,year,body_mass_g,flipper_length_mm,bill_depth_mm,bill_length_mm,island\n"
        ",,3750,181,,39.1,\n"
        "male,2008,NA,181.0,18.7,39.1,=1+1x\n"
    )
    score_file(artifact, with_empty, output)
    if suffix == ".csv":
        rejected = pd.read_csv(rejects_path(output), dtype=str, keep_default_na=False)
    else:
        rejected = pd.read_parquet(rejects_path(output))
    assert rejected.columns.tolist() == [
        "row",
        "reasons",
        "sex",
        "year",
        "body_mass_g",
        "flipper_length_mm",
        "bill_depth_mm",
        "bill_length_mm",
        "island",
    ]
    assert rejected.astype(str).to_dict("records") == [
        {
            "row": "0",
            "reasons": "island: null not allowed",
            "sex": "",
            "year": "",
            "body_mass_g": "3750",
            "flipper_length_mm": "181",
            "bill_depth_mm": "",
            "bill_length_mm": "39.1",
            "island": "",
        }
    ]


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "Infinity"])
def test_text_nan_is_refused_not_imputed(artifact: Artifact, tmp_path: Path, text: str) -> None:
    """As over HTTP: NaN or infinity is not a value; only an empty cell (or NA, null) is null."""
    source = tmp_path / "in.csv"
    source.write_text(
        "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
        f"Dream,39.1,{text},181,3750,male\n"
        "Dream,39.1,,181,3750,male\n"
        "Dream,39.1,NA,181,3750,male\n"
    )
    summary = score_file(artifact, source, tmp_path / "out.csv")
    assert (summary.scored_rows, summary.rejected_rows) == (2, 1)
    rejected = pd.read_csv(rejects_path(tmp_path / "out.csv"), dtype=str, keep_default_na=False)
    assert rejected["bill_depth_mm"].tolist() == [text]
    assert rejected["reasons"].str.startswith("bill_depth_mm: ").all()


def test_rejects_are_not_neutralised(artifact: Artifact, tmp_path: Path) -> None:
    """The rejects file holds the input exactly as read, formulas too (it is for fixing the
    input, not for a spreadsheet)."""
    source = tmp_path / "in.csv"
    source.write_text(
        "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
        'Dream,39.1,18.7,181,3750,"=HYPERLINK(""http://x.invalid"",""y"")"\n'
        "Dream,-5,18.7,181,3750,@SUM(A1)\n"
        "Dream,39.1,18.7,181,3750,+cmd\n"
    )
    for suffix in (".csv", ".parquet"):
        output = tmp_path / f"out{suffix}"
        score_file(artifact, source, output)
        read = pd.read_csv if suffix == ".csv" else pd.read_parquet
        rejected = (
            read(rejects_path(output), dtype=str)
            if suffix == ".csv"
            else read(rejects_path(output))
        )
        assert rejected["sex"].tolist() == [
            '=HYPERLINK("http://x.invalid","y")',
            "@SUM(A1)",
            "+cmd",
        ]
        assert rejected["bill_length_mm"].tolist()[1] == "-5"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_only_the_prediction_column_is_neutralised(tmp_path: Path, suffix: str) -> None:
    """In CSV, text the scorer writes that a spreadsheet would run as a formula gets a ``'``
    (plain numbers kept); the columns named are the only ones touched, and Parquet never."""
    schema = pa.schema([("row", pa.int64()), ("tag", pa.string()), ("prediction", pa.string())])
    table = pa.table(
        {
            "row": [0, 1, 2, 3],
            "tag": ["=X(1)", "@a", "-5", "b"],
            "prediction": ["=X(1)", "@a", "-5", "+1.5e3"],
        },
        schema=schema,
    )
    path = tmp_path / f"out{suffix}"
    with AtomicWriter(path, schema, neutralise=["prediction"]) as writer:
        writer.write(table)
    written = (pd.read_csv(path, dtype=str) if suffix == ".csv" else pd.read_parquet(path)).to_dict(
        "list"
    )
    assert written["tag"] == ["=X(1)", "@a", "-5", "b"]
    if suffix == ".csv":
        assert written["prediction"] == ["'=X(1)", "'@a", "-5", "+1.5e3"]
    else:
        assert written["prediction"] == ["=X(1)", "@a", "-5", "+1.5e3"]


@pytest.mark.parametrize("link", ["rejects", "symlink", "hardlink", "same"])
def test_outputs_never_overwrite_the_input(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path, link: str
) -> None:
    """`score scores.rejects.csv scores.csv` (re-scoring last run's rejects under the same
    name), or an output that is the input through a link, is refused before any write."""
    source = tmp_path / "scores.rejects.csv"
    penguins.head(5).to_csv(source, index=False)
    before = source.read_bytes()
    output = tmp_path / "scores.csv"
    if link == "symlink":
        output.symlink_to(source)
    elif link == "hardlink":
        output.hardlink_to(source)
    elif link == "same":
        output = tmp_path / "." / "scores.rejects.csv"
    with pytest.raises(TableError, match="would overwrite the input"):
        score_file(artifact, source, output)
    assert source.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_output_that_is_a_folder(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    penguins.head(5).to_csv(source, index=False)
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(TableError, match=r"out\.csv: the output path is a folder"):
        score_file(artifact, source, tmp_path / "out.csv")


def test_repeated_and_nested_columns(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """A repeated spec column refuses the file; a nested one is rejected row by row, and a
    CSV rejects file, which cannot hold it, is a clear error that leaves nothing behind."""
    source = tmp_path / "dup.csv"
    source.write_text(
        "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,sex\n"
        "Dream,39.1,18.7,181,3750,male,female\n"
    )
    with pytest.raises(InputError, match="column 'sex': appears 2 times"):
        score_file(artifact, source, tmp_path / "out.csv")
    nested = tmp_path / "nested.parquet"
    table = pa.Table.from_pandas(penguins.head(3).drop(columns=["sex"]), preserve_index=False)
    table = table.append_column("sex", pa.array([{"a": 1}, {"a": 2}, None]))
    pq.write_table(table, nested)
    with pytest.raises(TableError, match=r"out\.rejects\.csv: cannot write as csv: .*struct"):
        score_file(artifact, nested, tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.csv", "nested.parquet"]
    summary = score_file(artifact, nested, tmp_path / "out.parquet")
    assert (summary.scored_rows, summary.rejected_rows) == (1, 2)
    rejected = pd.read_parquet(rejects_path(tmp_path / "out.parquet"))
    assert rejected["reasons"].tolist() == ["sex: wrong type: expected a string"] * 2
    assert rejected["sex"].tolist() == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path, umask: int
) -> None:
    source = tmp_path / "in.csv"
    dirty(penguins).to_csv(source, index=False)
    previous = os.umask(umask)
    try:
        summary = score_file(artifact, source, tmp_path / "out.parquet")
    finally:
        os.umask(previous)
    assert summary.rejects is not None
    for path in (summary.output, summary.rejects):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_partial_files_of_dead_runs_are_reclaimed(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """A run killed with SIGKILL leaves `.out.csv.<pid>.<random>.partial`; the next run to that
    output removes it, but never the partial file of a run still going."""
    source = tmp_path / "in.csv"
    penguins.to_csv(source, index=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.csv.{dead.pid}.0badf00d.partial"
    alive = tmp_path / f".out.csv.{os.getppid()}.1234abcd.partial"
    stale.write_text("half")
    alive.write_text("half")
    score_file(artifact, source, tmp_path / "out.csv")
    assert not stale.exists()
    assert alive.exists()


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("prediction", "out.csv"),
        ("model_version", "out.csv"),
        ("probability_Gentoo", "out.csv"),
        ("row", "out.csv"),
        ("reasons", "out.rejects.csv"),
    ],
)
def test_an_id_column_named_like_an_output_column_is_refused(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path, name: str, file: str
) -> None:
    spec = artifact.spec.model_copy(update={"id_column": name})
    renamed = dataclasses.replace(artifact, spec=spec)
    source = tmp_path / "in.csv"
    penguins.assign(**{name: range(len(penguins))}).to_csv(source, index=False)
    clash = "the input has column" if file.endswith("rejects.csv") else "would hold the column"
    with pytest.raises(TableError, match=rf"{file}: {clash}\(s\) {name}"):
        score_file(renamed, source, tmp_path / "out.csv")  # a spec check bypassed (model_copy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_repeated_blank_headers_of_ignored_columns_are_scored_and_kept(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """A spreadsheet export's trailing empty columns (two blank headers): with unknown columns
    ignored, the file scores, and the rejects keep both blank columns as they were."""
    spec = artifact.spec.model_copy(update={"unknown_fields": "ignore"})
    lenient = dataclasses.replace(artifact, spec=spec)
    source = tmp_path / "in.csv"
    text = penguins.head(3).to_csv(index=False).splitlines()
    rows = [
        text[0] + ",,",
        *(line + ",," for line in text[1:]),
        text[1].replace("male", "x") + ",,",
    ]
    source.write_text("\n".join(rows) + "\n")
    summary = score_file(lenient, source, tmp_path / "out.csv")
    assert (summary.scored_rows, summary.rejected_rows) == (3, 1)
    with (tmp_path / "out.rejects.csv").open(newline="") as handle:
        written = list(csv.reader(handle))
    original = list(csv.reader(rows))
    assert written[0] == ["row", "reasons", *original[0]]
    assert written[1][0] == "3"
    assert written[1][2:] == original[4]


def test_an_unknown_input_column_named_reasons_is_refused_clearly(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    spec = artifact.spec.model_copy(update={"unknown_fields": "ignore"})
    lenient = dataclasses.replace(artifact, spec=spec)
    source = tmp_path / "in.csv"
    penguins.assign(reasons="n/a").to_csv(source, index=False)
    with pytest.raises(TableError, match=r"out.rejects.csv: the input has column\(s\) reasons"):
        score_file(lenient, source, tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_keep_column_named_like_an_output_column_is_refused(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    penguins.to_csv(source, index=False)
    spec = artifact.spec.model_copy(update={"ignored_columns": ["year", "prediction"]})
    lenient = dataclasses.replace(artifact, spec=spec)
    penguins.assign(prediction="x").to_csv(source, index=False)
    with pytest.raises(TableError, match=r"would hold the column\(s\) prediction twice"):
        score_file(lenient, source, tmp_path / "out.csv", keep=["prediction"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_keep_carries_columns_as_read(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    """``keep`` columns follow ``row`` (and the id column), in the order given, exactly as
    read; a column the file does not have is refused before anything is written."""
    source = tmp_path / "in.csv"
    penguins.head(4).assign(island=["Dream", "Biscoe", "Dream", None]).to_csv(source, index=False)
    output = tmp_path / f"out{suffix}"
    summary = score_file(artifact, source, output, keep=["year", "species"])
    assert (summary.scored_rows, summary.rejected_rows) == (3, 1)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    scored = read(output, dtype=str) if suffix == ".csv" else read(output)
    assert scored.columns.tolist()[:4] == ["row", "year", "species", "prediction"]
    assert scored["year"].tolist() == ["2007"] * 3  # CSV text, as read
    assert scored["species"].tolist() == ["Adelie"] * 3
    with pytest.raises(TableError, match="--keep names column\\(s\\) the file does not have: tag"):
        score_file(artifact, source, tmp_path / "other.csv", keep=["year", "tag"])
    assert not (tmp_path / "other.csv").exists()


def test_a_symbolic_link_loop_is_a_clear_error(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    penguins.to_csv(source, index=False)
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(TableError, match=r"a\.csv: cannot resolve the path"):
        score_file(artifact, source, tmp_path / "a.csv")


def test_string_views_and_large_strings(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """Parquet text as string views or large strings is read like any text, and a large-string
    id that looks like a formula is neutralised in CSV like any other."""
    frame = penguins.drop(columns=["species"]).head(20)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("island"),
        "island",
        pc.cast(table["island"], TEXT_VIEW()),
    )
    tags = pa.array([f"=CMD({i})" for i in range(20)], pa.large_string())
    pq.write_table(table.append_column("tag", tags), tmp_path / "in.parquet")
    with_id = dataclasses.replace(
        artifact, spec=artifact.spec.model_copy(update={"id_column": "tag"})
    )
    summary = score_file(with_id, tmp_path / "in.parquet", tmp_path / "out.csv")
    assert summary.input_rows == 20
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored.columns.tolist()[:2] == ["row", "tag"]
    assert scored["tag"].tolist()[:2] == ["=CMD(0)", "=CMD(1)"]  # copied exactly as read


# --- found by mutation testing ----------------------------------------------------------------


def test_summary_line() -> None:
    summary = BatchSummary(1500, 1200, 300, Path("s.csv"), Path("s.rejects.csv"), 0.5)
    assert summary.line() == (
        "1500 input rows = 1200 scored + 300 rejected (reasons in s.rejects.csv); "
        "wrote s.csv in 0.5s (3,000 rows/s)"
    )
    nothing = BatchSummary(0, 0, 0, Path("s.csv"), None, 0.0)
    assert nothing.line() == "0 input rows = 0 scored + 0 rejected; wrote s.csv in 0.0s (0 rows/s)"


def test_chunk_rows_must_be_positive(artifact: Artifact, tmp_path: Path) -> None:
    with pytest.raises(TableError, match="chunk_rows must be at least 1, got 0"):
        score_file(artifact, ROOT / "data" / "penguins.csv", tmp_path / "out.csv", chunk_rows=0)
    assert not list(tmp_path.iterdir())


def test_regression_predictions_are_numbers(
    regression_path: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    artifact = load_artifact(regression_path)
    source = tmp_path / "in.parquet"
    penguins.drop(columns=["body_mass_g"]).head(30).to_parquet(source)
    output = tmp_path / "out.parquet"
    score_file(artifact, source, output)
    schema = pq.read_schema(output)
    assert schema.names == ["row", "prediction", "model_version"]
    assert schema.field("prediction").type == pa.float64()
    expected = predicted(artifact, penguins.head(30)).labels
    np.testing.assert_allclose(pd.read_parquet(output)["prediction"], expected)


def test_rows_are_numbered_when_the_id_column_is_absent(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    with_id = dataclasses.replace(
        artifact, spec=artifact.spec.model_copy(update={"id_column": "tag"})
    )
    source = tmp_path / "in.csv"
    penguins.head(3).to_csv(source, index=False)
    scored = pd.read_csv(score_file(with_id, source, tmp_path / "out.csv").output)
    assert scored.columns[0] == "row"
    assert scored["row"].tolist() == [0, 1, 2]


def test_an_output_linked_to_its_rejects_file_is_refused(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    penguins.head(5).to_csv(source, index=False)
    (tmp_path / "scores.csv").symlink_to(tmp_path / "scores.rejects.csv")
    with pytest.raises(
        TableError, match=r"scores\.csv: the output and rejects files would be the same file"
    ):
        score_file(artifact, source, tmp_path / "scores.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "scores.csv"]


@pytest.mark.parametrize(
    ("header", "problems"),
    [
        (
            "species,year",
            [(None, n, "column missing") for n in ["island", "bill_length_mm"]],
        ),
        (
            "island;bill_length_mm;bill_depth_mm;flipper_length_mm;body_mass_g;sex",
            [(None, "island", "column missing")],
        ),
        (
            "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,colour",
            [(None, "colour", "unknown column (not in the spec)")],
        ),
    ],
)
def test_a_file_without_a_spec_column_or_with_an_unknown_one_is_refused(
    artifact: Artifact, tmp_path: Path, header: str, problems: list[tuple]
) -> None:
    """The whole file is refused, naming the columns, before anything is written."""
    source = tmp_path / "in.csv"
    separator = ";" if ";" in header else ","
    row = separator.join(["1"] * len(header.split(separator)))
    source.write_text(f"{header}\n{row}\n{row}\n")
    with pytest.raises(InputError) as refused:
        score_file(artifact, source, tmp_path / "out.csv", chunk_rows=1)
    assert all(problem in refused.value.problems for problem in problems)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_partial_files_of_live_or_foreign_runs_are_kept(
    artifact: Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live process is only probed (signal 0), never signalled; a process that cannot be
    probed (another user's) counts as live."""
    # SIGHUP back to its default (nohup ignores it), so that a stray signal would end it
    sleeper = "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); time.sleep(60)"
    live = subprocess.Popen([sys.executable, "-c", sleeper])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    kill = os.kill

    def not_permitted(pid: int, signal: int) -> None:
        if pid == dead.pid:
            raise PermissionError(1, "Operation not permitted")
        kill(pid, signal)

    monkeypatch.setattr(os, "kill", not_permitted)
    running = tmp_path / f".out.csv.{live.pid}.1234abcd.partial"
    foreign = tmp_path / f".out.csv.{dead.pid}.0badf00d.partial"
    running.write_text("half")
    foreign.write_text("half")
    try:
        score_file(artifact, ROOT / "data" / "penguins.csv", tmp_path / "out.csv")
        with pytest.raises(subprocess.TimeoutExpired):
            live.wait(timeout=0.5)
    finally:
        live.kill()
        live.wait()
    assert running.exists()
    assert foreign.exists()


def test_numbers_and_ids_as_string_views(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """Parquet string views in a numeric column are parsed like any text; a string-view id
    is written as text, neutralised in CSV."""
    frame = penguins.drop(columns=["species"]).head(20)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    index = table.schema.get_field_index("bill_length_mm")
    text = pc.cast(pc.cast(table["bill_length_mm"], pa.string()), TEXT_VIEW())
    table = table.set_column(index, "bill_length_mm", text)
    tags = pa.array([f"=X({i})" for i in range(20)], TEXT_VIEW())
    pq.write_table(table.append_column("tag", tags), tmp_path / "in.parquet")
    with_id = dataclasses.replace(
        artifact, spec=artifact.spec.model_copy(update={"id_column": "tag"})
    )
    summary = score_file(with_id, tmp_path / "in.parquet", tmp_path / "out.csv")
    assert (summary.scored_rows, summary.rejected_rows) == (20, 0)
    scored = pd.read_csv(tmp_path / "out.csv")
    assert scored["tag"].tolist()[:2] == ["=X(0)", "=X(1)"]
    assert scored["prediction"].tolist() == predicted(artifact, frame).labels.tolist()


def test_binary_spec_column_is_rejected_row_by_row(
    artifact: Artifact, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    table = pa.Table.from_pandas(penguins.head(3).drop(columns=["sex"]), preserve_index=False)
    pq.write_table(table.append_column("sex", pa.array([b"male"] * 3)), tmp_path / "in.parquet")
    summary = score_file(artifact, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert (summary.scored_rows, summary.rejected_rows) == (0, 3)
    rejected = pd.read_parquet(rejects_path(tmp_path / "out.parquet"))
    assert rejected["reasons"].tolist() == ["sex: wrong type: expected a string"] * 3
    assert rejected["sex"].tolist() == [b"male"] * 3


def mixed_spec() -> FeatureSpec:
    return FeatureSpec.from_dict(
        {
            "name": "mixed",
            "task": "regression",
            "target": {"name": "y", "kind": "numeric"},
            "features": [
                {"name": "code", "kind": "categorical", "categories": ["01", "2"]},
                {"name": "flag", "kind": "boolean"},
                {"name": "x", "kind": "numeric"},
            ],
        }
    )


def test_csv_text_typed_for_validation(tmp_path: Path) -> None:
    """Read as the scorer reads (``features.iter_tables``): booleans as ``true``/``false`` in
    any case, categories that look like numbers kept as text, numbers parsed, whatever the
    column order; anything else is rejected. A missing column refuses the file."""
    spec = mixed_spec()
    source = tmp_path / "in.csv"
    source.write_text("code,flag,x\n01,TRUE,1.5\n2,true,abc\n,False,\n01,yes,2\n")
    [table] = iter_tables(source, spec, 10)
    result = validate(spec, table)
    assert list(result.report) == [
        (1, "x", "wrong type: expected a number"),
        (3, "flag", "wrong type: expected true or false"),
    ]
    valid = result.valid.frame()
    assert valid.index.tolist() == [0, 2]
    assert valid["code"].tolist()[0] == "01"
    assert valid["flag"].tolist() == [1.0, 0.0]
    assert valid["x"].tolist()[0] == 1.5
    assert valid[["code", "x"]].iloc[1].isna().all()
    without_flag = tmp_path / "no_flag.csv"
    without_flag.write_text("code,x\n2,3\n")
    with pytest.raises(InputError, match="column 'flag': column missing"):
        list(iter_tables(without_flag, spec, 10))


def test_parquet_decimals_and_booleans(tmp_path: Path) -> None:
    spec = mixed_spec()
    table = pa.table(
        {
            "x": pa.array([Decimal("1.50"), None, Decimal("99.25")], pa.decimal128(5, 2)),
            "flag": pa.array([True, False, False]),
            "code": pa.array(["01", "2", None]),
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    [chunk] = iter_tables(tmp_path / "in.parquet", spec, 10)
    result = validate(spec, chunk)
    assert result.report.n_invalid == 0
    assert result.valid.columns["x"].dtype == np.float64
    np.testing.assert_array_equal(result.valid.columns["x"], [1.5, np.nan, 99.25])
    assert result.valid.columns["flag"].tolist() == [1.0, 0.0, 0.0]


def test_parquet_booleans_with_nulls(tmp_path: Path) -> None:
    spec = mixed_spec()
    table = pa.table({"code": ["01"] * 3, "flag": [True, None, False], "x": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "in.parquet")
    [chunk] = iter_tables(tmp_path / "in.parquet", spec, 10)
    result = validate(spec, chunk)
    assert result.report.n_invalid == 0
    np.testing.assert_array_equal(result.valid.columns["flag"], [1.0, np.nan, 0.0])
