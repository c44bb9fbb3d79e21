"""An output inside the artifact folder being used is refused (issue 26): an artifact holds
only the files its manifest lists, so one more file (scores, their rejects, a dataset
folder) would have it refused at its next load. Refused before anything is written, in one
line naming the path and the folder, also through a link."""

import shutil
from pathlib import Path

import pytest

from model import load_artifact
from serving.batch import score_file
from serving.cli import main
from serving.exceptions import TableError

from .conftest import ROOT

PENGUINS = ROOT / "data" / "penguins.csv"


@pytest.fixture
def folder(artifact_path: Path, tmp_path: Path) -> Path:
    """A copy of the species artifact, for tests that try to write into it."""
    return Path(shutil.copytree(artifact_path, tmp_path / "artifact"))


def listing(folder: Path) -> list[str]:
    """Every name in the folder, hidden ones (partial files) included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "inside", ["scores.csv", "scores.parquet", "sub/scores.csv", "../artifact/scores.csv"]
)
def test_score_file_refuses_an_output_inside_the_artifact_folder(folder: Path, inside: str) -> None:
    artifact = load_artifact(folder)
    before = listing(folder)
    output = folder / inside
    with pytest.raises(TableError, match="inside the artifact folder") as refused:
        score_file(artifact, PENGUINS, output)
    assert str(refused.value).startswith(f"{output}: the output path is inside")
    assert str(artifact.path) in str(refused.value)
    assert "\n" not in str(refused.value)
    assert listing(folder) == before
    load_artifact(folder)  # still an artifact


def test_a_link_into_the_artifact_folder_is_refused_too(folder: Path, tmp_path: Path) -> None:
    """A link to the folder (or a deploy link the artifact was loaded through) leads there."""
    current = tmp_path / "current"
    current.symlink_to(folder)
    artifact = load_artifact(current)  # resolved once: artifact.path is the folder itself
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    (elsewhere / "into").symlink_to(folder)
    before = listing(folder)
    for output in (current / "scores.csv", elsewhere / "into" / "scores.csv"):
        with pytest.raises(TableError, match="inside the artifact folder"):
            score_file(artifact, PENGUINS, output)
    assert listing(folder) == before
    summary = score_file(artifact, PENGUINS, elsewhere / "scores.csv")  # beside it is fine
    assert summary.scored_rows == 344


def test_the_score_command_says_so_in_one_line(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(folder)
    output = folder / "scores.csv"
    code = main(["score", str(PENGUINS), str(output), "--artifact", str(folder)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {output}: the output path is inside the artifact folder")
    assert len(err.strip().splitlines()) == 1
    assert listing(folder) == before


@pytest.mark.parametrize("inside", ["scores.csv", "sub/scores.parquet", "."])
def test_an_output_inside_another_artifact_folder_is_refused(
    artifact_path: Path, regression_path: Path, tmp_path: Path, inside: str
) -> None:
    """Scoring with one artifact into another's folder would break that other one the same
    way: any artifact's folder is refused, not only the one in use."""
    other = Path(shutil.copytree(regression_path, tmp_path / "other"))
    artifact = load_artifact(artifact_path)
    before = listing(other)
    output = other / inside
    with pytest.raises(TableError, match="inside the artifact folder") as refused:
        score_file(artifact, PENGUINS, output)
    assert str(refused.value).startswith(f"{output}: the output path is inside")
    assert f"the artifact folder {other.resolve()}," in str(refused.value)
    assert listing(other) == before
    load_artifact(other)  # still an artifact
