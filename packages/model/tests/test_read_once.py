"""An artifact is read once: the bytes verified are the bytes the model is built from."""

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import validate
from model import Artifact, ArtifactError, load_artifact
from model.manifest import CARD_FILE, INFERENCE_FILE, MANIFEST_FILE, PIPELINE_FILE


def probabilities(artifact: Artifact, penguins: pd.DataFrame) -> np.ndarray:
    predicted = artifact.predict(validate(artifact.spec, penguins).valid).probabilities
    assert predicted is not None
    return predicted


def test_a_file_swapped_while_loading_is_never_used(
    copy: Path, tmp_path: Path, penguins: pd.DataFrame
) -> None:
    """A thread swaps inference.json between the original and a tampered one (its
    coefficients negated) all the time loads run: a load may be refused, but one that is
    accepted predicts with the original model, never with what was swapped in (before, one
    read was hashed and another built the model)."""
    original = probabilities(load_artifact(copy), penguins)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    shutil.copyfile(copy / INFERENCE_FILE, good)
    compiled = json.loads(good.read_text())
    compiled["estimator"]["coef"] = [[-w for w in row] for row in compiled["estimator"]["coef"]]
    bad.write_text(json.dumps(compiled))
    stop = threading.Event()

    def swap() -> None:
        staged = tmp_path / "staged"
        while not stop.is_set():
            for source in (bad, good):
                os.link(source, staged)
                staged.replace(copy / INFERENCE_FILE)  # atomic: a reader sees one or the other

    swapper = threading.Thread(target=swap)
    swapper.start()
    refusals = []
    try:
        for _ in range(300):
            try:
                artifact = load_artifact(copy)
            except ArtifactError as error:
                refusals.append(str(error))
                continue
            np.testing.assert_array_equal(probabilities(artifact, penguins), original)
    finally:
        stop.set()
        swapper.join()
    assert all(f"{INFERENCE_FILE}: sha256 does not match" in refusal for refusal in refusals)


def test_the_pipeline_is_built_from_the_bytes_that_were_verified(copy: Path) -> None:
    """The skops pipeline of a compiled artifact loads on first use: from the bytes read and
    audited when the artifact was loaded, not from whatever the file holds by then."""
    artifact = load_artifact(copy)
    (copy / PIPELINE_FILE).write_bytes(b"PK\x03\x04 a replaced skops file")
    assert artifact.pipeline.steps[-1][0] == "estimator"


@pytest.mark.parametrize("name", [CARD_FILE, INFERENCE_FILE, MANIFEST_FILE])
def test_a_link_inside_the_folder_is_refused(copy: Path, tmp_path: Path, name: str) -> None:
    """Even to a file with the very bytes the manifest lists: links are followed by nobody."""
    outside = tmp_path / f"outside-{name}"
    shutil.copyfile(copy / name, outside)
    (copy / name).unlink()
    (copy / name).symlink_to(outside)
    with pytest.raises(ArtifactError, match=f"{name}: a symbolic link"):
        load_artifact(copy)


def test_an_unlisted_link_is_refused_too(copy: Path) -> None:
    (copy / "signature.json").symlink_to(copy / CARD_FILE)
    with pytest.raises(ArtifactError, match=r"signature\.json: a symbolic link"):
        load_artifact(copy)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_what_is_not_a_regular_file_is_refused(copy: Path, kind: str) -> None:
    (copy / CARD_FILE).unlink()
    if kind == "folder":
        (copy / CARD_FILE).mkdir()
    else:
        os.mkfifo(copy / CARD_FILE)  # opening it for reading would wait for a writer
    with pytest.raises(ArtifactError, match=f"{CARD_FILE}: not a regular file"):
        load_artifact(copy)


def test_a_deploy_link_is_resolved_once(copy: Path, saved: Path, tmp_path: Path) -> None:
    """``current -> v3``: loaded from the folder the link named when loading started, which
    the artifact reports as its path (what a worker handed the path loads again)."""
    current = tmp_path / "current"
    current.symlink_to(copy, target_is_directory=True)
    artifact = load_artifact(current)
    assert artifact.path == copy.resolve()
    current.unlink()
    current.symlink_to(saved, target_is_directory=True)  # the link flipped to another release
    assert artifact.pipeline is not None  # built from what was read, wherever the link points
    assert load_artifact(current).path == saved.resolve()


def test_the_digest_names_the_manifest_read(copy: Path) -> None:
    digest = hashlib.sha256((copy / MANIFEST_FILE).read_bytes()).hexdigest()
    assert load_artifact(copy).digest == digest
