"""An artifact is never written inside another one (issue 26): the outer one would then hold a
folder its manifest does not list, and be refused when loaded. Refused before anything is
made there (no folder, no training), in one line naming both."""

from pathlib import Path

import pytest

from model import ArtifactError, TrainResult, inside_an_artifact, load_artifact, save_result
from model.cli import main

from .conftest import CONFIGS


def listing(folder: Path) -> list[str]:
    """Every name in the folder, hidden ones (staging folders) included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("inside", ["nested", "a/b/nested", "../artifact/nested"])
def test_save_result_refuses_a_folder_inside_an_artifact(
    species_result: TrainResult, copy: Path, inside: str
) -> None:
    before = listing(copy)
    with pytest.raises(ArtifactError, match="inside the artifact folder") as refused:
        save_result(species_result, copy / inside)
    assert str(copy.resolve()) in str(refused.value)
    assert listing(copy) == before
    load_artifact(copy)  # still an artifact


def test_train_refuses_an_output_inside_an_artifact_before_training(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(copy)
    output = copy / "v2"
    config = CONFIGS / "penguins_species.toml"
    assert main(["train", "--config", str(config), "--output", str(output)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"error: {output}: inside the artifact folder {copy.resolve()}, which holds the "
        "model's own files only; choose an --output outside it"
    )
    assert "metrics" not in captured.out  # refused before training
    assert listing(copy) == before


def test_inside_an_artifact_names_the_folder_a_path_is_or_lies_in(
    copy: Path, tmp_path: Path
) -> None:
    """The public check every writer uses: the folder itself, anything under it (also through
    a link), and nothing beside it."""
    folder = copy.resolve()
    link = tmp_path / "current"
    link.symlink_to(folder)
    for path in (copy, copy / "scores.csv", copy / "a" / "b", link / "x", copy / ".." / copy.name):
        assert inside_an_artifact(path) == folder, path
    assert inside_an_artifact(copy.parent / "beside.csv") is None
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert inside_an_artifact(loop / "x") is None  # a link loop: named by whoever opens it
